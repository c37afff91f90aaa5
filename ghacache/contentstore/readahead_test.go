package contentstore

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bkcache/bkcache/ghacache/emulator"
)

// TestReadAheadHasAnOverallCap: many layers open at once, each read a
// little, never fetch more than their reads plus the overall read-ahead
// budget (without it, each layer fetched readAhead chunks of its own).
func TestReadAheadHasAnOverallCap(t *testing.T) {
	mem := emulator.NewMemoryStore()
	var requested atomic.Int64
	blobSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			// "bytes=a-b"
			if a, b, ok := strings.Cut(strings.TrimPrefix(r.Header.Get("Range"), "bytes="), "-"); ok {
				from, _ := strconv.ParseInt(a, 10, 64)
				to, _ := strconv.ParseInt(b, 10, 64)
				requested.Add(to - from + 1)
			}
		}
		mem.ServeHTTP(w, r)
	}))
	t.Cleanup(blobSrv.Close)
	mem.URL = blobSrv.URL
	s := newService(t, mem)
	ctx := context.Background()

	const n = 6
	var layers [][]byte
	for range n {
		layers = append(layers, randomBytes(t, (readAhead+1)*chunkSize))
	}
	ex := NewExport(ctx, s.client(t, mainRef), "ra", mainRef, t.TempDir(), Options{})
	exportLikeBuildKit(t, ex, layers)
	if _, err := ex.Finalize(ctx); err != nil {
		t.Fatal(err)
	}
	im, err := Resolve(ctx, s.client(t, mainRef), "ra", mainRef, Options{})
	if err != nil || im == nil {
		t.Fatal(err)
	}
	defer im.Close()
	requested.Store(0)
	for _, l := range layers {
		ra, err := im.ReaderAt(ctx, ocispecs.Descriptor{Digest: digest.FromBytes(l)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ra.ReadAt(make([]byte, 1), 0); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // let the read-ahead settle
	if got, limit := requested.Load(), int64(n+readAheadBudget)*chunkSize; got > limit {
		t.Errorf("fetched %d MiB for %d one-byte reads, want at most %d MiB", got>>20, n, limit>>20)
	}
}
