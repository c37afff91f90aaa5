package contract

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bkcache/bkcache/internal/ghaction/ghactiontest"
)

// These tests pin dist/main.js's own behaviour with stand-in binaries (shell
// scripts), independent of what bkcache does.

// fakeAction lays out root/dist/main.js with a /bin/sh script as the binary
// (none if script is "").
func fakeAction(t *testing.T, script string) string {
	t.Helper()
	if script == "" {
		return fakeActionWith(t, "")
	}
	return fakeActionWith(t, "#!/bin/sh\n"+script)
}

func fakeActionWith(t *testing.T, binary string) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("stand-in binaries are shell scripts")
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "dist"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"main.js", "post.js"} {
		js, err := os.ReadFile(filepath.Join(moduleRoot(t), "dist", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "dist", f), js, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if binary != "" {
		if err := os.WriteFile(filepath.Join(root, "dist", binaryName()), []byte(binary), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

type nodeRun struct {
	cmd            *exec.Cmd
	stdout, stderr *strings.Builder
	state          string
}

func node(t *testing.T, root string, env ...string) *nodeRun {
	t.Helper()
	return nodeScript(t, root, "main.js", env...)
}

func nodeScript(t *testing.T, root, script string, env ...string) *nodeRun {
	t.Helper()
	state := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(state, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nodeTool(t), filepath.Join(root, "dist", script))
	cmd.Env = append(os.Environ(), "GITHUB_ACTIONS=true", "GITHUB_STATE="+state)
	cmd.Env = append(cmd.Env, env...)
	r := &nodeRun{cmd: cmd, stdout: &strings.Builder{}, stderr: &strings.Builder{}, state: state}
	cmd.Stdout, cmd.Stderr = r.stdout, r.stderr
	return r
}

func (r *nodeRun) run(t *testing.T) int {
	t.Helper()
	err := r.cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("node: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- stdout\n%s--- stderr\n%s", r.stdout, r.stderr)
		}
	})
	return r.cmd.ProcessState.ExitCode()
}

func TestMainJSExitCodeAndArgs(t *testing.T) {
	// A node script stands in: /bin/sh may drop INPUT_DRY-RUN (not a valid
	// shell name) from its environment.
	root := fakeActionWith(t, "#!"+nodeTool(t)+"\n"+
		`console.log("args:[" + process.argv.slice(2).join(" ") + "]");`+
		`console.log("INPUT_DRY-RUN=" + process.env["INPUT_DRY-RUN"]);`+
		`process.exit(7);`+"\n")
	r := node(t, root, "INPUT_DRY-RUN=true")
	if code := r.run(t); code != 7 {
		t.Fatalf("exit code %d, want the binary's 7", code)
	}
	if !strings.Contains(r.stdout.String(), "args:[]\n") || !strings.Contains(r.stdout.String(), "INPUT_DRY-RUN=true") {
		t.Errorf("main phase: want no args and the environment passed through, got %q", r.stdout)
	}
	b, _ := os.ReadFile(r.state)
	if m, err := ghactiontest.FileCommandMap(string(b)); err != nil || m["bkcache_js_main"] != "true" || m["bkcache_main_ran"] != "true" {
		t.Errorf("main.js state %q (%v), want bkcache_js_main=true and bkcache_main_ran=true", b, err)
	}
}

// stateEnv turns a state file into the STATE_* variables the runner gives
// the post step.
func stateEnv(t *testing.T, r *nodeRun) []string {
	t.Helper()
	b, err := os.ReadFile(r.state)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ghactiontest.FileCommandMap(string(b))
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for k, v := range m {
		env = append(env, "STATE_"+k+"="+v)
	}
	return env
}

// TestPostJSAfterFailedMain: when the main step fails before it starts the
// binary, the post step (dist/post.js, with the state the main step left)
// runs nothing, even once a binary is there.
func TestPostJSAfterFailedMain(t *testing.T) {
	root := fakeAction(t, "")
	bin := t.TempDir() // PATH with node only: no Go to build the binary with
	if err := os.Symlink(nodeTool(t), filepath.Join(bin, "node")); err != nil {
		t.Fatal(err)
	}
	main := node(t, root, "PATH="+bin)
	if code := main.run(t); code != 1 {
		t.Fatalf("main exit code %d, want 1 (no binary)", code)
	}
	state := stateEnv(t, main)
	if !slices.Contains(state, "STATE_bkcache_js_main=true") || slices.Contains(state, "STATE_bkcache_main_ran=true") {
		t.Fatalf("state after a failed main: %q", state)
	}
	if err := os.WriteFile(filepath.Join(root, "dist", binaryName()), []byte("#!/bin/sh\necho ran\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, script := range []string{"post.js", "main.js"} { // main.js: an action.yml naming it as post
		post := nodeScript(t, root, script, state...)
		if code := post.run(t); code != 0 || post.stdout.Len() != 0 {
			t.Errorf("%s as post after a failed main: exit %d, stdout %q; want 0 and nothing run", script, code, post.stdout)
		}
	}
}

// TestPostJSNeverBuilds: the post step runs `bkcache post` and nothing
// else; with the binary gone it does not build one from source.
func TestPostJSNeverBuilds(t *testing.T) {
	root := fakeAction(t, `echo "args:[$*]"`+"\n")
	r := nodeScript(t, root, "post.js", "STATE_bkcache_main_ran=true", "STATE_bkcache_js_main=true")
	if code := r.run(t); code != 0 || r.stdout.String() != "args:[post]\n" {
		t.Errorf("post.js: exit %d, stdout %q; want the binary run as `post`", code, r.stdout)
	}
	if err := os.Remove(filepath.Join(root, "dist", binaryName())); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module example.com/fake\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = nodeScript(t, root, "post.js", "STATE_bkcache_main_ran=true", "PATH="+filepath.Dir(goTool(t))+string(os.PathListSeparator)+os.Getenv("PATH"))
	if code := r.run(t); code != 0 || r.stdout.Len() != 0 {
		t.Errorf("post.js without a binary: exit %d, stdout %q; want 0 and no build", code, r.stdout)
	}
	if _, err := os.Stat(filepath.Join(root, "dist", binaryName())); err == nil {
		t.Error("post.js built the binary")
	}
}

func TestMainJSPost(t *testing.T) {
	root := fakeAction(t, `echo "args:[$*]"; exit 0`+"\n")
	r := node(t, root, "STATE_bkcache_main_ran=true", "STATE_bkcache_js_main=true")
	if code := r.run(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if got := r.stdout.String(); got != "args:[post]\n" {
		t.Errorf("post phase ran the binary with %q, want args:[post]", got)
	}

	// The main step died before the binary saved its state: nothing to clean.
	root = fakeAction(t, "echo ran; exit 3\n")
	r = node(t, root, "STATE_bkcache_js_main=true")
	if code := r.run(t); code != 0 || r.stdout.Len() != 0 {
		t.Errorf("post without bkcache_main_ran: exit %d, stdout %q; want 0 and the binary not run", code, r.stdout)
	}
}

func TestMainJSSignalPassthrough(t *testing.T) {
	root := fakeAction(t, "kill -TERM $$\nsleep 5\n")
	r := node(t, root)
	_ = r.cmd.Run()
	ws, ok := r.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("node ended with %v, want killed by SIGTERM like its child", r.cmd.ProcessState)
	}
}

func TestMainJSForwardsSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			root := fakeAction(t, "trap 'echo got-signal; exit 42' INT TERM\necho ready\nwhile :; do sleep 0.05; done\n")
			r := node(t, root)
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			r.cmd.Stdout = pw
			if err := r.cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pw.Close()
			lines := bufio.NewScanner(pr)
			if !lines.Scan() || lines.Text() != "ready" {
				t.Fatalf("child did not start: %q", lines.Text())
			}
			if err := r.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- r.cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				r.cmd.Process.Kill()
				t.Fatal("node did not exit after the signal")
			}
			if !lines.Scan() || lines.Text() != "got-signal" {
				t.Errorf("child did not receive %v", sig)
			}
			if code := r.cmd.ProcessState.ExitCode(); code != 42 {
				t.Errorf("exit code %d, want the child's 42", code)
			}
		})
	}
}

