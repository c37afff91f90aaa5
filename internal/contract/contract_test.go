package contract

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode"

	"github.com/bkcache/bkcache/internal/ghaction/ghactiontest"
)

const (
	githubToken = "ghs_contractTestGitHubToken0123456789"
	s3Secret    = "s3SecretKeyForContractTest/0123456789"
)

var goos = map[string]string{"linux": "linux", "darwin": "darwin", "windows": "windows"}[runtime.GOOS]

// binaryName is what dist/main.js looks for on this machine.
func binaryName() string {
	name := "bkcache-" + goos + "-" + runtime.GOARCH
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	return name
}

func moduleRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command(goTool(t), "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

func goTool(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no go tool on PATH or in GOROOT")
	}
	return p
}

func nodeTool(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is required for the action contract test: %v", err)
	}
	return p
}

var (
	buildOnce sync.Once
	builtDir  string
	buildErr  string
)

// actionRoot returns a directory laid out like a release of the action:
// action.yml and dist/main.js from this checkout, dist/bkcache-<os>-<arch>
// freshly built. Built once per test binary.
func actionRoot(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		root := moduleRoot(t)
		dir, err := os.MkdirTemp("", "bkcache-contract-")
		if err != nil {
			buildErr = err.Error()
			return
		}
		builtDir = dir
		bin := filepath.Join(dir, "dist", binaryName())
		cmd := exec.Command(goTool(t), "build", "-o", bin, "github.com/bkcache/bkcache")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = "go build: " + err.Error() + "\n" + string(out)
			return
		}
		for _, f := range []string{"action.yml", "dist/main.js", "dist/post.js"} {
			b, err := os.ReadFile(filepath.Join(root, f))
			if err != nil {
				buildErr = err.Error()
				return
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
				buildErr = err.Error()
				return
			}
		}
	})
	if buildErr != "" {
		t.Fatalf("preparing the action: %s", buildErr)
	}
	return builtDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

