package buildkit

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"

	dockercontext "github.com/docker/cli/cli/context/docker"
	"github.com/moby/buildkit/client"
	dockerclient "github.com/moby/moby/client"
)

// connect returns a BuildKit client for the endpoint, the daemon's
// workers, and a function that releases what it holds. Asking for the
// workers proves the builder answers, so a dead one fails here, with the
// fix, rather than halfway into the solve.
func connect(ctx context.Context, ep Endpoint) (*client.Client, []*client.WorkerInfo, func(), error) {
	c, release, err := dial(ctx, ep)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("connecting to builder %s (from %s): %w; %s", ep.Addr, ep.Source, err, ep.fix())
	}
	workers, err := c.ListWorkers(ctx)
	if err != nil {
		release()
		return nil, nil, nil, fmt.Errorf("builder %s (from %s) does not answer: %w; %s", ep.Addr, ep.Source, err, ep.fix())
	}
	return c, workers, release, nil
}

// fix says what usually brings the builder back.
func (e Endpoint) fix() string {
	u, _ := url.Parse(e.Addr)
	switch {
	case e.Docker:
		return "is the Docker engine there running? (or set the builder input to another builder)"
	case u != nil && u.Scheme == "docker-container":
		return fmt.Sprintf("start the builder's container: `docker buildx inspect --bootstrap` with its buildx builder "+
			"(docker/setup-buildx-action does this), or `docker start %s`", u.Host)
	case u != nil && u.Scheme == "kube-pod":
		return fmt.Sprintf("is the pod %s running?", u.Host)
	case e.tls():
		return "is buildkitd listening there, and did cacert sign its certificate?"
	default:
		return "is buildkitd running and listening there?"
	}
}

func dial(ctx context.Context, ep Endpoint) (*client.Client, func(), error) {
	if !ep.Docker {
		c, err := client.New(ctx, ep.Addr, ep.ClientOpts()...)
		if err != nil {
			return nil, nil, err
		}
		return c, func() { c.Close() }, nil
	}
	dc, err := dockerAPI(ep)
	if err != nil {
		return nil, nil, err
	}
	// As buildx's docker driver: gRPC over the API's /grpc upgrade, and
	// the session (local context, secrets) over /session.
	c, err := client.New(ctx, "",
		client.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return dc.DialHijack(ctx, "/grpc", "h2c", nil)
		}),
		client.WithSessionDialer(func(ctx context.Context, proto string, meta map[string][]string) (net.Conn, error) {
			return dc.DialHijack(ctx, "/session", proto, meta)
		}))
	if err != nil {
		dc.Close()
		return nil, nil, err
	}
	return c, func() { c.Close(); dc.Close() }, nil
}

// dockerAPI is a Docker API client for the endpoint's engine, with the TLS
// files and connection helpers (ssh://) of its Docker context.
func dockerAPI(ep Endpoint) (*dockerclient.Client, error) {
	dep := dockercontext.Endpoint{EndpointMeta: dockercontext.EndpointMeta{Host: ep.Addr}}
	if ep.DockerContext != "" && ep.DockerContext != "default" {
		var err error
		if dep, err = dockercontext.WithTLSData(dockerCLI{configDir: ep.DockerConfig}.contextStore(), ep.DockerContext, dep.EndpointMeta); err != nil {
			return nil, fmt.Errorf("Docker context %q: %w", ep.DockerContext, err)
		}
	}
	opts, err := dep.ClientOpts()
	if err != nil {
		return nil, err
	}
	return dockerclient.New(opts...)
}

// The snapshotter label marks a Docker engine that uses the containerd
// image store; buildx's docker driver exports cache only then.
const mobySnapshotterLabel = "org.mobyproject.buildkit.worker.snapshotter"

// dockerCacheExport reports whether the docker driver's BuildKit can
// export cache other than inline, as buildx's docker driver decides.
func dockerCacheExport(workers []*client.WorkerInfo) bool {
	for _, w := range workers {
		if _, ok := w.Labels[mobySnapshotterLabel]; ok {
			return true
		}
	}
	return false
}

// dockerImportTypes are the cache importers Docker's embedded BuildKit
// registers without the containerd image store (moby's
// builder-next/controller.go); any other type fails the whole build.
var dockerImportTypes = map[string]bool{"registry": true, "local": true}

// dropForDocker removes the cache entries Docker's embedded BuildKit
// cannot use without the containerd image store: every export but
// inline, and imports of other types than registry and local. It returns
// the one warning that says so, or "" when nothing was dropped.
func dropForDocker(req *Request, ep Endpoint) string {
	var dropped []string
	keptExports := req.Exports[:0:0]
	for _, e := range req.Exports {
		if e.Type == "inline" {
			keptExports = append(keptExports, e)
		} else {
			dropped = append(dropped, "export "+redacted(e))
		}
	}
	keptImports := req.Imports[:0:0]
	for _, e := range req.Imports {
		if dockerImportTypes[e.Type] {
			keptImports = append(keptImports, e)
		} else {
			dropped = append(dropped, "import "+redacted(e))
		}
	}
	if len(dropped) == 0 {
		return ""
	}
	req.Exports, req.Imports = keptExports, keptImports
	return fmt.Sprintf("%s is Docker's own BuildKit without the containerd image store, which cannot use this cache: "+
		"building without cache %s. To keep the cache, run docker/setup-buildx-action before this step "+
		"(its docker-container builder exports every cache type), or use cache type=inline",
		ep.Source, strings.Join(dropped, ", "))
}
