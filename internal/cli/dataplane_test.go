package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/moby/buildkit/client"

	"github.com/bkcache/bkcache/buildkit"
	"github.com/bkcache/bkcache/ghacache/contentstore"
	"github.com/bkcache/bkcache/internal/ghaction"
	"github.com/bkcache/bkcache/internal/plan"
	"github.com/bkcache/bkcache/scope"
)

func TestUsesDataPlane(t *testing.T) {
	for _, tc := range []struct {
		name  string
		entry client.CacheOptionsEntry
		want  bool
	}{
		{"gha by default", client.CacheOptionsEntry{Type: "gha", Attrs: map[string]string{"scope": "x"}}, true},
		{"gha dataplane=true", client.CacheOptionsEntry{Type: "gha", Attrs: map[string]string{"dataplane": "true"}}, true},
		{"gha dataplane=false", client.CacheOptionsEntry{Type: "gha", Attrs: map[string]string{"dataplane": "false"}}, false},
		{"registry", client.CacheOptionsEntry{Type: "registry", Attrs: map[string]string{"ref": "r"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := usesDataPlane(tc.entry); got != tc.want {
				t.Errorf("usesDataPlane = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestWithoutDataPlaneKey(t *testing.T) {
	in := []client.CacheOptionsEntry{{Type: "gha", Attrs: map[string]string{"dataplane": "false", "scope": "s"}}}
	out := withoutDataPlaneKey(in)
	if _, ok := out[0].Attrs["dataplane"]; ok || out[0].Attrs["scope"] != "s" {
		t.Errorf("attrs = %v, want scope only", out[0].Attrs)
	}
	if in[0].Attrs["dataplane"] != "false" {
		t.Errorf("the input entry was changed")
	}
}

func TestGHAClientConfig(t *testing.T) {
	env := map[string]string{"ACTIONS_RUNTIME_TOKEN": "envtok", "ACTIONS_RESULTS_URL": "http://results/", "ACTIONS_CACHE_SERVICE_V2": "true"}
	getenv := func(k string) string { return env[k] }
	for _, tc := range []struct {
		name  string
		attrs map[string]string
		token string
		v2    bool
	}{
		{"runner environment", map[string]string{}, "envtok", true},
		{"entry overrides", map[string]string{"token": "mine", "url": "http://v1/", "version": "1"}, "mine", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ghaClientConfig(client.CacheOptionsEntry{Type: "gha", Attrs: tc.attrs}, getenv)
			if cfg.Token != tc.token || cfg.ServiceV2 != tc.v2 {
				t.Errorf("config token %q v2 %v, want %q %v", cfg.Token, cfg.ServiceV2, tc.token, tc.v2)
			}
		})
	}
}

func TestDataPlaneSummary(t *testing.T) {
	r := dataPlaneResult{
		Exports: []contentstore.ExportStats{{Scope: "b", Ref: "refs/heads/pr", Uploaded: 2, Skipped: 3, BytesUp: 2 << 20, IndexKey: "index-b-1-x#1"}},
		Imports: []contentstore.ImportStats{{Scope: "b", Ref: "refs/heads/main", Layers: 5, BlobsServed: 4, BytesDown: 3 << 20}, {Scope: "b", Ref: "refs/heads/dev", Layers: 1}},
	}
	r.Exports[0].Size = 5 << 20
	s := ghaction.Summary{Builds: []ghaction.BuildSummary{{Name: "b", Steps: 5, Cached: 5,
		Exports: []ghaction.ExportSummary{{Ref: "type=gha,scope=b", Size: -1}}}}}
	r.addToSummary(&s, 5)
	if got := s.Builds[0].Exports[0].Size; got != 5<<20 {
		t.Errorf("export size = %d, want the index's", got)
	}
	if got := s.Builds[0].HitScope; got != "refs/heads/main (4 layers)" {
		t.Errorf("HitScope = %q", got)
	}
	md := ghaction.RenderSummary(s)
	for _, want := range []string{"Cache transfers", "2 blobs uploaded", "3 already in the cache", "served 4 of 5 layers"} {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}
}

// TestDataPlaneAsksTheTrustDecision: the index the data plane writes is a
// write of bkcache's own; it goes to the ref plan.Trust allows or nowhere,
// whatever entry reached it.
func TestDataPlaneAsksTheTrustDecision(t *testing.T) {
	main := scope.Scope{Key: "main", Ref: "refs/heads/main", Kind: scope.KindBranch}
	trusted := plan.Trust{Scope: scope.Plan{Build: "buildkit", Export: &main, Trusted: true}}
	for _, tc := range []struct {
		name, token string
		skipped     string // "" when the export store is set up
	}{
		{"the token writes the export ref", mintToken(t, "refs/heads/main"), ""},
		{"the token writes another ref", mintToken(t, "refs/heads/develop"), "the gha exporter writes refs/heads/develop"},
		{"the claim cannot be read", "opaque-runtime-token", "gha writes nothing: the runtime token has no readable `ac` claim"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"ACTIONS_RUNTIME_TOKEN": tc.token, "ACTIONS_RESULTS_URL": "http://127.0.0.1:1/", "ACTIONS_CACHE_SERVICE_V2": "true", "RUNNER_TEMP": t.TempDir()}
			req := buildkit.Request{Exports: []client.CacheOptionsEntry{{Type: "gha", Attrs: map[string]string{"scope": "buildkit", "mode": "max"}}}}
			dp, err := startDataPlane(context.Background(), &req, trusted, func(k string) string { return env[k] }, t.Logf)
			if err != nil {
				t.Fatal(err)
			}
			defer dp.close()
			notes := strings.Join(dp.notes, "\n")
			if tc.skipped == "" {
				if len(dp.exports) != 1 || len(req.Exports) != 1 || req.Exports[0].Type != "local" {
					t.Errorf("want one data-plane export, got %d (%v); notes %q", len(dp.exports), req.Exports, notes)
				}
				return
			}
			if len(dp.exports) != 0 || len(req.Exports) != 0 || !strings.Contains(notes, "cache export type=gha,scope=buildkit skipped: "+tc.skipped) {
				t.Errorf("want the export skipped (%s); exports %v, notes %q", tc.skipped, req.Exports, notes)
			}
			if strings.Contains(notes, tc.token) {
				t.Errorf("the notes show the token: %q", notes)
			}
		})
	}
}
