package buildkit

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/bkcache/bkcache/internal/testenv"
	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	"github.com/moby/buildkit/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// ExportSizes reads back what one build exported to a local directory, to
// a registry and to S3 (Versity): the same cache blobs, so the same size
// (for S3, whose cache manifest is its own JSON rather than an OCI index and
// config blob, the same layer bytes), and for the fresh directory exactly
// the bytes of its blobs.
func TestE2EExportSizes(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "s3")
	cacheDir := filepath.Join(t.TempDir(), "cache")
	ref := env.Registry + "/bkcache-e2e/cache:size-" + testenv.RandomHex(6)
	files := map[string]string{"a.txt": "a " + testenv.RandomHex(6), "b.txt": "b " + testenv.RandomHex(6)}
	ctxDir := writeContext(t, fmt.Sprintf(fiveSteps, env.BaseImage), files)
	exports := []client.CacheOptionsEntry{
		{Type: "local", Attrs: map[string]string{"dest": cacheDir, "mode": "max"}},
		{Type: "registry", Attrs: map[string]string{"ref": ref, "mode": "max", "registry.insecure": "true"}},
		{Type: "s3", Attrs: map[string]string{"bucket": env.S3Bucket, "region": "us-east-1", "endpoint_url": env.S3Endpoint,
			"use_path_style": "true", "access_key_id": env.S3AccessKey, "secret_access_key": env.S3SecretKey,
			"prefix": "size-" + testenv.RandomHex(6) + "/", "name": "main;other", "mode": "max"}},
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
	s3Manifest, localLayers := s3ManifestAndLocalLayers(t, exports[2].Attrs, cacheDir)
	if want := s3Manifest + localLayers; sizes[2] != want || localLayers == 0 {
		t.Errorf("s3 size %d, want %d: its %d-byte manifest and the local directory's %d bytes of layers",
			sizes[2], want, s3Manifest, localLayers)
	}

	t.Run("an unreachable store has no size", func(t *testing.T) {
		unreachable := client.CacheOptionsEntry{Type: "s3", Attrs: map[string]string{"bucket": "b", "region": "r",
			"endpoint_url": "http://" + closedAddr(t), "access_key_id": "k", "secret_access_key": "s"}}
		if got := ExportSizes(context.Background(), Result{}, []client.CacheOptionsEntry{unreachable}); got[0] != -1 {
			t.Errorf("s3 size %d with the endpoint closed, want -1 (unknown)", got[0])
		}
	})

	t.Run("a failed export has no size", func(t *testing.T) {
		failed := Result{Vertices: []Vertex{{Name: "exporting cache to client directory", Error: "permission denied"}}}
		if got := ExportSizes(context.Background(), failed, exports[:1]); got[0] != -1 {
			t.Errorf("size %d after a failed local export, want -1: the directory holds an older cache", got[0])
		}
	})
}

// s3ManifestAndLocalLayers returns the length of the cache manifest the s3
// export wrote and the total size of the layers the local export's index
// lists (all but its cache config blob).
func s3ManifestAndLocalLayers(t *testing.T, attrs map[string]string, cacheDir string) (manifest, layers int64) {
	t.Helper()
	c, err := NewS3Client(context.Background(), attrs)
	if err != nil {
		t.Fatal(err)
	}
	head, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{
		Bucket: aws.String(attrs["bucket"]), Key: aws.String(attrs["prefix"] + "manifests/main")})
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispecs.Index
	readJSON(t, filepath.Join(cacheDir, ocispecs.ImageIndexFile), &idx)
	if len(idx.Manifests) != 1 {
		t.Fatalf("local index lists %d manifests, want 1", len(idx.Manifests))
	}
	d := idx.Manifests[0].Digest
	var top struct { // an OCI index, or an image manifest with image-manifest=true
		Manifests []ocispecs.Descriptor `json:"manifests"`
		Layers    []ocispecs.Descriptor `json:"layers"`
	}
	readJSON(t, filepath.Join(cacheDir, ocispecs.ImageBlobsDir, d.Algorithm().String(), d.Encoded()), &top)
	for _, m := range append(top.Manifests, top.Layers...) {
		if m.MediaType != cacheimporttypes.CacheConfigMediaTypeV0 {
			layers += m.Size
		}
	}
	return aws.ToInt64(head.ContentLength), layers
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}
