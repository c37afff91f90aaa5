// Package testenv gives end-to-end tests the real servers that
// `scripts/testenv up` starts, and fresh BuildKit daemons of their own.
//
// The servers are described by the variables in .testenv/env. Tests call
// Require, which skips when they are absent on a developer's machine but
// fails when BKCACHE_REQUIRE_E2E=1 (set by `make test` and .ci/run), so an
// end-to-end test can never silently skip in CI.
package testenv

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
)

// Env holds the addresses and credentials of the test servers.
type Env struct {
	BuildkitHost string // shared daemon, for tools; tests should prefer NewBuildkitd
	Buildkitd    string // path of the buildkitd binary
	BuildkitdCfg string // buildkitd.toml that trusts the loopback registry

	Registry  string // host:port of the plain-HTTP registry
	BaseImage string // busybox image in Registry, usable as FROM

	S3Endpoint, S3Bucket, S3Region, S3AccessKey, S3SecretKey string

	AzureAccountURL, AzureAccountName, AzureAccountKey string

	GHAURL string // base URL of the Actions cache emulator (v2, v1 and REST)

	Act string // path of nektos/act, a third-party runner for e2e/act

	// From scripts/testenv-builders (.testenv/builders.env).
	DockerHost, DockerConfig string // a dockerd and the Docker CLI config holding buildx's store
	BuildxBuilder            string // the docker-container builder made current there
	MultiBaseImage           string // busybox for linux/amd64 and linux/arm64, usable as FROM
	TLSAddr, TLSDir          string // a buildkitd on tcp:// with TLS; ca.pem, client.pem, client.key
	// A docker-container builder on Docker's default bridge network, as
	// setup-buildx-action creates it; it pulls the loopback registry's
	// images through a mirror and pushes to BridgeRegistry, the registry
	// as it reaches it (a forwarder on the bridge's gateway).
	BridgeBuilder, BridgeRegistry string
}

var loadOnce sync.Once

// load reads .testenv/env and .testenv/builders.env from the module root into the process
// environment, keeping any value already set.
func load() { loadOnce.Do(loadEnvFile) }

func loadEnvFile() {
	dir, err := os.Getwd()
	if err != nil {
		return
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return
		}
		dir = parent
	}
	for _, name := range []string{"env", "builders.env"} {
		loadFile(filepath.Join(dir, ".testenv", name))
	}
}

func loadFile(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export "))
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		v = strings.Trim(v, `"'`)
		if k == "PATH" {
			continue // tests find binaries through Env
		}
		if os.Getenv(k) == "" {
			os.Setenv(k, v)
		}
	}
}

// Get returns the environment without checking it.
func Get() Env {
	load()
	return Env{
		BuildkitHost:     os.Getenv("BUILDKIT_HOST"),
		Buildkitd:        os.Getenv("BKCACHE_TEST_BUILDKITD"),
		BuildkitdCfg:     os.Getenv("BKCACHE_TEST_BUILDKITD_CONFIG"),
		Registry:         os.Getenv("BKCACHE_TEST_REGISTRY"),
		BaseImage:        os.Getenv("BKCACHE_TEST_BASE_IMAGE"),
		S3Endpoint:       os.Getenv("BKCACHE_TEST_S3_ENDPOINT"),
		S3Bucket:         os.Getenv("BKCACHE_TEST_S3_BUCKET"),
		S3Region:         os.Getenv("BKCACHE_TEST_S3_REGION"),
		S3AccessKey:      os.Getenv("BKCACHE_TEST_S3_ACCESS_KEY"),
		S3SecretKey:      os.Getenv("BKCACHE_TEST_S3_SECRET_KEY"),
		AzureAccountURL:  os.Getenv("BKCACHE_TEST_AZURE_ACCOUNT_URL"),
		AzureAccountName: os.Getenv("BKCACHE_TEST_AZURE_ACCOUNT_NAME"),
		AzureAccountKey:  os.Getenv("BKCACHE_TEST_AZURE_ACCOUNT_KEY"),
		GHAURL:           os.Getenv("BKCACHE_TEST_GHA_URL"),
		Act:              os.Getenv("BKCACHE_TEST_ACT"),
		DockerHost:       os.Getenv("BKCACHE_TEST_DOCKER_HOST"),
		DockerConfig:     os.Getenv("BKCACHE_TEST_DOCKER_CONFIG"),
		BuildxBuilder:    os.Getenv("BKCACHE_TEST_BUILDX_BUILDER"),
		MultiBaseImage:   os.Getenv("BKCACHE_TEST_MULTI_BASE_IMAGE"),
		TLSAddr:          os.Getenv("BKCACHE_TEST_TLS_ADDR"),
		TLSDir:           os.Getenv("BKCACHE_TEST_TLS_DIR"),
		BridgeBuilder:    os.Getenv("BKCACHE_TEST_BRIDGE_BUILDER"),
		BridgeRegistry:   os.Getenv("BKCACHE_TEST_BRIDGE_REGISTRY"),
	}
}

