package buildkit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/docker/cli/cli/config"
	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// ExportSizes returns, for each export, the size in bytes of the cache it
// now holds, read back from the store: the cache manifest and every blob it
// lists. It is -1 where the store cannot tell cheaply (gha, azblob,
// inline), where reading fails, and where the export's step failed in res
// (the store then holds an older cache, not this build's).
func ExportSizes(ctx context.Context, res Result, exports []client.CacheOptionsEntry) []int64 {
	sizes := make([]int64, len(exports))
	for i, e := range exports {
		sizes[i] = -1
		if exportFailed(res.Vertices, e.Type) {
			continue
		}
		var size int64
		var err error
		switch e.Type {
		case "local":
			size, err = localCacheSize(e.Attrs["dest"], e.Attrs["tag"])
		case "registry":
			size, err = registryCacheSize(ctx, e.Attrs["ref"], e.Attrs["registry.insecure"] == "true")
		case "s3":
			size, err = s3CacheSize(ctx, e.Attrs)
		default:
			continue
		}
		if err == nil {
			sizes[i] = size
		}
	}
	return sizes
}

func exportFailed(vs []Vertex, typ string) bool {
	for _, v := range vs {
		if exportVertexTypes[v.Name] == typ && v.Error != "" {
			return true
		}
	}
	return false
}

// manifestSize is the size of a cache manifest (an OCI index of cache
// layers plus the cache config, or an image manifest with image-manifest=
// true) and of the blobs it lists.
func manifestSize(top ocispecs.Descriptor, body []byte) (int64, error) {
	var m struct {
		Manifests []ocispecs.Descriptor `json:"manifests"`
		Layers    []ocispecs.Descriptor `json:"layers"`
		Config    *ocispecs.Descriptor  `json:"config"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return 0, fmt.Errorf("cache manifest %s: %w", top.Digest, err)
	}
	descs := append(append([]ocispecs.Descriptor{top}, m.Manifests...), m.Layers...)
	if m.Config != nil {
		descs = append(descs, *m.Config)
	}
	var total int64
	seen := map[digest.Digest]bool{}
	for i, d := range descs {
		if d.Size < 0 || total > math.MaxInt64-d.Size {
			return 0, fmt.Errorf("cache manifest %s: size %d out of range", top.Digest, d.Size)
		}
		if i > 0 && seen[d.Digest] {
			continue
		}
		seen[d.Digest] = true
		total += d.Size
	}
	return total, nil
}

// localCacheSize reads the OCI layout BuildKit's local exporter wrote.
func localCacheSize(dir, tag string) (int64, error) {
	if tag == "" {
		tag = "latest"
	}
	b, err := os.ReadFile(filepath.Join(dir, ocispecs.ImageIndexFile))
	if err != nil {
		return 0, err
	}
	var idx ocispecs.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return 0, fmt.Errorf("%s: %w", dir, err)
	}
	for _, d := range idx.Manifests {
		if d.Annotations[ocispecs.AnnotationRefName] != tag {
			continue
		}
		if err := d.Digest.Validate(); err != nil {
			return 0, err
		}
		body, err := os.ReadFile(filepath.Join(dir, ocispecs.ImageBlobsDir, d.Digest.Algorithm().String(), d.Digest.Encoded()))
		if err != nil {
			return 0, err
		}
		return manifestSize(d, body)
	}
	return 0, fmt.Errorf("%s: no cache tagged %q", dir, tag)
}

// registryCacheSize fetches the cache manifest from the registry, with the
// Docker config's credentials, as BuildKit's own export used them.
func registryCacheSize(ctx context.Context, ref string, insecure bool) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cfg, err := config.Load(config.Dir())
	if err != nil {
		return 0, err
	}
	plainHTTP := docker.MatchLocalhost
	if insecure {
		plainHTTP = docker.MatchAllHosts
	}
	hc := &http.Client{Timeout: 15 * time.Second}
	creds := func(host string) (string, string, error) {
		if host == "registry-1.docker.io" {
			host = "https://index.docker.io/v1/" // the key docker login writes
		}
		a, err := cfg.GetAuthConfig(host)
		if err != nil {
			return "", "", err
		}
		if a.IdentityToken != "" {
			return "", a.IdentityToken, nil
		}
		return a.Username, a.Password, nil
	}
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(
			docker.WithPlainHTTP(plainHTTP),
			docker.WithClient(hc),
			docker.WithAuthorizer(docker.NewDockerAuthorizer(docker.WithAuthClient(hc), docker.WithAuthCreds(creds))),
		),
	})
	name, desc, err := resolver.Resolve(ctx, ref)
	if err != nil {
		return 0, err
	}
	fetcher, err := resolver.Fetcher(ctx, name)
	if err != nil {
		return 0, err
	}
	rc, err := fetcher.Fetch(ctx, desc)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, 16<<20))
	if err != nil {
		return 0, err
	}
	return manifestSize(desc, body)
}

// s3CacheSize reads the cache manifest BuildKit's s3 exporter wrote
// (<prefix><manifests_prefix><name>, the cache config JSON; the blobs sit
// under blobs_prefix and need not be read) and adds the
// sizes of the distinct layer blobs it names, which the exporter records in
// each layer's annotations: one GET, no request per blob.
func s3CacheSize(ctx context.Context, attrs map[string]string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := NewS3Client(ctx, attrs)
	if err != nil {
		return 0, err
	}
	// BuildKit's defaults; its importer reads the first of the names.
	manifests, ok := attrs["manifests_prefix"]
	if !ok {
		manifests = "manifests/"
	}
	name := "buildkit"
	if n, ok := attrs["name"]; ok {
		name, _, _ = strings.Cut(n, ";")
	}
	manifestKey := aws.String(attrs["prefix"] + manifests + name)
	obj, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(attrs["bucket"]), Key: manifestKey})
	if err != nil {
		return 0, fmt.Errorf("s3 cache manifest %s: %w", name, err)
	}
	defer obj.Body.Close()
	body, err := io.ReadAll(io.LimitReader(obj.Body, 16<<20))
	if err != nil {
		return 0, err
	}
	var cfg cacheimporttypes.CacheConfig
	if err := json.Unmarshal(body, &cfg); err != nil {
		return 0, fmt.Errorf("s3 cache manifest %s: %w", name, err)
	}
	total := int64(len(body))
	seen := map[digest.Digest]bool{}
	for _, l := range cfg.Layers {
		if seen[l.Blob] {
			continue
		}
		seen[l.Blob] = true
		if l.Annotations == nil || l.Annotations.Size <= 0 {
			return 0, fmt.Errorf("s3 cache manifest %s: layer %s has no size", name, l.Blob)
		}
		size := l.Annotations.Size
		if total > math.MaxInt64-size {
			return 0, fmt.Errorf("s3 cache manifest %s: size %d out of range", name, size)
		}
		total += size
	}
	return total, nil
}
