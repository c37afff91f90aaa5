package builders

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bkcache/bkcache/ghacache/emulator"
	"github.com/bkcache/bkcache/internal/testenv"
)

// TestEndpointBridgeBuilder: a docker-container builder on Docker's
// default bridge network, as docker/setup-buildx-action creates it (the
// testbed's own builder uses network=host), cannot reach the runner's
// loopback; bkcache serves the gha cache endpoint on the bridge's gateway
// address instead. A cold build exports through it, and after the
// builder is pruned every step is cached (the status stream's count).
// The Dockerfile is FROM scratch: the bridge builder cannot pull from the
// testbed's loopback registry.
func TestEndpointBridgeBuilder(t *testing.T) {
	env := setup(t)
	testenv.Require(t, "azure")
	// A buildx store of the test's own, so the shared one is untouched.
	cfg := t.TempDir()
	if err := os.MkdirAll(filepath.Join(cfg, "cli-plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(env.DockerConfig, "cli-plugins", "docker-buildx"), filepath.Join(cfg, "cli-plugins", "docker-buildx")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", cfg)
	image := strings.TrimSpace(docker(t, "inspect", "--format", "{{.Config.Image}}", "buildx_buildkit_"+env.BuildxBuilder+"0"))
	name := "bridge" + testenv.RandomHex(4)
	docker(t, "buildx", "create", "--name", name, "--driver", "docker-container", "--driver-opt", "image="+image, "--bootstrap")
	t.Cleanup(func() { _ = exec.Command("docker", "buildx", "rm", "-f", name).Run() })
	if mode := strings.TrimSpace(docker(t, "inspect", "--format", "{{.HostConfig.NetworkMode}}", "buildx_buildkit_"+name+"0")); mode == "host" {
		t.Fatalf("the builder is on the host network")
	}

	emu := testenv.NewGHAEmulator(t, "bridge", emulator.Config{})
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	tok, err := emu.Token(emulator.TokenOptions{Repo: repo, Write: "refs/heads/main", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "bkcache")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/bkcache/bkcache").CombinedOutput(); err != nil {
		t.Fatalf("building bkcache: %v\n%s", err, out)
	}
	dir := t.TempDir()
	files := map[string]string{"Dockerfile": "FROM scratch\nCOPY a.txt /a\nCOPY b.txt /b\n", "a.txt": testenv.RandomHex(1 << 16), "b.txt": name}
	for f, body := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	build := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		// type=gha with no dataplane=: the default, the cache endpoint.
		cmd := exec.CommandContext(ctx, bin, append([]string{"build", "--builder", name, "--cache", "type=gha",
			"--ref", "refs/heads/main", "--cache-scope", name, "--progress", "plain"}, append(args, dir)...)...)
		cmd.Env = append(os.Environ(), "ACTIONS_RUNTIME_TOKEN="+tok, "ACTIONS_RESULTS_URL="+srv.URL+"/", "ACTIONS_CACHE_SERVICE_V2=true")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bkcache build: %v\n%s", err, out)
		}
		if !regexp.MustCompile(`through the cache endpoint at http://[0-9.]+:[0-9]+/: the docker-container builder \S+ is on the bridge network, whose gateway`).Match(out) {
			t.Errorf("the log does not say the build went through the endpoint on the bridge gateway:\n%s", out)
		}
		if strings.Contains(string(out), tok) {
			t.Errorf("the runtime token is in the output")
		}
		return string(out)
	}
	hits := func(out string) string {
		m := regexp.MustCompile(`(?m)^cache-hits: (\d+)\ncache-steps: (\d+)$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no cache-hits/cache-steps lines:\n%s", out)
		}
		return m[1] + "/" + m[2]
	}
	if got := hits(build()); got != "0/2" {
		t.Errorf("cold build: %s cached, want 0/2", got)
	}
	docker(t, "buildx", "prune", "-af", "--builder", name)
	if got := hits(build("-o", "type=local,dest="+t.TempDir())); got != "2/2" {
		t.Errorf("warm build on the pruned builder: %s cached, want 2/2", got)
	}
}
