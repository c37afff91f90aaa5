package buildkit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/bkcache/bkcache/buildkit/mountarchive"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	gwclient "github.com/moby/buildkit/frontend/gateway/client"
	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/solver/pb"
	"github.com/tonistiigi/fsutil"
)

// The helper reaches the cache mounts in a gateway container where the
// builder has them (BuildKit's gateway.exec, which `buildx debug` uses):
// one container mounts all of a phase's caches, and one helper process
// per mount moves its archive through the process's stdin or stdout.
// Archives then go straight between the store and the mount. A helper
// build instead sends an archive in as a local source, which BuildKit
// writes and hashes before the unpack can read it, and sends one out as a
// tar export of the build's output: a second copy each way, which made
// the round trip twice plain `tar | zstd` (BENCHMARKS.md, "Cache mounts").

// errNoContainers says the builder cannot run a gateway container.
var errNoContainers = errors.New("the builder does not run gateway containers")

// Transport names how the helper reaches the builder's cache mounts.
type Transport string

const (
	// TransportContainer: processes in a gateway container, archives on
	// their stdin and stdout (the default where the builder allows it).
	TransportContainer Transport = "container"
	// TransportBuild: helper builds, archives as a local source and a tar
	// export.
	TransportBuild Transport = "build"
)

// inContainer runs do with a gateway container whose root holds only the
// helper binary and that mounts ms[i] at cacheDir(i). It returns
// errNoContainers, without running do, when the builder has no gateway
// containers.
func (h *MountHelper) inContainer(ctx context.Context, ms []CacheMount, do func(context.Context, gwclient.Container) error) error {
	binFS, err := fsutil.NewFS(h.binDir)
	if err != nil {
		return err
	}
	var doErr error
	// Said through variables: an error the build function returns comes
	// back through the daemon as text.
	noContainers := false
	_, err = h.c.Build(ctx, client.SolveOpt{LocalMounts: map[string]fsutil.FS{helperLocal: binFS}}, "",
		func(ctx context.Context, gw gwclient.Client) (*gwclient.Result, error) {
			caps := gw.BuildOpts().Caps
			if caps.Supports(gwpb.CapGatewayExec) != nil {
				noContainers = true
				return nil, errNoContainers
			}
			root, err := h.solveRef(ctx, gw, h.helper())
			if err != nil {
				return nil, fmt.Errorf("the helper's root: %w", err)
			}
			mounts := []gwclient.Mount{{Dest: "/", Ref: root, MountType: pb.MountType_BIND, Readonly: true}}
			for i, m := range ms {
				cm, err := h.containerMount(ctx, gw, m, cacheDir(i))
				if err != nil {
					return nil, err
				}
				mounts = append(mounts, cm)
			}
			ctr, err := gw.NewContainer(ctx, gwclient.NewContainerRequest{
				Mounts:   mounts,
				NetMode:  pb.NetMode_NONE,
				Platform: &pb.Platform{OS: h.platform.OS, Architecture: h.platform.Architecture, Variant: h.platform.Variant},
			})
			if err != nil {
				return nil, err
			}
			defer ctr.Release(context.WithoutCancel(ctx))
			// The container's first process is its init: the container
			// stops when it ends, and with it the processes beside it. An
			// idle one keeps it up until every helper process is done.
			hold, release := io.Pipe()
			idle, err := ctr.Start(ctx, gwclient.StartRequest{
				Args: []string{"/" + h.binName, mountarchive.HelperCommand, "idle"}, Cwd: "/", Stdin: hold,
			})
			if err != nil {
				return nil, err
			}
			doErr = do(ctx, ctr)
			release.Close()
			if err := idle.Wait(); err != nil && doErr == nil {
				return nil, fmt.Errorf("the helper container's first process: %w", err)
			}
			return gwclient.NewResult(), doErr
		}, nil)
	switch {
	case noContainers:
		return errNoContainers
	case doErr != nil:
		return doErr // without the solve's wording around it
	}
	return err
}

