package buildjob

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/bkcache/bkcache/buildkit"
	"github.com/bkcache/bkcache/ghacache/contentstore"
	"github.com/bkcache/bkcache/internal/cacheentry"
	"github.com/bkcache/bkcache/internal/config"
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
		// A default entry the endpoint did not take (its daemon cannot
		// reach the runner) is served by the session data plane.
		{"gha by default", client.CacheOptionsEntry{Type: "gha", Attrs: map[string]string{"scope": "x"}}, true},
		{"gha dataplane=true", client.CacheOptionsEntry{Type: "gha", Attrs: map[string]string{"dataplane": "true"}}, true},
		{"gha dataplane=false", client.CacheOptionsEntry{Type: "gha", Attrs: map[string]string{"dataplane": "false"}}, false},
		// Where the endpoint cannot be used, the session data plane serves it.
		{"gha dataplane=endpoint", client.CacheOptionsEntry{Type: "gha", Attrs: map[string]string{"dataplane": "endpoint"}}, true},
		{"registry", client.CacheOptionsEntry{Type: "registry", Attrs: map[string]string{"ref": "r"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := usesDataPlane(tc.entry); got != tc.want {
				t.Errorf("usesDataPlane = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestUsesEndpoint: the cache endpoint is the default for a gha entry
// (dataplane unset) and what dataplane=endpoint asks for; dataplane=true
// pins the session data plane, dataplane=false stock BuildKit.
func TestUsesEndpoint(t *testing.T) {
	for _, tc := range []struct {
		name  string
		entry client.CacheOptionsEntry
		want  bool
	}{
		{"gha by default", client.CacheOptionsEntry{Type: "gha", Attrs: map[string]string{"scope": "x"}}, true},
		{"gha dataplane=endpoint", client.CacheOptionsEntry{Type: "gha", Attrs: map[string]string{"dataplane": "endpoint"}}, true},
		{"gha dataplane=true", client.CacheOptionsEntry{Type: "gha", Attrs: map[string]string{"dataplane": "true"}}, false},
		{"gha dataplane=false", client.CacheOptionsEntry{Type: "gha", Attrs: map[string]string{"dataplane": "false"}}, false},
		{"registry", client.CacheOptionsEntry{Type: "registry", Attrs: map[string]string{"ref": "r"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := usesEndpoint(tc.entry); got != tc.want {
				t.Errorf("usesEndpoint = %v, want %v", got, tc.want)
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

// TestSkippedNotListed: a gha entry the data plane cannot set up (here a
// runtime token that is not a JWT, as a third-party runner may hand out)
// is in neither the cache-from/cache-to outputs nor the summary's rows;
// it is a dropped entry with its reason. Other entries are unaffected.
func TestSkippedNotListed(t *testing.T) {
	local := t.TempDir()
	vars := map[string]string{
		"GITHUB_EVENT_NAME":     "push",
		"GITHUB_REF":            "refs/heads/trunk",
		"GITHUB_EVENT_PATH":     filepath.Join("..", "..", "scope", "testdata", "push_default_trunk.json"),
		"ACTIONS_RUNTIME_TOKEN": "opaque-not-a-jwt",
		"ACTIONS_CACHE_URL":     "http://127.0.0.1:1/",
		"RUNNER_TEMP":           t.TempDir(),
	}
	getenv := func(k string) string { return vars[k] }
	for _, tc := range []struct {
		name, cache string
		wantRows    int // export rows left in the summary
	}{
		{"gha alone", "type=gha", 0},
		{"gha and local", "type=gha\ntype=local,dest=" + local, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := scope.EventFromEnv(getenv, os.ReadFile)
			if err != nil {
				t.Fatal(err)
			}
			j := &job{cfg: config.Config{Cache: strings.Split(tc.cache, "\n"), CacheScope: "buildkit"}, event: ev, getenv: getenv}
			planned, err := j.plan()
			if err != nil {
				t.Fatal(err)
			}
			// The trust decision drops the gha export at plan time (a write
			// needs a readable claim); the import reaches the data plane.
			if strings.Contains(planned.cache.CacheTo(), "type=gha") {
				t.Fatalf("the plan keeps a gha export with an unreadable claim: %q", planned.cache.CacheTo())
			}
			if !strings.Contains(planned.cache.CacheFrom(), "type=gha") {
				t.Fatalf("the plan has no gha import to skip: %q", planned.cache.CacheFrom())
			}
			// As serveStores hands the plan to the data plane.
			req := buildkit.Request{
				Imports: cacheentry.As[client.CacheOptionsEntry](planned.cache.Imports),
				Exports: cacheentry.As[client.CacheOptionsEntry](planned.cache.Exports),
			}
			dp, err := startDataPlane(context.Background(), &req, planned.cache.Trust, getenv, noReach, t.Logf)
			if err != nil {
				t.Fatal(err)
			}
			defer dp.close()
			p, skipped := dp.ran(planned)
			if len(skipped) != 1 {
				t.Fatalf("skipped %v, want the gha import", skipped)
			}
			for _, out := range []string{p.cache.CacheFrom(), p.cache.CacheTo()} {
				if strings.Contains(out, "type=gha") {
					t.Errorf("output %q lists the skipped gha entry", out)
				}
			}
			if len(planned.cache.Exports) != tc.wantRows {
				t.Errorf("ran changed the plan it was given: %d exports", len(planned.cache.Exports))
			}
			md := ghaction.RenderSummary(j.summary(context.Background(), p, buildkit.Result{Steps: 3}, time.Second))
			if strings.Contains(md, "| type=gha") || strings.Contains(md, "- type=gha") {
				t.Errorf("the summary lists the skipped gha entry as used:\n%s", md)
			}
			for _, want := range []string{
				"cache-from type=gha,scope=buildkit dropped: runtime token: not a JWT",
				"cache-to type=gha,scope=buildkit,ignore-error=true,mode=max dropped: gha writes nothing: the runtime token has no readable",
			} {
				if !strings.Contains(md, want) {
					t.Errorf("the summary lacks %q:\n%s", want, md)
				}
			}
			if rows := strings.Count(md, "\n| type="); rows != tc.wantRows {
				t.Errorf("%d export rows, want %d:\n%s", rows, tc.wantRows, md)
			}
		})
	}
}

// TestRefText: an empty ref is named, never left as a gap.
func TestRefText(t *testing.T) {
	for _, tc := range []struct{ ref, want string }{
		{"refs/heads/main", "refs/heads/main"},
		{"", `the empty ref ""`},
	} {
		if got := refText(tc.ref); got != tc.want {
			t.Errorf("refText(%q) = %q, want %q", tc.ref, got, tc.want)
		}
	}
	r := dataPlaneResult{Imports: []contentstore.ImportStats{{Scope: "b", Layers: 1}}, Exports: []contentstore.ExportStats{{Scope: "b"}}}
	for _, l := range append(r.describe(), r.servedBy()) {
		if strings.Contains(l, "  ") || strings.Contains(l, "()") || strings.Contains(l, "from :") {
			t.Errorf("line with a missing ref: %q", l)
		}
	}
}

// TestRanIn: an entry BuildKit left out (it is not in Result.Imports or
// Result.Exports) is no longer one of the plan's; a gha export the data
// plane serves is found through its local store, and a gha import it
// served was tried whatever BuildKit did.
func TestRanIn(t *testing.T) {
	parse := func(s string, dir cacheentry.Direction) cacheentry.Entry {
		t.Helper()
		e, err := cacheentry.Parse(s, dir)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	gha, stock, reg := parse("type=gha,scope=b,mode=max", cacheentry.Export), parse("type=gha,scope=c,dataplane=false", cacheentry.Export), parse("type=registry,ref=r/c:b", cacheentry.Export)
	ghaIn, stockIn, regIn := parse("type=gha,scope=b", cacheentry.Import), parse("type=gha,scope=c,dataplane=false", cacheentry.Import), parse("type=registry,ref=r/c:b", cacheentry.Import)
	p := planned{}
	p.cache.Imports = []cacheentry.Entry{ghaIn, stockIn, regIn}
	p.cache.Exports = []cacheentry.Entry{gha, stock, reg}
	as := func(e cacheentry.Entry) client.CacheOptionsEntry {
		return withoutDataPlaneKey(cacheentry.As[client.CacheOptionsEntry]([]cacheentry.Entry{e}))[0]
	}
	local := client.CacheOptionsEntry{Type: "local", Attrs: map[string]string{"dest": "/tmp/x/export-1", "mode": "max"}}
	dp := &dataPlane{exports: []dataPlaneExport{{given: cacheentry.As[client.CacheOptionsEntry]([]cacheentry.Entry{gha})[0], local: local}}}
	served := client.CacheOptionsEntry{Type: "local", Attrs: map[string]string{"src": "/tmp/x/import-1", "digest": "sha256:1"}}
	for _, tc := range []struct {
		name             string
		res              buildkit.Result
		imports, exports []cacheentry.Entry
	}{
		{"all ran", buildkit.Result{Imports: []client.CacheOptionsEntry{as(stockIn), as(regIn), served}, Exports: []client.CacheOptionsEntry{as(reg), local, as(stock)}},
			[]cacheentry.Entry{ghaIn, stockIn, regIn}, []cacheentry.Entry{gha, stock, reg}},
		{"Docker's own BuildKit: registry and the data plane's local entries only", buildkit.Result{Imports: []client.CacheOptionsEntry{as(regIn), served}},
			[]cacheentry.Entry{ghaIn, regIn}, nil},
		{"BuildKit left out the stock gha export", buildkit.Result{Imports: []client.CacheOptionsEntry{as(stockIn), as(regIn)}, Exports: []client.CacheOptionsEntry{as(reg), local}},
			[]cacheentry.Entry{ghaIn, stockIn, regIn}, []cacheentry.Entry{gha, reg}},
		{"the data plane's store left out", buildkit.Result{Imports: []client.CacheOptionsEntry{as(stockIn), as(regIn)}, Exports: []client.CacheOptionsEntry{as(reg), as(stock)}},
			[]cacheentry.Entry{ghaIn, stockIn, regIn}, []cacheentry.Entry{stock, reg}},
		{"no solve ran", buildkit.Result{}, []cacheentry.Entry{ghaIn}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := dp.ranIn(p, tc.res)
			if left := !slices.ContainsFunc(got.cache.Exports, gha.Equal); dp.exports[0].left != left {
				t.Errorf("data plane export marked left %v, want %v", dp.exports[0].left, left)
			}
			for _, c := range []struct {
				what      string
				got, want []cacheentry.Entry
			}{{"imports", got.cache.Imports, tc.imports}, {"exports", got.cache.Exports, tc.exports}} {
				if !slices.EqualFunc(c.got, c.want, cacheentry.Entry.Equal) {
					t.Errorf("%s %v, want %v", c.what, c.got, c.want)
				}
			}
		})
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
			dp, err := startDataPlane(context.Background(), &req, trusted, func(k string) string { return env[k] }, noReach, t.Logf)
			if err != nil {
				t.Fatal(err)
			}
			defer dp.close()
			var reasons []string
			for _, sk := range dp.skipped {
				reasons = append(reasons, sk.reason)
			}
			notes := strings.Join(append(dp.notes, reasons...), "\n")
			if tc.skipped == "" {
				if len(dp.exports) != 1 || len(req.Exports) != 1 || req.Exports[0].Type != "local" {
					t.Errorf("want one data-plane export, got %d (%v); notes %q", len(dp.exports), req.Exports, notes)
				}
				return
			}
			if len(dp.exports) != 0 || len(req.Exports) != 0 || len(dp.skipped) != 1 || !strings.HasPrefix(dp.skipped[0].reason, tc.skipped) {
				t.Errorf("want the export skipped (%s); exports %v, notes %q", tc.skipped, req.Exports, notes)
			}
			if strings.Contains(notes, tc.token) {
				t.Errorf("the notes show the token: %q", notes)
			}
		})
	}
}
