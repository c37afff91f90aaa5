package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bkcache/bkcache/internal/ghaction/ghactiontest"
)

// runnerEnv is the environment the runner gives a JavaScript action, with
// the event payload from scope/testdata and the runner's files in a temp dir.
type runnerEnv struct {
	vars    map[string]string
	outputs string
	summary string
}

func newRunnerEnv(t *testing.T, event, ref, payload string, inputs map[string]string) *runnerEnv {
	t.Helper()
	dir := t.TempDir()
	r := &runnerEnv{
		vars: map[string]string{
			"GITHUB_ACTIONS":      "true",
			"GITHUB_EVENT_NAME":   event,
			"GITHUB_REF":          ref,
			"GITHUB_REPOSITORY":   "Codertocat/Hello-World",
			"GITHUB_EVENT_PATH":   filepath.Join("..", "..", "scope", "testdata", payload),
			"GITHUB_OUTPUT":       filepath.Join(dir, "output"),
			"GITHUB_STATE":        filepath.Join(dir, "state"),
			"GITHUB_ENV":          filepath.Join(dir, "env"),
			"GITHUB_STEP_SUMMARY": filepath.Join(dir, "summary"),
			"RUNNER_TEMP":         dir,
		},
		outputs: filepath.Join(dir, "output"),
		summary: filepath.Join(dir, "summary"),
	}
	for k, v := range inputs {
		r.vars["INPUT_"+strings.ToUpper(k)] = v
	}
	for _, f := range []string{"output", "state", "env", "summary"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func (r *runnerEnv) run(t *testing.T, args ...string) (code int, stdout string, outputs map[string]string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), Env{
		Args:     args,
		Getenv:   func(k string) string { return r.vars[k] },
		ReadFile: os.ReadFile,
		Stdout:   &out,
		Stderr:   &errb,
	})
	b, err := os.ReadFile(r.outputs)
	if err != nil {
		t.Fatal(err)
	}
	outputs, err = ghactiontest.FileCommandMap(string(b))
	if err != nil {
		t.Fatalf("outputs file does not parse: %v\n%s", err, b)
	}
	return code, out.String() + errb.String(), outputs
}

// TestActionPlan is the plan mode of the action for a push, a PR and a tag
// of a repository whose default branch is "develop".
func TestActionPlan(t *testing.T) {
	const repo = "ghcr.io/o/app-cache"
	for _, tc := range []struct {
		name, event, ref, payload string
		scope                     string
		from                      []string
		to                        []string
	}{
		{
			name: "push", event: "push", ref: "refs/heads/develop", payload: "push_default_trunk.json",
		},
		{
			name: "pull request", event: "pull_request", ref: "refs/pull/17/merge", payload: "pull_request_same_repo.json",
			scope: "buildkit_pr-17",
			from: []string{
				"type=registry,ref=" + repo + ":buildkit_pr-17",
				"type=registry,ref=" + repo + ":buildkit_develop",
			},
			to: []string{"type=registry,ignore-error=true,mode=max,ref=" + repo + ":buildkit_pr-17"},
		},
		{
			name: "tag", event: "push", ref: "refs/tags/v1.2.3", payload: "push_tag.json",
			scope: "buildkit_tag-v1.2.3",
			from: []string{
				"type=registry,ref=" + repo + ":buildkit_tag-v1.2.3",
				"type=registry,ref=" + repo + ":buildkit_develop",
			},
			to: []string{"type=registry,ignore-error=true,mode=max,ref=" + repo + ":buildkit_tag-v1.2.3"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRunnerEnv(t, tc.event, tc.ref, tc.payload, map[string]string{
				"cache":   "type=registry,ref=" + repo,
				"dry-run": "true",
			})
			code, stdout, outs := r.run(t)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, stdout)
			}
			if tc.scope == "" {
				// The push fixture is not guaranteed to be on develop;
				// only check that an export scope was set.
				if outs["cache-scope"] == "" {
					t.Fatalf("no cache-scope output:\n%s", stdout)
				}
				return
			}
			if outs["cache-scope"] != tc.scope {
				t.Errorf("cache-scope = %q, want %q", outs["cache-scope"], tc.scope)
			}
			for _, want := range tc.from {
				if !strings.Contains(outs["cache-from"], want+"\n") && !strings.HasSuffix(outs["cache-from"], want) {
					t.Errorf("cache-from lacks %q:\n%s", want, outs["cache-from"])
				}
			}
			if got := outs["cache-to"]; got != strings.Join(tc.to, "\n") {
				t.Errorf("cache-to = %q, want %q", got, strings.Join(tc.to, "\n"))
			}
			if !strings.Contains(stdout, "::group::bkcache plan") {
				t.Errorf("plan not folded in a group:\n%s", stdout)
			}
		})
	}
}

func TestActionBadInput(t *testing.T) {
	r := newRunnerEnv(t, "push", "refs/heads/main", "push_branch.json", map[string]string{
		"cache":   "type=s3,bucket=b",
		"dry-run": "true",
	})
	code, stdout, _ := r.run(t)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(stdout, "::error::") || !strings.Contains(stdout, "region") {
		t.Fatalf("want an error annotation naming the missing key:\n%s", stdout)
	}
}

func TestActionMasksTokenFirst(t *testing.T) {
	r := newRunnerEnv(t, "push", "refs/heads/main", "push_branch.json", map[string]string{"dry-run": "true"})
	r.vars["ACTIONS_RUNTIME_TOKEN"] = "tok-123"
	r.vars["ACTIONS_RESULTS_URL"] = "http://127.0.0.1:1/"
	_, stdout, outs := r.run(t)
	if !strings.HasPrefix(stdout, "::add-mask::tok-123") {
		t.Fatalf("token not masked first:\n%s", stdout)
	}
	if strings.Contains(outs["cache-to"], "tok-123") || strings.Contains(outs["cache-from"], "tok-123") {
		t.Fatalf("token in outputs: %v", outs)
	}
	if !strings.HasPrefix(outs["cache-to"], "type=gha") {
		t.Fatalf("with a runtime token the default cache is gha, got %q", outs["cache-to"])
	}
}

func TestCLI(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no args", nil, 2, "Usage"},
		{"unknown command", []string{"frob"}, 2, `unknown command "frob"`},
		{"version", []string{"version"}, 0, "bkcache dev"},
		{"plan", []string{"plan", "--ref", "refs/heads/feature/a", "--default-branch", "main", "--cache", "type=local,dest=/c"}, 0, "src=/c/buildkit_main"},
		{"plan without ref", []string{"plan"}, 1, "--ref"},
		{"bad flag", []string{"plan", "--nope"}, 2, "flag provided but not defined"},
		{"bad cache", []string{"plan", "--ref", "main", "--cache", "type=nope"}, 1, `"nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			code := Main(context.Background(), Env{
				Args:     tc.args,
				Getenv:   func(string) string { return "" },
				ReadFile: os.ReadFile,
				Stdout:   &out,
				Stderr:   &out,
			})
			if code != tc.code || !strings.Contains(out.String(), tc.want) {
				t.Fatalf("exit %d (want %d), output lacks %q:\n%s", code, tc.code, tc.want, out.String())
			}
		})
	}
}
