package ghaaction

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bkcache/bkcache/internal/testenv"
)

// update rewrites the golden job summaries from this run:
//
//	source .testenv/env && go test ./e2e/ghaaction -run TestSummaryGolden -update
var update = flag.Bool("update", false, "rewrite testdata/summary-*.md from real runs")

// TestSummaryGolden runs the real action through the states a user meets
// (a cold push, a pull request warm from main, a local store, a dry run)
// and compares each job summary with its golden file. The golden files are
// these runs' own summaries; only what changes from run to run (durations,
// sizes, temporary paths, ports) is normalized before comparing.
func TestSummaryGolden(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "azure")
	s := startEmulator(t, 1)
	dir := writeContext(t, env)
	localDir := t.TempDir()

	for _, sc := range []struct {
		name   string
		token  string
		ev     event
		inputs map[string]string
		cached int
	}{
		{name: "cold", token: s.token(t, mainRef), ev: pushMain, inputs: buildInputs(testenv.NewBuildkitd(t), dir)},
		{name: "warm", token: s.token(t, prRef, baseRef, mainRef), ev: prSame, inputs: buildInputs(testenv.NewBuildkitd(t), dir), cached: 3},
		{name: "local", token: s.token(t, mainRef), ev: pushMain, inputs: buildInputs(testenv.NewBuildkitd(t), dir, "cache", "type=local,dest="+localDir)},
		{name: "dry-run", token: s.token(t, prRef, baseRef, mainRef), ev: prSame, inputs: buildInputs(testenv.NewBuildkitd(t), dir, "dry-run", "true")},
	} {
		// In order: warm reads what cold exported.
		r := runAction(t, s, sc.token, sc.ev, sc.inputs)
		mustSucceed(t, r)
		if sc.name != "dry-run" {
			if cached, _ := hits(t, r); cached != sc.cached {
				t.Fatalf("%s: %d steps cached, want %d\n%s", sc.name, cached, sc.cached, r.stdout)
			}
		}
		got := r.files["GITHUB_STEP_SUMMARY"]
		path := filepath.Join("testdata", "summary-"+sc.name+".md")
		if *update {
			if err := os.WriteFile(path, []byte(strings.ReplaceAll(got, localDir, "/tmp/cache")), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (regenerate with -update)", err)
		}
		if g, w := normalizeSummary(got, localDir), normalizeSummary(string(want), "/tmp/cache"); g != w {
			t.Errorf("%s summary differs from %s (normalized; regenerate with -update if intended):\n--- got\n%s\n--- want\n%s", sc.name, path, g, w)
		}
	}
}

var volatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\b\d+(\.\d+)? (B|KiB|MiB|GiB)\b`), "<size>"},
	{regexp.MustCompile(`\| (\d+h)?(\d+m)?\d+(\.\d+)?(ms|s) \|`), "| <duration> |"},
	// transfer times of the gha data plane: "(1.5 MiB in 70ms)", "(…, 20ms reading)"
	{regexp.MustCompile(`\b(\d+h)?(\d+m)?\d+(\.\d+)?(µs|ms|s)\b`), "<duration>"},
	{regexp.MustCompile(`127\.0\.0\.1:\d+`), "127.0.0.1:<port>"},
}

func normalizeSummary(s, localDir string) string {
	s = strings.ReplaceAll(s, localDir, "<local>")
	for _, v := range volatile {
		s = v.re.ReplaceAllString(s, v.with)
	}
	return s
}

// TestSkippedExportNotListed: with a runtime token that is not a JWT (a
// third-party runner's), gha cannot be used: the build runs without it,
// and neither the cache-to output nor the summary's export table name
// the gha export; the summary lists it with the reason. The data plane
// finds out before the build and drops the import too; BuildKit's own gha
// backend tries the import (it stays in the imports tried, with a
// warning).
func TestSkippedExportNotListed(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "azure")
	for _, tc := range []struct {
		name, gha  string
		importUsed bool     // the gha import stays in cache-from and the imports tried
		reasons    []string // in the summary
	}{
		// The export is dropped by the plan's trust decision (a gha write
		// needs a readable `ac` claim); the import reaches the data plane
		// or BuildKit, which find it unusable.
		{"data plane", "type=gha", false, []string{
			"cache-from type=gha,scope=buildkit dropped: runtime token: not a JWT",
			"cache-to type=gha,scope=buildkit,ignore-error=true,mode=max dropped: gha writes nothing: the runtime token has no readable",
		}},
		{"BuildKit's gha backend", "type=gha,dataplane=false", true, []string{
			"cache-to type=gha,scope=buildkit,dataplane=false,ignore-error=true,mode=max dropped: gha writes nothing: the runtime token has no readable",
			"failed, building without it",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startEmulator(t, 1)
			local := t.TempDir()
			r := runAction(t, s, "opaque-not-a-jwt-"+testenv.RandomHex(4), pushMain,
				buildInputs(testenv.NewBuildkitd(t), writeContext(t, env), "cache", tc.gha+"\ntype=local,dest="+local))
			mustSucceed(t, r)
			if _, steps := hits(t, r); steps != 3 {
				t.Errorf("cache-steps = %s, want 3", r.outputs["cache-steps"])
			}
			if to := r.outputs["cache-to"]; strings.Contains(to, "type=gha") || !strings.Contains(to, "type=local") {
				t.Errorf("cache-to output = %q, want the local export only", to)
			}
			if from := r.outputs["cache-from"]; strings.Contains(from, "type=gha") != tc.importUsed || !strings.Contains(from, "type=local") {
				t.Errorf("cache-from output = %q, want the gha import: %v", from, tc.importUsed)
			}
			sum := r.files["GITHUB_STEP_SUMMARY"]
			if strings.Contains(sum, "| type=gha") || strings.Contains(sum, "- type=gha") != tc.importUsed {
				t.Errorf("the summary lists the gha entries wrongly (import used: %v):\n%s", tc.importUsed, sum)
			}
			for _, want := range append([]string{"| type=local,dest="}, tc.reasons...) {
				if !strings.Contains(sum, want) {
					t.Errorf("the summary lacks %q:\n%s", want, sum)
				}
			}
			if n := len(s.emu.Entries(repo)); n != 0 {
				t.Errorf("the gha cache holds %d entries; nothing should have been exported", n)
			}
		})
	}
}
