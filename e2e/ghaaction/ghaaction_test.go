// Package ghaaction is issue 5's acceptance test: the bkcache binary runs as
// the GitHub Action, with only the environment the runner gives a
// JavaScript action, against the Actions cache emulator (blobs in real
// Azurite) and fresh buildkitd daemons, so every hit comes from the cache
// service and none from a builder's local state.
package ghaaction

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bkcache/bkcache/ghacache/emulator"
	"github.com/bkcache/bkcache/internal/ghaction/ghactiontest"
	"github.com/bkcache/bkcache/internal/testenv"
)

const (
	repo      = "o/r"
	restToken = "ghs_e2eRestToken0123456789abcdef" // the github-token input
	mainRef   = "refs/heads/main"                  // the default branch
	baseRef   = "refs/heads/develop"               // the same-repo PR's base
	prRef     = "refs/pull/7/merge"                // the same-repo PR
	forkRef   = "refs/pull/8/merge"                // the fork PR
)

// bkcacheBin is the binary under test, built once by TestMain.
var bkcacheBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "bkcache-ghaaction-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bkcacheBin = filepath.Join(dir, "bkcache")
	build := exec.Command("go", "build", "-o", bkcacheBin, "github.com/bkcache/bkcache")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building bkcache:", err)
		return 1
	}
	return m.Run()
}

// cacheService is an emulator served on loopback, with a count of the
// statuses it answered.
type cacheService struct {
	emu *emulator.Emulator
	url string // no trailing slash

	mu       sync.Mutex
	statuses map[int]int
	agents   map[string]int // User-Agent of each cache service (Twirp) call
}

// statusCounts returns how many answers of each status the service gave.
func (s *cacheService) statusCounts() map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.statuses)
}

// twirpAgents returns how many cache service calls each User-Agent made.
func (s *cacheService) twirpAgents() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.agents)
}

func (s *cacheService) served(status int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statuses[status]
}

