package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bkcache/bkcache/internal/config"
	"github.com/bkcache/bkcache/internal/ghaction/ghactiontest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
			to: []string{"type=registry,ref=" + repo + ":buildkit_pr-17,ignore-error=true,mode=max"},
		},
		{
			name: "tag", event: "push", ref: "refs/tags/v1.2.3", payload: "push_tag.json",
			scope: "buildkit_tag-v1.2.3",
			from: []string{
				"type=registry,ref=" + repo + ":buildkit_tag-v1.2.3",
				"type=registry,ref=" + repo + ":buildkit_develop",
			},
			to: []string{"type=registry,ref=" + repo + ":buildkit_tag-v1.2.3,ignore-error=true,mode=max"},
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
	tok := mintToken(t, "refs/heads/main") // gha writes only with a readable claim
	r.vars["ACTIONS_RUNTIME_TOKEN"] = tok
	r.vars["ACTIONS_RESULTS_URL"] = "http://127.0.0.1:1/"
	_, stdout, outs := r.run(t)
	if !strings.HasPrefix(stdout, "::add-mask::"+tok) {
		t.Fatalf("token not masked first:\n%s", stdout)
	}
	if strings.Contains(outs["cache-to"], tok) || strings.Contains(outs["cache-from"], tok) {
		t.Fatalf("token in outputs: %v", outs)
	}
	if !strings.HasPrefix(outs["cache-to"], "type=gha") {
		t.Fatalf("with a runtime token the default cache is gha, got %q", outs["cache-to"])
	}
}

// cliRun runs the CLI with an empty environment.
func cliRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), Env{
		Args:     args,
		Getenv:   func(string) string { return "" },
		ReadFile: os.ReadFile,
		Stdout:   &out,
		Stderr:   &errb,
	})
	return code, out.String(), errb.String()
}

func TestCLI(t *testing.T) {
	plan := []string{"plan", "--ref", "refs/heads/feature/a", "--default-branch", "main"}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no args", nil, 2, "Usage"},
		{"unknown command", []string{"frob"}, 2, `unknown command "frob"`},
		{"misspelt command", []string{"biuld"}, 2, `did you mean "build"?`},
		{"version", []string{"version"}, 0, "bkcache dev"},
		{"--version", []string{"--version"}, 0, "bkcache dev"},
		{"plan", append(plan, "--cache", "type=local,dest=/c"), 0, "src=/c/buildkit_main"},
		{"flags after the command's arguments", []string{"plan", "--cache", "type=local,dest=/c", "--ref=main"}, 0, "dest=/c/buildkit_main"},
		{"plan without ref", []string{"plan"}, 1, "--ref"},
		{"unknown flag", []string{"plan", "--nope"}, 2, "bkcache: unknown flag: --nope\nSee 'bkcache plan --help'.\n"},
		{"build-only flag on plan", append(plan, "--push"), 2, "unknown flag: --push"},
		{"plan takes no context", append(plan, "./app"), 2, "takes no arguments"},
		{"two contexts", []string{"build", "a", "b"}, 2, "one build context expected"},
		{"context twice", []string{"build", "a", "--context", "b", "--dry-run", "--ref", "main"}, 2, "given twice"},
		{"bad cache", []string{"plan", "--ref", "main", "--cache", "type=nope"}, 1, `"nope"`},
		{"bad progress names the input", []string{"build", ".", "--progress", "loud", "--ref", "main"}, 1, `input "progress": "loud" is not allowed (allowed: auto, plain, rawjson, quiet)`},
		{"completion", []string{"completion", "bash"}, 0, "bash completion"},
		{"completes --progress", []string{"__complete", "build", "--progress", ""}, 0, "auto\nplain\nrawjson\nquiet\n"},
		{"unreachable builder", []string{"build", writeDockerfile(t, "FROM scratch\n"), "--ref", "main", "--builder", "unix:///nonexistent/buildkitd.sock", "--cache", "type=local,dest=" + t.TempDir()}, 1, "(Unavailable)\nhint: the builder does not answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := cliRun(t, tc.args...)
			if code != tc.code || !strings.Contains(stdout+stderr, tc.want) {
				t.Fatalf("exit %d (want %d), output lacks %q:\n%s%s", code, tc.code, tc.want, stdout, stderr)
			}
		})
	}
}

