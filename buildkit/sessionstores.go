package buildkit

import (
	"context"
	"fmt"
	"os"

	"github.com/containerd/containerd/v2/core/content"
	contentlocal "github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/session"
	sessioncontent "github.com/moby/buildkit/session/content"
	"github.com/moby/buildkit/session/filesync"
	"github.com/moby/buildkit/session/grpchijack"
	"github.com/tonistiigi/fsutil"
	fstypes "github.com/tonistiigi/fsutil/types"
)

// preinitSession gives the solve a session that bkcache builds itself, so
// that Request.CacheStores can answer for type=local cache entries.
//
// Why: BuildKit's client serves every type=local cache entry from a
// directory (client/solve.go parseCacheOptions opens a local content store
// per src/dest and registers them in one content attachable). Content
// stores of our own cannot be added beside it: a second content attachable
// registers the same gRPC service twice, which grpc refuses fatally. With
// SharedSession + SessionPreInitialized the client registers nothing, and
// this function registers what it would have (local mounts, opt.Session,
// the content stores, the output sync targets), with our stores among the
// content stores. The client still runs parseCacheOptions on our entries:
// it creates the dest directory and checks that src holds the digest to
// import, so callers point src/dest at a real (temporary) directory and
// put the imported manifest there (internal/cli does).
//
// It returns a stop function that closes the session.
func preinitSession(ctx context.Context, c *client.Client, opt *client.SolveOpt, stores map[string]content.Store) (func(), error) {
	s, err := session.NewSession(ctx, opt.SharedKey)
	if err != nil {
		return nil, fmt.Errorf("creating session: %w", err)
	}
	mounts := filesync.StaticDirSource{}
	for name, fs := range opt.LocalMounts {
		// As the client does: files reach the daemon owned by root.
		m, err := fsutil.NewFilterFS(fs, &fsutil.FilterOpt{Map: func(_ string, st *fstypes.Stat) fsutil.MapResult {
			st.Uid, st.Gid = 0, 0
			return fsutil.MapResultKeep
		}})
		if err != nil {
			return nil, err
		}
		mounts[name] = m
	}
	if len(mounts) > 0 {
		s.Allow(filesync.NewFSSyncProvider(mounts))
	}
	for _, a := range opt.Session {
		s.Allow(a)
	}

	all := map[string]content.Store{}
	for id, st := range stores {
		all["local:"+id] = st
	}
	// The user's own type=local cache entries, served from their directories.
	for _, e := range opt.CacheImports {
		if dir := e.Attrs["src"]; e.Type == "local" && dir != "" && stores[dir] == nil {
			if st, err := contentlocal.NewStore(dir); err == nil {
				all["local:"+dir] = st
			}
		}
	}
	for _, e := range opt.CacheExports {
		if dir := e.Attrs["dest"]; e.Type == "local" && dir != "" && stores[dir] == nil {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
			st, err := contentlocal.NewStore(dir)
			if err != nil {
				return nil, err
			}
			all["local:"+dir] = st
		}
	}
	var targets []filesync.FSSyncTarget
	for id, ex := range opt.Exports {
		switch {
		case ex.Output != nil:
			targets = append(targets, filesync.WithFSSync(id, ex.Output))
		case ex.OutputDir != "" && ex.Type == client.ExporterLocal:
			targets = append(targets, filesync.WithFSSyncDir(id, ex.OutputDir))
		case ex.OutputDir != "":
			// oci/docker with tar=false write into a content store the
			// client keeps an index.json for; not reimplemented here.
			return nil, fmt.Errorf("outputs: type=%s,tar=false cannot be combined with the gha data plane; use a tar output or gha-mode=stock", ex.Type)
		}
	}
	if len(all) > 0 {
		s.Allow(sessioncontent.NewAttachable(all))
	}
	if len(targets) > 0 {
		s.Allow(filesync.NewFSSyncTarget(targets...))
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(runCtx, grpchijack.Dialer(c.ControlClient()))
	}()
	opt.SharedSession = s
	opt.SessionPreInitialized = true
	return func() {
		_ = s.Close()
		cancel()
		<-done
	}, nil
}
