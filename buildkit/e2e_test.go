package buildkit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bkcache/bkcache/internal/testenv"
	"github.com/moby/buildkit/client"
)

// The end-to-end tests run real builds on fresh buildkitd daemons from
// internal/testenv. Cache hits are read from the status stream (Result.Cached).

// fiveSteps has FROM plus two independent COPY+RUN pairs (four counted
// steps), so a change to b.txt re-runs exactly its COPY and RUN.
const fiveSteps = `FROM %s
COPY a.txt /a.txt
RUN cat /a.txt > /a.out && echo built-a
COPY b.txt /b.txt
RUN cat /b.txt > /b.out && echo built-b
`

func writeContext(t *testing.T, dockerfile string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files["Dockerfile"] = dockerfile
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// build runs req on addr with plain progress captured into the test log.
func build(t *testing.T, addr string, req Request, opts ...Option) (Result, error) {
	t.Helper()
	req.Builder = addr
	if req.Progress == "" {
		req.Progress = "plain"
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := Build(ctx, req, append([]Option{WithProgressOutput(&out)}, opts...)...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("progress of a build on %s:\n%s", addr, out.String())
		}
	})
	return res, err
}

func mustBuild(t *testing.T, addr string, req Request) Result {
	t.Helper()
	res, err := build(t, addr, req)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return res
}

func stepNames(res Result, cached bool) []string {
	var out []string
	for _, v := range res.Vertices {
		if v.Step && v.Cached == cached {
			out = append(out, v.Name)
		}
	}
	return out
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestE2ELocalCacheOnFreshBuilder(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry")
	cacheDir := filepath.Join(t.TempDir(), "cache")
	files := map[string]string{"a.txt": "a " + testenv.RandomHex(6), "b.txt": "b " + testenv.RandomHex(6)}
	ctxDir := writeContext(t, fmt.Sprintf(fiveSteps, env.BaseImage), files)
	req := Request{
		Build:   BuildOptions{Context: ctxDir},
		Exports: []client.CacheOptionsEntry{{Type: "local", Attrs: map[string]string{"dest": cacheDir, "mode": "max"}}},
	}

	cold := mustBuild(t, testenv.NewBuildkitd(t), req)
	if cold.Steps != 4 || cold.Cached != 0 {
		t.Fatalf("cold build: steps=%d cached=%d, want 4 and 0; cached: %q", cold.Steps, cold.Cached, stepNames(cold, true))
	}
	if _, err := os.Stat(filepath.Join(cacheDir, "index.json")); err != nil {
		t.Fatalf("no cache exported: %v", err)
	}
	if len(cold.Warnings) != 0 {
		t.Errorf("cold build warnings: %q", cold.Warnings)
	}
	if len(cold.Exports) != 1 || cold.Exports[0].Attrs["dest"] != cacheDir {
		t.Errorf("Result.Exports = %v, want the one local export", cold.Exports)
	}

	// A fresh daemon has no local state: every hit must come from cacheDir.
	warmReq := req
	warmReq.Imports = []client.CacheOptionsEntry{{Type: "local", Attrs: map[string]string{"src": cacheDir}}}
	warmReq.Exports = nil
	warm := mustBuild(t, testenv.NewBuildkitd(t), warmReq)
	if warm.Steps != 4 || warm.Cached != warm.Steps {
		t.Fatalf("warm build: steps=%d cached=%d, want all 4 cached; not cached: %q", warm.Steps, warm.Cached, stepNames(warm, false))
	}

	t.Run("one changed file re-runs only its steps", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(ctxDir, "b.txt"), []byte("b changed "+testenv.RandomHex(6)), 0o644); err != nil {
			t.Fatal(err)
		}
		res := mustBuild(t, testenv.NewBuildkitd(t), warmReq)
		rerun := stepNames(res, false)
		sort.Strings(rerun) // parallel steps appear in any order
		want := []string{"[4/5] COPY b.txt /b.txt", "[5/5] RUN cat /b.txt > /b.out && echo built-b"}
		if res.Steps != 4 || res.Cached != 2 || strings.Join(rerun, "\n") != strings.Join(want, "\n") {
			t.Errorf("steps=%d cached=%d, re-ran %q; want 4, 2, %q", res.Steps, res.Cached, rerun, want)
		}
	})
}

