// Package act runs the bkcache action under nektos/act (issue 23): a
// GitHub Actions runner nobody here wrote, so the action is loaded,
// started and fed the way a third-party runner does it, not the way
// bkcache's own tests assume.
//
// act runs in host mode (-P ubuntu-latest=-self-hosted): steps run on this
// machine, with no Docker. Each case runs a workflow twice, each time on a
// fresh buildkitd (a fresh --root is a fresh runner's builder), against
// act's own cache server (the v1 REST API) or the test registry, so every
// hit of the warm run came from the external cache. Hits are bkcache's
// cache-hits and cache-steps outputs, counted from BuildKit's status
// stream; a last step or job writes them to a file.
//
// Nothing is cloned, and the test needs no network:
//   - act skips actions/checkout when it checks out this repository (no
//     repository: or ref: input) and copies the working directory instead
//     (pkg/runner/step_action_remote.go, isLocalCheckout);
//   - bkcache/bkcache@v1 (in the shipped reusable workflow) is mapped with
//     --local-repository to a release-like directory: action.yml and dist/
//     with a prebuilt binary, as a release tag ships;
//   - act fetches every remote action of a job before the first step runs,
//     even one whose if: is false (job_executor.go runs each step's pre(),
//     which fetches). The reusable workflow's docker/setup-buildx-action and
//     docker/login-action are off here (a builder address is given, the
//     registry needs no login), so they are mapped to stubs that fail if
//     they ever run.
//
// The runner's variables: act always sets ACTIONS_CACHE_URL to its cache
// server (cmd/root.go). With --artifact-server-path, which the test gives
// as users do for upload-artifact, it also sets ACTIONS_RESULTS_URL and
// ACTIONS_RUNTIME_URL to its artifact server and ACTIONS_RUNTIME_TOKEN
// (pkg/runner/run_context.go, setActionRuntimeVars); it never sets
// ACTIONS_CACHE_SERVICE_V2. By @actions/cache's rule that is v1 at
// ACTIONS_CACHE_URL; a client that takes the results URL for v2 gets 404s
// from the artifact server, and this test fails.
//
// The runtime token: act takes ACTIONS_RUNTIME_TOKEN from its own
// environment, and otherwise mints one whose ac claim grants write to the
// empty scope (pkg/common/auth.go, CreateAuthorizationToken). bkcache reads
// the ref the token writes from ac, and keeps a gha export only when that
// ref is the export scope's, so with act's token nothing would ever be
// written. The test mints a token shaped like GitHub's (write: the job's
// ref; read: the default branch) with the emulator's MintToken and gives
// it to act; act's cache server does not verify tokens
// (pkg/artifactcache/handler.go, middleware).
//
// Node: action.yml says node24. act accepts node12 to node24 alike and, in
// host mode, runs whatever `node` is on PATH (run_context.go,
// GetNodeToolFullPath): here Node.js 20. So this test proves dist/main.js
// runs on Node 20 too, not that it runs on Node 24; each run logs the
// version that ran it.
package act

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bkcache/bkcache/ghacache/emulator"
	"github.com/bkcache/bkcache/internal/testenv"
)

const (
	repoName = "o/r"
	prNumber = 7
	// Logged by dist/main.js when it builds the binary from source.
	fromSourceNotice = "is missing (not a release commit); building it from source with Go"
)

// postRan matches act's report of the action's post step (uses: ./ or the
// release the reusable workflow names).
var postRan = regexp.MustCompile(`Success - Post (\./|bkcache/bkcache@v1) \[`)

// The workflows of the test repository. vars carry what the test decides:
// the builder address, the cache line and the result file. Every workflow
// listens to push and pull_request; the case picks the event.

