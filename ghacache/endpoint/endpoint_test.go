package endpoint

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	actionscache "github.com/tonistiigi/go-actions-cache"

	"github.com/bkcache/bkcache/ghacache"
	"github.com/bkcache/bkcache/ghacache/emulator"
)

// setup runs the emulator (blobs in memory) and an endpoint in front of
// it, and returns BuildKit's own cache client (go-actions-cache, what the
// daemon's type=gha backend uses) pointed at the endpoint.
func setup(t *testing.T, write bool) (*Server, *actionscache.Cache, *emulator.Emulator, string) {
	t.Helper()
	return setupWith(t, write, nil)
}

// setupWith is setup with wrap, if set, in front of the cache service.
func setupWith(t *testing.T, write bool, wrap func(http.Handler) http.Handler) (*Server, *actionscache.Cache, *emulator.Emulator, string) {
	t.Helper()
	mem := emulator.NewMemoryStore()
	blobSrv := httptest.NewServer(mem)
	t.Cleanup(blobSrv.Close)
	mem.URL = blobSrv.URL
	emu, err := emulator.New(emulator.Config{Secret: []byte("test-secret-0123456789"), Blobs: mem})
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = emu
	if wrap != nil {
		h = wrap(emu)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	real, err := emu.Token(emulator.TokenOptions{Repo: "o/r", Write: "refs/heads/main"})
	if err != nil {
		t.Fatal(err)
	}
	// Small blocks, so a few MiB cross several in parallel.
	c, err := ghacache.NewClient(ghacache.Config{ResultsURL: srv.URL + "/", Token: real, ServiceV2: true, BlockSize: 1 << 20, MaxRetryWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ep, daemon := serve(t, c, write)
	if strings.Contains(ep.Token(), real) || ep.Token() == real {
		t.Fatal("the minted token carries the real one")
	}
	return ep, daemon, emu, srv.URL
}

// serve starts an endpoint (one build's) on c and returns BuildKit's
// client for it.
func serve(t *testing.T, c *ghacache.Client, write bool) (*Server, *actionscache.Cache) {
	t.Helper()
	scopes, err := c.Scopes()
	if err != nil {
		t.Fatal(err)
	}
	ep, err := Listen(c, "127.0.0.1:0", Options{Scopes: scopes, Write: write})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ep.Close() })
	daemon, err := actionscache.New(ep.Token(), ep.URL(), true, actionscache.Opt{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("BuildKit's client refuses the minted token: %v", err)
	}
	return ep, daemon
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStockClientRoundTrip(t *testing.T) {
	ep, daemon, _, realURL := setup(t, true)
	ctx := context.Background()
	if got := daemon.Scopes(); len(got) != 1 || got[0].Scope != "refs/heads/main" || got[0].Permission&actionscache.PermissionWrite == 0 {
		t.Fatalf("scopes the daemon reads from the minted token: %+v", got)
	}
	for _, n := range []int{100, 5<<20 + 17} { // one Put Blob; several daemon blocks
		data := randomBytes(t, n)
		key := "buildkit-blob-1-" + digest.FromBytes(data).String()
		if err := daemon.Save(ctx, key, actionscache.NewBlob(data)); err != nil {
			t.Fatalf("save %d bytes: %v", n, err)
		}
		e, err := daemon.Load(ctx, key)
		if err != nil || e == nil {
			t.Fatalf("load %d bytes: %v, %v", n, e, err)
		}
		if !strings.HasPrefix(e.URL, strings.TrimSuffix(ep.URL(), "/")) || strings.Contains(e.URL, realURL) {
			t.Fatalf("the daemon got a blob URL that is not the endpoint's: %s", e.URL)
		}
		var buf bytes.Buffer
		if err := e.WriteTo(ctx, &buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("read back %d bytes, want the %d saved", buf.Len(), n)
		}
		// A read at an offset, as BuildKit's ReaderAt does.
		ra := e.Download(ctx)
		p := make([]byte, 10)
		if _, err := ra.ReadAt(p, int64(n-10)); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !bytes.Equal(p, data[n-10:]) {
			t.Fatalf("ranged read: got %x, want %x", p, data[n-10:])
		}
		_ = ra.Close()
		// The entry exists: a second save is the os.ErrExist BuildKit skips.
		if err := daemon.Save(ctx, key, actionscache.NewBlob(data)); !os.IsExist(err) && !strings.Contains(strings.ToLower(err.Error()), "exist") {
			t.Fatalf("second save: %v, want an already-exists error", err)
		}
	}
	if st := ep.Stats(); st.Uploads != 2 || st.Hits < 2 {
		t.Fatalf("stats: %+v", st)
	}
}

// A blob whose bytes do not match the digest its key names is never
// finalized: the next lookup is a miss.
func TestDigestMismatchNotFinalized(t *testing.T) {
	_, daemon, _, _ := setup(t, true)
	ctx := context.Background()
	data := randomBytes(t, 3<<20)
	key := "buildkit-blob-1-" + digest.FromString("something else").String()
	if err := daemon.Save(ctx, key, actionscache.NewBlob(data)); err == nil {
		t.Fatal("save of a blob under another digest succeeded")
	}
	if e, err := daemon.Load(ctx, key); err != nil || e != nil {
		t.Fatalf("after a refused upload: entry %v, err %v; want a miss", e, err)
	}
}

// A layer evicted right after its lookup (as a quota eviction between
// BuildKit's existence check and its read would be) is a miss at the
// lookup, which BuildKit turns into a rebuilt step, not a failed read.
func TestEvictedAfterLookupIsMiss(t *testing.T) {
	first, daemon, emu, _ := setup(t, true)
	ctx := context.Background()
	data := randomBytes(t, 1000)
	key := "buildkit-blob-1-" + digest.FromBytes(data).String()
	if err := daemon.Save(ctx, key, actionscache.NewBlob(data)); err != nil {
		t.Fatal(err)
	}
	first.bg.Wait() // the layer's background commit
	// The next build's endpoint has not seen the blob.
	ep, daemon := serve(t, first.c, false)
	if err := emu.SetFaults(emulator.Faults{EvictAfterLookup: ghacache.BlobKey("")}); err != nil {
		t.Fatal(err)
	}
	if e, err := daemon.Load(ctx, key); err != nil || e != nil {
		t.Fatalf("lookup of an evicted layer: %v, %v; want a miss", e, err)
	}
	if st := ep.Stats(); st.Evicted != 1 || st.Hits != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A layer is committed and finalized in the background once its digest
// checks out; when that fails, the index that would name it is refused,
// so no index names a layer the cache does not hold.
func TestIndexWaitsForLayers(t *testing.T) {
	failLayers := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/FinalizeCacheEntryUpload") {
				body, _ := io.ReadAll(r.Body)
				if strings.Contains(string(body), "buildkit-blob-1-") {
					w.WriteHeader(http.StatusBadRequest)
					_, _ = w.Write([]byte(`{"code":"invalid_argument","msg":"injected"}`))
					return
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
			next.ServeHTTP(w, r)
		})
	}
	_, daemon, emu, _ := setupWith(t, true, failLayers)
	ctx := context.Background()
	data := randomBytes(t, 2000)
	// The save may fail or not: its commit runs in the background, and
	// the daemon hears of the failure only if it came first.
	_ = daemon.Save(ctx, "buildkit-blob-1-"+digest.FromBytes(data).String(), actionscache.NewBlob(data))
	err := daemon.SaveMutable(ctx, "index-buildkit-1-x", 15*time.Second, func(*actionscache.Entry) (actionscache.Blob, error) {
		return actionscache.NewBlob([]byte("{}")), nil
	})
	if err == nil {
		t.Fatal("the index was saved although its layer failed to finalize")
	}
	for _, e := range emu.Entries("o/r") {
		if e.Finalized {
			t.Errorf("entry %s is in the cache", e.Key)
		}
	}
}

// When the daemon reads an index, the endpoint looks its layers up in
// parallel; the daemon's own lookups of them, one by one as it loads
// cached results, are then answered without another call to the service.
func TestIndexPrefetchesLayers(t *testing.T) {
	var lookups atomic.Int64
	count := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/GetCacheEntryDownloadURL") {
				lookups.Add(1)
			}
			next.ServeHTTP(w, r)
		})
	}
	first, daemon, _, _ := setupWith(t, true, count)
	ctx := context.Background()
	var layers []string
	for range 3 {
		data := randomBytes(t, 5000)
		d := digest.FromBytes(data)
		if err := daemon.Save(ctx, "buildkit-blob-1-"+d.String(), actionscache.NewBlob(data)); err != nil {
			t.Fatal(err)
		}
		layers = append(layers, `{"blob":"`+d.String()+`"}`)
	}
	index := `{"layers":[` + strings.Join(layers, ",") + `]}`
	if err := daemon.SaveMutable(ctx, "index-buildkit-1-x", 15*time.Second, func(*actionscache.Entry) (actionscache.Blob, error) {
		return actionscache.NewBlob([]byte(index)), nil
	}); err != nil {
		t.Fatal(err)
	}
	first.bg.Wait()

	ep, daemon := serve(t, first.c, false)
	e, err := daemon.Load(ctx, "index-buildkit-1-x#")
	if err != nil || e == nil {
		t.Fatalf("index lookup: %v, %v", e, err)
	}
	var buf bytes.Buffer
	if err := e.WriteTo(ctx, &buf); err != nil || buf.String() != index {
		t.Fatalf("index read: %q, %v", buf.String(), err)
	}
	ep.mu.Lock()
	pfs := maps.Clone(ep.prefetches)
	ep.mu.Unlock()
	if len(pfs) != 3 {
		t.Fatalf("%d layer lookups started, want 3", len(pfs))
	}
	for _, pf := range pfs {
		<-pf.done
	}
	before := lookups.Load()
	for _, l := range layers {
		key := "buildkit-blob-1-" + strings.TrimSuffix(strings.TrimPrefix(l, `{"blob":"`), `"}`)
		if e, err := daemon.Load(ctx, key); err != nil || e == nil {
			t.Fatalf("layer lookup: %v, %v", e, err)
		}
	}
	if after := lookups.Load(); after != before {
		t.Errorf("the daemon's layer lookups made %d calls to the service, want 0 (prefetched)", after-before)
	}
}

