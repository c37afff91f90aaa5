package contentstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/labels"
	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bkcache/bkcache/ghacache"
	"github.com/bkcache/bkcache/ghacache/emulator"
	"github.com/bkcache/bkcache/internal/testenv"
)

const mainRef = "refs/heads/main"

type service struct {
	emu *emulator.Emulator
	url string
	v1  bool // speak the legacy v1 API (GHES) instead of v2
}

func (s service) client(t *testing.T, write string, read ...string) *ghacache.Client {
	t.Helper()
	tok, err := s.emu.Token(emulator.TokenOptions{Repo: "o/r", Write: write, Read: read})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ghacache.NewClient(ghacache.Config{ResultsURL: s.url, CacheURL: s.url, Token: tok, ServiceV2: !s.v1, BlockSize: 4 << 20, MaxRetryWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// services runs f against the emulator with blobs in memory (v2 and v1
// API) and, when the test environment is up, in real Azurite.
func services(t *testing.T, f func(t *testing.T, s service)) {
	t.Run("memory", func(t *testing.T) {
		mem := emulator.NewMemoryStore()
		blobSrv := httptest.NewServer(mem)
		t.Cleanup(blobSrv.Close)
		mem.URL = blobSrv.URL
		f(t, newService(t, mem))
	})
	t.Run("memory-v1", func(t *testing.T) {
		mem := emulator.NewMemoryStore()
		blobSrv := httptest.NewServer(mem)
		t.Cleanup(blobSrv.Close)
		mem.URL = blobSrv.URL
		s := newService(t, mem)
		s.v1 = true
		f(t, s)
	})
	t.Run("azurite", func(t *testing.T) {
		env := testenv.Require(t, "azure")
		name := env.AzureAccountName
		if name == "" {
			name = "devstoreaccount1"
		}
		store, err := emulator.NewAzureStore(context.Background(), emulator.AzureConfig{
			AccountURL: env.AzureAccountURL, AccountName: name, AccountKey: env.AzureAccountKey,
			Container: fmt.Sprintf("contentstore-%d", time.Now().UnixNano()),
		})
		if err != nil {
			t.Fatal(err)
		}
		f(t, newService(t, store))
	})
}

func newService(t *testing.T, blobs emulator.BlobStore) service {
	emu, err := emulator.New(emulator.Config{Secret: []byte("test-secret-0123456789"), Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	return service{emu: emu, url: srv.URL + "/"}
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	// gzip's magic, as a real layer starts: never held back as JSON.
	b[0], b[1] = 0x1f, 0x8b
	return b
}

// exportLikeBuildKit writes layers, the cache config and an OCI image
// manifest the way BuildKit's local cache exporter does
// (cache/remotecache/export.go); content.WriteBlob skips blobs whose
// Writer answers ErrAlreadyExists.
func exportLikeBuildKit(t *testing.T, cs content.Store, layers [][]byte) {
	t.Helper()
	ctx := context.Background()
	var cfg cacheimporttypes.CacheConfig
	mf := ocispecs.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispecs.MediaTypeImageManifest}
	for i, l := range layers {
		d := digest.FromBytes(l)
		desc := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: d, Size: int64(len(l)), Annotations: map[string]string{
			labels.LabelUncompressed: digest.FromString(fmt.Sprint("diff", i)).String(),
			"buildkit/createdat":     time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Format(time.RFC3339Nano),
		}}
		if err := content.WriteBlob(ctx, cs, d.String(), bytes.NewReader(l), desc); err != nil {
			t.Fatalf("writing layer %d: %v", i, err)
		}
		mf.Layers = append(mf.Layers, desc)
		cfg.Layers = append(cfg.Layers, cacheimporttypes.CacheLayer{Blob: d, ParentIndex: i - 1})
		cfg.Records = append(cfg.Records, cacheimporttypes.CacheRecord{Digest: digest.FromString(fmt.Sprint("rec", i)),
			Results: []cacheimporttypes.CacheResult{{LayerIndex: i}}})
	}
	put := func(v any, mt string) ocispecs.Descriptor {
		dt, _ := json.Marshal(v)
		desc := ocispecs.Descriptor{MediaType: mt, Digest: digest.FromBytes(dt), Size: int64(len(dt))}
		if err := content.WriteBlob(ctx, cs, desc.Digest.String(), bytes.NewReader(dt), desc); err != nil {
			t.Fatal(err)
		}
		return desc
	}
	mf.Config = put(cfg, cacheimporttypes.CacheConfigMediaTypeV0)
	put(mf, ocispecs.MediaTypeImageManifest)
}

func readAll(t *testing.T, ra content.ReaderAt) []byte {
	t.Helper()
	defer ra.Close()
	out := make([]byte, ra.Size())
	// 1 MiB reads in order, as containerd's content server does.
	for off := int64(0); off < ra.Size(); off += 1 << 20 {
		n, err := ra.ReadAt(out[off:min(off+1<<20, ra.Size())], off)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("ReadAt %d: %v", off, err)
		}
		if int64(n) != min(1<<20, ra.Size()-off) {
			t.Fatalf("ReadAt %d: %d bytes", off, n)
		}
	}
	return out
}

func TestExportThenImport(t *testing.T) {
	services(t, func(t *testing.T, s service) {
		ctx := context.Background()
		layers := [][]byte{randomBytes(t, 300), randomBytes(t, 9<<20+17), randomBytes(t, 64<<10)}
		ex := NewExport(ctx, s.client(t, mainRef), "app", mainRef, t.TempDir(), Options{})
		exportLikeBuildKit(t, ex, layers)
		st, err := ex.Finalize(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Uploaded != 3 || st.Skipped != 0 || st.IndexKey != ghacache.IndexKey("app", mainRef)+"#1" {
			t.Errorf("export stats %+v", st)
		}
		// The index is BuildKit's gha format: the cache config with layer
		// annotations, and nothing but layers and the index was saved.
		for _, e := range s.emu.Entries("o/r") {
			if !strings.HasPrefix(e.Key, "buildkit-blob-1-sha256:") && !strings.HasPrefix(e.Key, "index-app-1-") {
				t.Errorf("unexpected entry %s", e.Key)
			}
		}

		// A pull request reads main's index.
		c := s.client(t, "refs/pull/1/merge", mainRef)
		if im, err := Resolve(ctx, c, "app", "refs/pull/1/merge", Options{}); err != nil || im != nil {
			t.Fatalf("the PR's own ref has no index: got %v, %v", im, err)
		}
		im, err := Resolve(ctx, c, "app", mainRef, Options{})
		if err != nil || im == nil {
			t.Fatalf("Resolve main: %v, %v", im, err)
		}
		d, dt := im.Manifest()
		var idx ocispecs.Index
		if err := json.Unmarshal(dt, &idx); err != nil || len(idx.Manifests) != 4 {
			t.Fatalf("served manifest %s: %v", dt, err)
		}
		if info, err := im.Info(ctx, d); err != nil || info.Size != int64(len(dt)) {
			t.Errorf("Info(manifest) = %+v, %v", info, err)
		}
		for i, l := range layers {
			ld := digest.FromBytes(l)
			ra, err := im.ReaderAt(ctx, ocispecs.Descriptor{Digest: ld})
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, ra); !bytes.Equal(got, l) {
				t.Errorf("layer %d read back differs", i)
			}
		}
		if st := im.Stats(); st.BlobsServed != 3 || st.BytesDown != int64(len(layers[0])+len(layers[1])+len(layers[2])) {
			t.Errorf("import stats %+v", st)
		}

		// Re-export of the same build: nothing uploaded, one new index.
		ex2 := NewExport(ctx, s.client(t, mainRef), "app", mainRef, t.TempDir(), Options{})
		exportLikeBuildKit(t, ex2, layers)
		st, err = ex2.Finalize(ctx)
		if err != nil || st.Uploaded != 0 || st.Skipped != 3 || !strings.HasSuffix(st.IndexKey, "#2") {
			t.Errorf("re-export: %+v, %v", st, err)
		}
	})
}

// TestRangeReaderRandom reads a large layer at random offsets and sizes.
func TestRangeReaderRandom(t *testing.T) {
	services(t, func(t *testing.T, s service) {
		ctx := context.Background()
		layer := randomBytes(t, 3*chunkSize+123)
		ex := NewExport(ctx, s.client(t, mainRef), "r", mainRef, t.TempDir(), Options{})
		exportLikeBuildKit(t, ex, [][]byte{layer})
		if _, err := ex.Finalize(ctx); err != nil {
			t.Fatal(err)
		}
		im, err := Resolve(ctx, s.client(t, mainRef), "r", mainRef, Options{})
		if err != nil || im == nil {
			t.Fatal(err)
		}
		ra, err := im.ReaderAt(ctx, ocispecs.Descriptor{Digest: digest.FromBytes(layer)})
		if err != nil {
			t.Fatal(err)
		}
		defer ra.Close()
		for _, tc := range []struct{ off, n int64 }{
			{0, 1}, {chunkSize - 1, 2}, {2*chunkSize + 5, chunkSize + 10}, {int64(len(layer)) - 10, 10}, {100, 3 * chunkSize},
		} {
			t.Run(fmt.Sprint(tc.off, "+", tc.n), func(t *testing.T) {
				p := make([]byte, tc.n)
				n, err := ra.ReadAt(p, tc.off)
				if err != nil && !errors.Is(err, io.EOF) {
					t.Fatal(err)
				}
				if !bytes.Equal(p[:n], layer[tc.off:tc.off+int64(n)]) || int64(n) != min(tc.n, int64(len(layer))-tc.off) {
					t.Errorf("read %d bytes at %d: wrong content", n, tc.off)
				}
			})
		}
		if _, err := ra.ReadAt(make([]byte, 1), int64(len(layer))); !errors.Is(err, io.EOF) {
			t.Errorf("read past the end: %v, want EOF", err)
		}
	})
}

// TestEvictedLayerIsLeftOut: a layer gone from the cache is left out of
// the served manifest (BuildKit then has no result for it: a miss).
func TestEvictedLayerIsLeftOut(t *testing.T) {
	services(t, func(t *testing.T, s service) {
		ctx := context.Background()
		layers := [][]byte{randomBytes(t, 1000), randomBytes(t, 2000)}
		ex := NewExport(ctx, s.client(t, mainRef), "ev", mainRef, t.TempDir(), Options{})
		exportLikeBuildKit(t, ex, layers)
		if _, err := ex.Finalize(ctx); err != nil {
			t.Fatal(err)
		}
		// A quota below the second layer's size evicts the least recently
		// used entries on the next finalize.
		if err := s.emu.SetFaults(emulator.Faults{QuotaBytes: 2500}); err != nil {
			t.Fatal(err)
		}
		c := s.client(t, mainRef)
		if err := c.Save(ctx, "unrelated", "v", bytes.NewReader(make([]byte, 1500)), 1500); err != nil {
			t.Fatal(err)
		}
		if err := s.emu.SetFaults(emulator.Faults{}); err != nil {
			t.Fatal(err)
		}
		im, err := Resolve(ctx, c, "ev", mainRef, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if im == nil {
			t.Skip("the quota evicted the index too")
		}
		st := im.Stats()
		if st.Evicted == 0 {
			t.Fatalf("nothing evicted: %+v\n%v", st, s.emu.Entries("o/r"))
		}
		_, dt := im.Manifest()
		var idx ocispecs.Index
		_ = json.Unmarshal(dt, &idx)
		if len(idx.Manifests) != 1+st.Layers-st.Evicted {
			t.Errorf("served %d descriptors for %d layers with %d evicted", len(idx.Manifests), st.Layers, st.Evicted)
		}
	})
}

// TestFailedUploadWritesNoIndex: when a layer cannot be uploaded the
// index is not written, so no index ever names a missing blob.
func TestFailedUploadWritesNoIndex(t *testing.T) {
	services(t, func(t *testing.T, s service) {
		ctx := context.Background()
		// v2 uploads to a signed URL, which the fault hands out expired;
		// v1 uploads through the service, which fails every request.
		faults := emulator.Faults{ExpiredURLs: true}
		if s.v1 {
			faults = emulator.Faults{FailNext: 1 << 20}
		}
		c := s.client(t, mainRef)
		if err := s.emu.SetFaults(faults); err != nil {
			t.Fatal(err)
		}
		ex := NewExport(ctx, c, "f", mainRef, t.TempDir(), Options{})
		exportLikeBuildKit(t, ex, [][]byte{randomBytes(t, 5000)})
		st, err := ex.Finalize(ctx)
		if err := s.emu.SetFaults(emulator.Faults{}); err != nil {
			t.Fatal(err)
		}
		if err == nil || st.IndexKey != "" || len(st.Failed) != 1 {
			t.Fatalf("Finalize = %+v, %v; want an error and no index", st, err)
		}
		for _, e := range s.emu.Entries("o/r") {
			if strings.HasPrefix(e.Key, "index-") {
				t.Errorf("an index was written: %s", e.Key)
			}
		}
	})
}