const stepWorkflow = `on: [push, pull_request]
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - id: bkcache
        uses: ./
        with:
          context: ctx
          builder: ${{ vars.BKX_BUILDER }}
          cache: ${{ vars.BKX_CACHE }}
      - env:
          RESULT: ${{ vars.BKX_RESULT }}
          HITS: ${{ steps.bkcache.outputs.cache-hits }}
          STEPS: ${{ steps.bkcache.outputs.cache-steps }}
          SCOPE: ${{ steps.bkcache.outputs.cache-scope }}
          CACHE_TO: ${{ steps.bkcache.outputs.cache-to }}
        run: printf 'hits=%s\nsteps=%s\nscope=%s\ncache-to=%s\nevent=%s\nnode=%s\n' "$HITS" "$STEPS" "$SCOPE" "$CACHE_TO" "$GITHUB_EVENT_NAME" "$(node --version)" > "$RESULT"
`

// The composite action uses the action from the workspace (uses: ./, as
// on GitHub relative to the workspace) and passes its outputs through.
const compositeAction = `name: build
description: bkcache inside a composite action
inputs:
  builder:
    description: BuildKit address
    required: true
  cache:
    description: cache line
    required: false
    default: ""
outputs:
  cache-hits:
    description: steps cached
    value: ${{ steps.bkcache.outputs.cache-hits }}
  cache-steps:
    description: steps
    value: ${{ steps.bkcache.outputs.cache-steps }}
  cache-scope:
    description: export scope
    value: ${{ steps.bkcache.outputs.cache-scope }}
  cache-to:
    description: exports
    value: ${{ steps.bkcache.outputs.cache-to }}
runs:
  using: composite
  steps:
    - id: bkcache
      uses: ./
      with:
        context: ctx
        builder: ${{ inputs.builder }}
        cache: ${{ inputs.cache }}
`

const compositeWorkflow = `on: [push, pull_request]
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - id: build
        uses: ./.github/actions/build
        with:
          builder: ${{ vars.BKX_BUILDER }}
          cache: ${{ vars.BKX_CACHE }}
      - env:
          RESULT: ${{ vars.BKX_RESULT }}
          HITS: ${{ steps.build.outputs.cache-hits }}
          STEPS: ${{ steps.build.outputs.cache-steps }}
          SCOPE: ${{ steps.build.outputs.cache-scope }}
          CACHE_TO: ${{ steps.build.outputs.cache-to }}
        run: printf 'hits=%s\nsteps=%s\nscope=%s\ncache-to=%s\nevent=%s\nnode=%s\n' "$HITS" "$STEPS" "$SCOPE" "$CACHE_TO" "$GITHUB_EVENT_NAME" "$(node --version)" > "$RESULT"
`

// The shipped reusable workflow, called from this repository as a user
// calls bkcache/bkcache/.github/workflows/build.yml@v1.
const reusableWorkflow = `on: [push, pull_request]
jobs:
  build:
    uses: ./.github/workflows/build.yml
    with:
      context: ctx
      setup-buildx: false
      builder: ${{ vars.BKX_BUILDER }}
      cache: ${{ vars.BKX_CACHE }}
  report:
    needs: build
    runs-on: ubuntu-latest
    steps:
      - env:
          RESULT: ${{ vars.BKX_RESULT }}
          HITS: ${{ needs.build.outputs.cache-hits }}
          STEPS: ${{ needs.build.outputs.cache-steps }}
          SCOPE: ${{ needs.build.outputs.cache-scope }}
          CACHE_TO: ${{ needs.build.outputs.cache-to }}
        run: printf 'hits=%s\nsteps=%s\nscope=%s\ncache-to=%s\nevent=%s\nnode=%s\n' "$HITS" "$STEPS" "$SCOPE" "$CACHE_TO" "$GITHUB_EVENT_NAME" "$(node --version)" > "$RESULT"
`

// stubAction stands in for an action the job names but this test never
// runs (its if: is false); it fails if it ever does.
const stubAction = `name: stub
description: never runs in e2e/act
runs:
  using: composite
  steps:
    - run: echo "stub action ran; e2e/act maps it only to avoid a clone" >&2; exit 1
      shell: bash
`

