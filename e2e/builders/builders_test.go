package builders

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bkcache/bkcache/ghacache/emulator"
	"github.com/bkcache/bkcache/internal/plan"
	"github.com/bkcache/bkcache/internal/testenv"
	"github.com/moby/buildkit/client"
)

var twoPlatforms = []string{"linux/amd64", "linux/arm64"}

func registryLine(env testenv.Env, id string) string {
	return fmt.Sprintf("type=registry,ref=%s/e2e-builders/%s,registry.insecure=true", env.Registry, id)
}

// TestDockerContainerBuilder is the path almost every user takes:
// setup-buildx-action's docker-container builder, cold, then its local
// cache pruned as on a new runner, then warm from the registry cache.
func TestDockerContainerBuilder(t *testing.T) {
	env := setup(t)
	wantAddr := "docker-container://buildx_buildkit_" + env.BuildxBuilder + "0"
	for _, tc := range []struct{ name, builder string }{
		{"found from buildx's files", ""},
		{"by name", env.BuildxBuilder},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := testenv.RandomHex(5)
			p := planFor(t, "dc"+id, "", registryLine(env, id), nil)
			ctxDir := writeContext(t, id)
			prune(t, env)
			cold := build(t, tc.builder, ctxDir, env.MultiBaseImage, nil, p.Imports, p.Exports)
			if cold.Builder.Addr != wantAddr || cold.Builder.Source != fmt.Sprintf("buildx builder %q", env.BuildxBuilder) {
				t.Errorf("builder = %s (%s), want %s from buildx builder %q", cold.Builder.Addr, cold.Builder.Source, wantAddr, env.BuildxBuilder)
			}
			requireCold(t, cold, stepsPerPlatform)
			prune(t, env)
			warm := build(t, tc.builder, ctxDir, env.MultiBaseImage, nil, p.Imports, nil)
			requireWarm(t, warm, stepsPerPlatform)
		})
	}
}

// TestBridgeBuilder is setup-buildx-action's builder as it really is: on
// Docker's default bridge network, where the runner's loopback is out of
// reach. The base image comes through the testbed's registry mirror on the
// bridge's gateway, the registry cache through the gateway's address;
// cold, then pruned as on a new runner, then warm from the cache.
func TestBridgeBuilder(t *testing.T) {
	env := setup(t)
	testenv.Require(t, "bridge")
	wantAddr := "docker-container://buildx_buildkit_" + env.BridgeBuilder + "0"
	reachable := env
	reachable.Registry = env.BridgeRegistry
	id := testenv.RandomHex(5)
	p := planFor(t, "br"+id, "", registryLine(reachable, id), nil)
	ctxDir := writeContext(t, id)
	prune := func() { docker(t, "buildx", "prune", "-af", "--builder", env.BridgeBuilder) }
	prune()
	cold := build(t, env.BridgeBuilder, ctxDir, env.MultiBaseImage, nil, p.Imports, p.Exports)
	if cold.Builder.Addr != wantAddr {
		t.Errorf("builder = %s (%s), want %s", cold.Builder.Addr, cold.Builder.Source, wantAddr)
	}
	requireCold(t, cold, stepsPerPlatform)
	prune()
	warm := build(t, env.BridgeBuilder, ctxDir, env.MultiBaseImage, nil, p.Imports, nil)
	requireWarm(t, warm, stepsPerPlatform)
}

