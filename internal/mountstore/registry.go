package mountstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/docker/cli/cli/config"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types of a cache mount archive stored as an OCI artifact.
const (
	ArtifactType     = "application/vnd.bkcache.cache-mount.v1"
	ArchiveMediaType = "application/vnd.bkcache.cache-mount.tar+zstd"
)

// Registry keeps archives as OCI artifacts tagged <scope tag>-mount-<key>
// in the build cache's repository, through containerd's registry client
// (the one BuildKit uses) with the Docker config's credentials.
type Registry struct {
	resolver remotes.Resolver
	repo     string // host/path
	tag      string // the scope's tag
}

func newRegistry(attrs map[string]string) (*Registry, error) {
	named, err := reference.ParseNormalizedNamed(attrs["ref"])
	if err != nil {
		return nil, fmt.Errorf("registry: ref: %w", err)
	}
	tagged, ok := named.(reference.Tagged)
	if !ok {
		return nil, errors.New("registry: ref has no scope tag")
	}
	cfg := config.LoadDefaultConfigFile(io.Discard)
	creds := func(host string) (string, string, error) {
		if host == "registry-1.docker.io" {
			host = "https://index.docker.io/v1/"
		}
		ac, err := cfg.GetAuthConfig(host)
		if err != nil {
			return "", "", err
		}
		if ac.IdentityToken != "" {
			return "", ac.IdentityToken, nil
		}
		return ac.Username, ac.Password, nil
	}
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(
			docker.WithAuthorizer(docker.NewDockerAuthorizer(docker.WithAuthCreds(creds))),
			// Loopback registries speak plain HTTP, as BuildKit's own
			// default for localhost.
			docker.WithPlainHTTP(docker.MatchLocalhost),
		),
	})
	return &Registry{resolver: resolver, repo: named.Name(), tag: tagged.Tag()}, nil
}

// ref is the archive's reference: <scope tag>-mount-<key>, exact. A tag
// over the registry's 128 characters keeps its end after a hash of the
// whole, so long scope tags that end alike still name different archives
// (before, the head was only cut off, and they shared them).
func (r *Registry) ref(key string) string {
	tag := r.tag + "-mount-" + key
	if len(tag) > 128 {
		sum := sha256.Sum256([]byte(tag))
		h := hex.EncodeToString(sum[:])[:16]
		tag = h + "-" + strings.TrimLeft(tag[len(tag)-(128-len(h)-1):], ".-")
	}
	return r.repo + ":" + tag
}

func (r *Registry) String() string { return "registry " + r.ref("<mount>") }

func (r *Registry) Get(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	ref := r.ref(key)
	_, desc, err := r.resolver.Resolve(ctx, ref)
	if errdefs.IsNotFound(err) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("registry: %w", err)
	}
	f, err := r.resolver.Fetcher(ctx, ref)
	if err != nil {
		return nil, 0, fmt.Errorf("registry: %w", err)
	}
	rc, err := f.Fetch(ctx, desc)
	if err != nil {
		return nil, 0, fmt.Errorf("registry: %w", err)
	}
	var m ocispec.Manifest
	err = json.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(&m)
	rc.Close()
	if err != nil {
		return nil, 0, fmt.Errorf("registry: reading the manifest: %w", err)
	}
	if m.ArtifactType != ArtifactType || len(m.Layers) != 1 {
		return nil, 0, fmt.Errorf("registry: %s is not a cache mount archive", ref)
	}
	rc, err = f.Fetch(ctx, m.Layers[0])
	if err != nil {
		return nil, 0, fmt.Errorf("registry: %w", err)
	}
	return rc, m.Layers[0].Size, nil
}

func (r *Registry) Put(ctx context.Context, key string, ra io.ReaderAt, size int64) error {
	ref := r.ref(key)
	h := sha256.New()
	if _, err := io.Copy(h, section(ra, size)); err != nil {
		return err
	}
	layer := ocispec.Descriptor{MediaType: ArchiveMediaType, Digest: digest.NewDigest(digest.SHA256, h), Size: size}
	empty := ocispec.DescriptorEmptyJSON
	m := ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: ArtifactType,
		Config:       empty,
		Layers:       []ocispec.Descriptor{layer},
	}
	m.SchemaVersion = 2
	mdt, err := json.Marshal(m)
	if err != nil {
		return err
	}
	mdesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mdt), Size: int64(len(mdt))}

	p, err := r.resolver.Pusher(ctx, ref)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	for _, b := range []struct {
		desc ocispec.Descriptor
		r    io.Reader
	}{
		{layer, section(ra, size)},
		{empty, strings.NewReader(string(empty.Data))},
		{mdesc, strings.NewReader(string(mdt))}, // the manifest last: it names the others
	} {
		if err := push(ctx, p, b.desc, b.r); err != nil {
			return fmt.Errorf("registry: pushing %s: %w", b.desc.MediaType, err)
		}
	}
	return nil
}

func push(ctx context.Context, p remotes.Pusher, desc ocispec.Descriptor, r io.Reader) error {
	w, err := p.Push(ctx, desc)
	if errdefs.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer w.Close()
	if _, err := io.Copy(w, r); err != nil {
		return err
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil && !errdefs.IsAlreadyExists(err) {
		return err
	}
	return nil
}
