package buildkit

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/moby/buildkit/client"
	// Registered connection helpers let client.New dial these schemes.
	_ "github.com/moby/buildkit/client/connhelper/dockercontainer"
	_ "github.com/moby/buildkit/client/connhelper/kubepod"
)

// Endpoint is a resolved BuildKit daemon.
type Endpoint struct {
	// Addr is the address for client.New, without TLS query parameters;
	// for the docker driver, the Docker endpoint (unix:///var/run/docker.sock).
	Addr   string
	Source string // where it came from: "builder input", "BUILDKIT_HOST", `buildx builder "name"`
	// TLS files for tcp:// (all optional, but any of them turns TLS on and
	// then CACert is required, as in buildx's remote driver).
	CACert, Cert, Key, ServerName string
	// Docker is set for buildx's docker driver: BuildKit embedded in the
	// Docker engine at Addr, reached through the Docker API's /grpc and
	// /session upgrades.
	Docker bool
	// DockerContext names the Docker context whose TLS files the Docker
	// API client uses ("" or "default": none), from the context store
	// in DockerConfig.
	DockerContext, DockerConfig string
}

// tls reports whether any TLS setting is given.
func (e Endpoint) tls() bool {
	return e.CACert != "" || e.Cert != "" || e.Key != "" || e.ServerName != ""
}

// checkTLS refuses a half TLS configuration before anything dials, as
// buildx's remote driver does: without cacert the server would be checked
// against the system roots (or, with servername alone, not spoken TLS to).
func (e Endpoint) checkTLS() error {
	if !e.tls() {
		return nil
	}
	var missing []string
	if e.CACert == "" {
		missing = append(missing, "cacert")
	}
	if e.Cert != "" && e.Key == "" {
		missing = append(missing, "key")
	}
	if e.Key != "" && e.Cert == "" {
		missing = append(missing, "cert")
	}
	if len(missing) == 0 {
		return nil
	}
	var given []string
	for _, kv := range [][2]string{{"cacert", e.CACert}, {"cert", e.Cert}, {"key", e.Key}, {"servername", e.ServerName}} {
		if kv[1] != "" {
			given = append(given, kv[0])
		}
	}
	return fmt.Errorf("%s: TLS is on for %s (%s given) but %s missing: give cacert (the CA that signed buildkitd's certificate), "+
		"and cert with key for a client certificate, e.g. tcp://host:1234?cacert=ca.pem&cert=cert.pem&key=key.pem",
		e.Source, e.Addr, strings.Join(given, ", "), strings.Join(missing, ", "))
}

// ClientOpts are the client.New options for the endpoint's TLS settings.
func (e Endpoint) ClientOpts() []client.ClientOpt {
	if !e.tls() {
		return nil
	}
	name := e.ServerName
	if name == "" {
		if u, err := url.Parse(e.Addr); err == nil {
			name = u.Hostname()
		}
	}
	opts := []client.ClientOpt{client.WithServerConfig(name, e.CACert)}
	if e.Cert != "" || e.Key != "" {
		opts = append(opts, client.WithCredentials(e.Cert, e.Key))
	}
	return opts
}

// builderSchemes are the addresses BuildKit's client can dial.
var builderSchemes = []string{"unix", "tcp", "docker-container", "kube-pod"}

// ErrNoBuilder says that no BuildKit daemon was configured anywhere.
var ErrNoBuilder = errors.New("no BuildKit builder found")

// ResolveBuilder finds the BuildKit daemon, in this order:
//  1. the builder input: an address (unix://, tcp://, docker-container://,
//     kube-pod://) or a buildx builder name, as build-push-action takes
//     `builder: ${{ steps.buildx.outputs.name }}`;
//  2. BUILDKIT_HOST (an address);
//  3. BUILDX_BUILDER (a buildx builder name);
//  4. the builder that `docker buildx use` or docker/setup-buildx-action
//     made current for the current Docker endpoint, else buildx's default:
//     the Docker engine's own BuildKit (the docker driver).
//
// Builders are read from buildx's store ($BUILDX_CONFIG, else
// $DOCKER_CONFIG/buildx, else $HOME/.docker/buildx) by buildx's rules: a
// docker-container builder is reached at docker-container://buildx_buildkit_<node>,
// a remote one at its endpoint, a docker one through the Docker API.
//
// tcp:// addresses take TLS files as query parameters:
// tcp://host:1234?cacert=ca.pem&cert=cert.pem&key=key.pem&servername=name.
// It reads only files; getenv is the process environment.
func ResolveBuilder(input string, getenv func(string) string) (Endpoint, error) {
	if input = strings.TrimSpace(input); input != "" {
		if strings.Contains(input, "://") {
			return parseEndpoint("builder", input)
		}
		return namedBuilder("builder", input, getenv)
	}
	if host := strings.TrimSpace(getenv("BUILDKIT_HOST")); host != "" {
		return parseEndpoint("BUILDKIT_HOST", host)
	}
	if name := strings.TrimSpace(getenv("BUILDX_BUILDER")); name != "" {
		return namedBuilder("BUILDX_BUILDER", name, getenv)
	}
	return currentBuilder(getenv)
}