func TestAct(t *testing.T) {
	env := testenv.Require(t, "act", "buildkit", "registry")
	if runtime.GOOS != "linux" {
		t.Skip("host-mode act with buildkitd runs on linux")
	}
	rel, stub := buildRelease(t), t.TempDir()
	writeFile(t, filepath.Join(stub, "action.yml"), stubAction)
	regCache := fmt.Sprintf("type=registry,ref=%s/bkcache-act/%s-cache,registry.insecure=true", env.Registry, testenv.RandomHex(6))
	for _, tc := range []struct {
		name, workflow, event, cache string
		wantScope                    string
		fromSource                   bool // dist/main.js builds the binary (uses: ./) rather than finding it (a release)
	}{
		{"step, gha data plane", "step.yml", "push", "type=gha", "buildkit_main", true},
		{"step, gha dataplane=false", "step.yml", "push", "type=gha,dataplane=false", "buildkit_main", true},
		{"step, registry", "step.yml", "push", regCache, "buildkit_main", true},
		{"composite action", "composite.yml", "push", "type=gha", "buildkit_main", true},
		// The reusable workflow runs with its caller's event: a pull
		// request's scope, never the default branch's. No cache line: the
		// default, gha.
		{"reusable workflow", "reusable.yml", "pull_request", "", "buildkit_pr-" + strconv.Itoa(prNumber), false},
	} {
		// A gha line without dataplane= asks for the cache endpoint; act's
		// cache server is v1, so the build takes the session data plane
		// and the log says why.
		fallback := tc.cache == "" || tc.cache == "type=gha"
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t, env)
			r.rel, r.stub = rel, stub
			rc := runConfig{workflow: tc.workflow, event: tc.event, cache: tc.cache, cacheServer: t.TempDir()}
			var cold, warm result
			if !t.Run("cold", func(t *testing.T) { cold = r.run(t, rc) }) {
				return
			}
			if !t.Run("warm", func(t *testing.T) { warm = r.run(t, rc) }) {
				return
			}
			t.Logf("cold %d of %d steps cached (%s), warm %d of %d (%s); node %s",
				cold.hits, cold.steps, cold.took.Round(time.Second), warm.hits, warm.steps, warm.took.Round(time.Second), warm.node)
			if cold.steps < 3 || cold.hits != 0 {
				t.Errorf("cold run: %d of %d steps cached, want 0 of at least 3", cold.hits, cold.steps)
			}
			if warm.steps != cold.steps || warm.hits != warm.steps {
				t.Errorf("warm run on a fresh builder: %d of %d steps cached, want all %d", warm.hits, warm.steps, cold.steps)
			}
			for _, res := range []result{cold, warm} {
				if res.scope != tc.wantScope {
					t.Errorf("cache-scope = %q, want %q", res.scope, tc.wantScope)
				}
				if res.event != tc.event {
					t.Errorf("the reporting step saw event %q, want %q", res.event, tc.event)
				}
				if wantTo := strings.SplitN(cmp.Or(tc.cache, "type=gha"), ",", 2)[0]; !strings.HasPrefix(res.cacheTo, wantTo+",") {
					t.Errorf("cache-to output = %q, want a %s export", res.cacheTo, wantTo)
				}
				if fallback && !strings.Contains(res.log, "session data plane, not the cache endpoint: the cache service is v1") {
					t.Error("the log does not say the build took the session data plane because act's cache server is v1")
				}
				// act's own step report: the runner ran the post: entry.
				if !postRan.MatchString(res.log) {
					t.Error("act did not report the action's post step as a success")
				}
				if got := strings.Contains(res.log, fromSourceNotice); got != tc.fromSource {
					t.Errorf("dist/main.js built the binary from source: %v, want %v", got, tc.fromSource)
				}
			}
		})
	}
}

// repo is a test repository: this module's files (so uses: ./ is the
// action under test and dist/main.js can build it), a Dockerfile of its
// own, the test workflows, and a git history act reads the SHA from.
type repo struct {
	env  testenv.Env
	dir  string // the working directory act runs in
	rel  string // a release of the action (bkcache/bkcache@v1)
	stub string // the stand-in for actions the test never runs
}

