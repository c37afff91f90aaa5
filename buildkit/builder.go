package buildkit

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/buildkit/client"
	// Registered connection helpers let client.New dial these schemes.
	_ "github.com/moby/buildkit/client/connhelper/dockercontainer"
	_ "github.com/moby/buildkit/client/connhelper/kubepod"
)

// Endpoint is a resolved BuildKit daemon.
type Endpoint struct {
	Addr   string // address for client.New, without TLS query parameters
	Source string // where it came from: "builder input", "BUILDKIT_HOST", `buildx builder "name"`
	// TLS files for tcp:// (all optional).
	CACert, Cert, Key, ServerName string
}

// ClientOpts are the client.New options for the endpoint's TLS settings.
func (e Endpoint) ClientOpts() []client.ClientOpt {
	var opts []client.ClientOpt
	if e.CACert != "" {
		name := e.ServerName
		if name == "" {
			if u, err := url.Parse(e.Addr); err == nil {
				name = u.Hostname()
			}
		}
		opts = append(opts, client.WithServerConfig(name, e.CACert))
	}
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
//  1. the builder input;
//  2. BUILDKIT_HOST;
//  3. the buildx builder that `docker buildx use` or
//     docker/setup-buildx-action made current ($DOCKER_CONFIG/buildx, else
//     $HOME/.docker/buildx): a docker-container builder is reached at
//     docker-container://buildx_buildkit_<node>, a remote one at its endpoint.
//
// tcp:// addresses take TLS files as query parameters:
// tcp://host:1234?cacert=ca.pem&cert=cert.pem&key=key.pem&servername=name.
// It reads only the buildx files; getenv is the process environment.
func ResolveBuilder(input string, getenv func(string) string) (Endpoint, error) {
	if input = strings.TrimSpace(input); input != "" {
		return parseEndpoint("builder", input)
	}
	if host := strings.TrimSpace(getenv("BUILDKIT_HOST")); host != "" {
		return parseEndpoint("BUILDKIT_HOST", host)
	}
	ep, found, err := currentBuildx(getenv)
	if err != nil || found {
		return ep, err
	}
	return Endpoint{}, fmt.Errorf("%w: set the builder input (unix://…, tcp://…, docker-container://…, kube-pod://…), "+
		"set BUILDKIT_HOST, run docker/setup-buildx-action before this step, "+
		"or start one with `buildkitd --addr unix:///run/buildkit/buildkitd.sock`", ErrNoBuilder)
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
	return ep, nil
}

// buildxCurrent is buildx's store/current file.
type buildxCurrent struct {
	Key    string
	Name   string
	Global bool
}

// buildxNodeGroup is the part of buildx's store/instances/<name> file we use.
type buildxNodeGroup struct {
	Name   string
	Driver string
	Nodes  []struct {
		Name       string
		Endpoint   string
		DriverOpts map[string]string
	}
}

func currentBuildx(getenv func(string) string) (Endpoint, bool, error) {
	dir := getenv("DOCKER_CONFIG")
	if dir == "" {
		home := getenv("HOME")
		if home == "" {
			return Endpoint{}, false, nil
		}
		dir = filepath.Join(home, ".docker")
	}
	root := filepath.Join(dir, "buildx")
	dt, err := os.ReadFile(filepath.Join(root, "current"))
	if errors.Is(err, os.ErrNotExist) {
		return Endpoint{}, false, nil
	} else if err != nil {
		return Endpoint{}, false, fmt.Errorf("reading buildx builder: %w", err)
	}
	var cur buildxCurrent
	if err := json.Unmarshal(dt, &cur); err != nil {
		return Endpoint{}, false, fmt.Errorf("reading buildx builder %s: %w", filepath.Join(root, "current"), err)
	}
	if cur.Name == "" {
		return Endpoint{}, false, nil // the docker driver's default builder
	}
	// buildx stores instances under the lower-cased name.
	path := filepath.Join(root, "instances", strings.ToLower(cur.Name))
	if strings.ContainsAny(cur.Name, `/\`) {
		return Endpoint{}, false, fmt.Errorf("buildx builder name %q is invalid", cur.Name)
	}
	dt, err = os.ReadFile(path)
	if err != nil {
		return Endpoint{}, false, fmt.Errorf("reading buildx builder %q: %w", cur.Name, err)
	}
	var ng buildxNodeGroup
	if err := json.Unmarshal(dt, &ng); err != nil {
		return Endpoint{}, false, fmt.Errorf("reading buildx builder %s: %w", path, err)
	}
	source := fmt.Sprintf("buildx builder %q", cur.Name)
	if len(ng.Nodes) == 0 {
		return Endpoint{}, false, fmt.Errorf("%s has no nodes", source)
	}
	node := ng.Nodes[0]
	switch ng.Driver {
	case "docker-container":
		addr := "docker-container://buildx_buildkit_" + node.Name
		// The node's endpoint is a Docker context name or a Docker host;
		// the connection helper can select a context but not a host.
		if ctx := node.Endpoint; ctx != "" && ctx != "default" && !strings.Contains(ctx, "://") {
			addr += "?context=" + url.QueryEscape(ctx)
		}
		return Endpoint{Addr: addr, Source: source}, true, nil
	case "remote":
		ep, err := parseEndpoint(source, node.Endpoint)
		if err != nil {
			return Endpoint{}, false, err
		}
		o := node.DriverOpts
		ep.CACert, ep.Cert, ep.Key, ep.ServerName = o["cacert"], o["cert"], o["key"], o["servername"]
		return ep, true, nil
	default:
		return Endpoint{}, false, fmt.Errorf("%s uses the %q driver, which bkcache cannot reach directly; "+
			"use the docker-container or remote driver, or set the builder input (e.g. kube-pod://<pod>)", source, ng.Driver)
	}
}
