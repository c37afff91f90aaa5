// Package fidelity proves the Actions cache emulator faithful by running
// two independent, real clients against it, with blobs in Azurite:
// BuildKit's own `gha` cache backend inside a real buildkitd, and the
// official @actions/cache npm client.
package fidelity

import (
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/moby/buildkit/client"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"
)

// startEmulator serves a fresh emulator on loopback, storing blobs in a
// fresh Azurite container.
func startEmulator(t *testing.T) (*emulator.Emulator, string) {
	t.Helper()
	emu := testenv.NewGHAEmulator(t, "fidelity", emulator.Config{Logf: t.Logf})
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	return emu, srv.URL + "/"
}

func mustToken(t *testing.T, emu *emulator.Emulator, o emulator.TokenOptions) string {
	t.Helper()
	tok, err := emu.Token(o)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// stepName matches the Dockerfile frontend's step vertices, "[2/4] RUN …",
// except the FROM source: on a fresh builder BuildKit resolves the base
// image without reporting that vertex Cached, with or without a cache.
var stepName = regexp.MustCompile(`^\[\d+/\d+\] `)

func isStep(name string) bool {
	return stepName.MatchString(name) && !strings.HasPrefix(stepName.ReplaceAllString(name, ""), "FROM ")
}

type buildResult struct {
	steps, cached int
	names         []string
}

// build solves dir's Dockerfile on the buildkitd at addr and counts the
// Dockerfile steps and how many of them BuildKit reported Cached.
func build(t *testing.T, addr, dir string, imports, exports []client.CacheOptionsEntry) buildResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := client.New(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fs, err := fsutil.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *client.SolveStatus)
	vertices := map[string]*client.Vertex{}
	var order []string
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error {
		_, err := c.Solve(ctx, nil, client.SolveOpt{
			Frontend:      "dockerfile.v0",
			FrontendAttrs: map[string]string{"filename": "Dockerfile"},
			LocalMounts:   map[string]fsutil.FS{"context": fs, "dockerfile": fs},
			CacheImports:  imports,
			CacheExports:  exports,
		}, ch)
		return err
	})
	eg.Go(func() error {
		for s := range ch {
			for _, v := range s.Vertexes {
				if _, ok := vertices[v.Digest.String()]; !ok {
					order = append(order, v.Digest.String())
				}
				vertices[v.Digest.String()] = v
			}
		}
		return nil
	})
	if err := eg.Wait(); err != nil {
		t.Fatalf("solve: %v", err)
	}
	var r buildResult
	for _, d := range order {
		v := vertices[d]
		if !isStep(v.Name) {
			continue
		}
		r.steps++
		mark := " "
		if v.Cached {
			r.cached++
			mark = "CACHED"
		}
		r.names = append(r.names, mark+" "+v.Name)
	}
	return r
}

