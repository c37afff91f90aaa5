package ghacache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

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
// ref wrote, as BuildKit's importer does (a lookup of the "#" prefix).
// The runtime token must be able to read ref.
func (c *Client) LatestIndex(ctx context.Context, scope, ref string) (Entry, bool, error) {
	return c.Lookup(ctx, IndexKey(scope, ref)+"#", nil, BuildKitVersion())
}

// ReadIndex loads and decodes the index entry e.
func (c *Client) ReadIndex(ctx context.Context, e Entry) (*cacheimporttypes.CacheConfig, error) {
	rc, err := c.Load(ctx, e)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxIndexSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading index %q: %w", e.Key, err)
	}
	if len(data) > maxIndexSize {
		return nil, fmt.Errorf("index %q is larger than %d bytes", e.Key, maxIndexSize)
	}
	return ParseIndex(data)
}

// SaveIndex saves cfg as the next "#n" entry of the index of gha scope
// name scope on the token's writable ref, as BuildKit's SaveMutable does.
func (c *Client) SaveIndex(ctx context.Context, scope, ref string, cfg *cacheimporttypes.CacheConfig) error {
	data, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encoding BuildKit cache index: %w", err)
	}
	key := IndexKey(scope, ref)
	n := 0
	if e, ok, err := c.LatestIndex(ctx, scope, ref); err != nil {
		return err
	} else if ok {
		n, _ = indexCounter(e.Key, key)
	}
	for range 8 { // a concurrent export took n+1: try the next one
		n++
		err = c.Save(ctx, fmt.Sprintf("%s#%d", key, n), BuildKitVersion(), bytes.NewReader(data), int64(len(data)))
		if !errors.Is(err, ErrAlreadyExists) {
			return err
		}
	}
	return err
}