// startEmulator serves a fresh emulator on 127.0.0.1 with blobs in a fresh
// Azurite container (testenv.NewGHAEmulator). With speedup > 1 the
// emulator's clock runs that many times faster than the wall clock, and the
// Retry-After it sends is scaled down to match, so a rate-limit window of
// a minute passes in a second without changing how the emulator decides.
func startEmulator(t *testing.T, speedup int) *cacheService {
	t.Helper()
	cfg := emulator.Config{RESTToken: restToken}
	if speedup > 1 {
		start := time.Now()
		cfg.Now = func() time.Time { return start.Add(time.Since(start) * time.Duration(speedup)) }
	}
	emu := testenv.NewGHAEmulator(t, "ghaaction", cfg)
	s := &cacheService{emu: emu, statuses: map[int]int{}, agents: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/twirp/") {
			s.mu.Lock()
			s.agents[r.Header.Get("User-Agent")]++
			s.mu.Unlock()
		}
		emu.ServeHTTP(&statusWriter{ResponseWriter: w, s: s, speedup: speedup}, r)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// statusWriter counts statuses and scales Retry-After to the wall clock.
type statusWriter struct {
	http.ResponseWriter
	s        *cacheService
	speedup  int
	wroteHdr bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHdr {
		w.wroteHdr = true
		w.s.mu.Lock()
		w.s.statuses[code]++
		w.s.mu.Unlock()
		if ra := w.Header().Get("Retry-After"); ra != "" && w.speedup > 1 {
			if secs, err := strconv.Atoi(ra); err == nil {
				w.Header().Set("Retry-After", strconv.Itoa(max(1, (secs+w.speedup-1)/w.speedup)))
			}
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wroteHdr {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// token mints a runtime token. The TTL outlives a sped-up clock.
func (s *cacheService) token(t *testing.T, write string, read ...string) string {
	t.Helper()
	tok, err := s.emu.Token(emulator.TokenOptions{Repo: repo, Write: write, Read: read, TTL: 1000 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// writeContext writes a Dockerfile of three RUN steps FROM the base image
// in the local registry; the nonce makes the steps this test's own. The
// second step's random 256 KiB layer is what the quota scenario evicts.
func writeContext(t *testing.T, env testenv.Env) string {
	t.Helper()
	dir := t.TempDir()
	df := fmt.Sprintf(`FROM %s
RUN echo %s > /nonce
RUN dd if=/dev/urandom of=/blob bs=1024 count=256 2>/dev/null
RUN cat /nonce /blob > /both
`, env.BaseImage, testenv.RandomHex(8))
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// event is what the runner says about the workflow run.
type event struct{ name, ref, headRef, baseRef, payload string }

var (
	pushMain = event{name: "push", ref: mainRef, payload: "push_main.json"}
	prSame   = event{"pull_request", prRef, "feature/login", "develop", "pull_request_same_repo.json"}
	prFork   = event{"pull_request", forkRef, "main", "main", "pull_request_fork.json"}
	prClosed = event{"pull_request", prRef, "feature/login", "develop", "pull_request_closed.json"}
)

type result struct {
	code    int
	stdout  string // stdout then stderr: the runner logs both
	outputs map[string]string
	files   map[string]string // the runner's files as written
}

// runAction runs the binary with only what the runner gives a JavaScript
// action: GITHUB_*, the runner's files, RUNNER_TEMP, the cache service
// variables, INPUT_*, PATH and HOME. It checks that no secret leaked.
func runAction(t *testing.T, s *cacheService, token string, ev event, inputs map[string]string, args ...string) result {
	t.Helper()
	dir := t.TempDir()
	payload, err := filepath.Abs(filepath.Join("testdata", ev.payload))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"GITHUB_OUTPUT": "output", "GITHUB_STATE": "state", "GITHUB_ENV": "env",
		"GITHUB_PATH": "path", "GITHUB_STEP_SUMMARY": "summary",
	}
	vars := []string{
		"GITHUB_ACTIONS=true",
		"CI=true",
		"GITHUB_EVENT_NAME=" + ev.name,
		"GITHUB_REF=" + ev.ref,
		"GITHUB_HEAD_REF=" + ev.headRef,
		"GITHUB_BASE_REF=" + ev.baseRef,
		"GITHUB_REPOSITORY=" + repo,
		"GITHUB_REPOSITORY_OWNER=o",
		"GITHUB_EVENT_PATH=" + payload,
		"GITHUB_WORKSPACE=" + dir,
		"GITHUB_SERVER_URL=https://github.com",
		"GITHUB_API_URL=" + s.url + "/api/v3",
		"RUNNER_TEMP=" + filepath.Join(dir, "runner-temp"),
		"RUNNER_OS=Linux",
		"ACTIONS_RUNTIME_TOKEN=" + token,
		"ACTIONS_RESULTS_URL=" + s.url + "/",
		"ACTIONS_CACHE_SERVICE_V2=true",
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Join(dir, "home"), // no buildx or docker config to find
	}
	for _, d := range []string{"runner-temp", "home"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for k, f := range files {
		p := filepath.Join(dir, f)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		vars = append(vars, k+"="+p)
	}
	for k, v := range inputs {
		// The runner upper-cases the name and keeps hyphens.
		vars = append(vars, "INPUT_"+strings.ToUpper(k)+"="+v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bkcacheBin, args...)
	cmd.Dir = dir
	cmd.Env = vars
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	r := result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String() + stderr.String(), files: map[string]string{}}
	if err != nil && r.code < 0 {
		t.Fatalf("running bkcache: %v\n%s", err, r.stdout)
	}
	for k, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		r.files[k] = string(b)
	}
	r.outputs, err = ghactiontest.FileCommandMap(r.files["GITHUB_OUTPUT"])
	if err != nil {
		t.Fatalf("GITHUB_OUTPUT does not parse: %v\n%s", err, r.files["GITHUB_OUTPUT"])
	}
	checkNoLeak(t, "runtime token", token, r)
	if gt := inputs["github-token"]; gt != "" {
		checkNoLeak(t, "github-token", gt, r)
	}
	return r
}

// checkNoLeak: a secret appears in the log only on its ::add-mask:: line,
// and in none of the runner's files (outputs, state, env, summary).
func checkNoLeak(t *testing.T, what, secret string, r result) {
	t.Helper()
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.Contains(line, secret) && line != "::add-mask::"+secret {
			t.Errorf("%s printed outside its ::add-mask:: line: %.120q…", what, line)
		}
	}
	for k, v := range r.files {
		if strings.Contains(v, secret) {
			t.Errorf("%s written to %s", what, k)
		}
	}
}

func buildInputs(addr, dir string, extra ...string) map[string]string {
	in := map[string]string{"builder": addr, "context": dir}
	for i := 0; i+1 < len(extra); i += 2 {
		in[extra[i]] = extra[i+1]
	}
	return in
}

func mustSucceed(t *testing.T, r result) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stdout)
	}
}

func hits(t *testing.T, r result) (cached, steps int) {
	t.Helper()
	c, err1 := strconv.Atoi(r.outputs["cache-hits"])
	s, err2 := strconv.Atoi(r.outputs["cache-steps"])
	if err1 != nil || err2 != nil {
		t.Fatalf("cache-hits %q, cache-steps %q: not numbers\n%s", r.outputs["cache-hits"], r.outputs["cache-steps"], r.stdout)
	}
	return c, s
}

func warnings(stdout string) []string {
	var out []string
	for _, line := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(line, "::warning") {
			out = append(out, line)
		}
	}
	return out
}

func entriesByScope(s *cacheService) map[string][]emulator.Entry {
	m := map[string][]emulator.Entry{}
	for _, e := range s.emu.Entries(repo) {
		m[e.Scope] = append(m[e.Scope], e)
	}
	return m
}

// hasIndex: BuildKit's gha backend keeps one index entry per scope, named
// "index-<scope>-…", next to its "buildkit-blob-…" layer entries.
func hasIndex(es []emulator.Entry) bool {
	for _, e := range es {
		if strings.HasPrefix(e.Key, "index-") {
			return true
		}
	}
	return false
}

func describe(es []emulator.Entry) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "  %s %s %d B\n", e.Scope, e.Key, e.Size)
	}
	return b.String()
}