func writeDockerfile(t *testing.T, base string) string {
	t.Helper()
	dir := t.TempDir()
	nonce := testenv.RandomHex(8)
	df := fmt.Sprintf(`FROM %s
RUN echo %s > /nonce && sleep 1
RUN dd if=/dev/urandom of=/blob bs=1024 count=256 2>/dev/null
RUN cat /nonce /blob > /both && sleep 1
`, base, nonce)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func ghaAttrs(url, token string, extra ...string) map[string]string {
	a := map[string]string{"url_v2": url, "url": url, "token": token, "version": "2", "scope": "buildkit"}
	for i := 0; i+1 < len(extra); i += 2 {
		a[extra[i]] = extra[i+1]
	}
	return a
}

// TestBuildKitGHABackend exports with BuildKit's stock gha backend on one
// buildkitd and imports on fresh ones, for the branch itself and for a
// pull request that may read the branch.
func TestBuildKitGHABackend(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "azure")
	emu, url := startEmulator(t)
	dir := writeDockerfile(t, env.BaseImage)
	const repo = "bkcache/fidelity"
	mainTok := mustToken(t, emu, emulator.TokenOptions{Repo: repo, Write: "refs/heads/main"})

	cold := build(t, testenv.NewBuildkitd(t), dir, nil,
		[]client.CacheOptionsEntry{{Type: "gha", Attrs: ghaAttrs(url, mainTok, "mode", "max")}})
	if cold.steps != 3 || cold.cached != 0 {
		t.Fatalf("cold build: %d steps, %d cached; want a real build:\n%s", cold.steps, cold.cached, strings.Join(cold.names, "\n"))
	}
	var mainKeys int
	for _, e := range emu.Entries(repo) {
		if e.Scope != "refs/heads/main" {
			t.Fatalf("main's export wrote scope %q", e.Scope)
		}
		mainKeys++
	}
	if mainKeys < 4 { // three layers and the index
		t.Fatalf("export left %d entries", mainKeys)
	}

	tests := []struct {
		name string
		opts emulator.TokenOptions
	}{
		{"same branch", emulator.TokenOptions{Repo: repo, Write: "refs/heads/main"}},
		{"pull request reads main", emulator.TokenOptions{Repo: repo, Write: "refs/pull/1/merge", Read: []string{"refs/heads/main"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := mustToken(t, emu, tt.opts)
			warm := build(t, testenv.NewBuildkitd(t), dir,
				[]client.CacheOptionsEntry{{Type: "gha", Attrs: ghaAttrs(url, tok)}},
				[]client.CacheOptionsEntry{{Type: "gha", Attrs: ghaAttrs(url, tok, "mode", "max")}})
			if warm.steps != cold.steps || warm.cached != warm.steps {
				t.Fatalf("fresh builder: %d of %d steps cached, want all:\n%s", warm.cached, warm.steps, strings.Join(warm.names, "\n"))
			}
		})
	}

	// The PR's export went to its own scope only; main's entries are as before.
	var prKeys, mainAfter int
	for _, e := range emu.Entries(repo) {
		switch e.Scope {
		case "refs/pull/1/merge":
			prKeys++
		case "refs/heads/main":
			mainAfter++
		}
	}
	if prKeys == 0 {
		t.Fatal("the PR build exported no index into refs/pull/1/merge")
	}
	if mainAfter < mainKeys {
		t.Fatalf("main's entries went from %d to %d", mainKeys, mainAfter)
	}

	t.Run("untrusted token without main", func(t *testing.T) {
		tok := mustToken(t, emu, emulator.TokenOptions{Repo: repo, Write: "refs/pull/9/merge"})
		r := build(t, testenv.NewBuildkitd(t), dir,
			[]client.CacheOptionsEntry{{Type: "gha", Attrs: ghaAttrs(url, tok)}}, nil)
		if r.cached != 0 {
			t.Fatalf("a token that cannot read main got %d steps cached:\n%s", r.cached, strings.Join(r.names, "\n"))
		}
	})
}

// TestBuildKitGHABackendV1 does the same through the legacy v1 API that
// GHES speaks (reserve, PATCH chunks, commit).
func TestBuildKitGHABackendV1(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "azure")
	emu, url := startEmulator(t)
	dir := writeDockerfile(t, env.BaseImage)
	tok := mustToken(t, emu, emulator.TokenOptions{Repo: "o/r", Write: "refs/heads/main"})
	attrs := func(extra ...string) map[string]string {
		a := map[string]string{"url": url, "token": tok, "version": "1", "scope": "buildkit"}
		for i := 0; i+1 < len(extra); i += 2 {
			a[extra[i]] = extra[i+1]
		}
		return a
	}
	build(t, testenv.NewBuildkitd(t), dir, nil, []client.CacheOptionsEntry{{Type: "gha", Attrs: attrs("mode", "max")}})
	warm := build(t, testenv.NewBuildkitd(t), dir, []client.CacheOptionsEntry{{Type: "gha", Attrs: attrs()}}, nil)
	if warm.steps != 3 || warm.cached != warm.steps {
		t.Fatalf("fresh builder over v1: %d of %d steps cached:\n%s", warm.cached, warm.steps, strings.Join(warm.names, "\n"))
	}
}