// Require returns the environment, or skips the test when a value it needs
// is missing. With BKCACHE_REQUIRE_E2E=1 a missing value fails the test.
// need names Env fields: "buildkit", "registry", "s3", "azure", "gha",
// "act", "builders", "bridge" (both scripts/testenv-builders).
func Require(t testing.TB, need ...string) Env {
	t.Helper()
	if testing.Short() && os.Getenv("BKCACHE_REQUIRE_E2E") != "1" {
		t.Skip("end-to-end test skipped in -short mode")
	}
	e := Get()
	var missing []string
	check := func(name, v string) {
		if v == "" {
			missing = append(missing, name)
		}
	}
	for _, n := range need {
		switch n {
		case "buildkit":
			check("BUILDKIT_HOST", e.BuildkitHost)
			check("BKCACHE_TEST_BUILDKITD", e.Buildkitd)
			check("BKCACHE_TEST_BUILDKITD_CONFIG", e.BuildkitdCfg)
		case "registry":
			check("BKCACHE_TEST_REGISTRY", e.Registry)
			check("BKCACHE_TEST_BASE_IMAGE", e.BaseImage)
		case "s3":
			check("BKCACHE_TEST_S3_ENDPOINT", e.S3Endpoint)
			check("BKCACHE_TEST_S3_BUCKET", e.S3Bucket)
		case "azure":
			check("BKCACHE_TEST_AZURE_ACCOUNT_URL", e.AzureAccountURL)
			check("BKCACHE_TEST_AZURE_ACCOUNT_KEY", e.AzureAccountKey)
		case "gha":
			check("BKCACHE_TEST_GHA_URL", e.GHAURL)
		case "act":
			check("BKCACHE_TEST_ACT", e.Act)
		case "builders":
			check("BKCACHE_TEST_DOCKER_HOST", e.DockerHost)
			check("BKCACHE_TEST_DOCKER_CONFIG", e.DockerConfig)
			check("BKCACHE_TEST_BUILDX_BUILDER", e.BuildxBuilder)
			check("BKCACHE_TEST_MULTI_BASE_IMAGE", e.MultiBaseImage)
			check("BKCACHE_TEST_TLS_ADDR", e.TLSAddr)
			check("BKCACHE_TEST_TLS_DIR", e.TLSDir)
		case "bridge":
			check("BKCACHE_TEST_BRIDGE_BUILDER", e.BridgeBuilder)
			check("BKCACHE_TEST_BRIDGE_REGISTRY", e.BridgeRegistry)
		default:
			t.Fatalf("testenv.Require: unknown need %q", n)
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("test environment missing %s; run `scripts/testenv up` and `scripts/testenv-builders up` (or .ci/run)", strings.Join(missing, ", "))
		if os.Getenv("BKCACHE_REQUIRE_E2E") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return e
}

// NewBuildkitd starts a buildkitd with a fresh, empty root, as a new CI
// runner would have, and stops it when the test ends. It returns the
// daemon's address (unix://…). Use it to prove that hits came from a
// remote cache and not from local state.
func NewBuildkitd(t testing.TB) string {
	t.Helper()
	e := Require(t, "buildkit")
	root, err := os.MkdirTemp("", "bkcache-buildkitd-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(root, "buildkitd.sock")
	addr := "unix://" + sock
	logf, err := os.Create(filepath.Join(root, "buildkitd.log"))
	if err != nil {
		t.Fatal(err)
	}
	// Every buildkitd listens on /run/buildkit/otel-grpc.sock unless told
	// otherwise; two starting at once race for it and one exits.
	cmd := exec.Command(e.Buildkitd, "--root", filepath.Join(root, "state"), "--addr", addr, "--config", e.BuildkitdCfg,
		"--otel-socket-path", filepath.Join(root, "otel-grpc.sock"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting buildkitd: %v", err)
	}
	// done is closed when buildkitd exits, so the readiness loop and the
	// cleanup can both wait for it.
	done := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil {
				t.Logf("buildkitd log (last 4 KiB):\n%s", tail(b, 4096))
			}
		}
		_ = exec.Command("umount", "-R", filepath.Join(root, "state")).Run()
		_ = os.RemoveAll(root)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		if c, err := client.New(ctx, addr); err == nil {
			_, err = c.ListWorkers(ctx)
			c.Close()
			if err == nil {
				return addr
			}
		}
		select {
		case <-done:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("buildkitd exited: %v\n%s", exitErr, tail(b, 4096))
		case <-ctx.Done():
			t.Fatalf("buildkitd at %s not ready after 60s", addr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