func newRepo(t *testing.T, env testenv.Env) *repo {
	t.Helper()
	root := moduleRoot(t)
	base := t.TempDir()
	r := &repo{env: env, dir: filepath.Join(base, "repo")}

	// Tracked and new files, not ignored ones (.cache, .testenv, binaries).
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if f == "" || strings.HasPrefix(f, ".github/workflows/") && f != ".github/workflows/build.yml" {
			continue // only the workflows the test runs
		}
		src := filepath.Join(root, f)
		st, err := os.Lstat(src)
		if err != nil || !st.Mode().IsRegular() {
			continue // deleted in the work tree, or a symlink
		}
		copyFile(t, src, filepath.Join(r.dir, f), st.Mode().Perm())
	}

	// Three RUN steps FROM the registry's busybox; the nonce makes the
	// steps this case's own, so no other test's cache can serve them.
	df := fmt.Sprintf("FROM %s\nRUN echo %s > /nonce\nRUN dd if=/dev/urandom of=/blob bs=1024 count=256 2>/dev/null\nRUN cat /nonce /blob > /both\n",
		env.BaseImage, testenv.RandomHex(8))
	writeFile(t, filepath.Join(r.dir, "ctx", "Dockerfile"), df)
	for name, body := range map[string]string{
		".github/workflows/step.yml":       stepWorkflow,
		".github/workflows/composite.yml":  compositeWorkflow,
		".github/workflows/reusable.yml":   reusableWorkflow,
		".github/actions/build/action.yml": compositeAction,
	} {
		writeFile(t, filepath.Join(r.dir, name), body)
	}

	// act reads the repository name from the origin remote and the SHA
	// from HEAD; it never contacts the remote.
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"remote", "add", "origin", "https://github.com/" + repoName + ".git"},
		{"add", "-A"},
		{"-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid", "commit", "-q", "-m", "e2e/act"},
	} {
		if out, err := exec.Command("git", append([]string{"-C", r.dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", args[0], err, out)
		}
	}
	return r
}

// buildRelease lays out a release of the action as a tag ships it:
// action.yml and dist/ with the binary for this machine. It is built with
// dist/main.js's own flags, so the two share the Go build cache.
func buildRelease(t *testing.T) string {
	t.Helper()
	root, rel := moduleRoot(t), t.TempDir()
	for _, f := range []string{"action.yml", "dist/main.js", "dist/post.js"} {
		copyFile(t, filepath.Join(root, f), filepath.Join(rel, f), 0o644)
	}
	bin := filepath.Join(rel, "dist", "bkcache-linux-"+runtime.GOARCH)
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the release binary: %v\n%s", err, out)
	}
	return rel
}

type runConfig struct {
	workflow, event, cache string
	cacheServer            string // act's cache server storage, kept between runs
}

type result struct {
	hits, steps           int
	scope, cacheTo, event string
	node                  string
	log                   string
	took                  time.Duration
}

