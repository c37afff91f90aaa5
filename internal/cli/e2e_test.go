package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bkcache/bkcache/internal/testenv"
	"github.com/sirupsen/logrus"
)

// cliBuild runs `bkcache build` in-process against a real builder, with a
// local cache in cacheDir. raw is what reached logrus's own output: the
// raw `level=warning` lines a user would see on stderr.
func cliBuild(t *testing.T, addr, cacheDir, ctxDir string, extra ...string) (code int, stdout, stderr, raw string) {
	t.Helper()
	var rawLog bytes.Buffer
	logrus.SetOutput(&rawLog)
	t.Cleanup(func() { logrus.SetOutput(os.Stderr) })
	env := map[string]string{"BKCACHE_CACHE_DIR": cacheDir}
	var out, errb bytes.Buffer
	args := append([]string{"build", ctxDir, "--builder", addr, "--ref", "refs/heads/main", "--progress", "plain"}, extra...)
	code = Main(context.Background(), Env{
		Args:     args,
		Getenv:   func(k string) string { return env[k] },
		ReadFile: os.ReadFile,
		Stdout:   &out,
		Stderr:   &errb,
	})
	return code, out.String(), errb.String(), rawLog.String()
}

func writeDockerfile(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// What a user meets on a terminal, against a real buildkitd: no raw
// BuildKit log lines, a cold local scope reads as "nothing there yet", a
// build without output says so once, and a failed build says its cause once
// and leaves no cache directory behind.
func TestE2ECLIBuild(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry")
	addr := testenv.NewBuildkitd(t)

	t.Run("cold local cache", func(t *testing.T) {
		cacheDir := filepath.Join(t.TempDir(), "cache")
		ctxDir := writeDockerfile(t, fmt.Sprintf("FROM %s\nRUN echo %s > /x\n", env.BaseImage, t.Name()))
		code, stdout, stderr, raw := cliBuild(t, addr, cacheDir, ctxDir)
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		if raw != "" || strings.Contains(stderr, "level=") {
			t.Errorf("raw BuildKit log lines:\n%s%s", raw, stderr)
		}
		for _, want := range []string{
			"cache import type=local,src=" + filepath.Join(cacheDir, "buildkit_main") + ": nothing there yet",
			"no tags, outputs or push: the result stays only in the build cache\n",
		} {
			if strings.Count(stderr, want) != 1 {
				t.Errorf("stderr has %q %d times, want once:\n%s", want, strings.Count(stderr, want), stderr)
			}
		}
		if !strings.Contains(stdout, "cache-steps: 1\n") {
			t.Errorf("stdout lacks the result:\n%s", stdout)
		}
	})

	t.Run("failed build", func(t *testing.T) {
		home := t.TempDir()
		cacheDir := filepath.Join(home, ".cache", "bkcache")
		ctxDir := writeDockerfile(t, fmt.Sprintf("FROM %s\nRUN echo %s && exit 3\n", env.BaseImage, t.Name()))
		code, _, stderr, raw := cliBuild(t, addr, cacheDir, ctxDir)
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s", code, stderr)
		}
		if raw != "" {
			t.Errorf("raw BuildKit log lines:\n%s", raw)
		}
		if n := strings.Count(stderr, "error: "); n != 1 || strings.Contains(stderr, "rpc error") {
			t.Errorf("want one error line without gRPC wrapping, got:\n%s", stderr)
		}
		if _, err := os.Stat(filepath.Join(home, ".cache")); !os.IsNotExist(err) {
			t.Errorf("a failed build left %s behind (%v)", filepath.Join(home, ".cache"), err)
		}
	})

	t.Run("no such image", func(t *testing.T) {
		ctxDir := writeDockerfile(t, fmt.Sprintf("FROM %s/bkcache/no-such-image:latest\nRUN true\n", env.Registry))
		code, _, stderr, _ := cliBuild(t, addr, filepath.Join(t.TempDir(), "cache"), ctxDir)
		if code != 1 || !strings.Contains(stderr, "not found\nhint: an image named in the Dockerfile") {
			t.Errorf("exit %d, want 1 with a hint about the image:\n%s", code, stderr)
		}
	})

	t.Run("quiet", func(t *testing.T) {
		ctxDir := writeDockerfile(t, fmt.Sprintf("FROM %s\nRUN echo %s > /x\n", env.BaseImage, t.Name()))
		code, stdout, stderr, raw := cliBuild(t, addr, filepath.Join(t.TempDir(), "cache"), ctxDir, "--progress", "quiet")
		if code != 0 || stderr != "" || raw != "" {
			t.Errorf("exit %d; quiet printed:\n%s%s", code, stderr, raw)
		}
		if !strings.Contains(stdout, "cache-hits: 0\n") {
			t.Errorf("quiet lost the result:\n%s", stdout)
		}
	})
}
