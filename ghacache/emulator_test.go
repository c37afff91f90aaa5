package ghacache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bkcache/bkcache/ghacache/emulator"
	"github.com/bkcache/bkcache/internal/testenv"
)

// Tests against our cache-service emulator: with its in-memory blob store
// (always), and with real Azurite blobs and SAS URLs (testenv "azure").

type emuEnv struct {
	emu *emulator.Emulator
	srv *httptest.Server
}

func (e emuEnv) token(t testing.TB, write string, read ...string) string {
	t.Helper()
	tok, err := e.emu.Token(emulator.TokenOptions{Repo: "o/r", Write: write, Read: read})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (e emuEnv) client(t testing.TB, v2 bool, token string) *Client {
	t.Helper()
	c, err := NewClient(Config{
		ResultsURL: e.srv.URL, CacheURL: e.srv.URL, Token: token, ServiceV2: v2,
		BlockSize: 4 << 20, UploadConcurrency: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	c.r.jitter = func(d time.Duration) time.Duration { return d }
	c.r.sleep = func(ctx context.Context, d time.Duration) error { return ctx.Err() } // no real waits
	return c
}

func newEmuEnv(t testing.TB, blobs emulator.BlobStore) emuEnv {
	return newEmuEnvConfig(t, emulator.Config{Blobs: blobs})
}

func newEmuEnvConfig(t testing.TB, cfg emulator.Config) emuEnv {
	t.Helper()
	cfg.Secret = []byte("test-secret-0123456789")
	emu, err := emulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	return emuEnv{emu: emu, srv: srv}
}

func memoryEmu(t testing.TB) emuEnv {
	mem := emulator.NewMemoryStore()
	blobSrv := httptest.NewServer(mem)
	t.Cleanup(blobSrv.Close)
	mem.URL = blobSrv.URL
	return newEmuEnv(t, mem)
}

func azuriteEmu(t testing.TB) emuEnv { return newEmuEnv(t, azuriteStore(t)) }

func azuriteStore(t testing.TB) *emulator.AzureStore {
	return testenv.NewAzuriteStore(t, "ghacache-test")
}

func backends(t *testing.T, f func(t *testing.T, e emuEnv)) {
	t.Run("memory", func(t *testing.T) { f(t, memoryEmu(t)) })
	t.Run("azurite", func(t *testing.T) { f(t, azuriteEmu(t)) })
}

func loadAll(t *testing.T, c *Client, e Entry) []byte {
	t.Helper()
	rc, err := c.Load(context.Background(), e)
	if err != nil {
		t.Fatalf("Load %q: %v", e.Key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %q: %v", e.Key, err)
	}
	return b
}

func TestEmulatorRoundTrip(t *testing.T) {
	backends(t, func(t *testing.T, env emuEnv) {
		for _, v2 := range []bool{true, false} {
			t.Run(fmt.Sprintf("v2=%v", v2), func(t *testing.T) {
				c := env.client(t, v2, env.token(t, "refs/heads/main"))
				ctx, v := context.Background(), BuildKitVersion()
				data := randomBytes(t, 9<<20+123) // 3 blocks of 4 MiB
				key := fmt.Sprintf("buildkit-blob-1-sha256:%v", v2)
				if err := c.Save(ctx, key, v, bytes.NewReader(data), int64(len(data))); err != nil {
					t.Fatalf("Save: %v", err)
				}
				if err := c.Save(ctx, key, v, bytes.NewReader(data), int64(len(data))); !errors.Is(err, ErrAlreadyExists) {
					t.Fatalf("second Save = %v, want ErrAlreadyExists", err)
				}
				e, ok, err := c.Lookup(ctx, key, nil, v)
				if err != nil || !ok || e.Key != key {
					t.Fatalf("Lookup = %+v, %v, %v", e, ok, err)
				}
				if got := loadAll(t, c, e); !bytes.Equal(got, data) {
					t.Fatalf("loaded %d bytes, not the %d saved", len(got), len(data))
				}
				if _, ok, _ := c.Lookup(ctx, key, nil, "other-version"); ok {
					t.Error("a different version hit")
				}
			})
		}
	})
}

// BuildKit's index protocol: "index-…#n", read back by prefix, newest wins;
// a PR token reads the default branch's entries but writes only its own.
func TestEmulatorRestoreKeysAndScopes(t *testing.T) {
	backends(t, func(t *testing.T, env emuEnv) {
		ctx, v := context.Background(), BuildKitVersion()
		main := env.client(t, true, env.token(t, "refs/heads/main"))
		idx := IndexKey("buildkit", "refs/heads/main")
		for i := 1; i <= 3; i++ {
			body := fmt.Sprintf("index %d", i)
			if err := main.Save(ctx, fmt.Sprintf("%s#%d", idx, i), v, strings.NewReader(body), int64(len(body))); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond) // distinct creation times
		}
		pr := env.client(t, true, env.token(t, "refs/pull/7/merge", "refs/heads/main"))
		e, ok, err := pr.Lookup(ctx, idx+"#", []string{idx + "#"}, v)
		if err != nil || !ok {
			t.Fatalf("PR lookup of main's index: %v, %v", ok, err)
		}
		if e.Key != idx+"#3" || string(loadAll(t, pr, e)) != "index 3" {
			t.Errorf("PR got %q, want the newest %s#3", e.Key, idx)
		}
		// The PR writes to its own scope; main must not see it.
		prKey := IndexKey("buildkit", "refs/pull/7/merge") + "#1"
		if err := pr.Save(ctx, prKey, v, strings.NewReader("pr"), 2); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := main.Lookup(ctx, prKey, nil, v); ok {
			t.Error("main read an entry the PR wrote")
		}
		// A forged token is refused, and the error does not echo it.
		forged := env.client(t, true, env.token(t, "refs/heads/main")+"x")
		_, _, err = forged.Lookup(ctx, "k", nil, v)
		if err == nil || strings.Contains(err.Error(), "eyJ") {
			t.Errorf("forged token: err = %v", err)
		}
	})
}

func TestEmulatorFaults(t *testing.T) {
	backends(t, func(t *testing.T, env emuEnv) { emulatorFaults(t, env) })
}

func emulatorFaults(t *testing.T, env emuEnv) {
	ctx, v := context.Background(), BuildKitVersion()
	c := env.client(t, true, env.token(t, "refs/heads/main"))
	var waits []time.Duration
	c.r.sleep = func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return nil }

	// A 5xx burst is ridden out.
	if err := env.emu.SetFaults(emulator.Faults{FailNext: 3, FailStatus: http.StatusServiceUnavailable}); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(ctx, "a", v, strings.NewReader("a"), 1); err != nil {
		t.Fatalf("Save through a 5xx burst: %v", err)
	}
	if len(waits) != 3 {
		t.Errorf("waited %d times, want 3", len(waits))
	}

	// Past the upload rate ("a" already counted), 429 with Retry-After:
	// honoured, then given up.
	waits = nil
	if err := env.emu.SetFaults(emulator.Faults{UploadsPerMinute: 2}); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(ctx, "b", v, strings.NewReader("b"), 1); err != nil {
		t.Fatal(err)
	}
	err := c.Save(ctx, "c", v, strings.NewReader("c"), 1)
	if !errors.Is(err, ErrRateLimited) {
		t.Fatalf("Save past the rate = %v, want ErrRateLimited", err)
	}
	if len(waits) == 0 || waits[0] < time.Second || waits[0] > time.Minute {
		t.Errorf("waits = %v, want the server's Retry-After (1s..60s)", waits)
	}

	// Expired signed URLs. An entry looked up while URLs expire fails to
	// load while they still do (after one refresh), and loads once the
	// refresh gets a fresh URL.
	if err := env.emu.SetFaults(emulator.Faults{ExpiredURLs: true}); err != nil {
		t.Fatal(err)
	}
	e, ok, err := c.Lookup(ctx, "a", nil, v)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	_, err = c.Load(ctx, e)
	if err == nil {
		t.Fatal("Load with expired URLs succeeded")
	}
	t.Logf("expired URL: %v", err)
	if strings.Contains(err.Error(), "sig=") {
		t.Errorf("error leaks the signature: %v", err)
	}
	if err := env.emu.SetFaults(emulator.Faults{}); err != nil {
		t.Fatal(err)
	}
	if got := loadAll(t, c, e); string(got) != "a" {
		t.Errorf("after refresh loaded %q, want %q", got, "a")
	}
}

func TestEmulatorREST(t *testing.T) {
	backends(t, func(t *testing.T, env emuEnv) {
		ctx, v := context.Background(), BuildKitVersion()
		save := func(c *Client, key string, n int) {
			t.Helper()
			if err := c.Save(ctx, key, v, bytes.NewReader(make([]byte, n)), int64(n)); err != nil {
				t.Fatal(err)
			}
		}
		main := env.client(t, true, env.token(t, "refs/heads/main"))
		pr := env.client(t, true, env.token(t, "refs/pull/7/merge", "refs/heads/main"))
		mainIdx, prIdx := IndexKey("buildkit", "refs/heads/main"), IndexKey("buildkit", "refs/pull/7/merge")
		for i := 1; i <= 4; i++ {
			save(main, fmt.Sprintf("%s#%d", mainIdx, i), 10)
			time.Sleep(5 * time.Millisecond)
		}
		save(main, "buildkit-blob-1-sha256:a", 1000)
		save(pr, prIdx+"#1", 10)
		save(pr, "buildkit-blob-1-sha256:b", 500)

		// Under /api/v3/, as GITHUB_API_URL is on GHES.
		rest, err := NewREST(env.srv.Client(), env.srv.URL+"/api/v3", "ghs_anytoken")
		if err != nil {
			t.Fatal(err)
		}
		n, size, err := rest.Usage(ctx, "o", "r")
		if err != nil || n != 7 || size != 1550 {
			t.Fatalf("Usage = %d, %d, %v; want 7, 1550", n, size, err)
		}
		all, err := rest.List(ctx, "o", "r", ListOptions{Key: "index-", Sort: "created_at", Direction: "asc"})
		if err != nil || len(all) != 5 {
			t.Fatalf("List index- = %d entries, %v; want 5", len(all), err)
		}
		scopes, err := rest.ScopesWithCache(ctx, "o", "r", "buildkit", []string{"refs/pull/7/merge", "refs/heads/dev", "refs/heads/main"})
		if err != nil || len(scopes) != 2 || scopes[1].Key != mainIdx+"#4" {
			t.Fatalf("ScopesWithCache = %+v, %v", scopes, err)
		}
		d, freed, err := rest.PruneSuperseded(ctx, "o", "r", "refs/heads/main", mainIdx, 1)
		if err != nil || d != 3 || freed != 30 {
			t.Fatalf("PruneSuperseded = %d, %d, %v; want 3, 30", d, freed, err)
		}
		if e, ok, _ := main.Lookup(ctx, mainIdx+"#", []string{mainIdx + "#"}, v); !ok || e.Key != mainIdx+"#4" {
			t.Errorf("after prune the index resolves to %q, %v; want #4", e.Key, ok)
		}
		// Nothing was read within the grace before an hour from now.
		d, freed, _, err = rest.CleanupRef(ctx, "o", "r", "refs/pull/7/merge", time.Now().Add(time.Hour))
		if err != nil || d != 2 || freed != 510 {
			t.Fatalf("CleanupRef = %d, %d, %v; want 2, 510", d, freed, err)
		}
		left, err := rest.List(ctx, "o", "r", ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range left {
			if e.Ref != "refs/heads/main" {
				t.Errorf("entry %q of %s survived cleanup", e.Key, e.Ref)
			}
		}
		if len(left) != 2 {
			t.Errorf("%d entries left, want main's index #4 and blob", len(left))
		}
	})
}

func TestBlobRanges(t *testing.T) {
	backends(t, func(t *testing.T, e emuEnv) {
		ctx, v := context.Background(), BuildKitVersion()
		c := e.client(t, true, e.token(t, "refs/heads/main"))
		data := make([]byte, 5<<20+3)
		for i := range data {
			data[i] = byte(i * 7)
		}
		if err := c.Save(ctx, BlobKey("sha256:r"), v, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		ent, ok, err := c.BlobEntry(ctx, "sha256:r")
		if err != nil || !ok {
			t.Fatalf("BlobEntry: %v, %v", ok, err)
		}
		if _, ok, _ := c.BlobEntry(ctx, "sha256:absent"); ok {
			t.Errorf("BlobEntry found an absent blob")
		}
		r := c.Ranges(ent)
		for _, tc := range []struct{ off, n int }{{0, 10}, {1 << 20, 3 << 20}, {len(data) - 5, 5}, {len(data) - 2, 10}} {
			p := make([]byte, tc.n)
			n, err := r.ReadRange(ctx, p, int64(tc.off))
			want := min(tc.n, len(data)-tc.off)
			if n != want || !bytes.Equal(p[:n], data[tc.off:tc.off+n]) {
				t.Errorf("ReadRange(%d, %d) = %d bytes, want %d", tc.off, tc.n, n, want)
			}
			if n < tc.n && !errors.Is(err, io.EOF) {
				t.Errorf("short read at the end: %v, want EOF", err)
			} else if n == tc.n && err != nil {
				t.Errorf("ReadRange(%d, %d): %v", tc.off, tc.n, err)
			}
		}
		// Signed URLs that expire: one refresh, then a clear error.
		if err := e.emu.SetFaults(emulator.Faults{ExpiredURLs: true}); err != nil {
			t.Fatal(err)
		}
		expired, _, err := c.BlobEntry(ctx, "sha256:r")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Ranges(expired).ReadRange(ctx, make([]byte, 4), 0); err == nil {
			t.Errorf("an expired URL read without error")
		}
		if err := e.emu.SetFaults(emulator.Faults{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Ranges(expired).ReadRange(ctx, make([]byte, 4), 0); err != nil {
			t.Errorf("an expired URL was not refreshed: %v", err)
		}
	})
}
