package buildkit

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bkcache/bkcache/buildkit/mountarchive"
	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"
)

// CacheMount is a Dockerfile cache mount as a helper build must mount it to
// reach the same cache as the build's RUN steps: BuildKit keys a cache by
// its id and, when uid, gid or mode are set, by the directory created with
// them (dockerfile2llb's dispatchRunMounts and setCacheUIDGID, mirrored in
// source below).
type CacheMount struct {
	CacheID  string // the id BuildKit sees, namespace included
	Owned    bool   // uid, gid or mode were set
	UID, GID int
	Mode     os.FileMode
	Sharing  string // shared, private or locked
}

func (m CacheMount) mountOptions() ([]llb.MountOption, llb.State, error) {
	sharing := map[string]llb.CacheMountSharingMode{
		"shared": llb.CacheMountShared, "private": llb.CacheMountPrivate, "locked": llb.CacheMountLocked,
	}
	mode, ok := sharing[m.Sharing]
	if !ok {
		return nil, llb.State{}, fmt.Errorf("cache mount %s: sharing %q (allowed: shared, private, locked)", m.CacheID, m.Sharing)
	}
	opts := []llb.MountOption{llb.AsPersistentCacheDir(m.CacheID, mode)}
	src := llb.Scratch()
	if m.Owned {
		src = src.File(llb.Mkdir("/cache", m.Mode, llb.WithUIDGID(m.UID, m.GID)),
			llb.WithCustomName("[internal] setting cache mount permissions"))
		opts = append(opts, llb.SourcePath("/cache"))
	}
	return opts, src, nil
}

// MountHelper runs bkcache's own static binary on the builder, where it
// mounts the build's caches, to pack a cache mount into an archive or
// unpack one into it. The binary is sent in through the session, so no
// image is pulled. It runs in a gateway container where the builder has
// them (mountexec.go), else in small builds of its own.
type MountHelper struct {
	c         *client.Client
	platform  ocispecs.Platform
	binDir    string // holds the helper binary
	binName   string
	transport Transport
}

// Local source names of the helper builds.
const (
	helperLocal  = "bkcache-helper"
	archiveLocal = "bkcache-archive"
)

// NewMountHelper connects to the builder (resolved as Build does) and
// asks pickBinary for a helper binary that runs on the builder's platform.
func NewMountHelper(ctx context.Context, builder string, getenv func(string) string,
	pickBinary func(ocispecs.Platform) (string, error)) (*MountHelper, error) {
	ep, err := ResolveBuilder(builder, getenv)
	if err != nil {
		return nil, err
	}
	c, err := client.New(ctx, ep.Addr, ep.ClientOpts()...)
	if err != nil {
		return nil, fmt.Errorf("connecting to builder %s (from %s): %w", ep.Addr, ep.Source, err)
	}
	ws, err := c.ListWorkers(ctx)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("listing the builder's workers: %w", err)
	}
	if len(ws) == 0 || len(ws[0].Platforms) == 0 {
		c.Close()
		return nil, errors.New("the builder reports no worker platform")
	}
	// The Dockerfile frontend builds for the first worker's first
	// platform by default; so do the helper builds.
	p := platforms.Normalize(ws[0].Platforms[0])
	bin, err := pickBinary(p)
	if err != nil {
		c.Close()
		return nil, err
	}
	return &MountHelper{c: c, platform: p, binDir: filepath.Dir(bin), binName: filepath.Base(bin), transport: TransportContainer}, nil
}

// Transport is how the helper reaches the cache mounts: a container until
// the builder turns out not to run them.
func (h *MountHelper) Transport() Transport { return h.transport }

// SetTransport chooses the transport, for benchmarks that compare them.
func (h *MountHelper) SetTransport(t Transport) { h.transport = t }

// viaContainer runs do when the transport is a container, and reports
// false when it is not or the builder turned out not to run containers;
// the caller then runs the helper build.
func (h *MountHelper) viaContainer(do func() error) (bool, error) {
	if h.transport != TransportContainer {
		return false, nil
	}
	err := do()
	if errors.Is(err, errNoContainers) {
		h.transport = TransportBuild
		return false, nil
	}
	return true, err
}

// Platform is the builder's platform the helper runs on.
func (h *MountHelper) Platform() ocispecs.Platform { return h.platform }

// Close ends the connection.
func (h *MountHelper) Close() error { return h.c.Close() }

// Save packs the mount's contents, at most maxBytes of file data, and
// writes the zstd tar to w. A mount over the cap writes nothing and
// reports Exceeded.
func (h *MountHelper) Save(ctx context.Context, m CacheMount, maxBytes int64, w io.Writer) (mountarchive.Report, error) {
	return one(h.SaveAll(ctx, []CacheMount{m}, maxBytes, []io.Writer{w}, nil))
}

