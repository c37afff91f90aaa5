package buildjob

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/moby/buildkit/client"

	"github.com/bkcache/bkcache/buildkit"
	"github.com/bkcache/bkcache/ghacache"
	"github.com/bkcache/bkcache/internal/plan"
	"github.com/bkcache/bkcache/scope"
)

// noReach is a daemon that cannot connect to the runner.
func noReach(context.Context) (string, string) { return "", "test builder is remote" }

func loopback(context.Context) (string, string) { return "127.0.0.1", "test builder is local" }

// TestEndpointEntries: dataplane=endpoint and default gha entries become stock gha entries
// pointing at a loopback endpoint with a minted token when the daemon can
// reach the runner, keeping the runtime token and the service URL from
// BuildKit; otherwise they take the session data plane, and the log says
// why. An export the trust decision refuses is skipped either way.
func TestEndpointEntries(t *testing.T) {
	main := scope.Scope{Key: "main", Ref: "refs/heads/main", Kind: scope.KindBranch}
	trusted := plan.Trust{Scope: scope.Plan{Build: "buildkit", Export: &main, Trusted: true}}
	const service = "http://127.0.0.1:1/results-secret-host/"
	for _, tc := range []struct {
		name         string
		reach        reachFunc
		writes       string
		wantEndpoint int  // entries sent to the endpoint
		wantSkipped  bool // the export skipped by the trust decision
		wantLog      string
	}{
		{"reachable", loopback, "refs/heads/main", 2, false, "through the cache endpoint at http://127.0.0.1:"},
		{"unreachable", noReach, "refs/heads/main", 0, false, "session data plane, not the cache endpoint: test builder is remote"},
		{"export refused", loopback, "refs/heads/develop", 1, true, "through the cache endpoint"},
		{"default reachable", loopback, "refs/heads/main", 2, false, "through the cache endpoint at http://127.0.0.1:"},
		{"default unreachable", noReach, "refs/heads/main", 0, false, "session data plane, not the cache endpoint: test builder is remote"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token := mintToken(t, tc.writes)
			env := map[string]string{"ACTIONS_RUNTIME_TOKEN": token, "ACTIONS_RESULTS_URL": service, "ACTIONS_CACHE_SERVICE_V2": "true", "RUNNER_TEMP": t.TempDir()}
			entry := func() client.CacheOptionsEntry {
				a := map[string]string{"scope": "buildkit", "dataplane": "endpoint"}
				if strings.HasPrefix(tc.name, "default") {
					delete(a, "dataplane") // the endpoint is the default
				}
				return client.CacheOptionsEntry{Type: "gha", Attrs: a}
			}
			exp := entry()
			exp.Attrs["mode"] = "max"
			req := buildkit.Request{Imports: []client.CacheOptionsEntry{entry()}, Exports: []client.CacheOptionsEntry{exp}}
			var log []string
			logf := func(f string, a ...any) { log = append(log, fmt.Sprintf(f, a...)) }
			dp, err := startDataPlane(context.Background(), &req, trusted, func(k string) string { return env[k] }, tc.reach, logf)
			if err != nil {
				t.Fatal(err)
			}
			defer dp.close()
			if got := strings.Join(log, "\n"); !strings.Contains(got, tc.wantLog) {
				t.Errorf("log %q lacks %q", got, tc.wantLog)
			}
			var viaEndpoint int
			for _, e := range append(req.Imports, req.Exports...) {
				all := fmt.Sprint(e.Attrs)
				if strings.Contains(all, token) || strings.Contains(all, "results-secret-host") {
					t.Errorf("the entry sent to BuildKit carries the runtime token or the service URL: %v", e.Attrs)
				}
				if _, ok := e.Attrs["dataplane"]; ok {
					t.Errorf("bkcache's own attribute reaches BuildKit: %v", e.Attrs)
				}
				if e.Type == "gha" {
					viaEndpoint++
					if !strings.HasPrefix(e.Attrs["url_v2"], "http://127.0.0.1:") || e.Attrs["version"] != "2" || e.Attrs["token"] != dp.secrets[0] {
						t.Errorf("endpoint entry %v", e.Attrs)
					}
					scopes, err := ghacache.TokenScopes(e.Attrs["token"])
					if err != nil {
						t.Fatalf("the minted token does not read as a runtime token: %v", err)
					}
					for _, s := range scopes {
						if s.Write && s.Ref != "refs/heads/main" {
							t.Errorf("the minted token may write %s, which the trust decision does not allow", s.Ref)
						}
					}
				}
			}
			if viaEndpoint != tc.wantEndpoint {
				t.Errorf("%d entries sent to the endpoint, want %d: %v %v", viaEndpoint, tc.wantEndpoint, req.Imports, req.Exports)
			}
			if skipped := len(dp.skipped) == 1 && dp.skipped[0].reason != ""; skipped != tc.wantSkipped {
				t.Errorf("skipped %v, want the export skipped: %v", dp.skipped, tc.wantSkipped)
			}
		})
	}
}
