package buildjob

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bkcache/bkcache/ghacache/emulator"
	"github.com/bkcache/bkcache/internal/cacheentry"
	"github.com/bkcache/bkcache/internal/explain"
	"github.com/bkcache/bkcache/internal/testenv"
)

// TestE2ERecordStores saves two records in each store, against the test
// environment's real servers, and reads back the last and the previous
// one (the gha store finds keys by prefix: the two must not mix up).
func TestE2ERecordStores(t *testing.T) {
	ctx := context.Background()
	name := "records-" + testenv.RandomHex(6)
	noEnv := func(string) string { return "" }
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
				"name": name, "container": "bkcache-records-test",
			}}, noEnv
		}},
		{"registry", "registry", func(e testenv.Env) (cacheentry.Entry, func(string) string) {
			return cacheentry.Entry{Type: "registry", Attrs: map[string]string{"ref": e.Registry + "/bkcache-records/test:" + name}}, noEnv
		}},
		{"gha", "gha", func(e testenv.Env) (cacheentry.Entry, func(string) string) {
			secret, err := os.ReadFile(os.Getenv("BKCACHE_TEST_GHA_SECRET_FILE"))
			if err != nil {
				t.Fatalf("reading the gha emulator secret: %v", err)
			}
			tok, err := emulator.MintToken(bytes.TrimSpace(secret), emulator.TokenOptions{Repo: "bkcache/records", Write: "refs/heads/main"})
			if err != nil {
				t.Fatal(err)
			}
			vars := map[string]string{"ACTIONS_RUNTIME_TOKEN": tok, "ACTIONS_RESULTS_URL": e.GHAURL, "ACTIONS_CACHE_SERVICE_V2": "true"}
			return cacheentry.Entry{Type: "gha", Attrs: map[string]string{"scope": name}}, func(k string) string { return vars[k] }
		}},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			var env testenv.Env
			if tc.need != "" {
				env = testenv.Require(t, tc.need)
			}
			e, getenv := tc.entry(env)
			if _, err := readRecord(ctx, e, RecordKey, getenv); err == nil {
				t.Fatal("a record before any was saved")
			}
			var raw [][]byte
			for i, v := range []string{"v1", "v2"} {
				r := explain.NewRecord(explain.Build{BuildKit: v, Vertices: []explain.BuildVertex{{Digest: "sha256:1", Name: "[1/2] RUN " + v}}})
				var prev []byte
				if i > 0 {
					prev = raw[i-1]
				}
				if _, err := saveRecord(ctx, e, r, prev, getenv); err != nil {
					t.Fatal(err)
				}
				b, err := readRecord(ctx, e, RecordKey, getenv)
				if err != nil {
					t.Fatal(err)
				}
				raw = append(raw, b)
				time.Sleep(10 * time.Millisecond) // the gha service orders entries by creation time
			}
			for _, k := range []struct{ key, want string }{{RecordKey, "v2"}, {prevRecordKey, "v1"}} {
				b, err := readRecord(ctx, e, k.key, getenv)
				if err != nil {
					t.Fatalf("%s: %v", k.key, err)
				}
				r, err := explain.Decode(b)
				if err != nil || r.BuildKit != k.want {
					t.Errorf("%s: record of %q, %v; want %q", k.key, r.BuildKit, err, k.want)
				}
			}
		})
	}
}
