package buildjob

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"

	"github.com/moby/buildkit/client"

	"github.com/bkcache/bkcache/buildkit"
	"github.com/bkcache/bkcache/ghacache"
	"github.com/bkcache/bkcache/ghacache/endpoint"
	"github.com/bkcache/bkcache/internal/cacheentry"
	"github.com/bkcache/bkcache/internal/plan"
)

// The gha cache endpoint (dataplane=endpoint): BuildKit's own lazy gha
// backend talks to ghacache/endpoint on the runner's loopback, which
// forwards to the Actions cache with the real token. A builder that cannot
// connect to the runner's loopback takes the session data plane instead.

// endpointSent pairs a gha entry as the plan had it with the stock entry
// sent to BuildKit in its place.
type endpointSent struct {
	given, sent client.CacheOptionsEntry
}

// usesEndpoint reports whether a gha entry asks for the cache endpoint:
// dataplane=endpoint, or no dataplane at all (the default).
func usesEndpoint(e client.CacheOptionsEntry) bool {
	if e.Type != cacheentry.TypeGHA {
		return false
	}
	v, set := e.Attrs[cacheentry.DataPlaneKey]
	return !set || v == cacheentry.DataPlaneEndpoint
}

// reachFunc returns the runner's address the build's daemon can connect
// to ("" for none), and why.
type reachFunc func(ctx context.Context) (string, string)

func builderReach(builder string, getenv func(string) string) reachFunc {
	return func(ctx context.Context) (string, string) { return buildkit.ReachableHost(ctx, builder, getenv) }
}

// startEndpoints serves the endpoint entries of req: each is replaced in
// req by a stock gha entry pointing at an endpoint (one per cache service
// configuration, shared by its imports and exports) with a token minted
// for this build. Entries stay as they are, for the session data plane,
// when the daemon cannot reach the runner or the service is v1; the log
// says which path was taken and why.
func (dp *dataPlane) startEndpoints(ctx context.Context, req *buildkit.Request, trust plan.Trust, getenv func(string) string, reach reachFunc, logf func(string, ...any)) {
	var want []client.CacheOptionsEntry
	for _, e := range slices.Concat(req.Imports, req.Exports) {
		if usesEndpoint(e) {
			want = append(want, e)
		}
	}
	if len(want) == 0 {
		return
	}
	host, why := reach(ctx)
	if host == "" {
		logf("gha cache: session data plane, not the cache endpoint: %s", why)
		return
	}
	type server struct {
		c      *ghacache.Client
		write  string // the ref the trust decision lets exports write, or ""
		srv    *endpoint.Server
		failed bool
	}
	servers := map[ghacache.Config]*server{}
	conf := func(e client.CacheOptionsEntry) ghacache.Config {
		cfg := ghaClientConfig(e, getenv)
		return ghacache.Config{ResultsURL: cfg.ResultsURL, CacheURL: cfg.CacheURL, Token: cfg.Token, ServiceV2: cfg.ServiceV2}
	}
	for _, e := range want {
		k := conf(e)
		if _, ok := servers[k]; ok {
			continue
		}
		if !k.ServiceV2 {
			logf("gha cache: session data plane, not the cache endpoint: the cache service is v1 (GHES), and the endpoint forwards to v2 only")
			servers[k] = &server{failed: true}
			continue
		}
		cfg := ghaClientConfig(e, getenv)
		// The endpoint holds the blocks in memory as they go up (no
		// spool): 4 in flight of 4 MiB, across all uploads.
		cfg.BlockSize, cfg.UploadConcurrency = 4<<20, 4
		c, err := ghacache.NewClient(cfg)
		if err != nil {
			logf("gha cache: session data plane, not the cache endpoint: %v", err)
			servers[k] = &server{failed: true}
			continue
		}
		servers[k] = &server{c: c}
	}
	for _, e := range req.Exports {
		if s := servers[conf(e)]; usesEndpoint(e) && s != nil && !s.failed {
			if ref, refusal := trust.GHAWriteRef(conf(e).Token); refusal == "" {
				s.write = ref
			}
		}
	}
	for _, s := range servers {
		if s.failed {
			continue
		}
		scopes, err := s.c.Scopes()
		if err != nil {
			logf("gha cache: session data plane, not the cache endpoint: %v", err)
			s.failed = true
			continue
		}
		// Only the ref the trust decision allows is writable: BuildKit
		// writes its index to the token's writable scope.
		for i := range scopes {
			scopes[i].Write = s.write != "" && scopes[i].Ref == s.write
		}
		s.srv, err = endpoint.Listen(s.c, net.JoinHostPort(host, "0"), endpoint.Options{Scopes: scopes, Write: s.write != "", Logf: logf})
		if err != nil {
			logf("gha cache: session data plane, not the cache endpoint: %v", err)
			s.failed = true
			continue
		}
		dp.endpoints = append(dp.endpoints, s.srv)
		dp.secrets = append(dp.secrets, s.srv.Token())
		logf("gha cache: BuildKit's gha backend through the cache endpoint at %s: %s", s.srv.URL(), why)
	}
	rewrite := func(es []client.CacheOptionsEntry, export bool) {
		for i, e := range es {
			s := servers[conf(e)]
			if !usesEndpoint(e) || s == nil || s.failed {
				continue
			}
			if export && s.write == "" {
				// The trust decision refuses this export; the session path
				// skips it with the reason.
				continue
			}
			a := maps.Clone(e.Attrs)
			delete(a, "url")
			a["url_v2"], a["version"], a["token"] = s.srv.URL(), "2", s.srv.Token()
			// Kept on BuildKit's own backend; removed before BuildKit sees it.
			a[cacheentry.DataPlaneKey] = "false"
			sent := client.CacheOptionsEntry{Type: e.Type, Attrs: a}
			dp.sent = append(dp.sent, endpointSent{given: e, sent: sent})
			es[i] = sent
		}
	}
	rewrite(req.Imports, false)
	rewrite(req.Exports, true)
}

// sentFor is the entry sent to BuildKit for a plan entry that went to the
// endpoint.
func (dp *dataPlane) sentFor(given client.CacheOptionsEntry) (client.CacheOptionsEntry, bool) {
	for _, s := range dp.sent {
		if s.given.Type == given.Type && maps.Equal(s.given.Attrs, given.Attrs) {
			return withoutDataPlaneKey([]client.CacheOptionsEntry{s.sent})[0], true
		}
	}
	return client.CacheOptionsEntry{}, false
}

// endpointLines describe what the daemon did through the endpoints.
func endpointLines(stats []endpoint.Stats) []string {
	var lines []string
	for _, st := range stats {
		line := fmt.Sprintf("gha cache endpoint: %d lookups (%d hits), %d blob reads (%s), %d blobs uploaded (%s)",
			st.Lookups, st.Hits, st.Downloads, bytesText(st.BytesDown), st.Uploads, bytesText(st.BytesUp))
		if st.Evicted > 0 {
			line += fmt.Sprintf("; %d evicted layers were misses", st.Evicted)
		}
		if st.Rejected > 0 {
			line += fmt.Sprintf(", %d requests refused for a wrong credential", st.Rejected)
		}
		lines = append(lines, line)
	}
	return lines
}