// TestActionGHA walks one repository through acceptance scenarios 1, 2, 3
// and 6: a push to main, a pull request from a branch, one from a fork,
// and the cleanup when the first PR closes. Each build runs on a fresh
// builder, so its hits can only come from the emulator.
func TestActionGHA(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "azure")
	s := startEmulator(t, 1)
	dir := writeContext(t, env)

	var mainSteps int
	t.Run("push to the default branch exports to gha", func(t *testing.T) {
		tok := s.token(t, mainRef)
		r := runAction(t, s, tok, pushMain, buildInputs(testenv.NewBuildkitd(t), dir))
		mustSucceed(t, r)
		if !strings.HasPrefix(r.stdout, "::add-mask::"+tok+"\n") {
			t.Errorf("the runtime token is not masked before anything else prints:\n%.300s", r.stdout)
		}
		if got := r.outputs["cache-scope"]; got != "buildkit_main" {
			t.Errorf("cache-scope = %q, want buildkit_main", got)
		}
		if to := r.outputs["cache-to"]; !strings.HasPrefix(to, "type=gha") || !strings.Contains(to, "scope=buildkit") {
			t.Errorf("cache-to = %q, want a gha export with scope=buildkit", to)
		}
		cached, steps := hits(t, r)
		if steps != 3 || cached != 0 {
			t.Errorf("cold build: %d of %d steps cached, want 0 of 3", cached, steps)
		}
		mainSteps = steps
		by := entriesByScope(s)
		if !hasIndex(by[mainRef]) {
			t.Fatalf("no index entry in %s:\n%s", mainRef, describe(s.emu.Entries(repo)))
		}
		if len(by) != 1 {
			t.Errorf("main's push wrote outside %s:\n%s", mainRef, describe(s.emu.Entries(repo)))
		}
		if !strings.Contains(r.files["GITHUB_STEP_SUMMARY"], "| 0 / 3 |") {
			t.Errorf("job summary does not report the build:\n%s", r.files["GITHUB_STEP_SUMMARY"])
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("pull request hits on a fresh builder on its first run", func(t *testing.T) {
		// GitHub's token for a PR: write its merge ref, read the base and
		// the default branch.
		tok := s.token(t, prRef, baseRef, mainRef)
		r := runAction(t, s, tok, prSame, buildInputs(testenv.NewBuildkitd(t), dir))
		mustSucceed(t, r)
		cached, steps := hits(t, r)
		if steps == 0 || steps != mainSteps || cached != steps {
			t.Errorf("first PR run: %d of %d steps cached, want all %d\n%s", cached, steps, mainSteps, r.stdout)
		}
		if got := r.outputs["cache-scope"]; got != "buildkit_pr-7" {
			t.Errorf("cache-scope = %q, want buildkit_pr-7", got)
		}
		by := entriesByScope(s)
		if !hasIndex(by[prRef]) {
			t.Errorf("the PR exported no index into %s:\n%s", prRef, describe(s.emu.Entries(repo)))
		}
		if len(by[baseRef]) != 0 {
			t.Errorf("the PR wrote into its base %s", baseRef)
		}
	})

	t.Run("fork pull request imports but exports nothing", func(t *testing.T) {
		before := describe(s.emu.Entries(repo))
		tok := s.token(t, forkRef, mainRef)
		r := runAction(t, s, tok, prFork, buildInputs(testenv.NewBuildkitd(t), dir))
		mustSucceed(t, r)
		if r.outputs["cache-to"] != "" || r.outputs["cache-scope"] != "" {
			t.Errorf("fork PR: cache-to = %q, cache-scope = %q, want both empty", r.outputs["cache-to"], r.outputs["cache-scope"])
		}
		if after := describe(s.emu.Entries(repo)); after != before {
			t.Errorf("fork PR changed the emulator's entries:\nbefore:\n%safter:\n%s", before, after)
		}
		cached, steps := hits(t, r)
		if steps == 0 || cached != steps {
			t.Errorf("fork PR: %d of %d steps cached, want all (imports from main)\n%s", cached, steps, r.stdout)
		}
	})

	// The pull request's build ran moments ago, so the cleanup keeps what it
	// read (a build may still be running; the sweep's grace): deleting
	// entries older than the grace is ghacache's TestRESTCleanupRefKeepsRecentlyRead.
	t.Run("post step cleans up the closed pull request, keeping what was just read", func(t *testing.T) {
		by := entriesByScope(s)
		mainBefore := describe(by[mainRef])
		if len(by[prRef]) == 0 {
			t.Fatal("nothing in the PR scope to clean up; the PR build exported nothing")
		}
		r := runAction(t, s, s.token(t, prRef, baseRef, mainRef), prClosed, map[string]string{
			"cache-cleanup": "true",
			"github-token":  restToken,
		}, "post")
		mustSucceed(t, r)
		if w := warnings(r.stdout); len(w) > 0 {
			t.Errorf("cleanup warned:\n%s", strings.Join(w, "\n"))
		}
		prBefore := len(by[prRef])
		by = entriesByScope(s)
		if n := len(by[prRef]); n != prBefore {
			t.Errorf("%d of %d entries left in %s, want all (just read):\n%s", n, prBefore, prRef, describe(by[prRef]))
		}
		if after := describe(by[mainRef]); after != mainBefore {
			t.Errorf("main's entries changed:\nbefore:\n%safter:\n%s", mainBefore, after)
		}
		if want := fmt.Sprintf("deleted 0 cache entries of %s (0 B), kept %d read within the last 1h0m0s", prRef, prBefore); !strings.Contains(r.stdout, want) {
			t.Errorf("the post step does not say %q:\n%s", want, r.stdout)
		}
	})
}

// TestActionGHAFaults is scenario 4: rate limits and 5xx bursts from the
// cache service never fail the build; a failed cache operation becomes a
// warning and the image is still written.
func TestActionGHAFaults(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "azure")
	for _, tc := range []struct {
		name   string
		cache  string // the cache input: BuildKit's gha backend or bkcache's data plane
		faults emulator.Faults
		// wantWarning: a cache operation failed for good and must say so.
		// wantExport: the export still completes, because a 429 is retried
		// after its Retry-After.
		wantWarning, wantExport bool
	}{
		// Each upload after the first in a minute gets a 429.
		{"429 upload rate", stockGHA, emulator.Faults{UploadsPerMinute: 1}, false, true},
		// The import's index lookup and the export's first call fail;
		// BuildKit does not retry a 5xx.
		{"5xx burst", stockGHA, emulator.Faults{FailNext: 2, FailStatus: 503}, true, false},
		// The import fails on a 500, then the export runs into 429s.
		{"429 and 5xx", stockGHA, emulator.Faults{UploadsPerMinute: 1, FailNext: 1}, true, true},
		// The data plane retries 5xx as well as 429: nothing is lost.
		{"data plane 429 upload rate", sessionGHA, emulator.Faults{UploadsPerMinute: 1}, false, true},
		{"data plane 5xx burst", sessionGHA, emulator.Faults{FailNext: 2, FailStatus: 503}, false, true},
		{"data plane 429 and 5xx", sessionGHA, emulator.Faults{UploadsPerMinute: 1, FailNext: 1}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One emulated minute per second: the rate-limit window passes
			// quickly and the scaled Retry-After stays short.
			s := startEmulator(t, 60)
			if err := s.emu.SetFaults(tc.faults); err != nil {
				t.Fatal(err)
			}
			image := filepath.Join(t.TempDir(), "image.tar")
			r := runAction(t, s, s.token(t, mainRef), pushMain,
				buildInputs(testenv.NewBuildkitd(t), writeContext(t, env), "outputs", "type=oci,dest="+image, "cache", tc.cache))
			mustSucceed(t, r)
			fiveXX := s.served(500) + s.served(503)
			t.Logf("served %d×429, %d×5xx; warnings:\n%s", s.served(http.StatusTooManyRequests), fiveXX, strings.Join(warnings(r.stdout), "\n"))
			if tc.faults.UploadsPerMinute > 0 && s.served(http.StatusTooManyRequests) == 0 {
				t.Errorf("the emulator never answered 429; the fault was not exercised")
			}
			if tc.faults.FailNext > 0 && fiveXX != tc.faults.FailNext {
				t.Errorf("the emulator answered %d 5xx, want %d", fiveXX, tc.faults.FailNext)
			}
			if tc.wantWarning && len(warnings(r.stdout)) == 0 {
				t.Errorf("no ::warning:: for the failed cache operation:\n%s", r.stdout)
			}
			if tc.wantExport && !hasIndex(entriesByScope(s)[mainRef]) {
				t.Errorf("the export did not complete after the 429s:\n%s", describe(s.emu.Entries(repo)))
			}
			if _, steps := hits(t, r); steps != 3 {
				t.Errorf("cache-steps = %d, want 3", steps)
			}
			if !strings.HasPrefix(r.outputs["digest"], "sha256:") {
				t.Errorf("digest output = %q, want the image's digest", r.outputs["digest"])
			}
			if fi, err := os.Stat(image); err != nil || fi.Size() == 0 {
				t.Errorf("the image was not written: %v", err)
			}
		})
	}
}

