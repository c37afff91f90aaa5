package ghaaction

import (
	"net/http"
	"strings"
	"testing"

	"github.com/bkcache/bkcache/ghacache"
	"github.com/bkcache/bkcache/ghacache/emulator"
	"github.com/bkcache/bkcache/internal/testenv"
)

// endpointGHA is the cache line for BuildKit's own gha backend through
// bkcache's cache endpoint.
const endpointGHA = "type=gha,dataplane=endpoint"

// requireEndpoint checks the log says the build took the endpoint.
func requireEndpoint(t *testing.T, r result) {
	t.Helper()
	if !strings.Contains(r.stdout, "through the cache endpoint at http://127.0.0.1:") || !strings.Contains(r.stdout, "gha cache endpoint: ") {
		t.Errorf("the log does not say the build went through the cache endpoint:\n%s", r.stdout)
	}
}

// foreignAgents counts the cache service calls not made by bkcache (the
// daemon's own client sends BuildKit's User-Agent).
func foreignAgents(s *cacheService) map[string]int {
	out := map[string]int{}
	for ua, n := range s.twirpAgents() {
		if ua != "bkcache" {
			out[ua] = n
		}
	}
	return out
}

// TestEndpointColdThenWarm: through the endpoint, a cold build exports
// stock gha entries, and a fresh builder then finds every step cached
// (the Cached flags of the status stream), with no output (a PR build)
// and with a local output that reads every layer. The daemon never
// receives the runtime token, the service URL or a signed URL: a
// recording proxy sees all that bkcache sends it, and every call the
// cache service answered came from bkcache, not from the daemon.
func TestEndpointColdThenWarm(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "azure")
	s := startEmulator(t, 1)
	dir := writeContext(t, env)

	tok := s.token(t, mainRef)
	proxy := newRecordingProxy(t, testenv.NewBuildkitd(t))
	r := runAction(t, s, tok, pushMain, buildInputs(proxy.addr, dir, "cache", endpointGHA))
	mustSucceed(t, r)
	requireEndpoint(t, r)
	if cached, steps := hits(t, r); cached != 0 || steps != 3 {
		t.Errorf("cold build: %d of %d cached, want 0 of 3", cached, steps)
	}
	if !hasIndex(entriesByScope(s)[mainRef]) {
		t.Fatalf("no index after the export:\n%s\n%s", describe(s.emu.Entries(repo)), r.stdout)
	}
	requireIndexComplete(t, s)
	// Each layer reserved once: a second reservation of a key (409) would
	// be read by BuildKit as "another job has it" and skip the upload.
	t.Logf("cold export: service statuses %v, entries %d", s.statusCounts(), len(s.emu.Entries(repo)))
	if n := s.served(http.StatusConflict); n > 0 {
		t.Errorf("the cold export made %d reservations of keys already reserved", n)
	}
	sent := proxy.received()
	if !strings.Contains(sent, "dockerfile.v0") || !strings.Contains(sent, "url_v2") {
		t.Fatalf("the proxy did not record the solve request (%d bytes)", len(sent))
	}
	for _, bad := range []string{tok, s.url, "sig="} {
		if strings.Contains(sent, bad) {
			t.Errorf("buildkitd received %q", bad)
		}
	}
	checkNoLeak(t, "the runtime token", tok, r)

	for _, tc := range []struct {
		name   string
		inputs []string
	}{
		{"no output", nil},
		{"local output", []string{"outputs", "type=local,dest=" + t.TempDir()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := newRecordingProxy(t, testenv.NewBuildkitd(t))
			tok := s.token(t, prRef, baseRef, mainRef)
			r := runAction(t, s, tok, prSame, buildInputs(proxy.addr, dir, append([]string{"cache", endpointGHA}, tc.inputs...)...))
			mustSucceed(t, r)
			requireEndpoint(t, r)
			if cached, steps := hits(t, r); cached != steps || steps != 3 {
				t.Errorf("warm build: %d of %d cached, want 3 of 3\n%s", cached, steps, r.stdout)
			}
			if sent := proxy.received(); strings.Contains(sent, tok) || strings.Contains(sent, s.url) || strings.Contains(sent, "sig=") {
				t.Errorf("buildkitd received the token, the cache URL or a signed URL on import")
			}
		})
	}
	if f := foreignAgents(s); len(f) > 0 {
		t.Errorf("the cache service answered calls that did not come from bkcache: %v", f)
	}
}