func TestRefusesWithoutToken(t *testing.T) {
	ep, _, _, _ := setup(t, true)
	for _, auth := range []string{"", "Bearer nope", "Bearer " + ep.Token() + "x"} {
		req, _ := http.NewRequest("POST", ep.URL()+"twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL", strings.NewReader(`{"key":"k","version":"v"}`))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("Authorization %q: status %d, want 401", auth, resp.StatusCode)
		}
	}
	if st := ep.Stats(); st.Rejected != 3 || st.Lookups != 0 {
		t.Fatalf("stats: %+v", st)
	}
	// An unknown blob id is not found, whatever it is.
	resp, err := http.Get(ep.URL() + "blob/0123")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown blob: %d", resp.StatusCode)
	}
}

func TestReadOnlyRefusesCreate(t *testing.T) {
	_, daemon, _, _ := setup(t, false)
	data := randomBytes(t, 10)
	err := daemon.Save(context.Background(), "buildkit-blob-1-"+digest.FromBytes(data).String(), actionscache.NewBlob(data))
	if err == nil || !strings.Contains(err.Error(), "denied") {
		t.Fatalf("save through a read-only endpoint: %v", err)
	}
}

// BuildKit reads a lazy layer with an open-ended range and stops once it
// has what it needs. When the build is over, Close must drop such a read
// rather than wait for it: a graceful shutdown waited 5 s on every fully
// cached build, and left the connection open after that.
func TestCloseDropsAbandonedReads(t *testing.T) {
	first, daemon, _, _ := setup(t, true)
	ctx := context.Background()
	data := randomBytes(t, 32<<20) // more than the sockets buffer
	key := "buildkit-blob-1-" + digest.FromBytes(data).String()
	if err := daemon.Save(ctx, key, actionscache.NewBlob(data)); err != nil {
		t.Fatal(err)
	}
	first.bg.Wait()
	ep, daemon := serve(t, first.c, false)
	e, err := daemon.Load(ctx, key)
	if err != nil || e == nil {
		t.Fatalf("lookup: %v, %v", e, err)
	}
	req, err := http.NewRequest(http.MethodGet, e.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Range", "bytes=0-")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if err := ep.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil && n+1 == int64(len(data)) {
		t.Fatal("the abandoned read was served to its end after Close: the connection stayed open")
	}
}