// Probe counts what the mount holds, so that a builder that kept its
// mounts is not sent an archive it would not use.
func (h *MountHelper) Probe(ctx context.Context, m CacheMount) (mountarchive.Report, error) {
	return one(h.ProbeAll(ctx, []CacheMount{m}, time.Time{}))
}

// Restore unpacks the archive read from r into the mount when the mount
// is empty; a mount with contents is left alone (Restored false). The
// helper unpacks all of it or nothing; an archive over opt.MaxBytes of
// files restores nothing and reports Exceeded.
func (h *MountHelper) Restore(ctx context.Context, m CacheMount, r io.Reader, opt mountarchive.UnpackOptions) (mountarchive.Report, error) {
	return one(h.RestoreAll(ctx, []CacheMount{m}, []io.Reader{r}, opt))
}

func one(reps []mountarchive.Report, err error) (mountarchive.Report, error) {
	if err != nil {
		return mountarchive.Report{}, err
	}
	if reps[0].Error != "" {
		return mountarchive.Report{}, errors.New(reps[0].Error)
	}
	return reps[0], nil
}

// The batch operations below run one helper build for all the mounts
// given: each helper build costs a solve on the builder, so a build with
// five mounts pays one per phase instead of five. The reports are in the
// order of ms; a mount that failed has Error set and the others are
// still done.

// ProbeAll counts what each mount holds. With freshSince set, a report
// also says whether everything in the mount changed since then (Fresh);
// only the container transport checks.
func (h *MountHelper) ProbeAll(ctx context.Context, ms []CacheMount, freshSince time.Time) (reps []mountarchive.Report, err error) {
	if ok, err := h.viaContainer(func() (err error) { reps, err = h.probeInContainer(ctx, ms, freshSince); return err }); ok {
		return reps, err
	}
	run, err := h.batch(ms, nil, "probing", []string{"probe-all", "/out"}, func(i int) []string { return []string{cacheDir(i)} })
	if err != nil {
		return nil, err
	}
	return h.solve(ctx, run.AddMount("/out", llb.Scratch()), nil, len(ms), nil)
}

// SaveAll packs each mount into its writer; a mount over maxBytes of file
// data writes nothing and reports Exceeded. A mount whose tree is
// unchanged[i] (mountarchive.Stats.Tree; unchanged may be nil) writes
// nothing and reports Unchanged; only the container transport checks.
func (h *MountHelper) SaveAll(ctx context.Context, ms []CacheMount, maxBytes int64, ws []io.Writer, unchanged []string) ([]mountarchive.Report, error) {
	if len(ws) != len(ms) || unchanged != nil && len(unchanged) != len(ms) {
		return nil, errors.New("one writer per mount")
	}
	var reps []mountarchive.Report
	if ok, err := h.viaContainer(func() (err error) { reps, err = h.saveInContainer(ctx, ms, maxBytes, ws, unchanged); return err }); ok {
		return reps, err
	}
	run, err := h.batch(ms, nil, "saving", []string{"pack-all", "/out", strconv.FormatInt(maxBytes, 10)}, func(i int) []string { return []string{cacheDir(i)} })
	if err != nil {
		return nil, err
	}
	return h.solve(ctx, run.AddMount("/out", llb.Scratch()), nil, len(ms), ws)
}

