// Package ghaaction runs the bkcache binary as the GitHub Action against the
// Actions cache emulator (blobs in Azurite) and fresh buildkitd daemons,
// with only the environment the runner gives a JavaScript action.
package ghaaction

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bkcache/bkcache/ghacache/emulator"
	"github.com/bkcache/bkcache/internal/ghaction"
	"github.com/bkcache/bkcache/internal/testenv"
)

const (
	repo      = "o/r"
	restToken = "rest-token"
	mainRef   = "refs/heads/main"
	prRef     = "refs/pull/7/merge"
)

// bkcacheBin is the binary under test, built once by TestMain.
var bkcacheBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bkcache-ghaaction-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bkcacheBin = filepath.Join(dir, "bkcache")
	build := exec.Command("go", "build", "-o", bkcacheBin, "github.com/bkcache/bkcache")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building bkcache:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// startEmulator serves a fresh emulator on loopback with blobs in a fresh
// Azurite container, as ghacache/fidelity does.
func startEmulator(t *testing.T, env testenv.Env) (*emulator.Emulator, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := env.AzureAccountName
	if name == "" {
		name = "devstoreaccount1"
	}
	store, err := emulator.NewAzureStore(ctx, emulator.AzureConfig{
		AccountURL: env.AzureAccountURL, AccountName: name, AccountKey: env.AzureAccountKey,
		Container: "ghaaction-" + randomHex(6),
	})
	if err != nil {
		t.Fatal(err)
	}
	emu, err := emulator.New(emulator.Config{Secret: []byte(randomHex(32)), Blobs: store, RESTToken: restToken})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu) // 127.0.0.1
	t.Cleanup(srv.Close)
	return emu, srv.URL
}

func mustToken(t *testing.T, emu *emulator.Emulator, o emulator.TokenOptions) string {
	t.Helper()
	tok, err := emu.Token(o)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// writeContext writes a Dockerfile of three steps, FROM the build-arg BASE.
// The nonce makes the steps this test's own.
func writeContext(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	// The default is unreachable here (no network): the build works only
	// if the build-args input reaches BuildKit.
	df := fmt.Sprintf(`ARG BASE=busybox
FROM ${BASE}
RUN echo %s > /nonce
RUN dd if=/dev/urandom of=/blob bs=1024 count=256 2>/dev/null
RUN cat /nonce /blob > /both
`, randomHex(8))
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// event is what the runner says about the workflow run.
type event struct{ name, ref, payload string }

var (
	pushMain  = event{"push", mainRef, "push_main.json"}
	prSame    = event{"pull_request", prRef, "pull_request_same_repo.json"}
	prFork    = event{"pull_request", prRef, "pull_request_fork.json"}
	prClosed  = event{"pull_request", prRef, "pull_request_closed.json"}
	prReadTok = emulator.TokenOptions{Repo: repo, Write: prRef, Read: []string{mainRef}}
)

type result struct {
	code     int
	stdout   string
	outputs  map[string]string
	rawFiles map[string]string // outputs, state, env, summary as written
}

// runAction runs the binary with only what the runner gives a JavaScript
// action: GITHUB_*, the runner's files, RUNNER_TEMP, the cache service
// variables, INPUT_*, PATH and HOME.
func runAction(t *testing.T, emuURL, token string, ev event, inputs map[string]string, args ...string) result {
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
		"GITHUB_REPOSITORY=" + repo,
		"GITHUB_REPOSITORY_OWNER=o",
		"GITHUB_EVENT_PATH=" + payload,
		"GITHUB_WORKSPACE=" + dir,
		"GITHUB_SERVER_URL=https://github.com",
		"GITHUB_API_URL=" + emuURL + "/api/v3",
		"RUNNER_TEMP=" + filepath.Join(dir, "runner-temp"),
		"RUNNER_OS=Linux",
		"ACTIONS_RUNTIME_TOKEN=" + token,
		"ACTIONS_RESULTS_URL=" + emuURL + "/",
		"ACTIONS_CACHE_SERVICE_V2=true",
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Join(dir, "home"), // no buildx config to find
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
	r := result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), rawFiles: map[string]string{}}
	if err != nil && r.code < 0 {
		t.Fatalf("running bkcache: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	if stderr.Len() > 0 {
		r.stdout += stderr.String() // the runner logs both
	}
	for k, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		r.rawFiles[k] = string(b)
	}
	r.outputs, err = ghaction.FileCommandMap(r.rawFiles["GITHUB_OUTPUT"])
	if err != nil {
		t.Fatalf("GITHUB_OUTPUT does not parse: %v\n%s", err, r.rawFiles["GITHUB_OUTPUT"])
	}
	checkNoLeak(t, token, r)
	return r
}