func TestE2EPushSetsDigest(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry")
	ctxDir := writeContext(t, fmt.Sprintf("FROM %s\nRUN echo %s > /id\n", env.BaseImage, testenv.RandomHex(6)), map[string]string{})
	repo := "bkcache-e2e/push"
	tag := testenv.RandomHex(6)
	res := mustBuild(t, testenv.NewBuildkitd(t), Request{Build: BuildOptions{
		Context: ctxDir, Tags: []string{env.Registry + "/" + repo + ":" + tag}, Push: true,
		Labels: map[string]string{"org.example.test": "1"},
	}})
	if !strings.HasPrefix(res.Digest, "sha256:") || !strings.HasPrefix(res.ImageID, "sha256:") {
		t.Fatalf("Digest=%q ImageID=%q, want sha256 digests; metadata %v", res.Digest, res.ImageID, res.Metadata)
	}
	if res.Metadata["image.name"] == "" {
		t.Errorf("metadata lacks image.name: %v", res.Metadata)
	}
	// The registry must serve the tag at exactly that digest.
	r, err := http.NewRequest(http.MethodHead, "http://"+env.Registry+"/v2/"+repo+"/manifests/"+tag, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Docker-Content-Digest"); resp.StatusCode != 200 || got != res.Digest {
		t.Errorf("registry: status %d, digest %q; want 200, %q", resp.StatusCode, got, res.Digest)
	}
}