func TestMainJSMissingBinaryWithoutGo(t *testing.T) {
	root := fakeAction(t, "")
	bin := t.TempDir() // PATH with node only
	if err := os.Symlink(nodeTool(t), filepath.Join(bin, "node")); err != nil {
		t.Fatal(err)
	}
	r := node(t, root, "PATH="+bin)
	if code := r.run(t); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	out := r.stdout.String()
	if !strings.HasPrefix(out, "::error::") || !strings.Contains(out, "setup-go") || !strings.Contains(out, binaryName()) {
		t.Errorf("want one ::error:: naming the binary and how to fix it, got %q", out)
	}
}

func TestMainJSBuildsFromSource(t *testing.T) {
	root := fakeAction(t, "")
	files := map[string]string{
		"go.mod":  "module example.com/fake\n\ngo 1.21\n",
		"main.go": "package main\n\nimport (\"fmt\"; \"os\")\n\nfunc main() { fmt.Println(\"built from source\", len(os.Args)); os.Exit(5) }\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := node(t, root, "PATH="+filepath.Dir(goTool(t))+string(os.PathListSeparator)+os.Getenv("PATH"))
	if code := r.run(t); code != 5 {
		t.Fatalf("exit code %d, want the built program's 5", code)
	}
	out := r.stdout.String()
	if !strings.HasPrefix(out, "::notice::") || !strings.Contains(out, "built from source 1\n") {
		t.Errorf("want a notice, then the built binary's output; got %q", out)
	}
	if _, err := os.Stat(filepath.Join(root, "dist", binaryName())); err != nil {
		t.Errorf("binary not left in dist/: %v", err)
	}
}