func parseEndpoint(source, addr string) (Endpoint, error) {
	u, err := url.Parse(addr)
	if err != nil || u.Scheme == "" {
		return Endpoint{}, fmt.Errorf("%s: %q is not an address (allowed schemes: %s)", source, addr, strings.Join(builderSchemes, ", "))
	}
	known := false
	for _, s := range builderSchemes {
		if u.Scheme == s {
			known = true
		}
	}
	if !known {
		return Endpoint{}, fmt.Errorf("%s: unknown scheme %q in %q (allowed: %s)", source, u.Scheme, addr, strings.Join(builderSchemes, ", "))
	}
	if u.Scheme == "unix" && u.Path == "" && u.Host == "" {
		return Endpoint{}, fmt.Errorf("%s: %q has no socket path", source, addr)
	}
	if u.Scheme != "unix" && u.Host == "" {
		return Endpoint{}, fmt.Errorf("%s: %q has no host", source, addr)
	}
	ep := Endpoint{Addr: addr, Source: source}
	if u.Scheme == "tcp" && u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			switch k {
			case "cacert", "cert", "key", "servername":
			default:
				return Endpoint{}, fmt.Errorf("%s: unknown parameter %q in %q (allowed: cacert, cert, key, servername)", source, k, addr)
			}
		}
		ep.CACert, ep.Cert, ep.Key, ep.ServerName = q.Get("cacert"), q.Get("cert"), q.Get("key"), q.Get("servername")
		u.RawQuery = ""
		ep.Addr = u.String()
	}
	return ep, ep.checkTLS()
}

// namedBuilder is buildx's --builder NAME: a builder in buildx's store, or
// a Docker context of that name (the docker driver).
func namedBuilder(source, name string, getenv func(string) string) (Endpoint, error) {
	if !buildxName.MatchString(name) {
		return Endpoint{}, fmt.Errorf("%s: %q is neither an address (schemes: %s) nor a buildx builder name (a letter, then letters, digits and ._-)",
			source, name, strings.Join(builderSchemes, ", "))
	}
	d, err := loadDockerCLI(getenv)
	if err != nil {
		return Endpoint{}, fmt.Errorf("%s: buildx builder %q: %w", source, name, err)
	}
	ng, err := d.store.nodeGroup(name)
	if err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, errInvalidName) {
		return Endpoint{}, fmt.Errorf("%s: %w", source, err)
	}
	if ng != nil {
		return ng.endpoint(d)
	}
	if d.hasContext(name) {
		return d.dockerDriver(name, fmt.Sprintf("%s: buildx builder %q (docker driver)", source, name))
	}
	return Endpoint{}, fmt.Errorf("%s: no buildx builder %q found in %s: create it with docker/setup-buildx-action "+
		"(its `name` output) or `docker buildx create --name %s`, or give an address such as tcp://host:1234 or unix:///path/buildkitd.sock",
		source, name, d.store.where(), name)
}

// currentBuilder is the builder buildx would use with no --builder: the
// current one for this Docker endpoint, else the Docker context's own.
func currentBuilder(getenv func(string) string) (Endpoint, error) {
	d, err := loadDockerCLI(getenv)
	if err != nil {
		return Endpoint{}, fmt.Errorf("reading the current buildx builder: %w", err)
	}
	ng, stale, err := d.store.current(d.endpointKey())
	if err != nil {
		return Endpoint{}, err
	}
	if ng != nil {
		return ng.endpoint(d)
	}
	// buildx falls back to the builder named like the Docker context.
	ng, err = d.store.nodeGroup(d.context)
	if err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, errInvalidName) {
		return Endpoint{}, err
	}
	if ng != nil {
		return ng.endpoint(d)
	}
	if d.context == "default" && !d.hostExists() {
		what := "no buildx builder is current"
		if stale != "" {
			what = fmt.Sprintf("the current buildx builder %q no longer exists (removed?)", stale)
		}
		return Endpoint{}, fmt.Errorf("%w: %s and there is no Docker engine at %s for buildx's default builder; "+
			"set the builder input (a buildx builder name, unix://…, tcp://…, docker-container://…, kube-pod://…), "+
			"set BUILDKIT_HOST or BUILDX_BUILDER, run docker/setup-buildx-action before this step, "+
			"or start one with `buildkitd --addr unix:///run/buildkit/buildkitd.sock`", ErrNoBuilder, what, d.host)
	}
	source := fmt.Sprintf("buildx's default builder %q (docker driver)", d.context)
	if stale != "" {
		source += fmt.Sprintf(", as the current builder %q no longer exists", stale)
	}
	return d.dockerDriver(d.context, source)
}
