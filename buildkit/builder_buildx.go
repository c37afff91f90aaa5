package buildkit

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/docker/cli/cli/config"
	dockercontext "github.com/docker/cli/cli/context/docker"
	contextstore "github.com/docker/cli/cli/context/store"
	"github.com/opencontainers/go-digest"
)

// The buildx store is read here rather than through buildx's own store
// package: that package's Txn takes a write lock and rewrites `current`,
// and buildx as a dependency would pull in its whole CLI. The rules follow
// buildx's store/store.go (Txn.Current, NodeGroupByName) and
// store/storeutil (GetCurrentInstance, GetNodeGroup).

// buildxStore is buildx's builder store directory.
type buildxStore struct{ dir string }

// where names the store for messages.
func (s buildxStore) where() string {
	if s.dir == "" {
		return "any buildx store (neither DOCKER_CONFIG nor HOME is set)"
	}
	return s.dir
}

// buildxCurrent is buildx's current file.
type buildxCurrent struct {
	Key    string
	Name   string
	Global bool
}

// buildxNodeGroup is the part of buildx's instances/<name> file we use.
type buildxNodeGroup struct {
	Name   string
	Driver string
	Nodes  []struct {
		Name       string
		Endpoint   string
		DriverOpts map[string]string
	}
}

// buildxName is buildx's store.ValidateName pattern.
var buildxName = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9\.\-_]*$`)

var errInvalidName = errors.New("invalid buildx builder name")

// nodeGroup reads instances/<name>; the error wraps os.ErrNotExist when
// there is no such builder.
func (s buildxStore) nodeGroup(name string) (*buildxNodeGroup, error) {
	if !buildxName.MatchString(name) {
		return nil, fmt.Errorf("%w %q: it starts with a letter and has only letters, digits and ._-", errInvalidName, name)
	}
	if s.dir == "" {
		return nil, fmt.Errorf("buildx builder %q: no buildx configuration (neither DOCKER_CONFIG nor HOME is set): %w", name, os.ErrNotExist)
	}
	path := filepath.Join(s.dir, "instances", strings.ToLower(name))
	dt, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading buildx builder %q: %w", name, err)
	}
	var ng buildxNodeGroup
	if err := json.Unmarshal(dt, &ng); err != nil {
		return nil, fmt.Errorf("reading buildx builder %q from %s: %w", name, path, err)
	}
	if ng.Name == "" {
		ng.Name = name
	}
	return &ng, nil
}

// current is buildx's Txn.Current without its writes: the builder in
// `current` if it is global or was made current for this Docker endpoint
// (key), else the endpoint's default from `buildx use --default`, else nil.
// A current builder that was removed is nil too, and its name is stale:
// buildx falls back.
func (s buildxStore) current(key string) (ng *buildxNodeGroup, stale string, err error) {
	if s.dir == "" {
		return nil, "", nil
	}
	path := filepath.Join(s.dir, "current")
	dt, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, "", fmt.Errorf("reading the current buildx builder: %w", err)
	}
	if err == nil {
		var c buildxCurrent
		if err := json.Unmarshal(dt, &c); err != nil {
			return nil, "", fmt.Errorf("reading the current buildx builder from %s: %w", path, err)
		}
		if c.Name != "" && (c.Global || c.Key == key) {
			if ng, err := s.nodeGroup(c.Name); err == nil {
				return ng, "", nil
			}
			stale = c.Name
			if !c.Global {
				return nil, stale, nil
			}
		}
	}
	// buildx's toHash: the first 20 hex digits of the key's sha256.
	dt, err = os.ReadFile(filepath.Join(s.dir, "defaults", digest.FromString(key).Encoded()[:20]))
	if err != nil {
		return nil, stale, nil //nolint:nilerr // no default for this endpoint: buildx resets and falls back
	}
	if ng, err = s.nodeGroup(string(dt)); err != nil {
		return nil, string(dt), nil //nolint:nilerr // a stale default falls back too
	}
	return ng, "", nil
}

// endpoint is how bkcache reaches the builder's first node.
func (ng *buildxNodeGroup) endpoint(d dockerCLI) (Endpoint, error) {
	source := fmt.Sprintf("buildx builder %q", ng.Name)
	if ng.Driver == "docker" {
		// The docker driver's node endpoint is a context name or a host.
		ctx := ng.Name
		if len(ng.Nodes) > 0 && ng.Nodes[0].Endpoint != "" {
			ctx = ng.Nodes[0].Endpoint
		}
		return d.dockerDriver(ctx, source+" (docker driver)")
	}
	if len(ng.Nodes) == 0 {
		return Endpoint{}, fmt.Errorf("%s has no nodes; recreate it with docker/setup-buildx-action or `docker buildx create --name %s`", source, ng.Name)
	}
	node := ng.Nodes[0]
	switch ng.Driver {
	case "docker-container":
		addr := "docker-container://buildx_buildkit_" + node.Name
		// The node's endpoint is a Docker context name or a Docker host;
		// the connection helper (`docker exec`) can select a context but
		// takes the host from DOCKER_HOST.
		switch ctx := node.Endpoint; {
		case strings.Contains(ctx, "://"):
			if ctx != d.host {
				return Endpoint{}, fmt.Errorf("%s runs on the Docker engine at %s, but this step's Docker is %s; "+
					"set DOCKER_HOST=%s for this step (bkcache reaches the builder with `docker exec`)", source, ctx, d.host, ctx)
			}
		case ctx != "" && ctx != "default":
			addr += "?context=" + url.QueryEscape(ctx)
		}
		return Endpoint{Addr: addr, Source: source}, nil
	case "remote":
		ep, err := parseEndpoint(source, node.Endpoint)
		if err != nil {
			return Endpoint{}, err
		}
		o := node.DriverOpts
		ep.CACert, ep.Cert, ep.Key, ep.ServerName = o["cacert"], o["cert"], o["key"], o["servername"]
		return ep, ep.checkTLS()
	default:
		return Endpoint{}, fmt.Errorf("%s uses the %q driver, which bkcache cannot reach directly; "+
			"use the docker-container, remote or docker driver, or set the builder input to its address (e.g. kube-pod://<pod>)", source, ng.Driver)
	}
}

// dockerCLI is what buildx reads from the Docker CLI's configuration.
type dockerCLI struct {
	configDir string
	context   string // current Docker context
	host      string // the default context's Docker host
	store     buildxStore
}

const defaultDockerHost = "unix:///var/run/docker.sock"

// loadDockerCLI resolves the configuration directory and the current
// context as the Docker CLI does: DOCKER_HOST selects the default context,
// else DOCKER_CONTEXT, else config.json's currentContext.
func loadDockerCLI(getenv func(string) string) (dockerCLI, error) {
	d := dockerCLI{configDir: getenv("DOCKER_CONFIG"), host: getenv("DOCKER_HOST"), context: "default"}
	if d.configDir == "" {
		if home := getenv("HOME"); home != "" {
			d.configDir = filepath.Join(home, ".docker")
		}
	}
	if d.host == "" {
		d.host = defaultDockerHost
	}
	if d.configDir != "" {
		d.store.dir = filepath.Join(d.configDir, "buildx")
	}
	if dir := getenv("BUILDX_CONFIG"); dir != "" {
		d.store.dir = dir
	}
	switch {
	case getenv("DOCKER_HOST") != "":
	case getenv("DOCKER_CONTEXT") != "":
		d.context = getenv("DOCKER_CONTEXT")
	case d.configDir != "":
		cf, err := config.Load(d.configDir)
		if err != nil {
			return d, fmt.Errorf("reading the Docker CLI configuration: %w", err)
		}
		if cf.CurrentContext != "" {
			d.context = cf.CurrentContext
		}
	}
	return d, nil
}

// endpointKey is buildx's dockerutil.GetCurrentEndpoint: the context name,
// or for the default context its Docker host.
func (d dockerCLI) endpointKey() string {
	if d.context != "default" {
		return d.context
	}
	return d.host
}

func (d dockerCLI) contextStore() *contextstore.ContextStore {
	return contextstore.New(filepath.Join(d.configDir, "contexts"), contextstore.NewConfig(
		func() any { return &map[string]any{} },
		contextstore.EndpointTypeGetter(dockercontext.DockerEndpoint, func() any { return &dockercontext.EndpointMeta{} }),
	))
}

// hasContext reports whether a Docker context of that name exists.
func (d dockerCLI) hasContext(name string) bool {
	if name == "default" {
		return true
	}
	if d.configDir == "" {
		return false
	}
	_, err := d.contextStore().GetMetadata(name)
	return err == nil
}

// hostExists reports whether the default context's Docker engine could
// be there: a unix socket that exists, or any other kind of host.
func (d dockerCLI) hostExists() bool {
	path, ok := strings.CutPrefix(d.host, "unix://")
	if !ok {
		return true
	}
	_, err := os.Stat(path)
	return err == nil
}

// dockerDriver is the builder inside the Docker engine of context: a
// context name, or a Docker host as buildx stores for some builders.
func (d dockerCLI) dockerDriver(context, source string) (Endpoint, error) {
	ep := Endpoint{Source: source, Docker: true, DockerConfig: d.configDir}
	switch {
	case strings.Contains(context, "://"):
		ep.Addr = context
	case context == "default":
		ep.Addr = d.host
	default:
		md, err := d.contextStore().GetMetadata(context)
		if err != nil {
			return Endpoint{}, fmt.Errorf("%s: reading Docker context %q: %w", source, context, err)
		}
		meta, err := dockercontext.EndpointFromContext(md)
		if err != nil {
			return Endpoint{}, fmt.Errorf("%s: Docker context %q: %w", source, context, err)
		}
		ep.Addr, ep.DockerContext = meta.Host, context
	}
	return ep, nil
}
