package buildkit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/distribution/reference"
	"github.com/docker/cli/cli/config"
	dockercontext "github.com/docker/cli/cli/context/docker"
	"github.com/moby/buildkit/client"
	"github.com/moby/moby/api/types/registry"
	dockerclient "github.com/moby/moby/client"
)

// builderConn is a connected builder.
type builderConn struct {
	*client.Client
	workers []*client.WorkerInfo
	docker  *dockerclient.Client // the Docker API, for the docker driver
	release func()
}

// connect returns a client for the endpoint with the daemon's workers.
// Asking for the workers proves the builder answers, so a dead one fails
// here, with the fix, rather than halfway into the solve.
func connect(ctx context.Context, ep Endpoint) (*builderConn, error) {
	conn, err := dial(ctx, ep)
	if err != nil {
		return nil, fmt.Errorf("connecting to builder %s (from %s): %w; %s", ep.Addr, ep.Source, err, ep.fix())
	}
	if conn.workers, err = conn.ListWorkers(ctx); err != nil {
		conn.release()
		return nil, fmt.Errorf("builder %s (from %s) does not answer: %w; %s", ep.Addr, ep.Source, err, ep.fix())
	}
	return conn, nil
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

func dial(ctx context.Context, ep Endpoint) (*builderConn, error) {
	if !ep.Docker {
		c, err := client.New(ctx, ep.Addr, ep.ClientOpts()...)
		if err != nil {
			return nil, err
		}
		return &builderConn{Client: c, release: func() { c.Close() }}, nil
	}
	dc, err := dockerAPI(ep)
	if err != nil {
		return nil, err
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
		return nil, err
	}
	return &builderConn{Client: c, docker: dc, release: func() { c.Close(); dc.Close() }}, nil
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

// dockerContainerdStore reports whether the docker driver's engine uses
// the containerd image store; only then can its BuildKit export cache
// other than inline and push images itself (buildx's CacheExport and
// DirectPush features).
func dockerContainerdStore(workers []*client.WorkerInfo) bool {
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

// mobyImageExports sends image outputs to Docker's image store, as buildx
// does for the docker driver: Docker's BuildKit has no "image" exporter,
// its "moby" exporter stores (and names) the image in the engine.
func mobyImageExports(exports []client.ExportEntry) {
	for i := range exports {
		if exports[i].Type == client.ExporterImage {
			exports[i].Type = "moby"
		}
	}
}

// pushWithDocker pushes the images that the moby exporter stored, through
// the Docker API, as buildx does for the docker driver when the engine's
// BuildKit cannot push (no containerd image store).
func pushWithDocker(ctx context.Context, dc *dockerclient.Client, b BuildOptions, dockerConfigDir string) error {
	exps, err := exports(b)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range exps {
		if e.Type == client.ExporterImage && e.Attrs["push"] == "true" {
			names = append(names, strings.Split(e.Attrs["name"], ",")...)
		}
	}
	for _, name := range names {
		auth, err := registryAuth(name, dockerConfigDir)
		if err != nil {
			return err
		}
		resp, err := dc.ImagePush(ctx, name, dockerclient.ImagePushOptions{RegistryAuth: auth})
		if err == nil {
			err = resp.Wait(ctx)
		}
		if err != nil {
			return fmt.Errorf("pushing %s through Docker: %w", name, err)
		}
	}
	return nil
}

// registryAuth is the X-Registry-Auth header for name's registry from the
// Docker config: base64url JSON of the credentials (Docker's API format;
// the helper for it lives in docker/cli's command package, too large to
// import for three lines).
func registryAuth(name, dockerConfigDir string) (string, error) {
	ref, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return "", fmt.Errorf("tags: %q: %w", name, err)
	}
	host := reference.Domain(ref)
	if host == "docker.io" {
		host = "https://index.docker.io/v1/"
	}
	if dockerConfigDir == "" {
		dockerConfigDir = config.Dir()
	}
	cfg, err := config.Load(dockerConfigDir)
	if err != nil {
		return "", fmt.Errorf("reading registry credentials: %w", err)
	}
	ac, err := cfg.GetAuthConfig(host)
	if err != nil {
		return "", fmt.Errorf("reading registry credentials for %s: %w", host, err)
	}
	dt, err := json.Marshal(registry.AuthConfig{
		Username: ac.Username, Password: ac.Password, ServerAddress: ac.ServerAddress,
		IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken,
	})
	if err != nil {
		return "", err
	}
	return base64.URLEncoding.EncodeToString(dt), nil
}

// dockerPlatforms refuses what buildx's docker driver refuses without the
// containerd image store: a build of several platforms.
func dockerPlatforms(ep Endpoint, platforms []string) error {
	if len(platforms) < 2 {
		return nil
	}
	return fmt.Errorf("%s cannot build several platforms (%s): Docker's own BuildKit needs the containerd image store for that. "+
		"Run docker/setup-qemu-action and docker/setup-buildx-action before this step (its docker-container builder builds every platform), "+
		"or turn on Docker's containerd image store", ep.Source, strings.Join(platforms, ","))
}