func TestE2ESecrets(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry")
	secret := "hunter2-" + testenv.RandomHex(6)
	t.Setenv("BKCACHE_E2E_SECRET", secret)
	secretFile := filepath.Join(t.TempDir(), "file-secret")
	fileSecret := "file-" + testenv.RandomHex(6)
	valueSecret := "value-" + testenv.RandomHex(6)
	if err := os.WriteFile(secretFile, []byte(fileSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	dockerfile := fmt.Sprintf(`FROM %s
RUN --mount=type=secret,id=tok --mount=type=secret,id=file --mount=type=secret,id=val mkdir /out && sha256sum < /run/secrets/tok | cut -d' ' -f1 > /out/tok && sha256sum < /run/secrets/file | cut -d' ' -f1 > /out/file && sha256sum < /run/secrets/val | cut -d' ' -f1 > /out/val
FROM scratch
COPY --from=0 /out/ /
`, env.BaseImage)
	out := filepath.Join(t.TempDir(), "out")
	res := mustBuild(t, testenv.NewBuildkitd(t), Request{Build: BuildOptions{
		Context: writeContext(t, dockerfile, map[string]string{}),
		Secrets: []Secret{{ID: "tok", Env: "BKCACHE_E2E_SECRET"}, {ID: "file", File: secretFile}, {ID: "val", Value: []byte(valueSecret)}},
		Outputs: []string{"type=local,dest=" + out},
	}})
	for name, want := range map[string]string{"tok": secret, "file": fileSecret, "val": valueSecret} {
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatalf("reading %s: %v", name, err)
		}
		sum := sha256.Sum256([]byte(want))
		if strings.TrimSpace(string(got)) != hex.EncodeToString(sum[:]) {
			t.Errorf("secret %s: the build saw sha256 %s, want that of the secret", name, got)
		}
	}
	for _, v := range res.Vertices {
		if strings.Contains(v.Name, secret) {
			t.Errorf("secret in vertex name %q", v.Name)
		}
	}
}

func TestE2ECacheFailuresAreWarnings(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry")
	dead := closedAddr(t)
	s3Key := "S3SECRET" + testenv.RandomHex(6)
	ctxDir := writeContext(t, fmt.Sprintf("FROM %s\nRUN echo %s > /id\n", env.BaseImage, testenv.RandomHex(6)), map[string]string{})
	image := env.Registry + "/bkcache-e2e/faults:" + testenv.RandomHex(6)
	deadRegistry := client.CacheOptionsEntry{Type: "registry", Attrs: map[string]string{"ref": dead + "/cache:main", "mode": "max"}}
	deadS3 := client.CacheOptionsEntry{Type: "s3", Attrs: map[string]string{
		"endpoint_url": "http://" + dead, "bucket": "cache", "region": "us-east-1", "use_path_style": "true",
		"access_key_id": "AKIDEXAMPLE", "secret_access_key": s3Key, "mode": "max",
	}}
	addr := testenv.NewBuildkitd(t)

	checkNoSecret := func(t *testing.T, res Result, err error) {
		t.Helper()
		text := strings.Join(res.Warnings, "\n")
		if err != nil {
			text += err.Error()
		}
		if strings.Contains(text, s3Key) || strings.Contains(text, "AKIDEXAMPLE") {
			t.Errorf("S3 credentials leaked: %s", text)
		}
	}
	hasWarning := func(res Result, parts ...string) bool {
	next:
		for _, w := range res.Warnings {
			for _, p := range parts {
				if !strings.Contains(w, p) {
					continue next
				}
			}
			return true
		}
		return false
	}

	t.Run("failing exports are warnings and the image is kept", func(t *testing.T) {
		res, err := build(t, addr, Request{
			Build:   BuildOptions{Context: ctxDir, Tags: []string{image}, Push: true},
			Exports: []client.CacheOptionsEntry{deadRegistry, deadS3},
		})
		checkNoSecret(t, res, err)
		if err != nil {
			t.Fatalf("build failed: %v", err)
		}
		t.Logf("warnings: %q", res.Warnings)
		if !strings.HasPrefix(res.Digest, "sha256:") {
			t.Errorf("no image digest: %v", res.Metadata)
		}
		if !hasWarning(res, "cache export", "type=registry", dead) {
			t.Errorf("no warning naming the registry export: %q", res.Warnings)
		}
		if !hasWarning(res, "cache export", "type=s3") {
			t.Errorf("no warning naming the s3 export: %q", res.Warnings)
		}
	})

	t.Run("unreachable import is a warning", func(t *testing.T) {
		res, err := build(t, addr, Request{
			Build:   BuildOptions{Context: ctxDir},
			Imports: []client.CacheOptionsEntry{{Type: "registry", Attrs: map[string]string{"ref": dead + "/cache:main"}}, withoutMode(deadS3)},
		})
		checkNoSecret(t, res, err)
		if err != nil {
			t.Fatalf("build failed: %v", err)
		}
		t.Logf("warnings: %q", res.Warnings)
		if !hasWarning(res, "cache import", "type=registry", dead) {
			t.Errorf("no warning naming the registry import: %q", res.Warnings)
		}
		if !hasWarning(res, "cache import", "type=s3") {
			t.Errorf("no warning naming the s3 import: %q", res.Warnings)
		}
	})

	badCompression := client.CacheOptionsEntry{Type: "registry", Attrs: map[string]string{
		"ref": env.Registry + "/bkcache-e2e/faults-cache:x", "compression": "bogus", "mode": "max"}}

	t.Run("an export BuildKit cannot configure is dropped", func(t *testing.T) {
		res, err := build(t, addr, Request{
			Build:   BuildOptions{Context: ctxDir},
			Exports: []client.CacheOptionsEntry{badCompression},
		})
		if err != nil {
			t.Fatalf("build failed: %v", err)
		}
		t.Logf("warnings: %q", res.Warnings)
		if !hasWarning(res, "cache export", "compression=bogus", "could not be configured") {
			t.Errorf("no warning naming the export: %q", res.Warnings)
		}
		if len(res.Exports) != 0 {
			t.Errorf("Result.Exports = %v, want none: the build ran without the export", res.Exports)
		}
		if res.Steps != 1 {
			t.Errorf("retried build has %d steps, want 1", res.Steps)
		}
	})

	for name, strict := range map[string]client.CacheOptionsEntry{"registry": deadRegistry, "s3": deadS3, "unconfigurable": badCompression} {
		t.Run("ignore-error=false fails the build naming "+name, func(t *testing.T) {
			e := client.CacheOptionsEntry{Type: strict.Type, Attrs: maps.Clone(strict.Attrs)}
			e.Attrs["ignore-error"] = "false"
			// a changed RUN, so the export has something to write
			dir := writeContext(t, fmt.Sprintf("FROM %s\nRUN echo %s > /id\n", env.BaseImage, testenv.RandomHex(6)), map[string]string{})
			res, err := build(t, addr, Request{Build: BuildOptions{Context: dir}, Exports: []client.CacheOptionsEntry{e}})
			checkNoSecret(t, res, err)
			if err == nil {
				t.Fatal("build succeeded")
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), "cache export type="+strict.Type) {
				t.Errorf("error does not name the backend: %v", err)
			}
		})
	}
}

func withoutMode(e client.CacheOptionsEntry) client.CacheOptionsEntry {
	c := client.CacheOptionsEntry{Type: e.Type, Attrs: maps.Clone(e.Attrs)}
	delete(c.Attrs, "mode")
	return c
}

