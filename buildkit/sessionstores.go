package buildkit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	contentlocal "github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/ociindex"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	"github.com/moby/buildkit/session"
	sessioncontent "github.com/moby/buildkit/session/content"
	"github.com/moby/buildkit/session/filesync"
	"github.com/moby/buildkit/session/grpchijack"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
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
// put the imported manifest there (internal/buildjob does).
//
// It returns a stop function that closes the session, and the directories
// of oci/docker tar=false outputs, whose index.json the caller writes after
// the solve (writeOCIIndexes), as the client would.
func preinitSession(ctx context.Context, c *client.Client, opt *client.SolveOpt, stores map[string]content.Store) (func(), []string, error) {
	s, err := session.NewSession(ctx, opt.SharedKey)
	if err != nil {
		return nil, nil, fmt.Errorf("creating session: %w", err)
	}
	mounts := filesync.StaticDirSource{}
	for name, fs := range opt.LocalMounts {
		// As the client does: files reach the daemon owned by root.
		m, err := fsutil.NewFilterFS(fs, &fsutil.FilterOpt{Map: func(_ string, st *fstypes.Stat) fsutil.MapResult {
			st.Uid, st.Gid = 0, 0
			return fsutil.MapResultKeep
		}})
		if err != nil {
			return nil, nil, err
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
				return nil, nil, err
			}
			st, err := contentlocal.NewStore(dir)
			if err != nil {
				return nil, nil, err
			}
			all["local:"+dir] = st
		}
	}
	var targets []filesync.FSSyncTarget
	var ociDirs []string
	for id, ex := range opt.Exports {
		switch {
		case ex.Output != nil:
			targets = append(targets, filesync.WithFSSync(id, ex.Output))
		case ex.OutputDir != "" && ex.Type == client.ExporterLocal:
			targets = append(targets, filesync.WithFSSyncDir(id, ex.OutputDir))
		case ex.OutputDir != "":
			// oci/docker with tar=false: the daemon writes the image into
			// the session content store "export" (one per solve, as in
			// client/solve.go), and the client then tags it in index.json.
			if _, ok := all[ociExportStore]; ok {
				return nil, nil, fmt.Errorf("outputs: only one type=oci or type=docker output with tar=false per build")
			}
			if err := os.MkdirAll(ex.OutputDir, 0o755); err != nil {
				return nil, nil, err
			}
			st, err := contentlocal.NewStore(ex.OutputDir)
			if err != nil {
				return nil, nil, err
			}
			all[ociExportStore] = st
			ociDirs = append(ociDirs, ex.OutputDir)
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
	}, ociDirs, nil
}

// ociExportStore is the session content store ID of an oci/docker output
// with tar=false (client/solve.go's storeName).
const ociExportStore = "export"

// writeOCIIndexes tags the exported image in the index.json of each
// oci/docker tar=false output directory, as BuildKit's client does after
// a solve it set the session up for.
func writeOCIIndexes(res *client.SolveResponse, dirs []string) error {
	dt := res.ExporterResponse[exptypes.ExporterImageDescriptorKey]
	if dt == "" || len(dirs) == 0 {
		return nil
	}
	raw, err := base64.StdEncoding.DecodeString(dt)
	if err != nil {
		return fmt.Errorf("image descriptor: %w", err)
	}
	var desc ocispecs.Descriptor
	if err := json.Unmarshal(raw, &desc); err != nil {
		return fmt.Errorf("image descriptor: %w", err)
	}
	names := []ociindex.NameOrTag{ociindex.Tag("latest")}
	if t, ok := res.ExporterResponse[exptypes.ExporterImageNameKey]; ok {
		names = nil
		for n := range strings.SplitSeq(t, ",") {
			names = append(names, ociindex.Name(n))
		}
	}
	for _, dir := range dirs {
		if err := ociindex.NewStoreIndex(dir).Put(desc, names...); err != nil {
			return fmt.Errorf("writing %s/index.json: %w", dir, err)
		}
	}
	return nil
}
