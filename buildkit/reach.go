package buildkit

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"

	dockerclient "github.com/moby/moby/client"
)

// ReachableHost returns the IP address of this host that the daemon of the
// builder (as ResolveBuilder finds it) can connect to, where bkcache
// serves the gha cache endpoint, or "" when there is none; why says how
// it was decided, for the log. Daemons on this host's network get
// loopback: a local unix socket, a loopback tcp address, the docker driver
// of a local engine, a local docker-container builder with network=host.
// A local docker-container builder on a bridge network gets its network's
// gateway, when that address is on one of this host's interfaces (so the
// endpoint listens there, never on all interfaces). Anything else
// (tcp:// elsewhere, kube-pod://) gets "".
func ReachableHost(ctx context.Context, builder string, getenv func(string) string) (host, why string) {
	ok, why := LoopbackReach(ctx, builder, getenv)
	if ok {
		return "127.0.0.1", why
	}
	if gw, gwWhy := bridgeGateway(ctx, builder, getenv); gw != "" {
		return gw, gwWhy
	}
	return "", why
}

// LoopbackReach reports whether the daemon of the builder can connect to
// this host's loopback interface, and why (see ReachableHost).
func LoopbackReach(ctx context.Context, builder string, getenv func(string) string) (bool, string) {
	ep, err := ResolveBuilder(builder, getenv)
	if err != nil {
		return false, fmt.Sprintf("the builder could not be resolved (%v)", err)
	}
	if ep.Docker {
		if localDockerHost(ep.Addr) && ep.DockerContext == "" {
			return true, "the docker driver's BuildKit runs in the local Docker engine, on this host's network"
		}
		return false, fmt.Sprintf("the docker driver's engine %s is not local", ep.Addr)
	}
	u, err := url.Parse(ep.Addr)
	if err != nil {
		return false, fmt.Sprintf("builder address %q does not parse", ep.Addr)
	}
	switch u.Scheme {
	case "unix":
		return true, "buildkitd listens on a local unix socket"
	case "tcp":
		if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
			return true, "buildkitd listens on a loopback address"
		}
		return false, fmt.Sprintf("buildkitd at %s is remote and cannot connect back to the runner", u.Host)
	case "docker-container":
		return containerOnHostNetwork(ctx, u, getenv)
	case "kube-pod":
		return false, "a kube-pod builder cannot connect back to the runner"
	}
	return false, fmt.Sprintf("builder scheme %s:// is not known to reach the runner", u.Scheme)
}

func localDockerHost(host string) bool {
	return host == "" || strings.HasPrefix(host, "unix://") || strings.HasPrefix(host, "npipe://")
}

// containerOnHostNetwork inspects a docker-container builder's container
// through the Docker API of DOCKER_HOST, as the connection helper reaches it.
func containerOnHostNetwork(ctx context.Context, u *url.URL, getenv func(string) string) (bool, string) {
	if u.Query().Get("context") != "" {
		return false, "the docker-container builder is on another Docker context"
	}
	host := getenv("DOCKER_HOST")
	if host == "" {
		host = defaultDockerHost
	}
	if !localDockerHost(host) {
		return false, fmt.Sprintf("the docker-container builder runs on the Docker engine at %s, not on this host", host)
	}
	dc, err := dockerclient.New(dockerclient.WithHost(host))
	if err != nil {
		return false, fmt.Sprintf("the Docker API is not reachable (%v)", err)
	}
	defer dc.Close()
	res, err := dc.ContainerInspect(ctx, u.Host, dockerclient.ContainerInspectOptions{})
	if err != nil {
		return false, fmt.Sprintf("inspecting container %s failed (%v)", u.Host, err)
	}
	if hc := res.Container.HostConfig; hc != nil && hc.NetworkMode.IsHost() {
		return true, fmt.Sprintf("the docker-container builder %s uses the host network", u.Host)
	}
	mode := "bridge"
	if hc := res.Container.HostConfig; hc != nil && hc.NetworkMode != "" {
		mode = string(hc.NetworkMode)
	}
	return false, fmt.Sprintf("the docker-container builder %s is on the %s network, which cannot reach the runner's loopback", u.Host, mode)
}

// bridgeGateway is the gateway address of a local docker-container
// builder's (non-host) network, if it is an address of this host.
func bridgeGateway(ctx context.Context, builder string, getenv func(string) string) (string, string) {
	ep, err := ResolveBuilder(builder, getenv)
	if err != nil || ep.Docker {
		return "", ""
	}
	u, err := url.Parse(ep.Addr)
	if err != nil || u.Scheme != "docker-container" || u.Query().Get("context") != "" {
		return "", ""
	}
	host := getenv("DOCKER_HOST")
	if host == "" {
		host = defaultDockerHost
	}
	if !localDockerHost(host) {
		return "", ""
	}
	dc, err := dockerclient.New(dockerclient.WithHost(host))
	if err != nil {
		return "", ""
	}
	defer dc.Close()
	res, err := dc.ContainerInspect(ctx, u.Host, dockerclient.ContainerInspectOptions{})
	if err != nil || res.Container.NetworkSettings == nil {
		return "", ""
	}
	local := map[string]bool{}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				local[n.IP.String()] = true
			}
		}
	}
	for name, n := range res.Container.NetworkSettings.Networks {
		if n == nil || !n.Gateway.IsValid() || !n.Gateway.Is4() {
			continue
		}
		if gw := n.Gateway.String(); local[gw] {
			return gw, fmt.Sprintf("the docker-container builder %s is on the %s network, whose gateway %s is this host", u.Host, name, gw)
		}
	}
	return "", ""
}