func TestE2EProgressModes(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry")
	addr := testenv.NewBuildkitd(t)
	dockerfile := fmt.Sprintf("FROM %s\nRUN echo %s\nRUN echo second\n", env.BaseImage, testenv.RandomHex(6))
	ctxDir := writeContext(t, dockerfile, map[string]string{})

	t.Run("plain with groups", func(t *testing.T) {
		var out bytes.Buffer
		res, err := build(t, addr, Request{Build: BuildOptions{Context: ctxDir}},
			WithProgressOutput(&out), WithGrouper(fakeGrouper{&out}))
		if err != nil {
			t.Fatal(err)
		}
		text := out.String()
		if res.Steps != 2 {
			t.Errorf("steps = %d, want 2", res.Steps)
		}
		for _, v := range res.Vertices {
			if v.Step && !regexp.MustCompile(`(?m)^::group::#\d+ `+regexp.QuoteMeta(v.Name)+`$`).MatchString(text) {
				t.Errorf("no group for step %q in:\n%s", v.Name, text)
			}
		}
		if o, c := strings.Count(text, "::group::"), strings.Count(text, "::endgroup::"); o != c || o == 0 {
			t.Errorf("%d groups opened, %d closed:\n%s", o, c, text)
		}
	})

	t.Run("rawjson", func(t *testing.T) {
		var out bytes.Buffer
		_, err := build(t, addr, Request{Build: BuildOptions{Context: ctxDir}, Progress: "rawjson"},
			WithProgressOutput(&out))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		for _, l := range lines {
			var s client.SolveStatus
			if err := json.Unmarshal([]byte(l), &s); err != nil {
				t.Fatalf("line %q is not a SolveStatus: %v", l, err)
			}
		}
		if len(lines) == 0 || lines[0] == "" {
			t.Error("rawjson display wrote nothing")
		}
	})
}

func TestE2ERegistryCacheOnFreshBuilder(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry")
	ref := env.Registry + "/bkcache-e2e/cache:" + testenv.RandomHex(6)
	files := map[string]string{"a.txt": "a " + testenv.RandomHex(6), "b.txt": "b " + testenv.RandomHex(6)}
	ctxDir := writeContext(t, fmt.Sprintf(fiveSteps, env.BaseImage), files)
	entry := client.CacheOptionsEntry{Type: "registry", Attrs: map[string]string{"ref": ref}}

	export := client.CacheOptionsEntry{Type: entry.Type, Attrs: maps.Clone(entry.Attrs)}
	export.Attrs["mode"] = "max"
	cold := mustBuild(t, testenv.NewBuildkitd(t), Request{Build: BuildOptions{Context: ctxDir}, Exports: []client.CacheOptionsEntry{export}})
	if cold.Steps != 4 || cold.Cached != 0 || len(cold.Warnings) != 0 {
		t.Fatalf("cold build: steps=%d cached=%d warnings=%q", cold.Steps, cold.Cached, cold.Warnings)
	}
	warm := mustBuild(t, testenv.NewBuildkitd(t), Request{Build: BuildOptions{Context: ctxDir}, Imports: []client.CacheOptionsEntry{entry}})
	if warm.Steps != 4 || warm.Cached != 4 || len(warm.Warnings) != 0 {
		t.Fatalf("warm build: steps=%d cached=%d warnings=%q; not cached: %q", warm.Steps, warm.Cached, warm.Warnings, stepNames(warm, false))
	}
}

func TestE2EFileOutputs(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry")
	ctxDir := writeContext(t, fmt.Sprintf("FROM %s\nRUN echo %s > /id\n", env.BaseImage, testenv.RandomHex(6)), map[string]string{})
	out := t.TempDir()
	ociTar, rootTar := filepath.Join(out, "img", "oci.tar"), filepath.Join(out, "root.tar")
	mustBuild(t, testenv.NewBuildkitd(t), Request{Build: BuildOptions{
		Context: ctxDir,
		Outputs: []string{"type=oci,dest=" + ociTar + ",name=example/x:1", "type=tar,dest=" + rootTar},
	}})
	for path, member := range map[string]string{ociTar: "index.json", rootTar: "id"} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("output %s: %v", path, err)
		}
		// tar headers start with the member name
		if !bytes.Contains(b, []byte(member+"\x00")) {
			t.Errorf("%s (%d bytes) has no member %q", path, len(b), member)
		}
	}
}