// containerMount is m as a gateway container mounts it: the cache and,
// when uid, gid or mode are set, the directory a RUN step's mount starts
// from (CacheMount.mountOptions), so that both reach the same cache.
func (h *MountHelper) containerMount(ctx context.Context, gw gwclient.Client, m CacheMount, dest string) (gwclient.Mount, error) {
	sharing := map[string]pb.CacheSharingOpt{
		"shared": pb.CacheSharingOpt_SHARED, "private": pb.CacheSharingOpt_PRIVATE, "locked": pb.CacheSharingOpt_LOCKED,
	}
	mode, ok := sharing[m.Sharing]
	if !ok {
		return gwclient.Mount{}, fmt.Errorf("cache mount %s: sharing %q (allowed: shared, private, locked)", m.CacheID, m.Sharing)
	}
	cm := gwclient.Mount{Dest: dest, MountType: pb.MountType_CACHE, CacheOpt: &pb.CacheOpt{ID: m.CacheID, Sharing: mode}}
	if m.Owned {
		_, src, err := m.mountOptions()
		if err != nil {
			return gwclient.Mount{}, err
		}
		ref, err := h.solveRef(ctx, gw, src)
		if err != nil {
			return gwclient.Mount{}, fmt.Errorf("cache mount %s: %w", m.CacheID, err)
		}
		cm.Ref, cm.Selector = ref, "/cache"
	}
	return cm, nil
}

func (h *MountHelper) solveRef(ctx context.Context, gw gwclient.Client, st llb.State) (gwclient.Reference, error) {
	def, err := st.Marshal(ctx, llb.Platform(h.platform))
	if err != nil {
		return nil, err
	}
	res, err := gw.Solve(ctx, gwclient.SolveRequest{Definition: def.ToPB()})
	if err != nil {
		return nil, err
	}
	return res.SingleRef()
}

