package ghacache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	digest "github.com/opencontainers/go-digest"
)

// BuildKit's gha cache index is its v1 CacheConfig as JSON, with each
// layer's annotations (size, diffID) inline (moby/buildkit v0.34.2
// cache/remotecache/gha/gha.go, exporter.Finalize and importer.loadScope).
// This file reads and writes that index through BuildKit's own types.

// maxIndexSize bounds how much of an index entry is read: BuildKit's
// indexes are kilobytes to a few megabytes.
const maxIndexSize = 64 << 20

// IndexBlobs returns the layer blobs a BuildKit cache index names, in the
// index's order, without duplicates.
func IndexBlobs(cfg *cacheimporttypes.CacheConfig) []digest.Digest {
	seen := map[digest.Digest]bool{}
	var out []digest.Digest
	for _, l := range cfg.Layers {
		if l.Blob != "" && !seen[l.Blob] {
			seen[l.Blob] = true
			out = append(out, l.Blob)
		}
	}
	return out
}

// ParseIndex decodes a BuildKit cache index.
func ParseIndex(data []byte) (*cacheimporttypes.CacheConfig, error) {
	var cfg cacheimporttypes.CacheConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("decoding BuildKit cache index: %w", err)
	}
	for i, l := range cfg.Layers {
		if err := l.Blob.Validate(); err != nil {
			return nil, fmt.Errorf("BuildKit cache index: layer %d: %w", i, err)
		}
	}
	return &cfg, nil
}

// LatestIndex finds the newest index entry of gha scope name scope that
// ref wrote (the "<IndexKey>#<n>" with the highest n), as BuildKit's
// importer does with go-actions-cache's Load(key+"#"). The runtime token
// must be able to read ref.
func (c *Client) LatestIndex(ctx context.Context, scope, ref string) (Entry, bool, error) {
	prefix := IndexKey(scope, ref) + "#"
	e, ok, err := c.Lookup(ctx, prefix, []string{prefix}, BuildKitVersion())
	if err != nil || !ok || !strings.HasPrefix(e.Key, prefix) {
		return Entry{}, false, err
	}
	return e, true, nil
}

// LoadIndex reads the raw bytes of the newest index of gha scope name scope
// written from ref (see LatestIndex). found is false when that ref has
// none, or it was evicted between lookup and load.
func (c *Client) LoadIndex(ctx context.Context, scope, ref string) (data []byte, key string, found bool, err error) {
	e, ok, err := c.LatestIndex(ctx, scope, ref)
	if err != nil || !ok {
		return nil, "", false, err
	}
	data, err = c.indexData(ctx, e)
	if errors.Is(err, ErrNotFound) {
		return nil, "", false, nil
	}
	if err != nil {
		return nil, "", false, err
	}
	return data, e.Key, true, nil
}

// ReadIndex loads and decodes the index entry e.
func (c *Client) ReadIndex(ctx context.Context, e Entry) (*cacheimporttypes.CacheConfig, error) {
	data, err := c.indexData(ctx, e)
	if err != nil {
		return nil, err
	}
	return ParseIndex(data)
}

func (c *Client) indexData(ctx context.Context, e Entry) ([]byte, error) {
	rc, err := c.Load(ctx, e)
	if err != nil {
		return nil, fmt.Errorf("loading index %s: %w", e.Key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxIndexSize+1))
	if err != nil {
		return nil, fmt.Errorf("loading index %s: %w", e.Key, err)
	}
	if len(data) > maxIndexSize {
		return nil, fmt.Errorf("index %s is larger than %d bytes", e.Key, maxIndexSize)
	}
	return data, nil
}

// SaveIndex saves data as the next BuildKit cache index of gha scope name
// scope for the token's writable ref: "<IndexKey>#<n+1>" after the newest
// n, as go-actions-cache's SaveMutable does, so stock BuildKit reads it.
// It returns the key written.
func (c *Client) SaveIndex(ctx context.Context, scope, writeRef string, data []byte) (string, error) {
	base := IndexKey(scope, writeRef)
	n := 0
	e, ok, err := c.LatestIndex(ctx, scope, writeRef)
	if err != nil {
		return "", fmt.Errorf("saving index: %w", err)
	}
	if ok {
		if cur, valid := indexCounter(e.Key, base); valid {
			n = cur
		}
	}
	// Another job may take the next number between lookup and save: then
	// move on to the one after, a few times.
	for range 5 {
		n++
		key := fmt.Sprintf("%s#%d", base, n)
		err := c.Save(ctx, key, BuildKitVersion(), bytes.NewReader(data), int64(len(data)))
		if errors.Is(err, ErrAlreadyExists) {
			continue
		}
		if err != nil {
			return "", err
		}
		return key, nil
	}
	return "", fmt.Errorf("saving index %s: every next number is taken: %w", base, ErrAlreadyExists)
}

// SaveIndexConfig encodes cfg and saves it with SaveIndex.
func (c *Client) SaveIndexConfig(ctx context.Context, scope, writeRef string, cfg *cacheimporttypes.CacheConfig) error {
	data, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encoding BuildKit cache index: %w", err)
	}
	_, err = c.SaveIndex(ctx, scope, writeRef, data)
	return err
}

// BlobEntry looks a BuildKit layer blob up by its exact key. found is
// false when the cache does not hold it (never saved, or evicted).
func (c *Client) BlobEntry(ctx context.Context, digest string) (Entry, bool, error) {
	key := BlobKey(digest)
	e, ok, err := c.Lookup(ctx, key, nil, BuildKitVersion())
	if err != nil || !ok || e.Key != key {
		return Entry{}, false, err
	}
	return e, true, nil
}
