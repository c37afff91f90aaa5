package e2e

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bkcache/bkcache/buildkit"
	"github.com/bkcache/bkcache/internal/plan"
	"github.com/bkcache/bkcache/internal/testenv"
)

// closedAddr is a loopback port nothing listens on: connections are
// refused at once, so a broken store costs no timeouts.
const closedAddr = "127.0.0.1:1"

// brokenBackends are cache lines whose store cannot be reached (or, for
// local, cannot be created). Credentials are the real ones, so the tests
// also check they never leak into warnings and errors.
func brokenBackends(t *testing.T, env testenv.Env, id string) []struct{ name, line string } {
	t.Helper()
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, []byte("a file, not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	return []struct{ name, line string }{
		{"registry", fmt.Sprintf("type=registry,ref=%s/e2e/%s,registry.insecure=true", closedAddr, id)},
		{"local", "type=local,dest=" + filepath.Join(notADir, "cache")},
		{"s3", fmt.Sprintf("type=s3,bucket=%s,region=us-east-1,endpoint_url=http://%s,use_path_style=true,access_key_id=%s,secret_access_key=%s,prefix=%s/",
			env.S3Bucket, closedAddr, env.S3AccessKey, env.S3SecretKey, id)},
		// A wrong key fails at once with 403.
		{"azblob", fmt.Sprintf("type=azblob,account_url=%s,account_name=%s,secret_access_key=%s,container=e2e-%s",
			env.AzureAccountURL, env.AzureAccountName, wrongAzureKey, id)},
		// A closed port: BuildKit's Azure client retries for longer than
		// the 6 s buildkitd waits for the job to appear, so buildkit.Build
		// must recognise the lost job and drop the export.
		{"azblob-unreachable", fmt.Sprintf("type=azblob,account_url=http://%s/%s,account_name=%s,secret_access_key=%s,container=e2e-%s",
			closedAddr, env.AzureAccountName, env.AzureAccountName, env.AzureAccountKey, id)},
	}
}

// wrongAzureKey is a well-formed key (64 bytes, base64) that Azurite refuses.
var wrongAzureKey = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("bkcache!"), 8))

// secretsOf are the credentials a message must never show.
func secretsOf(env testenv.Env) []string {
	return []string{env.S3AccessKey, env.S3SecretKey, env.AzureAccountKey, wrongAzureKey}
}

func requireNoSecrets(t *testing.T, env testenv.Env, what string, texts ...string) {
	t.Helper()
	for _, s := range secretsOf(env) {
		if s == "" {
			continue
		}
		for _, text := range texts {
			if strings.Contains(text, s) {
				t.Errorf("%s shows a credential: %q", what, redactLine(text))
			}
		}
	}
}

// warningFor returns the warnings that start with prefix and name typ.
func warningFor(res buildkit.Result, prefix, typ string) []string {
	var out []string
	for _, w := range res.Warnings {
		if strings.HasPrefix(w, prefix) && strings.Contains(w, "type="+typ) {
			out = append(out, w)
		}
	}
	return out
}

// TestImportUnreachable: a cache source that cannot be reached is a
// warning naming it, and the build runs every step itself.
func TestImportUnreachable(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "s3", "azure")
	addr := testenv.NewBuildkitd(t)
	id := testenv.RandomHex(5)
	for _, b := range brokenBackends(t, env, id) {
		t.Run(b.name, func(t *testing.T) {
			p := expand(t, "main", "t"+id, b.line, plan.Options{})
			if len(p.Imports) == 0 {
				t.Fatalf("plan has no imports")
			}
			res, err := tryBuild(t, addr, writeContext(t, "unreachable "+b.name+" "+id), p.Imports, nil, nil)
			if err != nil {
				t.Fatalf("build failed; an unreachable cache source must only be a warning: %v", err)
			}
			if res.Steps != wantSteps {
				t.Errorf("steps=%d, want %d", res.Steps, wantSteps)
			}
			// BuildKit skips a missing local directory without an error
			// (client/solve.go: "local cache import ... skipped"); every
			// other store must produce a warning naming it.
			if b.name != "local" && len(warningFor(res, "cache import", backendType(b.name))) == 0 {
				t.Errorf("no warning names the unreachable type=%s import; warnings: %q", b.name, res.Warnings)
			}
			requireNoSecrets(t, env, "warning", res.Warnings...)
			t.Logf("warnings: %q", res.Warnings)
		})
	}
}

