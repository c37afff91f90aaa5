// Package e2e runs whole cache round trips: scopes derived from GitHub
// events, cache lines expanded by internal/plan, real builds on fresh
// buildkitd daemons (a fresh daemon is a fresh CI runner) against the real
// registry, S3 and Azure servers of internal/testenv. Cache hits are read
// from the status stream (buildkit.Result.Cached), never from log text.
package e2e

import (
	"bytes"
	"context"
	"os"
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

// dockerfile has four counted steps: RUN, COPY src/, RUN, and a COPY in a
// second stage. Changing a file under src/ re-runs everything from COPY src/
// on and leaves the first RUN cached.
const dockerfile = `ARG BASE=busybox
FROM ${BASE} AS base
RUN echo one > /one && sleep 1
COPY src/ /src/
RUN cat /src/* > /two

FROM base
COPY --from=base /two /three
`

const wantSteps = 4

// writeContext writes the Dockerfile and src/a.txt with body into a new
// directory.
func writeContext(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	setSource(t, dir, body)
	return dir
}

func setSource(t *testing.T, dir, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "src", "a.txt"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pushEvent is a push to branch of a repository whose default branch is main.
func pushEvent(branch string) scope.Event {
	return scope.Event{
		Name:       "push",
		Ref:        "refs/heads/" + branch,
		Repository: "bkcache/e2e",
		Payload:    map[string]any{"repository": map[string]any{"default_branch": "main"}},
	}
}

// expand derives the scopes of a push to branch for build name and expands
// cacheLine into a plan.
func expand(t *testing.T, branch, name, cacheLine string, opts plan.Options) plan.Plan {
	t.Helper()
	sp, err := scope.Derive(pushEvent(branch), scope.Options{Name: name})
	if err != nil {
		t.Fatalf("derive scope: %v", err)
	}
	p, err := plan.Expand([]string{cacheLine}, nil, nil, sp, opts)
	if err != nil {
		t.Fatalf("expand %q: %v", redactLine(cacheLine), err)
	}
	return p
}

// redactLine hides credentials in a cache line before it reaches the log.
func redactLine(line string) string {
	parts := strings.Split(line, ",")
	for i, p := range parts {
		if k, _, ok := strings.Cut(p, "="); ok && (k == "secret_access_key" || k == "access_key_id") {
			parts[i] = k + "=***"
		}
	}
	return strings.Join(parts, ",")
}

// build runs one build of ctxDir on addr with the given cache entries and
// fails the test when the build fails.
func build(t *testing.T, addr, ctxDir string, imports, exports []cacheentry.Entry, mod func(*buildkit.BuildOptions)) buildkit.Result {
	t.Helper()
	res, err := tryBuild(t, addr, ctxDir, imports, exports, mod)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return res
}

// tryBuild is build for builds that may fail. The plain progress goes to
// the test log only when the test fails.
func tryBuild(t *testing.T, addr, ctxDir string, imports, exports []cacheentry.Entry, mod func(*buildkit.BuildOptions)) (buildkit.Result, error) {
	t.Helper()
	env := testenv.Get()
	opts := buildkit.BuildOptions{Context: ctxDir, BuildArgs: map[string]string{"BASE": env.BaseImage}}
	if mod != nil {
		mod(&opts)
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := buildkit.Build(ctx, buildkit.Request{
		Build: opts, Imports: cacheentry.As[client.CacheOptionsEntry](imports), Exports: cacheentry.As[client.CacheOptionsEntry](exports), Builder: addr, Progress: "plain",
	}, buildkit.WithProgressOutput(&out))
	t.Logf("build on %s: steps=%d cached=%d in %s", addr, res.Steps, res.Cached, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("progress of the build on %s:\n%s", addr, out.String())
		}
	})
	return res, err
}

// steps lists the names of the counted steps whose Cached flag is cached.
func steps(res buildkit.Result, cached bool) []string {
	var out []string
	for _, v := range res.Vertices {
		if v.Step && v.Cached == cached {
			out = append(out, v.Name)
		}
	}
	return out
}

// requireAllCached fails unless every counted step of res hit the cache.
func requireAllCached(t *testing.T, what string, res buildkit.Result) {
	t.Helper()
	if res.Steps != wantSteps || res.Cached != res.Steps {
		t.Fatalf("%s: steps=%d cached=%d, want all %d cached; not cached: %q; warnings: %q",
			what, res.Steps, res.Cached, wantSteps, steps(res, false), res.Warnings)
	}
}

// requireCold fails unless res ran every step (nothing to import yet).
func requireCold(t *testing.T, res buildkit.Result) {
	t.Helper()
	if res.Steps != wantSteps || res.Cached != 0 {
		t.Fatalf("cold build: steps=%d cached=%d, want %d and 0; cached: %q", res.Steps, res.Cached, wantSteps, steps(res, true))
	}
	// Failed imports are expected (nothing exported yet); failed exports
	// would leave the next build cold.
	for _, w := range res.Warnings {
		if strings.HasPrefix(w, "cache export") {
			t.Errorf("cold build: %s", w)
		}
	}
}

// vertex returns the counted step whose name contains part.
func vertex(t *testing.T, res buildkit.Result, part string) buildkit.Vertex {
	t.Helper()
	var found []buildkit.Vertex
	for _, v := range res.Vertices {
		if v.Step && strings.Contains(v.Name, part) {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one step named like %q, found %d among %q", part, len(found), append(steps(res, true), steps(res, false)...))
	}
	return found[0]
}

// expandLines is expand for several cache lines at once.
func expandLines(t *testing.T, branch, name string, lines []string) plan.Plan {
	t.Helper()
	sp, err := scope.Derive(pushEvent(branch), scope.Options{Name: name})
	if err != nil {
		t.Fatalf("derive scope: %v", err)
	}
	p, err := plan.Expand(lines, nil, nil, sp, plan.Options{})
	if err != nil {
		t.Fatalf("expand: %v", err)
	}
	return p
}
