package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/bkcache/bkcache/internal/plan"
	"github.com/bkcache/bkcache/internal/testenv"
)

const (
	mediaOCILayerGzip    = "application/vnd.oci.image.layer.v1.tar+gzip"
	mediaOCILayerZstd    = "application/vnd.oci.image.layer.v1.tar+zstd"
	mediaDockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	refNameAnnotation    = "org.opencontainers.image.ref.name"
)

// localStore reads a local cache export: an OCI layout whose index.json
// points (by tag, "latest" unless tag= is set) at the cache manifest.
type localStore string

func (s localStore) blob(t *testing.T, digest string) []byte {
	t.Helper()
	alg, hex, ok := strings.Cut(digest, ":")
	if !ok {
		t.Fatalf("bad digest %q", digest)
	}
	b, err := os.ReadFile(filepath.Join(string(s), "blobs", alg, hex))
	if err != nil {
		t.Fatalf("cache blob %s: %v", digest, err)
	}
	return b
}

// manifest returns the cache manifest tagged tag in index.json; its
// MediaType is the descriptor's when the manifest itself has none.
func (s localStore) manifest(t *testing.T, tag string) cacheManifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(string(s), "index.json"))
	if err != nil {
		t.Fatalf("local cache: %v", err)
	}
	var idx struct {
		Manifests []struct {
			descriptor
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatalf("local cache index.json: %v", err)
	}
	for _, d := range idx.Manifests {
		if d.Annotations[refNameAnnotation] != tag {
			continue
		}
		var m cacheManifest
		if err := json.Unmarshal(s.blob(t, d.Digest), &m); err != nil {
			t.Fatalf("cache manifest %s: %v", d.Digest, err)
		}
		if m.MediaType == "" {
			m.MediaType = d.MediaType
		}
		return m
	}
	t.Fatalf("local cache index.json has no manifest tagged %q:\n%s", tag, b)
	return cacheManifest{}
}

// requireZstd fails unless blob is a zstd stream that decodes to data.
func requireZstd(t *testing.T, digest string, blob []byte) {
	t.Helper()
	dec, err := zstd.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatalf("zstd reader: %v", err)
	}
	defer dec.Close()
	n, err := io.Copy(io.Discard, dec)
	if err != nil || n == 0 {
		t.Fatalf("layer %s is not zstd: decoded %d bytes, %v", digest, n, err)
	}
}

// requireLayers checks every layer of m has media type want.
func requireLayers(t *testing.T, m cacheManifest, want string) {
	t.Helper()
	if len(m.blobs()) == 0 {
		t.Fatalf("cache manifest %s has no layers", m.MediaType)
	}
	for _, d := range m.blobs() {
		if d.MediaType != want {
			t.Errorf("layer %s media type %q, want %q", d.Digest, d.MediaType, want)
		}
	}
}

// TestLocalExportOptions exports with the local backend once per option
// set and reads the OCI layout it wrote. BuildKit v0.34 defaults to
// image-manifest=true, so the default is an image manifest whose config is
// the cache config; image-manifest=false gives an index, and
// oci-mediatypes=false a Docker manifest list with Docker layer types.
func TestLocalExportOptions(t *testing.T) {
	testenv.Require(t, "buildkit", "registry")
	addr := testenv.NewBuildkitd(t)
	tests := []struct {
		name  string
		opts  string
		check func(t *testing.T, s localStore, m cacheManifest)
	}{
		{"default", "", func(t *testing.T, _ localStore, m cacheManifest) {
			requireMediaType(t, m, mediaOCIManifest)
			requireLayers(t, m, mediaOCILayerGzip)
		}},
		{"oci index", "oci-mediatypes=true,image-manifest=false", func(t *testing.T, _ localStore, m cacheManifest) {
			requireMediaType(t, m, mediaOCIIndex)
			requireLayers(t, m, mediaOCILayerGzip)
		}},
		{"docker media types", "oci-mediatypes=false", func(t *testing.T, _ localStore, m cacheManifest) {
			requireMediaType(t, m, mediaDockerList)
			requireLayers(t, m, mediaDockerLayerGzip)
		}},
		{"zstd", "compression=zstd,compression-level=3,force-compression=true", func(t *testing.T, s localStore, m cacheManifest) {
			requireLayers(t, m, mediaOCILayerZstd)
			for _, d := range m.blobs() {
				requireZstd(t, d.Digest, s.blob(t, d.Digest))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := testenv.RandomHex(5)
			line := "type=local,dest=" + filepath.Join(t.TempDir(), "cache")
			if tt.opts != "" {
				line += "," + tt.opts
			}
			p := expand(t, "main", "t"+id, line, plan.Options{})
			if len(p.Exports) != 1 {
				t.Fatalf("plan exports %d entries, want 1", len(p.Exports))
			}
			e := p.Exports[0]
			e.Attrs["ignore-error"] = "false" // a failed export fails here, not as a missing index.json
			build(t, addr, writeContext(t, "local opts "+id), nil, p.Exports, nil)
			s := localStore(e.Attrs["dest"])
			tt.check(t, s, s.manifest(t, "latest"))
		})
	}
}

func requireMediaType(t *testing.T, m cacheManifest, want string) {
	t.Helper()
	if m.MediaType != want {
		t.Errorf("cache manifest media type %q, want %q", m.MediaType, want)
	}
	if want == mediaOCIManifest && (m.Config == nil || m.Config.MediaType != mediaCacheConfig) {
		t.Errorf("image manifest config %+v, want media type %q", m.Config, mediaCacheConfig)
	}
	if want != mediaOCIManifest && m.Config != nil {
		t.Errorf("%s has a config %+v; only an image manifest should", want, m.Config)
	}
}
