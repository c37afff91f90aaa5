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
	"path/filepath"
	"strconv"

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

// MountHelper runs small builds of its own on the builder that pack a cache
// mount into an archive or unpack one into it. The helper program is
// bkcache's own static binary, sent in through the session, so no image is
// pulled.
type MountHelper struct {
	c        *client.Client
	platform ocispecs.Platform
	binDir   string // holds the helper binary
	binName  string
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
	return &MountHelper{c: c, platform: p, binDir: filepath.Dir(bin), binName: filepath.Base(bin)}, nil
}

// Platform is the builder's platform the helper runs on.
func (h *MountHelper) Platform() ocispecs.Platform { return h.platform }

// Close ends the connection.
func (h *MountHelper) Close() error { return h.c.Close() }

// Save packs the mount's contents, at most maxBytes of file data, and
// writes the zstd tar to w. A mount over the cap writes nothing and
// reports Exceeded.
func (h *MountHelper) Save(ctx context.Context, m CacheMount, maxBytes int64, w io.Writer) (mountarchive.Report, error) {
	opts, src, err := m.mountOptions()
	if err != nil {
		return mountarchive.Report{}, err
	}
	run := h.helper().Run(
		llb.Args([]string{"/" + h.binName, mountarchive.HelperCommand, "pack", "/cache", "/out", strconv.FormatInt(maxBytes, 10)}),
		runAgain(),
		llb.WithCustomNamef("[bkcache] saving cache mount %s", m.CacheID))
	run.AddMount("/cache", src, opts...)
	out := run.AddMount("/out", llb.Scratch())
	return h.solve(ctx, out, nil, w)
}

// Probe counts what the mount holds, so that a builder that kept its
// mounts is not sent an archive it would not use.
func (h *MountHelper) Probe(ctx context.Context, m CacheMount) (mountarchive.Report, error) {
	opts, src, err := m.mountOptions()
	if err != nil {
		return mountarchive.Report{}, err
	}
	run := h.helper().Run(
		llb.Args([]string{"/" + h.binName, mountarchive.HelperCommand, "probe", "/cache", "/out"}),
		runAgain(),
		llb.WithCustomNamef("[bkcache] probing cache mount %s", m.CacheID))
	run.AddMount("/cache", src, opts...)
	return h.solve(ctx, run.AddMount("/out", llb.Scratch()), nil, nil)
}

// Restore unpacks the archive at archivePath into the mount when the mount
// is empty; a mount with contents is left alone (Restored false). The
// helper unpacks all of it or nothing; an archive over opt.MaxBytes of
// files restores nothing and reports Exceeded.
func (h *MountHelper) Restore(ctx context.Context, m CacheMount, archivePath string, opt mountarchive.UnpackOptions) (mountarchive.Report, error) {
	opts, src, err := m.mountOptions()
	if err != nil {
		return mountarchive.Report{}, err
	}
	name := filepath.Base(archivePath)
	args := []string{"/" + h.binName, mountarchive.HelperCommand, "unpack", "/in/" + name, "/cache", "/out", strconv.FormatInt(opt.MaxBytes, 10)}
	if opt.KeepSetID {
		args = append(args, "keep-setid")
	}
	run := h.helper().Run(
		llb.Args(args),
		runAgain(),
		llb.WithCustomNamef("[bkcache] restoring cache mount %s", m.CacheID))
	run.AddMount("/in", llb.Local(archiveLocal, llb.IncludePatterns([]string{name})), llb.Readonly)
	run.AddMount("/cache", src, opts...)
	out := run.AddMount("/out", llb.Scratch())
	archiveFS, err := fsutil.NewFS(filepath.Dir(archivePath))
	if err != nil {
		return mountarchive.Report{}, err
	}
	return h.solve(ctx, out, map[string]fsutil.FS{archiveLocal: archiveFS}, nil)
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
// as a tar: the report, and the archive (copied to archive when not nil).
func (h *MountHelper) solve(ctx context.Context, out llb.State, mounts map[string]fsutil.FS, archive io.Writer) (mountarchive.Report, error) {
	def, err := out.Marshal(ctx, llb.Platform(h.platform))
	if err != nil {
		return mountarchive.Report{}, err
	}
	binFS, err := fsutil.NewFS(h.binDir)
	if err != nil {
		return mountarchive.Report{}, err
	}
	if mounts == nil {
		mounts = map[string]fsutil.FS{}
	}
	mounts[helperLocal] = binFS

	pr, pw := io.Pipe()
	var rep mountarchive.Report
	var gotReport, gotArchive bool
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
			switch filepath.Base(hdr.Name) {
			case mountarchive.ReportFile:
				if err := json.NewDecoder(tr).Decode(&rep); err != nil {
					return fmt.Errorf("reading the helper's report: %w", err)
				}
				gotReport = true
			case mountarchive.ArchiveFile:
				if archive != nil {
					if _, err := io.Copy(archive, tr); err != nil {
						return err
					}
					gotArchive = true
				}
			}
		}
	})
	if err := eg.Wait(); err != nil {
		return mountarchive.Report{}, err
	}
	if !gotReport {
		return mountarchive.Report{}, errors.New("the helper build returned no report")
	}
	if archive != nil && !gotArchive && !rep.Exceeded {
		return mountarchive.Report{}, errors.New("the helper build returned no archive")
	}
	return rep, nil
}
