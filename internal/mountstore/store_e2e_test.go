package mountstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bkcache/bkcache/ghacache/emulator"
	"github.com/bkcache/bkcache/internal/cacheentry"
	"github.com/bkcache/bkcache/internal/testenv"
)

// TestStoresRoundTrip saves, replaces and reads an archive in every store,
// against the real servers of the test environment.
func TestStoresRoundTrip(t *testing.T) {
	ctx := context.Background()
	name := "mounts-" + time.Now().Format("150405.000000000")
	for _, tc := range []struct {
		typ   string
		need  string
		entry func(testenv.Env) (cacheentry.Entry, func(string) string)
	}{
		{"local", "", func(testenv.Env) (cacheentry.Entry, func(string) string) {
			return cacheentry.Entry{Type: "local", Attrs: map[string]string{"dest": filepath.Join(t.TempDir(), name)}}, noEnv
		}},
		{"s3", "s3", func(e testenv.Env) (cacheentry.Entry, func(string) string) {
			return cacheentry.Entry{Type: "s3", Attrs: map[string]string{
				"bucket": e.S3Bucket, "region": e.S3Region, "endpoint_url": e.S3Endpoint, "use_path_style": "true",
				"access_key_id": e.S3AccessKey, "secret_access_key": e.S3SecretKey, "name": name,
			}}, noEnv
		}},
		{"azblob", "azure", func(e testenv.Env) (cacheentry.Entry, func(string) string) {
			return cacheentry.Entry{Type: "azblob", Attrs: map[string]string{
				"account_url": e.AzureAccountURL, "account_name": e.AzureAccountName, "secret_access_key": e.AzureAccountKey,
				"name": name, "container": "bkcache-mounts-test",
			}}, noEnv
		}},
		{"registry", "registry", func(e testenv.Env) (cacheentry.Entry, func(string) string) {
			return cacheentry.Entry{Type: "registry", Attrs: map[string]string{"ref": e.Registry + "/bkcache-mounts/test:" + name}}, noEnv
		}},
		{"gha", "gha", func(e testenv.Env) (cacheentry.Entry, func(string) string) {
			return cacheentry.Entry{Type: "gha", Attrs: map[string]string{"scope": name}}, GHAEnv(t, e, "refs/heads/main")
		}},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			var env testenv.Env
			if tc.need != "" {
				env = testenv.Require(t, tc.need)
			}
			e, getenv := tc.entry(env)
			s, err := FromEntry(ctx, e, getenv)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.Get(ctx, "m-1"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get before Put: %v, want ErrNotFound", err)
			}
			for _, content := range []string{"first archive", "second, longer archive"} {
				if err := s.Put(ctx, "m-1", bytes.NewReader([]byte(content)), int64(len(content))); err != nil {
					t.Fatal(err)
				}
				// The gha service orders entries by creation time.
				time.Sleep(10 * time.Millisecond)
				rc, size, err := s.Get(ctx, "m-1")
				if err != nil {
					t.Fatal(err)
				}
				if size != int64(len(content)) {
					t.Errorf("Get's size = %d, want %d", size, len(content))
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || string(got) != content {
					t.Fatalf("Get = %q, %v; want %q", got, err, content)
				}
			}
		})
	}
}

func noEnv(string) string { return "" }

// GHAEnv is the runner environment of a job on ref, with a runtime token
// the test environment's gha emulator accepts.
func GHAEnv(t testing.TB, e testenv.Env, ref string, reads ...string) func(string) string {
	t.Helper()
	secret, err := os.ReadFile(os.Getenv("BKCACHE_TEST_GHA_SECRET_FILE"))
	if err != nil {
		t.Fatalf("reading the gha emulator secret: %v", err)
	}
	tok, err := emulator.MintToken(bytes.TrimSpace(secret), emulator.TokenOptions{Repo: "bkcache/mounts", Write: ref, Read: reads})
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"ACTIONS_RUNTIME_TOKEN": tok, "ACTIONS_RESULTS_URL": e.GHAURL, "ACTIONS_CACHE_SERVICE_V2": "true"}
	return func(k string) string { return vars[k] }
}