// run runs act once on a fresh buildkitd and reads the result file.
func (r *repo) run(t *testing.T, rc runConfig) result {
	t.Helper()
	addr := testenv.NewBuildkitd(t)
	work := t.TempDir()
	resultFile := filepath.Join(work, "result")
	eventFile := filepath.Join(work, "event.json")
	writeFile(t, eventFile, eventPayload(t, rc.event))

	// The token GitHub would give this job: write its own ref, read the
	// default branch (see the package comment for why not act's own).
	ref := "refs/heads/main"
	if rc.event == "pull_request" {
		ref = fmt.Sprintf("refs/pull/%d/merge", prNumber)
	}
	token, err := emulator.MintToken([]byte("e2e-act-token-secret"), emulator.TokenOptions{
		Repo: repoName, Write: ref, Read: []string{"refs/heads/main"}, TTL: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}

	args := []string{
		rc.event,
		"-W", ".github/workflows/" + rc.workflow,
		"-e", eventFile,
		"-P", "ubuntu-latest=-self-hosted",
		"--cache-server-path", rc.cacheServer,
		"--cache-server-addr", "127.0.0.1",
		"--artifact-server-path", filepath.Join(work, "artifacts"),
		"--artifact-server-addr", "127.0.0.1",
		"--artifact-server-port", freePort(t),
		"--action-cache-path", filepath.Join(work, "actions"),
		"--local-repository", "bkcache/bkcache@v1=" + r.rel,
		"--local-repository", "docker/setup-buildx-action@v3=" + r.stub,
		"--local-repository", "docker/login-action@v3=" + r.stub,
		"--var", "BKX_BUILDER=" + addr,
		"--var", "BKX_CACHE=" + rc.cache,
		"--var", "BKX_RESULT=" + resultFile,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.env.Act, args...)
	cmd.Dir = r.dir
	cmd.Env = actEnv(t, filepath.Join(work, "home"), token)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start)
	out := log.String()
	if strings.Contains(out, token) {
		t.Error("the runtime token appears in act's log")
	}
	if err != nil {
		t.Fatalf("act %s: %v\n%s", strings.Join(args[:3], " "), err, tail(out, 8000))
	}
	b, err := os.ReadFile(resultFile)
	if err != nil {
		t.Fatalf("no result file (the reporting step did not run): %v\n%s", err, tail(out, 8000))
	}
	res := result{log: out, took: took}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "hits":
			res.hits = atoi(t, k, v)
		case "steps":
			res.steps = atoi(t, k, v)
		case "scope":
			res.scope = v
		case "cache-to":
			res.cacheTo = v
		case "event":
			res.event = v
		case "node":
			res.node = v
		}
	}
	return res
}

// actEnv is act's whole environment: act hands its own environment to
// host-mode steps, so nothing of the test's (an ACTIONS_* variable of a CI
// runner, say) may leak in. Go builds dist/main.js's binary offline, from
// the module and build caches the test already has.
func actEnv(t *testing.T, home, token string) []string {
	t.Helper()
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"GOCACHE=" + goEnv(t, "GOCACHE"),
		"GOMODCACHE=" + goEnv(t, "GOMODCACHE"),
		"GOPROXY=off",
		"GOTOOLCHAIN=local",
		"ACT_DISABLE_VERSION_CHECK=1",
		"ACTIONS_RUNTIME_TOKEN=" + token,
	}
	if v := os.Getenv("TMPDIR"); v != "" {
		env = append(env, "TMPDIR="+v)
	}
	return env
}

var goEnvCache sync.Map

func goEnv(t *testing.T, key string) string {
	t.Helper()
	if v, ok := goEnvCache.Load(key); ok {
		return v.(string)
	}
	out, err := exec.Command("go", "env", key).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", key, err)
	}
	v := strings.TrimSpace(string(out))
	goEnvCache.Store(key, v)
	return v
}

// eventPayload is the webhook payload of a push to main, or of a pull
// request from a branch of the same repository into main.
func eventPayload(t *testing.T, event string) string {
	t.Helper()
	repository := map[string]any{"full_name": repoName, "name": "r", "owner": map[string]any{"login": "o"}, "default_branch": "main", "fork": false}
	var p map[string]any
	switch event {
	case "push":
		p = map[string]any{"ref": "refs/heads/main", "before": strings.Repeat("0", 40), "after": strings.Repeat("1", 40), "repository": repository}
	case "pull_request":
		side := func(ref string) map[string]any {
			return map[string]any{"ref": ref, "sha": strings.Repeat("2", 40), "repo": repository}
		}
		p = map[string]any{"action": "synchronize", "number": prNumber, "repository": repository, "pull_request": map[string]any{
			"number": prNumber, "head": side("feature/login"), "base": side("main"),
		}}
	default:
		t.Fatalf("no payload for event %q", event)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// freePort is a loopback port free right now: act's artifact server has a
// fixed default port and no "any port" setting.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

func copyFile(t *testing.T, src, dst string, perm os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, perm); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func atoi(t *testing.T, key, v string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		t.Fatalf("output %s = %q, not a number", key, v)
	}
	return n
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