// TestActionGHAEvicted is scenario 5: a small quota evicts layers while the
// index that names them survives (GitHub's "blob not found" after
// eviction). A fresh builder that imports that index and must produce the
// files still builds.
func TestActionGHAEvicted(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "azure")
	s := startEmulator(t, 1)
	if err := s.emu.SetFaults(emulator.Faults{QuotaBytes: 64 << 10}); err != nil { // below the 256 KiB layer
		t.Fatal(err)
	}
	dir := writeContext(t, env)
	mustSucceed(t, runAction(t, s, s.token(t, mainRef), pushMain, buildInputs(testenv.NewBuildkitd(t), dir)))
	var index bool
	var layers int
	for _, e := range s.emu.Entries(repo) {
		if strings.HasPrefix(e.Key, "index-") {
			index = true
		} else {
			layers++
		}
	}
	if !index || layers >= 3 {
		t.Fatalf("want the index kept and layers evicted; index %v, %d layer entries:\n%s", index, layers, describe(s.emu.Entries(repo)))
	}
	// A local output makes BuildKit materialise every layer, so a hit on
	// an evicted blob cannot stay lazy.
	out := t.TempDir()
	r := runAction(t, s, s.token(t, prRef, baseRef, mainRef), prSame,
		buildInputs(testenv.NewBuildkitd(t), dir, "outputs", "type=local,dest="+out))
	mustSucceed(t, r)
	cached, steps := hits(t, r)
	t.Logf("after eviction: %d of %d steps cached", cached, steps)
	if steps != 3 {
		t.Errorf("cache-steps = %d, want 3", steps)
	}
	// The evicted layers' steps ran again: BuildKit first reports them
	// Cached with "blob …: not found", then re-runs them. They are misses.
	if cached >= steps {
		t.Errorf("cache-hits = %d of %d although the index points at evicted layers that were rebuilt:\n%s", cached, steps, r.stdout)
	}
	if fi, err := os.Stat(filepath.Join(out, "both")); err != nil || fi.Size() < 256<<10 {
		t.Errorf("the build's files were not written: %v", err)
	}
}
