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

// TestEndpointBridgeBuilder: the testbed's docker-container builder on
// Docker's default bridge network, as docker/setup-buildx-action creates
// it (the other one uses network=host), cannot reach the runner's
// loopback; bkcache serves the gha cache endpoint on the bridge's gateway
// address instead. A cold build pulls the base image (through the
// testbed's mirror on the gateway), exports through the endpoint and
// pushes its image; after the builder is pruned every step is cached (the
// status stream's count).
func TestEndpointBridgeBuilder(t *testing.T) {
	env := setup(t)
	testenv.Require(t, "azure", "bridge")
	name := env.BridgeBuilder
	if mode := strings.TrimSpace(docker(t, "inspect", "--format", "{{.HostConfig.NetworkMode}}", "buildx_buildkit_"+name+"0")); mode == "host" {
		t.Fatalf("the builder is on the host network")
	}
	docker(t, "buildx", "prune", "-af", "--builder", name)
	scope := "bridge" + testenv.RandomHex(4)

	emu := testenv.NewGHAEmulator(t, scope, emulator.Config{})
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
	files := map[string]string{"Dockerfile": "FROM " + env.BaseImage + "\nCOPY a.txt /a\nRUN cat /a > /b\n", "a.txt": testenv.RandomHex(1 << 16)}
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
			"--ref", "refs/heads/main", "--cache-scope", scope, "--progress", "plain"}, append(args, dir)...)...)
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
	image := env.BridgeRegistry + "/bkcache-e2e/" + scope + ":latest"
	if got := hits(build("--tags", image, "--push")); got != "0/2" {
		t.Errorf("cold build: %s cached, want 0/2", got)
	}
	docker(t, "buildx", "prune", "-af", "--builder", name)
	if got := hits(build("-o", "type=local,dest="+t.TempDir())); got != "2/2" {
		t.Errorf("warm build on the pruned builder: %s cached, want 2/2", got)
	}
}