// TestTwoPlatforms builds linux/amd64 and linux/arm64 (under QEMU) in one
// build, cold then warm on a pruned builder, on each backend.
func TestTwoPlatforms(t *testing.T) {
	env := setup(t)
	testenv.Require(t, "azure")
	gha := startGHA(t, env)
	for _, b := range []struct {
		name string
		line func(id string) string
	}{
		{"local", func(string) string { return "type=local,dest=" + filepath.Join(t.TempDir(), "cache") }},
		{"registry", func(id string) string { return registryLine(env, id) }},
		{"gha", func(string) string { return "type=gha" }},
	} {
		t.Run(b.name, func(t *testing.T) {
			id := testenv.RandomHex(5)
			p := planFor(t, "mp"+id, strings.Join(twoPlatforms, ","), b.line(id), gha.runtime(t))
			ctxDir := writeContext(t, id)
			prune(t, env)
			out := t.TempDir()
			cold := build(t, "", ctxDir, env.MultiBaseImage, twoPlatforms, p.Imports, p.Exports, "type=local,dest="+out)
			requireCold(t, cold, 2*stepsPerPlatform)
			// Each platform's RUN ran on its own machine: arm64 under QEMU.
			for pl, machine := range map[string]string{"linux/amd64": "x86_64", "linux/arm64": "aarch64"} {
				if !hasStep(cold, "["+pl+" ") {
					t.Errorf("no step ran for %s", pl)
				}
				got, err := os.ReadFile(filepath.Join(out, strings.ReplaceAll(pl, "/", "_"), "two"))
				if err != nil || !strings.Contains(string(got), machine) {
					t.Errorf("%s: /two = %q (%v), want the machine %s", pl, got, err, machine)
				}
			}
			prune(t, env)
			warm := build(t, "", ctxDir, env.MultiBaseImage, twoPlatforms, p.Imports, nil)
			requireWarm(t, warm, 2*stepsPerPlatform)
		})
	}
}

// TestMatrixThenMultiPlatform runs two single-platform matrix jobs on one
// cache (the plan gives each its platform-suffixed scope), then a
// multi-platform build that reads both through cache-from lines, as in the
// README's recipe.
func TestMatrixThenMultiPlatform(t *testing.T) {
	env := setup(t)
	id := testenv.RandomHex(5)
	line := registryLine(env, id)
	name := "app" + id
	ctxDir := writeContext(t, id)
	var cacheFrom []string
	for _, pl := range twoPlatforms {
		p := planFor(t, name, pl, line, nil)
		t.Logf("matrix job %s: cache-to %s", pl, p.Exports[0].Redacted())
		prune(t, env)
		res := build(t, "", ctxDir, env.MultiBaseImage, []string{pl}, p.Imports, p.Exports)
		requireCold(t, res, stepsPerPlatform)
		// The README's recipe: the scope is <cache-scope>-<platform>_<branch>.
		cacheFrom = append(cacheFrom, fmt.Sprintf("type=registry,ref=%s/e2e-builders/%s:%s-%s_main,registry.insecure=true",
			env.Registry, id, name, strings.ReplaceAll(pl, "/", "-")))
	}
	multi := planFor(t, name, strings.Join(twoPlatforms, ","), line, nil, cacheFrom...)
	prune(t, env)
	res := build(t, "", ctxDir, env.MultiBaseImage, twoPlatforms, multi.Imports, multi.Exports)
	requireWarm(t, res, 2*stepsPerPlatform)
}