// nodeModules finds an install of @actions/cache: BKCACHE_TEST_NODE_MODULES
// (set by scripts/testenv), else the module root's node_modules.
func nodeModules(t *testing.T) string {
	t.Helper()
	var cands []string
	if v := os.Getenv("BKCACHE_TEST_NODE_MODULES"); v != "" {
		cands = append(cands, v)
	}
	if wd, err := os.Getwd(); err == nil {
		cands = append(cands, filepath.Join(wd, "..", "..", "node_modules"))
	}
	for _, c := range cands {
		if _, err := os.Stat(filepath.Join(c, "@actions", "cache", "package.json")); err == nil {
			if _, err := exec.LookPath("node"); err != nil {
				break
			}
			return c
		}
	}
	msg := "@actions/cache not installed (BKCACHE_TEST_NODE_MODULES) or node not on PATH; run `scripts/testenv up`"
	if os.Getenv("BKCACHE_REQUIRE_E2E") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

type toolkitResult struct {
	SavedID   int     `json:"savedId"`
	ResavedID int     `json:"resavedId"`
	ExactKey  *string `json:"exactKey"`
	ExactOK   bool    `json:"exactOK"`
	PrefixKey *string `json:"prefixKey"`
	PrefixOK  bool    `json:"prefixOK"`
	MissKey   *string `json:"missKey"`
}

// TestActionsCacheToolkit runs testdata/actions-cache.mjs with the
// official client, over v2 (Twirp) and v1 (legacy REST).
func TestActionsCacheToolkit(t *testing.T) {
	testenv.Require(t, "azure")
	modules := nodeModules(t)
	emu, url := startEmulator(t)
	script, err := filepath.Abs(filepath.Join("testdata", "actions-cache.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  []string
	}{
		{"v2", []string{"ACTIONS_CACHE_SERVICE_V2=true", "ACTIONS_RESULTS_URL=" + url}},
		// GHES: the toolkit uses v1 there whatever the v2 flag says.
		{"v1", []string{"ACTIONS_CACHE_URL=" + url + "opaque-id/", "GITHUB_SERVER_URL=https://ghes.example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			work := t.TempDir()
			// ESM resolves bare imports next to the script, not via NODE_PATH.
			if err := os.Symlink(modules, filepath.Join(work, "node_modules")); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(script)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(work, "run.mjs"), b, 0o644); err != nil {
				t.Fatal(err)
			}
			runnerTemp := filepath.Join(work, "runner-temp")
			if err := os.Mkdir(runnerTemp, 0o755); err != nil {
				t.Fatal(err)
			}
			key := "fidelity-" + tt.name + "-" + testenv.RandomHex(4)
			tok := mustToken(t, emu, emulator.TokenOptions{Repo: "o/r", Write: "refs/heads/main"})
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "node", "run.mjs")
			cmd.Dir = work
			cmd.Env = append(cleanEnv(), append(tt.env,
				"ACTIONS_RUNTIME_TOKEN="+tok, "RUNNER_TEMP="+runnerTemp,
				"FIDELITY_DIR="+filepath.Join(work, "cached"), "FIDELITY_KEY="+key)...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("node: %v\n%s", err, out)
			}
			var res toolkitResult
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			last, ok := strings.CutPrefix(lines[len(lines)-1], "RESULT ")
			if !ok || json.Unmarshal([]byte(last), &res) != nil {
				t.Fatalf("no RESULT line:\n%s", out)
			}
			switch {
			case res.SavedID <= 0:
				t.Errorf("saveCache returned %d", res.SavedID)
			case res.ResavedID != -1:
				t.Errorf("second saveCache of the same key returned %d, want -1 (already exists)", res.ResavedID)
			case res.ExactKey == nil || *res.ExactKey != key || !res.ExactOK:
				t.Errorf("exact restore: key %v, contents ok %v", res.ExactKey, res.ExactOK)
			case res.PrefixKey == nil || *res.PrefixKey != key || !res.PrefixOK:
				t.Errorf("restore-keys restore: key %v, contents ok %v", res.PrefixKey, res.PrefixOK)
			case res.MissKey != nil:
				t.Errorf("restore of an absent key matched %q", *res.MissKey)
			}
			if t.Failed() {
				t.Logf("node output:\n%s", out)
			}
			found := false
			for _, e := range emu.Entries("o/r") {
				found = found || e.Key == key && e.Scope == "refs/heads/main" && e.Size > 0
			}
			if !found {
				t.Error("the saved entry is not in the emulator's index")
			}
		})
	}
}

// cleanEnv drops the runner variables the test sets itself, so a CI
// runner's own cache settings cannot leak into the child.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "ACTIONS_") || k == "RUNNER_TEMP" || k == "GITHUB_SERVER_URL" {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// TestBuildKitGHAEvictedBlobs fills a small quota so that the layers are
// evicted while the index that names them survives (GitHub's "blob not
// found" after eviction). A fresh builder importing that index must still
// build: the missing blobs are cache misses, not errors.
func TestBuildKitGHAEvictedBlobs(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "azure")
	emu, url := startEmulator(t)
	// Far below the 256 KiB random layer, far above the index.
	if err := emu.SetFaults(emulator.Faults{QuotaBytes: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	dir := writeDockerfile(t, env.BaseImage)
	tok := mustToken(t, emu, emulator.TokenOptions{Repo: "o/r", Write: "refs/heads/main"})
	build(t, testenv.NewBuildkitd(t), dir, nil, []client.CacheOptionsEntry{{Type: "gha", Attrs: ghaAttrs(url, tok, "mode", "max")}})

	var index bool
	var blobs int
	for _, e := range emu.Entries("o/r") {
		if strings.HasPrefix(e.Key, "index-") {
			index = true
		} else {
			blobs++
		}
	}
	if !index || blobs == 3 {
		t.Fatalf("want the index kept and layers evicted; index %v, %d layer entries left", index, blobs)
	}
	warm := build(t, testenv.NewBuildkitd(t), dir, []client.CacheOptionsEntry{{Type: "gha", Attrs: ghaAttrs(url, tok)}}, nil)
	t.Logf("after eviction: %d of %d steps cached", warm.cached, warm.steps)
}
