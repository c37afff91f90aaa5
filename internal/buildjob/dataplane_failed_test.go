package buildjob

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bkcache/bkcache/ghacache"
	"github.com/bkcache/bkcache/ghacache/contentstore"
	"github.com/bkcache/bkcache/ghacache/emulator"
)

// TestDataPlaneFailedBuildStopsUploads: after a failed build no upload of
// its export keeps running (nor reads the spool that close deletes).
func TestDataPlaneFailedBuildStopsUploads(t *testing.T) {
	mem := emulator.NewMemoryStore()
	var puts atomic.Int32
	blobSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			// A slow store: the upload outlasts the build.
			puts.Add(1)
			defer puts.Add(-1)
			// Read the body first: only then does the server notice the
			// client going away.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Second):
			}
		}
		mem.ServeHTTP(w, r)
	}))
	t.Cleanup(blobSrv.Close)
	mem.URL = blobSrv.URL
	emu, err := emulator.New(emulator.Config{Secret: []byte("test-secret-0123456789"), Blobs: mem})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	tok, err := emu.Token(emulator.TokenOptions{Repo: "o/r", Write: "refs/heads/main"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ghacache.NewClient(ghacache.Config{ResultsURL: srv.URL + "/", Token: tok, ServiceV2: true})
	if err != nil {
		t.Fatal(err)
	}

	root := t.TempDir()
	spool, err := os.MkdirTemp(root, "export-")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ex := contentstore.NewExport(ctx, c, "buildkit", "refs/heads/main", spool, contentstore.Options{})
	dp := &dataPlane{root: root, exports: []dataPlaneExport{{store: ex, entry: "type=gha,scope=buildkit", ignoreError: true}}}
	layer := append([]byte{0x1f, 0x8b}, bytes.Repeat([]byte("x"), 5000)...)
	d := digest.FromBytes(layer)
	if err := content.WriteBlob(ctx, ex, d.String(), bytes.NewReader(layer), ocispecs.Descriptor{Digest: d, Size: int64(len(layer))}); err != nil {
		t.Fatal(err)
	}
	for puts.Load() == 0 {
		time.Sleep(10 * time.Millisecond)
	}

	// The build failed.
	if _, err := dp.finish(ctx, false); err != nil {
		t.Fatal(err)
	}
	dp.close()
	deadline := time.Now().Add(2 * time.Second)
	for puts.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := puts.Load(); n != 0 {
		t.Errorf("%d uploads still running after the failed build was cleaned up", n)
	}
}
