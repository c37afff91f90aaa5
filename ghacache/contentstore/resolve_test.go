package contentstore

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bkcache/bkcache/ghacache"
	"github.com/bkcache/bkcache/ghacache/emulator"
)

// TestResolveLeavesOutEvictedAfterLookup: a blob whose entry a lookup
// finds but whose bytes are gone (the emulator evicts it right after the
// lookup, as a quota eviction between lookup and download would) is left
// out of the served index, so the daemon never reads it: a miss, never a
// failed read that poisons the builder.
func TestResolveLeavesOutEvictedAfterLookup(t *testing.T) {
	services(t, func(t *testing.T, s service) {
		ctx := context.Background()
		layers := [][]byte{randomBytes(t, 1000), randomBytes(t, 3000)}
		ex := NewExport(ctx, s.client(t, mainRef), "ev", mainRef, t.TempDir(), Options{})
		exportLikeBuildKit(t, ex, layers)
		if _, err := ex.Finalize(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.emu.SetFaults(emulator.Faults{EvictAfterLookup: ghacache.BlobKey("")}); err != nil {
			t.Fatal(err)
		}
		known := &Known{}
		im, err := Resolve(ctx, s.client(t, mainRef), "ev", mainRef, Options{Known: known})
		if err != nil || im == nil {
			t.Fatalf("Resolve: %v, %v", im, err)
		}
		if st := im.Stats(); st.Evicted != len(layers) {
			t.Errorf("stats %+v, want both layers evicted", st)
		}
		_, dt := im.Manifest()
		var idx ocispecs.Index
		if err := json.Unmarshal(dt, &idx); err != nil || len(idx.Manifests) != 1 {
			t.Errorf("served %s, want only the cache config", dt)
		}
		for _, l := range layers {
			if known.Has(digest.FromBytes(l)) {
				t.Errorf("an evicted layer is marked known")
			}
		}
	})
}

// TestResolveWaitsForItsLookups: Resolve never returns while lookups it
// started still run (they write its results and the Known set).
func TestResolveWaitsForItsLookups(t *testing.T) {
	mem := emulator.NewMemoryStore()
	blobSrv := httptest.NewServer(mem)
	t.Cleanup(blobSrv.Close)
	mem.URL = blobSrv.URL
	emu, err := emulator.New(emulator.Config{Secret: []byte("test-secret-0123456789"), Blobs: mem})
	if err != nil {
		t.Fatal(err)
	}
	var slow atomic.Bool
	var inflight, started atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() && strings.HasSuffix(r.URL.Path, "/GetCacheEntryDownloadURL") {
			started.Add(1)
			inflight.Add(1)
			defer inflight.Add(-1)
			time.Sleep(200 * time.Millisecond)
		}
		emu.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s := service{emu: emu, url: srv.URL + "/"}
	ctx := context.Background()
	c := s.client(t, mainRef)

	// Many good layers, then one BuildKit cannot use (no annotations).
	var cfg cacheimporttypes.CacheConfig
	for i := range 40 {
		cfg.Layers = append(cfg.Layers, cacheimporttypes.CacheLayer{Blob: digest.FromString(string(rune('a' + i))), ParentIndex: -1,
			Annotations: &cacheimporttypes.LayerAnnotations{DiffID: digest.FromString("d"), Size: 1, MediaType: ocispecs.MediaTypeImageLayerGzip}})
	}
	cfg.Layers = append(cfg.Layers, cacheimporttypes.CacheLayer{Blob: digest.FromString("bad"), ParentIndex: -1})
	if err := c.SaveIndexConfig(ctx, "w", mainRef, &cfg); err != nil {
		t.Fatal(err)
	}
	slow.Store(true)
	if _, err := Resolve(ctx, c, "w", mainRef, Options{}); err == nil || !strings.Contains(err.Error(), "without annotations") {
		t.Fatalf("Resolve: %v, want the bad layer's error", err)
	}
	before := started.Load()
	if n := inflight.Load(); n != 0 {
		t.Errorf("%d lookups still running after Resolve returned", n)
	}
	time.Sleep(300 * time.Millisecond)
	if after := started.Load(); after != before {
		t.Errorf("%d lookups started after Resolve returned", after-before)
	}
}
