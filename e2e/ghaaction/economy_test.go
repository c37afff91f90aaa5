package ghaaction

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/bkcache/bkcache/ghacache"
	"github.com/bkcache/bkcache/internal/testenv"
)

// TestActionGHAEconomy: with cache-cleanup, a push sweeps the layer blobs
// its previous build left behind and the job summary shows the cache's
// usage and what cleanup removed; a pull request's build warns when the
// default branch's index names a blob that is gone.
func TestActionGHAEconomy(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "azure")
	// An emulated hour every 100 ms: the sweep's hour of grace passes
	// between the second build's import (which looks the first build's
	// blobs up) and its export, which takes longer than that.
	s := startEmulator(t, 36000)
	inputs := func(dir string) map[string]string {
		in := buildInputs(testenv.NewBuildkitd(t), dir)
		in["cache-cleanup"] = "true"
		in["github-token"] = restToken
		return in
	}
	mainBlobs := func() map[string]bool {
		m := map[string]bool{}
		for _, e := range entriesByScope(s)[mainRef] {
			if strings.HasPrefix(e.Key, "buildkit-blob-") {
				m[e.Key] = true
			}
		}
		return m
	}

	mustSucceed(t, runAction(t, s, s.token(t, mainRef), pushMain, inputs(writeContext(t, env))))
	first := mainBlobs()
	r := runAction(t, s, s.token(t, mainRef), pushMain, inputs(writeContext(t, env)))
	mustSucceed(t, r)
	if w := warnings(r.stdout); len(w) > 0 {
		t.Errorf("second push warned:\n%s", strings.Join(w, "\n"))
	}
	second := mainBlobs()
	gone := 0
	for k := range first {
		if !second[k] {
			gone++
		}
	}
	if gone == 0 || !strings.Contains(r.stdout, "cache-cleanup: swept") {
		t.Errorf("the second push swept none of the first build's %d blobs:\n%s", len(first), r.stdout)
	}
	// Each push saved a build record; the second's cleanup pruned the
	// first's, which a restore no longer reads.
	records := 0
	for _, e := range entriesByScope(s)[mainRef] {
		if strings.HasPrefix(e.Key, ghacache.MountSeriesKey("buildkit", "bkcache-build-record-last")) {
			records++
		}
	}
	if records != 1 || !strings.Contains(r.stdout, "superseded cache mount archives and build records") {
		t.Errorf("after two pushes main holds %d build records, want 1 (the older pruned):\n%s", records, r.stdout)
	}
	summary := r.files["GITHUB_STEP_SUMMARY"]
	if !strings.Contains(summary, "**Actions cache**") || !strings.Contains(summary, "swept") {
		t.Errorf("the job summary does not show usage and what cleanup removed:\n%s", summary)
	}

	// One of the default branch's blobs goes (as the quota would evict it).
	rest, err := ghacache.NewREST(http.DefaultClient, s.url+"/api/v3", restToken)
	if err != nil {
		t.Fatal(err)
	}
	for k := range second {
		if err := rest.DeleteByKey(context.Background(), "o", "r", k, mainRef); err != nil {
			t.Fatal(err)
		}
		break
	}
	r = runAction(t, s, s.token(t, prRef, baseRef, mainRef), prSame, inputs(writeContext(t, env)))
	mustSucceed(t, r)
	const want = "the default branch's cache is incomplete"
	if !strings.Contains(strings.Join(warnings(r.stdout), "\n"), want) {
		t.Errorf("no warning %q:\n%s", want, r.stdout)
	}
	if !strings.Contains(r.files["GITHUB_STEP_SUMMARY"], want) {
		t.Errorf("the job summary does not warn %q:\n%s", want, r.files["GITHUB_STEP_SUMMARY"])
	}
}