// TestEndpointStockCompat: a cache written by BuildKit's own gha backend
// (dataplane=false) is read through the endpoint, and one written through
// the endpoint is read by the stock backend, in the real buildkitd.
func TestEndpointStockCompat(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "azure")
	for _, tc := range []struct{ name, export, imp string }{
		{"stock export to endpoint import", stockGHA, endpointGHA},
		{"endpoint export to stock import", endpointGHA, stockGHA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startEmulator(t, 1)
			dir := writeContext(t, env)
			r := runAction(t, s, s.token(t, mainRef), pushMain, buildInputs(testenv.NewBuildkitd(t), dir, "cache", tc.export))
			mustSucceed(t, r)
			if !hasIndex(entriesByScope(s)[mainRef]) {
				t.Fatalf("no index after the export:\n%s\n%s", describe(s.emu.Entries(repo)), r.stdout)
			}
			// The stock build's daemon calls the service itself; the
			// endpoint build's never does.
			if stock := tc.export == stockGHA; stock != (len(foreignAgents(s)) > 0) {
				t.Errorf("stock export %v, but calls from the daemon: %v", stock, foreignAgents(s))
			}
			r = runAction(t, s, s.token(t, prRef, baseRef, mainRef), prSame,
				buildInputs(testenv.NewBuildkitd(t), dir, "cache", tc.imp, "outputs", "type=local,dest="+t.TempDir()))
			mustSucceed(t, r)
			if tc.imp == endpointGHA {
				requireEndpoint(t, r)
			}
			if cached, steps := hits(t, r); cached != steps || steps != 3 {
				t.Errorf("%d of %d cached, want 3 of 3\n%s", cached, steps, r.stdout)
			}
		})
	}
}

// TestEndpointEvictedDuringBuild: every layer is evicted right after its
// lookup (the emulator's EvictAfterLookup). The endpoint answers such a
// lookup with a miss, so BuildKit rebuilds the steps instead of failing a
// read; the build succeeds, and the next build on the same builder does
// too, from the builder's own cache.
func TestEndpointEvictedDuringBuild(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "azure")
	s := startEmulator(t, 1)
	dir := writeContext(t, env)
	mustSucceed(t, runAction(t, s, s.token(t, mainRef), pushMain, buildInputs(testenv.NewBuildkitd(t), dir, "cache", endpointGHA)))

	if err := s.emu.SetFaults(emulator.Faults{EvictAfterLookup: ghacache.BlobKey("")}); err != nil {
		t.Fatal(err)
	}
	builder := testenv.NewBuildkitd(t)
	// A local output makes BuildKit read every layer of the cached steps.
	r := runAction(t, s, s.token(t, prRef, baseRef, mainRef), prSame,
		buildInputs(builder, dir, "cache", endpointGHA, "outputs", "type=local,dest="+t.TempDir()))
	mustSucceed(t, r)
	requireEndpoint(t, r)
	if !strings.Contains(r.stdout, "evicted layers were misses") {
		t.Errorf("the log does not say evicted layers were misses:\n%s", r.stdout)
	}
	if cached, steps := hits(t, r); steps != 3 || cached == steps {
		t.Errorf("%d of %d cached: the evicted layers cannot have served hits", cached, steps)
	}

	r = runAction(t, s, s.token(t, prRef, baseRef, mainRef), prSame,
		buildInputs(builder, dir, "cache", endpointGHA, "outputs", "type=local,dest="+t.TempDir()))
	mustSucceed(t, r)
	if cached, steps := hits(t, r); cached != steps || steps != 3 {
		t.Errorf("second build on the same builder: %d of %d cached, want 3 of 3\n%s", cached, steps, r.stdout)
	}
}