// TestTLSBuilder builds on a buildkitd that demands TLS with a client
// certificate, given as an address and as a buildx remote builder, and
// refuses every half TLS configuration before dialing.
func TestTLSBuilder(t *testing.T) {
	env := setup(t)
	ca, cert, key := filepath.Join(env.TLSDir, "ca.pem"), filepath.Join(env.TLSDir, "client.pem"), filepath.Join(env.TLSDir, "client.key")
	addr := fmt.Sprintf("%s?cacert=%s&cert=%s&key=%s", env.TLSAddr, ca, cert, key)

	t.Run("cold then warm", func(t *testing.T) {
		id := testenv.RandomHex(5)
		p := planFor(t, "tls"+id, "", registryLine(env, id), nil)
		ctxDir := writeContext(t, id)
		pruneTLS(t, env.TLSAddr, ca, cert, key)
		cold := build(t, addr, ctxDir, env.MultiBaseImage, nil, p.Imports, p.Exports)
		requireCold(t, cold, stepsPerPlatform)
		pruneTLS(t, env.TLSAddr, ca, cert, key)
		warm := build(t, addr, ctxDir, env.MultiBaseImage, nil, p.Imports, nil)
		requireWarm(t, warm, stepsPerPlatform)
	})

	t.Run("buildx remote builder by name", func(t *testing.T) {
		name := "bkcache-tls-" + testenv.RandomHex(5)
		docker(t, "buildx", "create", "--name", name, "--driver", "remote",
			"--driver-opt", fmt.Sprintf("cacert=%s,cert=%s,key=%s", ca, cert, key), env.TLSAddr)
		t.Cleanup(func() { docker(t, "buildx", "rm", name) })
		res := build(t, name, writeContext(t, name), env.MultiBaseImage, nil, nil, nil)
		if res.Builder.CACert != ca || res.Builder.Cert != cert || res.Builder.Key != key || res.Builder.Addr != env.TLSAddr {
			t.Errorf("builder = %+v, want %s with the TLS files of buildx builder %q", res.Builder, env.TLSAddr, name)
		}
	})

	t.Run("half configurations are refused", func(t *testing.T) {
		for _, tc := range []struct{ name, query, want string }{
			{"servername alone", "servername=127.0.0.1", "(servername given) but cacert missing"},
			{"cert and key without cacert", "cert=" + cert + "&key=" + key, "(cert, key given) but cacert missing"},
			{"cacert and cert without key", "cacert=" + ca + "&cert=" + cert, "(cacert, cert given) but key missing"},
			{"key alone", "key=" + key, "(key given) but cacert, cert missing"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res, err := tryBuild(t, env.TLSAddr+"?"+tc.query, writeContext(t, tc.name), env.MultiBaseImage, nil, nil, nil)
				want := "builder: TLS is on for " + env.TLSAddr + " " + tc.want
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("err = %v, want it to contain %q", err, want)
				}
				if res.Builder.Addr != "" || res.Steps != 0 {
					t.Errorf("refused configuration reached a builder: %+v", res)
				}
			})
		}
	})
}

// pruneTLS empties the TLS buildkitd's local cache.
func pruneTLS(t *testing.T, addr, ca, cert, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.New(ctx, addr, client.WithServerConfig("127.0.0.1", ca), client.WithCredentials(cert, key))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Prune(ctx, nil, client.PruneAll); err != nil {
		t.Fatalf("prune: %v", err)
	}
}

// TestDockerDriver builds through Docker's own BuildKit (dockerd 20.10,
// no containerd image store): the build succeeds, and the one warning
// says exactly what happened to the cache and how to keep it.
func TestDockerDriver(t *testing.T) {
	env := setup(t)
	id := testenv.RandomHex(5)
	p := planFor(t, "dd"+id, "", registryLine(env, id), nil)
	ctxDir := writeContext(t, id)

	t.Run("by name", func(t *testing.T) {
		res := build(t, "default", ctxDir, env.BaseImage, nil, p.Imports, p.Exports)
		if !res.Builder.Docker || res.Builder.Addr != env.DockerHost {
			t.Errorf("builder = %+v, want the docker driver at %s", res.Builder, env.DockerHost)
		}
		if res.Steps != stepsPerPlatform {
			t.Errorf("steps = %d, want %d", res.Steps, stepsPerPlatform)
		}
		want := `builder: buildx builder "default" (docker driver) is Docker's own BuildKit without the containerd image store, ` +
			"which cannot use this cache: building without cache export " + p.Exports[0].Redacted() + ". " +
			"To keep the cache, run docker/setup-buildx-action before this step " +
			"(its docker-container builder exports every cache type), or use cache type=inline"
		if len(res.Warnings) != 1 || res.Warnings[0] != want {
			t.Errorf("warnings = %q\nwant exactly [%q]", res.Warnings, want)
		}
		// What the build ran with: the registry imports, no export.
		if len(res.Exports) != 0 || len(res.Imports) != len(p.Imports) || len(p.Imports) == 0 {
			t.Errorf("Result.Imports %v, Exports %v; want the %d registry imports and no export", res.Imports, res.Exports, len(p.Imports))
		}
	})

	t.Run("inline cache and push through Docker", func(t *testing.T) {
		tag := fmt.Sprintf("%s/e2e-builders/%s-img:main", env.Registry, id)
		inline := planWith(t, "inline"+id, "", "type=inline", nil, plan.Options{Tags: []string{tag}, HasImageOutput: true})
		res := build(t, "default", ctxDir, env.BaseImage, nil, inline.Imports, inline.Exports, "type=image,name="+tag+",push=true")
		if len(res.Warnings) != 0 {
			t.Errorf("warnings = %q, want none: inline cache works on Docker's own BuildKit", res.Warnings)
		}
		// The pushed image carries the inline cache: with Docker's build
		// cache and the image gone, every step comes from the registry.
		docker(t, "builder", "prune", "-af")
		docker(t, "rmi", tag)
		warm := build(t, "default", ctxDir, env.BaseImage, nil, inline.Imports, nil)
		requireWarm(t, warm, stepsPerPlatform)
	})

	t.Run("two platforms are refused with the fix", func(t *testing.T) {
		_, err := tryBuild(t, "default", ctxDir, env.MultiBaseImage, twoPlatforms, nil, nil)
		want := `builder: buildx builder "default" (docker driver) cannot build several platforms (linux/amd64,linux/arm64): ` +
			"Docker's own BuildKit needs the containerd image store for that. Run docker/setup-qemu-action and docker/setup-buildx-action " +
			"before this step (its docker-container builder builds every platform), or turn on Docker's containerd image store"
		if err == nil || err.Error() != want {
			t.Errorf("err = %v\nwant %s", err, want)
		}
	})

	t.Run("a removed current builder falls back to it", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "buildx", "instances"), 0o700); err != nil {
			t.Fatal(err)
		}
		current := fmt.Sprintf(`{"Key":%q,"Name":"gone","Global":false}`, env.DockerHost)
		if err := os.WriteFile(filepath.Join(dir, "buildx", "current"), []byte(current), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("DOCKER_CONFIG", dir)
		res := build(t, "", ctxDir, env.BaseImage, nil, nil, nil)
		want := `buildx's default builder "default" (docker driver), as the current builder "gone" no longer exists`
		if !res.Builder.Docker || res.Builder.Source != want {
			t.Errorf("builder = %+v, want the docker driver from %q", res.Builder, want)
		}
	})
}

