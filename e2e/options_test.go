package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/bkcache/bkcache/internal/plan"
	"github.com/bkcache/bkcache/internal/testenv"
)

const (
	mediaOCIIndex      = "application/vnd.oci.image.index.v1+json"
	mediaDockerList    = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaOCIManifest   = "application/vnd.oci.image.manifest.v1+json"
	mediaCacheConfig   = "application/vnd.buildkit.cacheconfig.v0"
	acceptCacheManifst = mediaOCIIndex + ", " + mediaDockerList + ", " + mediaOCIManifest
)

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
}

// cacheManifest is the union of an index (manifests) and an image manifest
// (config, layers): a registry cache is stored as either.
type cacheManifest struct {
	MediaType string       `json:"mediaType"`
	Manifests []descriptor `json:"manifests"`
	Config    *descriptor  `json:"config"`
	Layers    []descriptor `json:"layers"`
}

// blobs are the layer descriptors of the cache, without its config.
func (m cacheManifest) blobs() []descriptor {
	var out []descriptor
	for _, d := range append(append([]descriptor{}, m.Manifests...), m.Layers...) {
		if d.MediaType != mediaCacheConfig {
			out = append(out, d)
		}
	}
	return out
}

// registryGet reads /v2/<path> from the plain-HTTP test registry.
func registryGet(t *testing.T, registry, path, accept string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+registry+"/v2/"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	c := &http.Client{Timeout: time.Minute}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", path, resp.Status, body)
	}
	return resp, body
}

// readCacheManifest fetches the manifest ref (host/repo:tag) points at.
func readCacheManifest(t *testing.T, ref string) (cacheManifest, string) {
	t.Helper()
	host, rest, _ := strings.Cut(ref, "/")
	i := strings.LastIndex(rest, ":")
	if i < 0 {
		t.Fatalf("cache ref %q has no tag", ref)
	}
	resp, body := registryGet(t, host, rest[:i]+"/manifests/"+rest[i+1:], acceptCacheManifst)
	var m cacheManifest
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("cache manifest of %s: %v", ref, err)
	}
	ct := resp.Header.Get("Content-Type")
	if m.MediaType == "" {
		m.MediaType = ct
	}
	return m, rest[:i]
}

// TestRegistryExportOptions builds once per option set, exports with the
// registry backend, and reads what the registry holds.
func TestRegistryExportOptions(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry")
	tests := []struct {
		name  string
		opts  string
		check func(t *testing.T, m cacheManifest, repo string)
	}{
		{"default is gzip", "", func(t *testing.T, m cacheManifest, _ string) {
			requireLayerSuffix(t, m, "+gzip", "tar.gzip")
			// BuildKit v0.34 defaults to image-manifest=true.
			requireMediaType(t, m, mediaOCIManifest)
		}},
		{"oci index", "oci-mediatypes=true,image-manifest=false", func(t *testing.T, m cacheManifest, _ string) {
			requireMediaType(t, m, mediaOCIIndex)
			requireLayers(t, m, mediaOCILayerGzip)
		}},
		{"zstd", "compression=zstd,compression-level=3,force-compression=true", func(t *testing.T, m cacheManifest, repo string) {
			requireLayerSuffix(t, m, "+zstd")
			first := m.blobs()[0]
			_, blob := registryGet(t, env.Registry, repo+"/blobs/"+first.Digest, "")
			dec, err := zstd.NewReader(strings.NewReader(string(blob)))
			if err != nil {
				t.Fatalf("zstd reader: %v", err)
			}
			defer dec.Close()
			n, err := io.Copy(io.Discard, dec)
			if err != nil || n == 0 {
				t.Fatalf("layer %s is not zstd: decoded %d bytes, %v", first.Digest, n, err)
			}
		}},
		{"docker media types", "oci-mediatypes=false", func(t *testing.T, m cacheManifest, _ string) {
			requireMediaType(t, m, mediaDockerList)
			requireLayers(t, m, mediaDockerLayerGzip)
		}},
		{"image manifest", "image-manifest=true", func(t *testing.T, m cacheManifest, _ string) {
			if m.MediaType != mediaOCIManifest {
				t.Errorf("cache manifest media type %q, want %q", m.MediaType, mediaOCIManifest)
			}
			if m.Config == nil || m.Config.MediaType != mediaCacheConfig {
				t.Errorf("config %+v, want media type %q", m.Config, mediaCacheConfig)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := testenv.RandomHex(5)
			line := fmt.Sprintf("type=registry,ref=%s/e2e/%s,registry.insecure=true", env.Registry, id)
			if tt.opts != "" {
				line += "," + tt.opts
			}
			p := expand(t, "main", "t"+id, line, plan.Options{})
			if len(p.Exports) != 1 {
				t.Fatalf("plan exports %d entries, want 1", len(p.Exports))
			}
			e := p.Exports[0]
			// ignore-error=false: an export failure fails the build here
			// rather than leaving a missing manifest to explain.
			e.Attrs["ignore-error"] = "false"
			requireCold(t, build(t, testenv.NewBuildkitd(t), writeContext(t, "opts "+id), nil, p.Exports, nil))
			m, repo := readCacheManifest(t, e.Attrs["ref"])
			if len(m.blobs()) == 0 {
				t.Fatalf("cache manifest %s has no layers", m.MediaType)
			}
			tt.check(t, m, repo)
		})
	}
}

// requireLayerSuffix checks every layer media type ends in one of suffixes.
func requireLayerSuffix(t *testing.T, m cacheManifest, suffixes ...string) {
	t.Helper()
	for _, d := range m.blobs() {
		ok := false
		for _, s := range suffixes {
			ok = ok || strings.HasSuffix(d.MediaType, s)
		}
		if !ok {
			t.Errorf("layer %s media type %q, want a %q suffix", d.Digest, d.MediaType, suffixes)
		}
	}
}