// TestCLIFlagsAnywhere: `docker build` users put flags after the context.
// A dry run shows the context in the plan without contacting a builder.
func TestCLIFlagsAnywhere(t *testing.T) {
	for _, args := range [][]string{
		{"build", "./dir", "--ref", "refs/heads/main", "--dry-run", "--tag", "x", "--cache-scope", "app"},
		{"build", "--ref", "refs/heads/main", "./dir", "--dry-run", "-t", "x", "--cache-scope=app"},
		{"build", "--dry-run", "--ref=refs/heads/main", "--tags", "x", "--cache-scope", "app", "--", "./dir"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := cliRun(t, args...)
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, stderr)
			}
			if !strings.Contains(stdout, "cache-scope: app_main") {
				t.Errorf("stdout lacks the export scope:\n%s", stdout)
			}
		})
	}
}

// The plan prints its cache lines once: as outputs on stdout.
func TestCLIPlanPrintsLinesOnce(t *testing.T) {
	_, stdout, stderr := cliRun(t, "plan", "--ref", "main", "--cache", "type=local,dest=/c")
	const line = "type=local,src=/c/buildkit_main"
	if n := strings.Count(stdout+stderr, line); n != 1 {
		t.Fatalf("%q printed %d times:\n--- stdout\n%s--- stderr\n%s", line, n, stdout, stderr)
	}
	if !strings.Contains(stderr, "export scope buildkit_main (this branch)") {
		t.Errorf("stderr lacks the scopes:\n%s", stderr)
	}
}

// --progress quiet prints only the result.
func TestCLIQuiet(t *testing.T) {
	_, stdout, stderr := cliRun(t, "build", ".", "--ref", "main", "--dry-run", "--progress", "quiet", "--cache", "type=local,dest=/c")
	if stderr != "" {
		t.Errorf("quiet printed on stderr:\n%s", stderr)
	}
	if !strings.Contains(stdout, "cache-to: type=local,dest=/c/buildkit_main") {
		t.Errorf("quiet lost the result:\n%s", stdout)
	}
}

func TestHelp(t *testing.T) {
	_, build, _ := cliRun(t, "build", "--help")
	_, plan, _ := cliRun(t, "plan", "--help")
	for _, want := range []string{"bkcache build [flags] PATH", "Examples:", "  -t, --tags", "  -f, --file", "--cache-scope name", "--progress"} {
		if !strings.Contains(build, want) {
			t.Errorf("build --help lacks %q:\n%s", want, build)
		}
	}
	for _, not := range []string{"--push", "--tags", "--outputs", "--github-token", "--cache-cleanup"} {
		if strings.Contains(plan, not) {
			t.Errorf("plan --help lists %s:\n%s", not, plan)
		}
	}
	if strings.Contains(build, "--github-token") {
		t.Errorf("build --help lists an action-only input:\n%s", build)
	}
}

// Every input reaches the CLI: through the table, or as a generic build
// flag when it is new.
func TestEveryInputIsAFlag(t *testing.T) {
	spec := map[string]flagSpec{}
	for _, f := range inputFlags {
		spec[f.input] = f
	}
	for _, in := range config.Inputs {
		f, ok := spec[in]
		if ok && f.on == actionOnly {
			continue
		}
		code, _, stderr := cliRun(t, "build", "--help", "--"+in+"=true")
		if code == 2 {
			t.Errorf("input %q is not a build flag: %s", in, stderr)
		}
	}
}

func TestDescribeError(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, `connection error: desc = "transport: dial unix /x: connect: no such file or directory"`)
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"plain", errors.New("input \"cache\": bad"), "input \"cache\": bad"},
		{"grpc once", fmt.Errorf("build on unix:///x: %w", unavailable),
			`build on unix:///x: connection error: desc = "transport: dial unix /x: connect: no such file or directory" (Unavailable)` +
				"\nhint: the builder does not answer"},
		{"doubled rpc prefix", fmt.Errorf("build on x: rpc error: code = Unknown desc = %w", status.Error(codes.PermissionDenied, "open /run/buildkit: permission denied")),
			"build on x: open /run/buildkit: permission denied (PermissionDenied)\nhint: access was refused"},
		{"no such image", status.Error(codes.Unknown, `failed to resolve source metadata for 127.0.0.1:5000/nope:latest: not found`),
			"failed to resolve source metadata for 127.0.0.1:5000/nope:latest: not found\nhint: an image named in the Dockerfile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, hint := describeError(tc.err)
			got := msg
			if hint != "" {
				got += "\nhint: " + hint
			}
			if !strings.HasPrefix(got, tc.want) || strings.Contains(got, "rpc error") {
				t.Errorf("describeError =\n%s\nwant prefix\n%s", got, tc.want)
			}
		})
	}
}