// ghaService is an Actions cache emulator in this process, with its blobs
// in Azurite, as e2e/ghaaction runs one.
type ghaService struct {
	emu *emulator.Emulator
	url string
}

func startGHA(t *testing.T, env testenv.Env) *ghaService {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := emulator.NewAzureStore(ctx, emulator.AzureConfig{
		AccountURL: env.AzureAccountURL, AccountName: env.AzureAccountName, AccountKey: env.AzureAccountKey,
		Container: "builders-" + testenv.RandomHex(5),
	})
	if err != nil {
		t.Fatal(err)
	}
	emu, err := emulator.New(emulator.Config{Secret: []byte(testenv.RandomHex(5) + testenv.RandomHex(5)), Blobs: store})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(emu)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return &ghaService{emu: emu, url: srv.URL + "/"}
}

// runtime is what a runner on a push to main gives the action.
func (s *ghaService) runtime(t *testing.T) map[string]string {
	t.Helper()
	tok, err := s.emu.Token(emulator.TokenOptions{Repo: repo, Write: "refs/heads/main"})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"ACTIONS_RUNTIME_TOKEN": tok, "ACTIONS_RESULTS_URL": s.url, "ACTIONS_CACHE_SERVICE_V2": "true"}
}

// TestStoppedBuilder: a docker-container builder whose container stopped
// fails before the build, naming the builder and how to start it.
func TestStoppedBuilder(t *testing.T) {
	env := setup(t)
	container := "buildx_buildkit_" + env.BuildxBuilder + "0"
	docker(t, "stop", container)
	t.Cleanup(func() { docker(t, "buildx", "inspect", "--bootstrap", env.BuildxBuilder) })
	_, err := tryBuild(t, env.BuildxBuilder, writeContext(t, "stopped"), env.MultiBaseImage, nil, nil, nil)
	want := fmt.Sprintf("builder docker-container://%s (from buildx builder %q) does not answer: ", container, env.BuildxBuilder)
	fix := "start the builder's container: `docker buildx inspect --bootstrap` with its buildx builder " +
		"(docker/setup-buildx-action does this), or `docker start " + container + "`"
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), fix) {
		t.Fatalf("err = %v\nwant %q … %q", err, want, fix)
	}
}