// runHelper runs one helper process in ctr and waits for it; what it
// printed on stderr explains a failure.
func (h *MountHelper) runHelper(ctx context.Context, ctr gwclient.Container, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var errBuf bytes.Buffer
	if stderr == nil {
		stderr = &errBuf
	}
	req := gwclient.StartRequest{
		Args:   append([]string{"/" + h.binName, mountarchive.HelperCommand}, args...),
		Cwd:    "/",
		Stdout: nopWriteCloser{stdout},
		Stderr: nopWriteCloser{stderr},
	}
	if stdin != nil {
		req.Stdin = io.NopCloser(stdin)
	}
	proc, err := ctr.Start(ctx, req)
	if err != nil {
		return err
	}
	if err := proc.Wait(); err != nil {
		if msg := bytes.TrimSpace(errBuf.Bytes()); len(msg) > 0 {
			return fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	return nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

func (h *MountHelper) probeInContainer(ctx context.Context, ms []CacheMount, freshSince time.Time) ([]mountarchive.Report, error) {
	var reps []mountarchive.Report
	err := h.inContainer(ctx, ms, func(ctx context.Context, ctr gwclient.Container) error {
		var out bytes.Buffer
		args := append([]string{"probe-stream"}, freshArg(freshSince)...)
		for i := range ms {
			args = append(args, cacheDir(i))
		}
		if err := h.runHelper(ctx, ctr, args, nil, &out, nil); err != nil {
			return err
		}
		dec := json.NewDecoder(&out)
		for range ms {
			var rep mountarchive.Report
			if err := dec.Decode(&rep); err != nil {
				return fmt.Errorf("reading the helper's report: %w", err)
			}
			reps = append(reps, rep)
		}
		return nil
	})
	return reps, err
}

// restoreInContainer unpacks archives[i] into ms[i], all at once, each
// streamed into its own helper process.
func (h *MountHelper) restoreInContainer(ctx context.Context, ms []CacheMount, archives []io.Reader, opt mountarchive.UnpackOptions) ([]mountarchive.Report, error) {
	setid := "drop-setid"
	if opt.KeepSetID {
		setid = "keep-setid"
	}
	return h.perMount(ctx, ms, func(ctx context.Context, ctr gwclient.Container, i int) mountarchive.Report {
		var out bytes.Buffer
		in := &readTracker{r: archives[i]}
		args := append([]string{"unpack-stream", cacheDir(i), strconv.FormatInt(opt.MaxBytes, 10), setid}, freshArg(opt.FreshSince)...)
		err := h.runHelper(ctx, ctr, args, in, &out, nil)
		if in.err != nil {
			// The helper saw the archive end early and restored
			// nothing; the download is what failed.
			return mountarchive.Report{Error: "reading the archive: " + in.err.Error()}
		}
		return report(out.Bytes(), err)
	})
}

// saveInContainer packs each mount into its writer, all at once.
func (h *MountHelper) saveInContainer(ctx context.Context, ms []CacheMount, maxBytes int64, ws []io.Writer, unchanged []string) ([]mountarchive.Report, error) {
	return h.perMount(ctx, ms, func(ctx context.Context, ctr gwclient.Container, i int) mountarchive.Report {
		var stderr bytes.Buffer
		w := &writeTracker{w: ws[i]}
		args := []string{"pack-stream", cacheDir(i), strconv.FormatInt(maxBytes, 10)}
		if unchanged != nil && unchanged[i] != "" {
			args = append(args, unchanged[i])
		}
		err := h.runHelper(ctx, ctr, args, nil, w, &stderr)
		if w.err != nil {
			return mountarchive.Report{Error: "writing the archive: " + w.err.Error()}
		}
		return report(lastLine(stderr.Bytes()), err)
	})
}

// perMount runs one helper process per mount, all at once in one
// container; run's report is mount i's.
func (h *MountHelper) perMount(ctx context.Context, ms []CacheMount, run func(ctx context.Context, ctr gwclient.Container, i int) mountarchive.Report) ([]mountarchive.Report, error) {
	reps := make([]mountarchive.Report, len(ms))
	err := h.inContainer(ctx, ms, func(ctx context.Context, ctr gwclient.Container) error {
		var wg sync.WaitGroup
		for i := range ms {
			wg.Go(func() { reps[i] = run(ctx, ctr, i) })
		}
		wg.Wait()
		return nil
	})
	return reps, err
}

// freshArg passes a time to the helper's probe-stream and unpack-stream.
func freshArg(t time.Time) []string {
	if t.IsZero() {
		return nil
	}
	return []string{"fresh-since=" + strconv.FormatInt(t.UnixNano(), 10)}
}

// report reads a stream command's report; a helper that failed has none.
func report(dt []byte, runErr error) mountarchive.Report {
	var rep mountarchive.Report
	if err := json.Unmarshal(dt, &rep); err != nil {
		msg := "the helper returned no report"
		if runErr != nil {
			msg = "the helper failed: " + runErr.Error()
		} else if len(dt) > 0 {
			msg += ": " + string(bytes.TrimSpace(dt))
		}
		return mountarchive.Report{Error: msg}
	}
	return rep
}

// lastLine is the last non-empty line of b: pack-stream's report follows
// anything else the helper wrote to stderr.
func lastLine(b []byte) []byte {
	var last []byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			last = sc.Bytes()
		}
	}
	if last == nil {
		return b
	}
	return last
}

// readTracker keeps the error of an archive's stream: BuildKit's client
// closes a process's stdin as at its end whatever stopped the copy.
type readTracker struct {
	r   io.Reader
	err error
}

func (t *readTracker) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		t.err = err
	}
	return n, err
}

// writeTracker keeps the error of an archive's destination and reports
// success to the copy, so that the helper's stdout keeps draining.
type writeTracker struct {
	w   io.Writer
	err error
}

func (t *writeTracker) Write(p []byte) (int, error) {
	if t.err == nil {
		_, t.err = t.w.Write(p)
	}
	return len(p), nil
}
