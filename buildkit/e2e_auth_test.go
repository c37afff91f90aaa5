package buildkit

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bkcache/bkcache/internal/testenv"
	// bcrypt writes the htpasswd file of the auth-enforcing registry; x/crypto
	// is already in BuildKit's dependency graph.
	"golang.org/x/crypto/bcrypt"
)

// startAuthRegistry starts a docker-registry that demands basic auth for
// user:pass and returns its host:port.
func startAuthRegistry(t *testing.T, user, pass string) string {
	t.Helper()
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return startRegistry(t, fmt.Sprintf("{htpasswd: {realm: bkcache-test, path: %s}}", filepath.Join(dir, "htpasswd")))
}

// startRegistry starts a docker-registry with the given `auth:` section
// (YAML) and returns its host:port once it answers 401.
func startRegistry(t *testing.T, auth string) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		if os.Getenv("BKCACHE_REQUIRE_E2E") == "1" {
			t.Fatalf("docker-registry not on PATH: %v", err)
		}
		t.Skipf("docker-registry not on PATH: %v", err)
	}
	dir := t.TempDir()
	addr := closedAddr(t)
	cfg := fmt.Sprintf(`version: 0.1
storage: {filesystem: {rootdirectory: %s}}
http: {addr: %s}
auth: %s
`, filepath.Join(dir, "data"), addr, auth)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return addr
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("auth registry at %s not ready: %v\n%s", addr, err, b)
		}
	}
}

func TestE2ERegistryAuthFromDockerConfig(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry")
	user, pass := "ci", "pw-"+testenv.RandomHex(6)
	reg := startAuthRegistry(t, user, pass)
	addr := testenv.NewBuildkitd(t)
	ctxDir := writeContext(t, fmt.Sprintf("FROM %s\nRUN echo %s > /id\n", env.BaseImage, testenv.RandomHex(6)), map[string]string{})
	req := Request{Build: BuildOptions{Context: ctxDir, Tags: []string{reg + "/private/app:1"}, Push: true}}

	t.Run("no credentials", func(t *testing.T) {
		empty := t.TempDir() // anonymous
		_, err := build(t, addr, req, WithGetenv(dockerConfigEnv(empty)))
		if err == nil {
			t.Fatal("push to an auth-only registry succeeded without credentials; the test proves nothing")
		}
		if msg := strings.ToLower(err.Error()); !strings.Contains(msg, "401") && !strings.Contains(msg, "unauthorized") {
			t.Errorf("push failed, but not for lack of credentials: %v", err)
		}
	})
	t.Run("credentials from config.json", func(t *testing.T) {
		dir := t.TempDir()
		auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
		cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg, auth)
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		res, err := build(t, addr, req, WithGetenv(dockerConfigEnv(dir)))
		if err != nil {
			t.Fatalf("push with credentials: %v", err)
		}
		if !strings.HasPrefix(res.Digest, "sha256:") {
			t.Errorf("Digest = %q", res.Digest)
		}
		for _, w := range res.Warnings {
			if strings.Contains(w, pass) {
				t.Errorf("password in warning %q", w)
			}
		}
	})
}

// dockerConfigEnv is an environment whose only variable is DOCKER_CONFIG.
func dockerConfigEnv(dir string) func(string) string {
	return func(k string) string {
		if k == "DOCKER_CONFIG" {
			return dir
		}
		return ""
	}
}
