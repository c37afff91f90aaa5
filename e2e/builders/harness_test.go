// Package builders runs bkcache against the builders users really have,
// from scripts/testenv-builders: the docker-container builder that
// docker/setup-buildx-action creates (found from buildx's files and by
// name), two platforms under QEMU, a buildkitd behind TLS, and Docker's
// own BuildKit (the docker driver). Cache hits are counted from the status
// stream (buildkit.Result.Cached), never from log text.
package builders

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bkcache/bkcache/buildkit"
	"github.com/bkcache/bkcache/internal/cacheentry"
	"github.com/bkcache/bkcache/internal/plan"
	"github.com/bkcache/bkcache/internal/testenv"
	"github.com/bkcache/bkcache/scope"
	"github.com/moby/buildkit/client"
)

// dockerfile is tiny on purpose: arm64 runs under QEMU. Three counted steps
// per platform; the first RUN proves which machine ran it.
const dockerfile = `ARG BASE=busybox
FROM ${BASE}
RUN uname -m > /arch && echo one > /one
COPY src/ /src/
RUN cat /src/* /arch > /two
`

const stepsPerPlatform = 3

const repo = "bkcache/e2e"

// setup requires the builders environment and points the Docker CLI (which
// the docker-container connection helper runs) and builder resolution at
// its dockerd and buildx store, with nothing else to pick from.
func setup(t *testing.T) testenv.Env {
	t.Helper()
	env := testenv.Require(t, "buildkit", "registry", "builders")
	t.Setenv("DOCKER_HOST", env.DockerHost)
	t.Setenv("DOCKER_CONFIG", env.DockerConfig)
	t.Setenv("DOCKER_CONTEXT", "")
	t.Setenv("BUILDKIT_HOST", "")
	t.Setenv("BUILDX_BUILDER", "")
	t.Setenv("BUILDX_CONFIG", "")
	return env
}

// writeContext writes the Dockerfile and src/a.txt into a new directory.
func writeContext(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "src", "a.txt"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// planFor expands cacheLine and the cache-from lines for a push to main of
// build name on platform (one or several, comma-separated), as the action
// does, and fills in the runner's gha variables from runtime.
func planFor(t *testing.T, name, platform, cacheLine string, runtime map[string]string, cacheFrom ...string) plan.Plan {
	t.Helper()
	return planWith(t, name, platform, cacheLine, runtime, plan.Options{}, cacheFrom...)
}

// planWith is planFor with the plan's options (tags, image output).
func planWith(t *testing.T, name, platform, cacheLine string, runtime map[string]string, opts plan.Options, cacheFrom ...string) plan.Plan {
	t.Helper()
	ev := scope.Event{
		Name: "push", Ref: "refs/heads/main", Repository: repo,
		Payload: map[string]any{"repository": map[string]any{"default_branch": "main"}},
	}
	sp, err := scope.Derive(ev, scope.Options{Name: name, Platform: platform})
	if err != nil {
		t.Fatalf("derive scope: %v", err)
	}
	p, err := plan.Expand([]string{cacheLine}, cacheFrom, nil, sp, opts)
	if err != nil {
		t.Fatalf("expand: %v", err)
	}
	getenv := func(k string) string { return runtime[k] }
	p.Imports = plan.AddGitHubRuntime(p.Imports, getenv)
	p.Exports = plan.AddGitHubRuntime(p.Exports, getenv)
	return p
}

// build runs one build through builder ("" resolves it as the action
// does) and fails the test when the build fails. outputs are buildx
// --output entries.
func build(t *testing.T, builder, ctxDir, base string, platforms []string, imports, exports []cacheentry.Entry, outputs ...string) buildkit.Result {
	t.Helper()
	res, err := tryBuild(t, builder, ctxDir, base, platforms, imports, exports, outputs...)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return res
}

func tryBuild(t *testing.T, builder, ctxDir, base string, platforms []string, imports, exports []cacheentry.Entry, outputs ...string) (buildkit.Result, error) {
	t.Helper()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := buildkit.Build(ctx, buildkit.Request{
		Build:   buildkit.BuildOptions{Context: ctxDir, Platforms: platforms, Outputs: outputs, BuildArgs: map[string]string{"BASE": base}},
		Imports: cacheentry.As[client.CacheOptionsEntry](imports), Exports: cacheentry.As[client.CacheOptionsEntry](exports), Builder: builder, Progress: "plain",
	}, buildkit.WithProgressOutput(&out))
	t.Logf("build on %s (%s): steps=%d cached=%d in %s", res.Builder.Addr, res.Builder.Source, res.Steps, res.Cached, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("progress:\n%s", out.String())
		}
	})
	return res, err
}

func notCached(res buildkit.Result) []string {
	var out []string
	for _, v := range res.Vertices {
		if v.Step && !v.Cached {
			out = append(out, v.Name)
		}
	}
	return out
}

// requireCold fails unless every one of want steps ran.
func requireCold(t *testing.T, res buildkit.Result, want int) {
	t.Helper()
	if res.Steps != want || res.Cached != 0 {
		t.Fatalf("cold build: steps=%d cached=%d, want %d and 0", res.Steps, res.Cached, want)
	}
	for _, w := range res.Warnings {
		if strings.HasPrefix(w, "cache export") {
			t.Errorf("cold build: %s", w)
		}
	}
}

// requireWarm fails unless every one of want steps came from the cache.
func requireWarm(t *testing.T, res buildkit.Result, want int) {
	t.Helper()
	if res.Steps != want || res.Cached != want {
		t.Fatalf("warm build: steps=%d cached=%d, want all %d cached; not cached: %q; warnings: %q",
			res.Steps, res.Cached, want, notCached(res), res.Warnings)
	}
}

// docker runs the Docker CLI (with buildx as its plugin) against the
// test dockerd.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// prune empties the docker-container builder's local cache, as a new
// runner would have it.
func prune(t *testing.T, env testenv.Env) {
	t.Helper()
	docker(t, "buildx", "prune", "-af", "--builder", env.BuildxBuilder)
}

// hasStep reports whether a counted step's name contains part.
func hasStep(res buildkit.Result, part string) bool {
	for _, v := range res.Vertices {
		if v.Step && strings.Contains(v.Name, part) {
			return true
		}
	}
	return false
}