// checkNoLeak: the runtime token appears only on ::add-mask:: lines, and in
// none of the runner's files.
func checkNoLeak(t *testing.T, token string, r result) {
	t.Helper()
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.Contains(line, token) && !strings.HasPrefix(line, "::add-mask::") {
			t.Errorf("runtime token printed outside ::add-mask::: %.120q…", line)
		}
	}
	for k, v := range r.rawFiles {
		if strings.Contains(v, token) {
			t.Errorf("runtime token in %s", k)
		}
	}
}

func buildInputs(addr, dir string, env testenv.Env) map[string]string {
	return map[string]string{
		"builder":    addr,
		"context":    dir,
		"build-args": "BASE=" + env.BaseImage,
	}
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

func entriesByScope(emu *emulator.Emulator) map[string][]emulator.Entry {
	m := map[string][]emulator.Entry{}
	for _, e := range emu.Entries(repo) {
		m[e.Scope] = append(m[e.Scope], e)
	}
	return m
}

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

// TestActionGHA walks one repository through a push to main, a pull
// request from a branch, one from a fork, and the PR's closing cleanup.
// Each build runs on a fresh builder, so hits can only come from the
// emulator.
func TestActionGHA(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "azure")
	emu, url := startEmulator(t, env)
	dir := writeContext(t)

	var mainSteps int
	t.Run("push to main exports", func(t *testing.T) {
		tok := mustToken(t, emu, emulator.TokenOptions{Repo: repo, Write: mainRef})
		r := runAction(t, url, tok, pushMain, buildInputs(testenv.NewBuildkitd(t), dir, env))
		mustSucceed(t, r)
		if !strings.HasPrefix(r.stdout, "::add-mask::") {
			t.Errorf("stdout does not start by masking the token:\n%.300s", r.stdout)
		}
		if r.outputs["cache-scope"] == "" {
			t.Errorf("no cache-scope output: %v", r.outputs)
		}
		if !strings.HasPrefix(r.outputs["cache-to"], "type=gha") {
			t.Errorf("cache-to = %q, want a gha export", r.outputs["cache-to"])
		}
		cached, steps := hits(t, r)
		if steps != 3 || cached != 0 {
			t.Errorf("cold build: %d of %d steps cached, want 0 of 3", cached, steps)
		}
		mainSteps = steps
		by := entriesByScope(emu)
		if !hasIndex(by[mainRef]) {
			t.Fatalf("no index entry in %s:\n%s", mainRef, describe(emu.Entries(repo)))
		}
		if len(by) != 1 {
			t.Errorf("main's push wrote outside %s:\n%s", mainRef, describe(emu.Entries(repo)))
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("pull request hits main on a fresh builder", func(t *testing.T) {
		r := runAction(t, url, mustToken(t, emu, prReadTok), prSame, buildInputs(testenv.NewBuildkitd(t), dir, env))
		mustSucceed(t, r)
		cached, steps := hits(t, r)
		if steps == 0 || steps != mainSteps || cached != steps {
			t.Errorf("first PR run: %d of %d steps cached, want all %d\n%s", cached, steps, mainSteps, r.stdout)
		}
		if !hasIndex(entriesByScope(emu)[prRef]) {
			t.Errorf("the PR exported no index into %s:\n%s", prRef, describe(emu.Entries(repo)))
		}
	})

	t.Run("fork pull request reads but never writes", func(t *testing.T) {
		before := len(emu.Entries(repo))
		r := runAction(t, url, mustToken(t, emu, prReadTok), prFork, buildInputs(testenv.NewBuildkitd(t), dir, env))
		mustSucceed(t, r)
		if r.outputs["cache-to"] != "" {
			t.Errorf("fork PR: cache-to = %q, want empty", r.outputs["cache-to"])
		}
		if after := len(emu.Entries(repo)); after != before {
			t.Errorf("fork PR: emulator entries went from %d to %d:\n%s", before, after, describe(emu.Entries(repo)))
		}
		cached, steps := hits(t, r)
		if steps == 0 || cached != steps {
			t.Errorf("fork PR: %d of %d steps cached, want all\n%s", cached, steps, r.stdout)
		}
	})

	t.Run("post cleans up the closed pull request", func(t *testing.T) {
		mainBefore := len(entriesByScope(emu)[mainRef])
		if len(entriesByScope(emu)[prRef]) == 0 {
			t.Fatal("nothing in the PR scope to clean up; the PR build exported nothing")
		}
		r := runAction(t, url, mustToken(t, emu, prReadTok), prClosed, map[string]string{
			"cache-cleanup": "true",
			"github-token":  restToken,
		}, "post")
		mustSucceed(t, r)
		if strings.Contains(r.stdout, "::warning::") {
			t.Errorf("cleanup warned:\n%s", r.stdout)
		}
		by := entriesByScope(emu)
		if n := len(by[prRef]); n != 0 {
			t.Errorf("%d entries left in %s:\n%s", n, prRef, describe(by[prRef]))
		}
		if n := len(by[mainRef]); n != mainBefore || !hasIndex(by[mainRef]) {
			t.Errorf("main's entries went from %d to %d:\n%s", mainBefore, n, describe(by[mainRef]))
		}
		if strings.Contains(r.stdout, restToken) && !strings.Contains(r.stdout, "::add-mask::"+restToken) {
			t.Errorf("github-token printed unmasked")
		}
	})
}

// TestActionGHAFaults: cache-service failures never fail the build; they
// become warnings.
func TestActionGHAFaults(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "azure")
	for _, tc := range []struct {
		name   string
		faults emulator.Faults
	}{
		{"5xx burst", emulator.Faults{FailNext: 6, FailStatus: 503}},
		{"429 upload rate", emulator.Faults{UploadsPerMinute: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			emu, url := startEmulator(t, env)
			if err := emu.SetFaults(tc.faults); err != nil {
				t.Fatal(err)
			}
			tok := mustToken(t, emu, emulator.TokenOptions{Repo: repo, Write: mainRef})
			r := runAction(t, url, tok, pushMain, buildInputs(testenv.NewBuildkitd(t), writeContext(t), env))
			mustSucceed(t, r)
			if !strings.Contains(r.stdout, "::warning::cache export") {
				t.Errorf("no ::warning:: line for the failed cache export:\n%s", r.stdout)
			}
			for _, l := range strings.Split(r.stdout, "\n") {
				if strings.HasPrefix(l, "::warning") {
					t.Logf("%.300s", l)
				}
			}
			t.Logf("entries after: %d", len(emu.Entries(repo)))
			if _, steps := hits(t, r); steps != 3 {
				t.Errorf("cache-steps = %d, want 3", steps)
			}
		})
	}
}

// TestActionGHAEvicted: a small quota evicts the layers while the index
// that names them survives; a fresh builder importing that index still
// builds.
func TestActionGHAEvicted(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "azure")
	emu, url := startEmulator(t, env)
	if err := emu.SetFaults(emulator.Faults{QuotaBytes: 64 << 10}); err != nil { // below the 256 KiB layer
		t.Fatal(err)
	}
	dir := writeContext(t)
	tok := mustToken(t, emu, emulator.TokenOptions{Repo: repo, Write: mainRef})
	mustSucceed(t, runAction(t, url, tok, pushMain, buildInputs(testenv.NewBuildkitd(t), dir, env)))
	var index bool
	var layers int
	for _, e := range emu.Entries(repo) {
		if strings.HasPrefix(e.Key, "index-") {
			index = true
		} else {
			layers++
		}
	}
	t.Logf("after the first build:\n%s", describe(emu.Entries(repo)))
	if !index || layers >= 3 {
		t.Fatalf("want the index kept and layers evicted; index %v, %d layer entries:\n%s", index, layers, describe(emu.Entries(repo)))
	}
	// An output makes BuildKit fetch the layers it reports cached; without
	// one, lazily imported results would never touch the evicted blobs.
	in := buildInputs(testenv.NewBuildkitd(t), dir, env)
	tarPath := filepath.Join(t.TempDir(), "image.tar")
	in["outputs"] = "type=tar,dest=" + tarPath
	r := runAction(t, url, mustToken(t, emu, prReadTok), prSame, in)
	mustSucceed(t, r)
	cached, steps := hits(t, r)
	t.Logf("after eviction: %d of %d steps cached; entries:\n%s", cached, steps, describe(emu.Entries(repo)))
	if steps != 3 {
		t.Errorf("cache-steps = %d, want 3", steps)
	}
	// Every layer blob is gone, so every step had to run again: BuildKit's
	// final status for them is not Cached (the plain log shows DONE, not
	// CACHED), whatever an earlier update of the same vertex said.
	if cached > layers {
		t.Errorf("cache-hits = %d with %d layer blobs left after eviction: steps that ran are counted as hits", cached, layers)
	}
	if fi, err := os.Stat(tarPath); err != nil || fi.Size() < 256<<10 {
		t.Errorf("the image tarball was not written with the 256 KiB layer: %v", err)
	}
	if os.Getenv("GHAACTION_DEBUG") != "" {
		t.Log(r.stdout)
	}
}
