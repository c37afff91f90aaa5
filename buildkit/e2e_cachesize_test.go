package buildkit

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/bkcache/bkcache/internal/testenv"
	"github.com/moby/buildkit/client"
)

// ExportSizes reads back what one build exported to a local directory and
// to a registry: the same cache blobs, so the same size, and for the fresh
// directory exactly the bytes of its blobs.
func TestE2EExportSizes(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry")
	cacheDir := filepath.Join(t.TempDir(), "cache")
	ref := env.Registry + "/bkcache-e2e/cache:size-" + randomID(t)
	files := map[string]string{"a.txt": "a " + randomID(t), "b.txt": "b " + randomID(t)}
	ctxDir := writeContext(t, fmt.Sprintf(fiveSteps, env.BaseImage), files)
	exports := []client.CacheOptionsEntry{
		{Type: "local", Attrs: map[string]string{"dest": cacheDir, "mode": "max"}},
		{Type: "registry", Attrs: map[string]string{"ref": ref, "mode": "max", "registry.insecure": "true"}},
		{Type: "s3", Attrs: map[string]string{"bucket": "b", "region": "r", "endpoint_url": "http://" + closedAddr(t)}},
	}
	res := mustBuild(t, testenv.NewBuildkitd(t), Request{Build: BuildOptions{Context: ctxDir}, Exports: exports})

	sizes := ExportSizes(context.Background(), res, exports)
	var blobs int64
	err := filepath.WalkDir(filepath.Join(cacheDir, "blobs"), func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		blobs += info.Size()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if sizes[0] != blobs || blobs == 0 {
		t.Errorf("local size %d, want the %d bytes of the directory's blobs", sizes[0], blobs)
	}
	if sizes[1] != sizes[0] {
		t.Errorf("registry size %d, want the local size %d (the same blobs)", sizes[1], sizes[0])
	}
	if sizes[2] != -1 {
		t.Errorf("a failed s3 export has size %d, want -1 (unknown)", sizes[2])
	}

	t.Run("a failed export has no size", func(t *testing.T) {
		failed := Result{Vertices: []Vertex{{Name: "exporting cache to client directory", Error: "permission denied"}}}
		if got := ExportSizes(context.Background(), failed, exports[:1]); got[0] != -1 {
			t.Errorf("size %d after a failed local export, want -1: the directory holds an older cache", got[0])
		}
	})
}