// RestoreAll unpacks the archive read from archives[i] into ms[i] when
// that mount is empty.
func (h *MountHelper) RestoreAll(ctx context.Context, ms []CacheMount, archives []io.Reader, opt mountarchive.UnpackOptions) ([]mountarchive.Report, error) {
	if len(archives) != len(ms) || len(ms) == 0 {
		return nil, errors.New("one archive per mount")
	}
	var reps []mountarchive.Report
	if ok, err := h.viaContainer(func() (err error) { reps, err = h.restoreInContainer(ctx, ms, archives, opt); return err }); ok {
		return reps, err
	}
	// A helper build reads its archives from one directory as a local
	// source.
	dir, err := os.MkdirTemp("", "bkcache-restore-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	paths := make([]string, len(archives))
	for i, r := range archives {
		paths[i] = filepath.Join(dir, strconv.Itoa(i)+".tar.zst")
		if err := spoolArchive(paths[i], r); err != nil {
			return nil, fmt.Errorf("reading the archive: %w", err)
		}
	}
	return h.restoreFromFiles(ctx, ms, paths, opt)
}

func spoolArchive(path string, r io.Reader) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// restoreFromFiles is the helper build's restore, from archives in one
// directory on this machine.
func (h *MountHelper) restoreFromFiles(ctx context.Context, ms []CacheMount, archives []string, opt mountarchive.UnpackOptions) ([]mountarchive.Report, error) {
	dir := filepath.Dir(archives[0])
	var names []string
	for _, a := range archives {
		if filepath.Dir(a) != dir {
			return nil, errors.New("the archives must share a directory")
		}
		names = append(names, filepath.Base(a))
	}
	setid := "drop-setid"
	if opt.KeepSetID {
		setid = "keep-setid"
	}
	in := llb.Local(archiveLocal, llb.IncludePatterns(names))
	run, err := h.batch(ms, &in, "restoring", []string{"unpack-all", "/out", strconv.FormatInt(opt.MaxBytes, 10), setid},
		func(i int) []string { return []string{"/in/" + names[i], cacheDir(i)} })
	if err != nil {
		return nil, err
	}
	archiveFS, err := fsutil.NewFS(dir)
	if err != nil {
		return nil, err
	}
	return h.solve(ctx, run.AddMount("/out", llb.Scratch()), map[string]fsutil.FS{archiveLocal: archiveFS}, len(ms), nil)
}

func cacheDir(i int) string { return "/cache-" + strconv.Itoa(i) }

// batch is the helper step for ms: the helper's arguments (head, then
// each mount's), every cache mount at cacheDir(i), and in at /in.
func (h *MountHelper) batch(ms []CacheMount, in *llb.State, verb string, head []string, each func(int) []string) (llb.ExecState, error) {
	args := append([]string{"/" + h.binName, mountarchive.HelperCommand}, head...)
	var ids []string
	for i, m := range ms {
		args = append(args, each(i)...)
		ids = append(ids, m.CacheID)
	}
	run := h.helper().Run(llb.Args(args), runAgain(),
		llb.WithCustomNamef("[bkcache] %s cache mounts %s", verb, strings.Join(ids, ", ")))
	if in != nil {
		run.AddMount("/in", *in, llb.Readonly)
	}
	for i, m := range ms {
		opts, src, err := m.mountOptions()
		if err != nil {
			return llb.ExecState{}, err
		}
		run.AddMount(cacheDir(i), src, opts...)
	}
	return run, nil
}

// runAgain makes a helper step unique, so that BuildKit runs it instead of
// answering from its cache. llb.IgnoreCache would also do that, but BuildKit
// then empties the step's cache mounts (bridge.go, PruneCacheMounts).
func runAgain() llb.RunOption {
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	return llb.AddEnv("BKCACHE_RUN", hex.EncodeToString(nonce))
}

// helper is a root filesystem holding only the helper binary.
func (h *MountHelper) helper() llb.State {
	return llb.Local(helperLocal, llb.IncludePatterns([]string{h.binName}), llb.SharedKeyHint("bkcache-helper-"+h.binName))
}

// solve runs one helper build and reads its /out directory, streamed back
// as a tar: per mount i, i/ holds the report and the archive (copied to
// archives[i] when archives is not nil).
func (h *MountHelper) solve(ctx context.Context, out llb.State, mounts map[string]fsutil.FS, n int, archives []io.Writer) ([]mountarchive.Report, error) {
	def, err := out.Marshal(ctx, llb.Platform(h.platform))
	if err != nil {
		return nil, err
	}
	binFS, err := fsutil.NewFS(h.binDir)
	if err != nil {
		return nil, err
	}
	if mounts == nil {
		mounts = map[string]fsutil.FS{}
	}
	mounts[helperLocal] = binFS

	pr, pw := io.Pipe()
	reps := make([]mountarchive.Report, n)
	gotReport := make([]bool, n)
	gotArchive := make([]bool, n)
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error {
		_, err := h.c.Solve(ctx, def, client.SolveOpt{
			LocalMounts: mounts,
			Exports: []client.ExportEntry{{
				Type:   client.ExporterTar,
				Output: func(map[string]string) (io.WriteCloser, error) { return pw, nil },
			}},
		}, nil)
		pw.CloseWithError(err) // a nil error ends the stream with EOF
		return err
	})
	eg.Go(func() error {
		defer pr.Close()
		tr := tar.NewReader(pr)
		for {
			hdr, err := tr.Next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			i, err := strconv.Atoi(path.Dir(path.Clean("/" + hdr.Name))[1:])
			if err != nil || i < 0 || i >= n {
				continue
			}
			switch path.Base(hdr.Name) {
			case mountarchive.ReportFile:
				if err := json.NewDecoder(tr).Decode(&reps[i]); err != nil {
					return fmt.Errorf("reading the helper's report: %w", err)
				}
				gotReport[i] = true
			case mountarchive.ArchiveFile:
				if archives != nil {
					if _, err := io.Copy(archives[i], tr); err != nil {
						return err
					}
					gotArchive[i] = true
				}
			}
		}
	})
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	for i := range reps {
		switch {
		case !gotReport[i]:
			reps[i].Error = "the helper build returned no report"
		case archives != nil && !gotArchive[i] && !reps[i].Exceeded && reps[i].Error == "":
			reps[i].Error = "the helper build returned no archive"
		}
	}
	return reps, nil
}
