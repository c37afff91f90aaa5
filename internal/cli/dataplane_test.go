package cli

import (
	"strings"
	"testing"

	"github.com/moby/buildkit/client"

	"github.com/bkcache/bkcache/ghacache/contentstore"
	"github.com/bkcache/bkcache/internal/ghaction"
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