// TestExportFailureKeepsBuild: with the default ignore-error a failing
// cache export is a warning naming the backend; the build succeeds and its
// outputs (a local directory and an image pushed to the registry) exist.
func TestExportFailureKeepsBuild(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "s3", "azure")
	addr := testenv.NewBuildkitd(t)
	id := testenv.RandomHex(5)
	for _, b := range brokenBackends(t, env, id) {
		t.Run(b.name, func(t *testing.T) {
			p := expand(t, "main", "t"+id, b.line, plan.Options{})
			if len(p.Exports) != 1 || p.Exports[0].Attrs["ignore-error"] != "true" {
				t.Fatalf("plan exports %d entries, want 1 with the default ignore-error=true", len(p.Exports))
			}
			out := filepath.Join(t.TempDir(), "out")
			repo := fmt.Sprintf("e2e/%s-%s-image", id, b.name)
			tag := env.Registry + "/" + repo + ":main"
			res, err := tryBuild(t, addr, writeContext(t, "export "+b.name+" "+id), nil, p.Exports, func(o *buildkit.BuildOptions) {
				o.Outputs = []string{"type=local,dest=" + out}
				o.Tags = []string{tag}
				o.Push = true
			})
			if err != nil {
				t.Fatalf("build failed; a failing cache export with ignore-error=true must only be a warning: %v", err)
			}
			if len(warningFor(res, "cache export", backendType(b.name))) == 0 {
				t.Errorf("no warning names the failing type=%s export; warnings: %q", b.name, res.Warnings)
			}
			requireNoSecrets(t, env, "warning", res.Warnings...)
			t.Logf("warnings: %q", res.Warnings)
			if got, err := os.ReadFile(filepath.Join(out, "three")); err != nil || !strings.Contains(string(got), "export "+b.name) {
				t.Errorf("local output lost: /three = %q, %v", got, err)
			}
			if res.Digest == "" {
				t.Errorf("no image digest in the result metadata %v", res.Metadata)
			}
			registryGet(t, env.Registry, repo+"/manifests/main", acceptCacheManifst) // fails the test when the image is missing
		})
	}
}

// TestExportFailureStrict: with ignore-error=false a failing cache export
// fails the build, and the error names the backend (without credentials).
func TestExportFailureStrict(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "s3", "azure")
	addr := testenv.NewBuildkitd(t)
	id := testenv.RandomHex(5)
	for _, b := range brokenBackends(t, env, id) {
		t.Run(b.name, func(t *testing.T) {
			p := expand(t, "main", "t"+id, b.line+",ignore-error=false", plan.Options{})
			if len(p.Exports) != 1 || p.Exports[0].Attrs["ignore-error"] != "false" {
				t.Fatalf("plan exports %v, want 1 with ignore-error=false", len(p.Exports))
			}
			_, err := tryBuild(t, addr, writeContext(t, "strict "+b.name+" "+id), nil, p.Exports, nil)
			if err == nil {
				t.Fatalf("build succeeded; a failing type=%s export with ignore-error=false must fail it", b.name)
			}
			if !strings.Contains(err.Error(), "type="+backendType(b.name)) {
				t.Errorf("error does not name the backend (type=%s): %v", b.name, err)
			}
			requireNoSecrets(t, env, "error", err.Error())
			t.Logf("error: %v", err)
		})
	}
}

// backendType is the cache type a brokenBackends case is named after
// ("azblob-unreachable" is an azblob case).
func backendType(name string) string {
	typ, _, _ := strings.Cut(name, "-")
	return typ
}