// fakeRuntimeToken is shaped like ACTIONS_RUNTIME_TOKEN: a JWT whose "ac"
// claim lists the cache scopes this run may read and write.
func fakeRuntimeToken() string {
	enc := base64.RawURLEncoding.EncodeToString
	header := enc([]byte(`{"alg":"RS256","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{
		"ac":  `[{"Scope":"refs/heads/main","Permission":3}]`,
		"iss": "https://token.actions.githubusercontent.com",
		"exp": 4102444800,
	})
	return header + "." + enc(claims) + "." + enc([]byte("contract-test-signature"))
}

// pushPayload is a trimmed but real-shaped push event on the default branch.
const pushPayload = `{
  "ref": "refs/heads/main",
  "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
  "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
  "base_ref": null,
  "created": false,
  "deleted": false,
  "forced": false,
  "compare": "https://github.com/o/app/compare/6113728f27ae...0d1a26e67d8f",
  "commits": [{
    "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
    "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
    "distinct": true,
    "message": "Speed up the build",
    "timestamp": "2025-11-28T05:00:00Z",
    "url": "https://github.com/o/app/commit/0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
    "author": {"name": "Octo Cat", "email": "octocat@github.com", "username": "octocat"},
    "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
    "added": [], "removed": [], "modified": ["Dockerfile"]
  }],
  "head_commit": {
    "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
    "message": "Speed up the build",
    "timestamp": "2025-11-28T05:00:00Z",
    "author": {"name": "Octo Cat", "email": "octocat@github.com", "username": "octocat"}
  },
  "pusher": {"name": "octocat", "email": "octocat@github.com"},
  "repository": {
    "id": 123456789,
    "node_id": "R_kgDOHgPiFQ",
    "name": "app",
    "full_name": "o/app",
    "private": false,
    "owner": {"login": "o", "id": 987654, "type": "Organization"},
    "html_url": "https://github.com/o/app",
    "fork": false,
    "default_branch": "main",
    "master_branch": "main"
  },
  "organization": {"login": "o", "id": 987654},
  "sender": {"login": "octocat", "id": 583231, "type": "User"}
}`

// actionDefaults returns INPUT_<NAME> for every input of action.yml that
// has a default: the runner sets those even when the workflow does not.
// A small line parser, because the module has no YAML dependency.
func actionDefaults(t *testing.T, actionYML string) map[string]string {
	t.Helper()
	f, err := os.Open(actionYML)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	defaults := map[string]string{}
	inInputs, current := false, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "inputs:":
			inInputs = true
		case inInputs && line != "" && !strings.HasPrefix(line, " "):
			inInputs = false
		case inInputs && strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") && strings.HasSuffix(line, ":"):
			current = strings.TrimSuffix(strings.TrimSpace(line), ":")
		case inInputs && current != "" && strings.HasPrefix(strings.TrimSpace(line), "default:"):
			v := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "default:"))
			v = strings.Trim(v, `"'`)
			if v == "${{ github.token }}" {
				v = githubToken
			}
			defaults["INPUT_"+strings.ToUpper(current)] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return defaults
}

// actionOutputs are the outputs the action sets; action.yml declares
// exactly these (TestOutputsDeclared).
var actionOutputs = []string{"cache-from", "cache-to", "cache-scope", "digest", "imageid", "metadata", "cache-hits", "cache-steps", "cache-miss-reason"}

// TestOutputsDeclared: every output the action sets is declared in
// action.yml, and action.yml declares no other.
func TestOutputsDeclared(t *testing.T) {
	f, err := os.Open(filepath.Join(actionRoot(t), "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var declared []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "outputs:":
			in = true
		case in && line != "" && !strings.HasPrefix(line, " "):
			in = false
		case in && strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") && strings.HasSuffix(line, ":"):
			declared = append(declared, strings.TrimSuffix(strings.TrimSpace(line), ":"))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(declared)
	want := slices.Sorted(slices.Values(actionOutputs))
	if !slices.Equal(declared, want) {
		t.Errorf("action.yml declares outputs %q, the action sets %q", declared, want)
	}
}

type result struct {
	code                 int
	stdout, stderr       string
	outputs, state, env  map[string]string
	outputsRaw, stateRaw string
	summary              string
	outputsErr, stateErr error
}

// runAction runs the main entry point of action.yml (`node dist/main.js`)
// in root as the runner would for a `uses:` step with the given inputs
// (names as written in the workflow).
func runAction(t *testing.T, root string, inputs, extra map[string]string) result {
	t.Helper()
	return runPhase(t, root, "main", inputs, extra)
}

// runPhase runs action.yml's runs.<phase> entry point (main or post).
func runPhase(t *testing.T, root, phase string, inputs, extra map[string]string) result {
	t.Helper()
	script := actionYML(t, root).Runs[phase]
	if script == "" {
		t.Fatalf("action.yml has no runs.%s", phase)
	}
	work := t.TempDir()
	files := map[string]string{}
	for _, name := range []string{"GITHUB_OUTPUT", "GITHUB_STATE", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STEP_SUMMARY"} {
		p := filepath.Join(work, "_runner_file_commands", strings.ToLower(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		files[name] = p
	}
	eventPath := filepath.Join(work, "event.json")
	if err := os.WriteFile(eventPath, []byte(pushPayload), 0o644); err != nil {
		t.Fatal(err)
	}
	workspace := filepath.Join(work, "workspace")
	runnerTemp := filepath.Join(work, "runner_temp")
	for _, d := range []string{workspace, runnerTemp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{
		"PATH":                     os.Getenv("PATH"),
		"HOME":                     work,
		"CI":                       "true",
		"GITHUB_ACTIONS":           "true",
		"GITHUB_ACTION":            "__run_2",
		"GITHUB_ACTION_PATH":       root,
		"GITHUB_ACTION_REPOSITORY": "bkcache/bkcache",
		"GITHUB_ACTOR":             "octocat",
		"GITHUB_API_URL":           "http://127.0.0.1:9/api-v3",
		"GITHUB_SERVER_URL":        "https://github.com",
		"GITHUB_EVENT_NAME":        "push",
		"GITHUB_EVENT_PATH":        eventPath,
		"GITHUB_REF":               "refs/heads/main",
		"GITHUB_REF_NAME":          "main",
		"GITHUB_REF_TYPE":          "branch",
		"GITHUB_REPOSITORY":        "o/app",
		"GITHUB_REPOSITORY_OWNER":  "o",
		"GITHUB_SHA":               "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
		"GITHUB_RUN_ID":            "1658821493",
		"GITHUB_RUN_ATTEMPT":       "1",
		"GITHUB_JOB":               "build",
		"GITHUB_WORKFLOW":          "ci",
		"GITHUB_WORKSPACE":         workspace,
		"RUNNER_OS":                "Linux",
		"RUNNER_ARCH":              "X64",
		"RUNNER_TEMP":              runnerTemp,
		"RUNNER_TOOL_CACHE":        filepath.Join(work, "toolcache"),
		"ACTIONS_RUNTIME_TOKEN":    fakeRuntimeToken(),
		"ACTIONS_RUNTIME_URL":      "http://127.0.0.1:9/runtime/",
		"ACTIONS_RESULTS_URL":      "http://127.0.0.1:9/results/",
		"ACTIONS_CACHE_URL":        "http://127.0.0.1:9/cache/",
		"ACTIONS_CACHE_SERVICE_V2": "True",
	}
	for k, v := range files {
		env[k] = v
	}
	for k, v := range actionDefaults(t, filepath.Join(root, "action.yml")) {
		env[k] = v
	}
	for name, v := range inputs {
		// The runner keeps hyphens and upper-cases: dry-run -> INPUT_DRY-RUN.
		env["INPUT_"+strings.ToUpper(strings.ReplaceAll(name, " ", "_"))] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	slices.Sort(environ)

	cmd := exec.Command(nodeTool(t), filepath.Join(root, script))
	cmd.Dir = workspace
	cmd.Env = environ
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("running node: %v", err)
	}
	read := func(name string) string {
		b, err := os.ReadFile(files[name])
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	res.outputsRaw, res.stateRaw = read("GITHUB_OUTPUT"), read("GITHUB_STATE")
	res.outputs, res.outputsErr = ghactiontest.FileCommandMap(res.outputsRaw)
	res.state, res.stateErr = ghactiontest.FileCommandMap(res.stateRaw)
	res.env, _ = ghactiontest.FileCommandMap(read("GITHUB_ENV"))
	res.summary = read("GITHUB_STEP_SUMMARY")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("exit %d\n--- stdout\n%s--- stderr\n%s--- GITHUB_OUTPUT\n%s--- GITHUB_STATE\n%s--- summary\n%s",
				res.code, res.stdout, res.stderr, res.outputsRaw, res.stateRaw, res.summary)
		}
	})
	return res
}

// command is a stdout line as the runner's ActionCommand.TryParseV2 reads it.
type command struct{ name, data string }

func commands(stdout string) []command {
	unescape := strings.NewReplacer("%0D", "\r", "%0A", "\n", "%25", "%")
	var cmds []command
	for _, line := range strings.Split(stdout, "\n") {
		msg := strings.TrimLeftFunc(line, unicode.IsSpace)
		if !strings.HasPrefix(msg, "::") {
			continue
		}
		end := strings.Index(msg[2:], "::")
		if end < 0 {
			continue
		}
		name, _, _ := strings.Cut(msg[2:2+end], " ")
		cmds = append(cmds, command{name, unescape.Replace(msg[2+end+2:])})
	}
	return cmds
}

// checkMasksFirst: every ::add-mask:: line comes before any other stdout line.
func checkMasksFirst(t *testing.T, stdout string) {
	t.Helper()
	other := -1
	for i, line := range strings.Split(strings.TrimRight(stdout, "\n"), "\n") {
		if strings.HasPrefix(line, "::add-mask::") {
			if other >= 0 {
				t.Errorf("stdout line %d masks a secret after line %d already printed", i+1, other+1)
			}
		} else if other < 0 {
			other = i
		}
	}
}

// checkCommandsInert: the runner sees only commands we meant to issue.
func checkCommandsInert(t *testing.T, stdout string) {
	t.Helper()
	allowed := map[string]bool{"add-mask": true, "group": true, "endgroup": true, "error": true,
		"warning": true, "notice": true, "debug": true, "stop-commands": true}
	var resume string
	for _, c := range commands(stdout) {
		switch {
		case c.name == "stop-commands":
			resume = c.data
		case resume != "" && c.name == resume:
			resume = ""
		case resume != "":
			// commands are off: the runner ignores this line
		case !allowed[c.name]:
			t.Errorf("stdout issues unexpected workflow command %q (data %q)", c.name, c.data)
		}
	}
	for _, line := range strings.Split(stdout, "\n") {
		msg := strings.TrimLeftFunc(line, unicode.IsSpace)
		for _, forged := range []string{"::set-output", "::save-state", "::set-env", "::add-path", "::warning::forged", "::notice::forged"} {
			if strings.HasPrefix(msg, forged) {
				t.Errorf("stdout line %q starts a forged command", line)
			}
		}
	}
}

// checkNoSecrets: secrets appear nowhere but in their own add-mask line.
func checkNoSecrets(t *testing.T, r result, secrets ...string) {
	t.Helper()
	var visible []string
	for _, line := range strings.Split(r.stdout, "\n") {
		if !strings.HasPrefix(line, "::add-mask::") {
			visible = append(visible, line)
		}
	}
	places := map[string]string{"stdout": strings.Join(visible, "\n"), "stderr": r.stderr,
		"GITHUB_OUTPUT": r.outputsRaw, "GITHUB_STATE": r.stateRaw, "summary": r.summary}
	for where, text := range places {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("secret %.6s… appears in %s", s, where)
			}
		}
	}
}

func TestDryRunContract(t *testing.T) {
	root := actionRoot(t)
	r := runAction(t, root, map[string]string{
		"dry-run":     "true",
		"cache-scope": "app",
		"cache":       "type=registry,ref=ghcr.io/o/app-cache",
	}, nil)
	if r.code != 0 {
		t.Fatalf("exit code %d, want 0", r.code)
	}
	if r.outputsErr != nil {
		t.Fatalf("the runner would reject GITHUB_OUTPUT: %v", r.outputsErr)
	}
	for _, name := range []string{"cache-from", "cache-to", "cache-scope"} {
		if _, ok := r.outputs[name]; !ok {
			t.Errorf("output %q missing; outputs %q", name, r.outputs)
		}
	}
	if !strings.Contains(r.outputs["cache-to"], "ghcr.io/o/app-cache") {
		t.Errorf("cache-to = %q, want an export to ghcr.io/o/app-cache", r.outputs["cache-to"])
	}
	if !strings.Contains(r.outputs["cache-from"], "ghcr.io/o/app-cache") {
		t.Errorf("cache-from = %q, want an import from ghcr.io/o/app-cache", r.outputs["cache-from"])
	}
	if r.outputs["cache-scope"] == "" {
		t.Errorf("cache-scope is empty for a push to the default branch")
	}
	if !regexp.MustCompile(`(?m)^[a-z-]+<<ghadelimiter_[0-9a-f-]{36}$`).MatchString(r.outputsRaw) {
		t.Errorf("GITHUB_OUTPUT does not use random ghadelimiter_<uuid> heredocs")
	}
	if r.stateErr != nil || r.state["bkcache_main_ran"] != "true" {
		t.Errorf("state bkcache_main_ran = %q (err %v), want true", r.state["bkcache_main_ran"], r.stateErr)
	}
	if strings.TrimSpace(r.summary) == "" || !strings.Contains(r.summary, "#") {
		t.Errorf("job summary is empty or not Markdown: %q", r.summary)
	}
	checkMasksFirst(t, r.stdout)
	checkCommandsInert(t, r.stdout)
	checkNoSecrets(t, r, githubToken, fakeRuntimeToken())
}

func TestSecretsMaskedFirst(t *testing.T) {
	root := actionRoot(t)
	r := runAction(t, root, map[string]string{
		"dry-run": "true",
		"cache":   "type=s3,bucket=cache,region=us-east-1,access_key_id=AKIAEXAMPLE,secret_access_key=" + s3Secret,
	}, nil)
	if r.code != 0 {
		t.Fatalf("exit code %d, want 0", r.code)
	}
	var masked bool
	for _, c := range commands(r.stdout) {
		if c.name == "add-mask" && c.data == s3Secret {
			masked = true
		}
	}
	if !masked {
		t.Errorf("secret_access_key was not masked")
	}
	checkMasksFirst(t, r.stdout)
	checkNoSecrets(t, r, s3Secret, githubToken)
}

// TestBuildSecretsMaskedFirst: the values of the secrets input are masked
// before anything else prints, even when another input is invalid and the
// run fails.
func TestBuildSecretsMaskedFirst(t *testing.T) {
	const value, bare = "buildSecretValueForContract-0123", "pastedWithoutKey-4567"
	root := actionRoot(t)
	for _, tc := range []struct {
		name   string
		inputs map[string]string
		code   int
	}{
		{"dry run", map[string]string{"dry-run": "true", "secrets": "API_KEY=" + value}, 0},
		{"another input is bad", map[string]string{"secrets": "API_KEY=" + value + "\n" + bare, "progress": "fancy"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runAction(t, root, tc.inputs, nil)
			if r.code != tc.code {
				t.Fatalf("exit code %d, want %d", r.code, tc.code)
			}
			masked := map[string]bool{}
			for _, c := range commands(r.stdout) {
				if c.name == "add-mask" {
					masked[c.data] = true
				}
			}
			if !masked[value] {
				t.Errorf("the secret value was not masked")
			}
			checkMasksFirst(t, r.stdout)
			checkNoSecrets(t, r, value, bare, githubToken)
		})
	}
}

func TestInvalidInputExitCode(t *testing.T) {
	root := actionRoot(t)
	r := runAction(t, root, map[string]string{"cache": "type=nope"}, nil)
	if r.code != 1 {
		t.Fatalf("exit code %d, want 1", r.code)
	}
	var named bool
	for _, c := range commands(r.stdout) {
		if c.name == "error" && regexp.MustCompile(`\bcache\b`).MatchString(c.data) && strings.Contains(c.data, "nope") {
			named = true
		}
	}
	if !named {
		t.Errorf("no ::error:: naming the input `cache` and the bad value")
	}
	checkMasksFirst(t, r.stdout)
}

func TestInjectionInert(t *testing.T) {
	root := actionRoot(t)
	tests := map[string]map[string]string{
		"scope with a command": {"cache-scope": "x\n::set-output name=pwned::1"},
		"scope with old delimiter": {
			"cache-scope": "x\n_GitHubActionsFileCommandDelimeter_\npwned=1\npwned<<_GitHubActionsFileCommandDelimeter_\n1",
		},
		"scope with a toolkit-shaped delimiter": {
			"cache-scope": "x\nghadelimiter_00000000-0000-4000-8000-000000000000\npwned=1",
		},
		"cache line with a command": {
			"cache": "type=registry,ref=ghcr.io/o/app-cache\n::warning::forged\n##[set-output name=pwned;]1",
		},
		"cache ref with a command": {"cache": "type=registry,ref=ghcr.io/o/app-cache%0A::notice::forged"},
	}
	for name, inputs := range tests {
		t.Run(name, func(t *testing.T) {
			inputs["dry-run"] = "true"
			if inputs["cache"] == "" {
				inputs["cache"] = "type=registry,ref=ghcr.io/o/app-cache"
			}
			r := runAction(t, root, inputs, nil)
			if r.code != 0 && r.code != 1 {
				t.Errorf("exit code %d, want 0 or a clean 1", r.code)
			}
			if r.outputsErr != nil {
				t.Errorf("the runner would reject GITHUB_OUTPUT: %v", r.outputsErr)
			}
			for k := range r.outputs {
				if !slices.Contains(actionOutputs, k) {
					t.Errorf("forged output %q", k)
				}
			}
			if _, ok := r.state["pwned"]; ok {
				t.Errorf("forged state")
			}
			if _, ok := r.env["pwned"]; ok {
				t.Errorf("forged env")
			}
			checkCommandsInert(t, r.stdout)
			checkMasksFirst(t, r.stdout)
		})
	}
}

func TestPostPhase(t *testing.T) {
	root := actionRoot(t)
	r := runPhase(t, root, "post", nil, map[string]string{
		"STATE_bkcache_main_ran": "true",
		"STATE_bkcache_js_main":  "true",
	})
	if r.code != 0 {
		t.Fatalf("post exit code %d, want 0", r.code)
	}
	checkMasksFirst(t, r.stdout)
	if _, ok := r.state["bkcache_main_ran"]; ok {
		t.Errorf("the post step ran the main step again (it saved bkcache_main_ran)")
	}
}
