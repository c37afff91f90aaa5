package ghacache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxIndexSize bounds how much of a cache index LoadIndex reads; BuildKit
// holds the whole index in memory too.
const maxIndexSize = 64 << 20

// LoadIndex reads the newest BuildKit cache index of gha scope name scope
// written from ref (the "<IndexKey>#<n>" with the highest n, as
// go-actions-cache's Load(key+"#") finds it). found is false when that ref
// has none.
func (c *Client) LoadIndex(ctx context.Context, scope, ref string) (data []byte, key string, found bool, err error) {
	prefix := IndexKey(scope, ref) + "#"
	e, ok, err := c.Lookup(ctx, prefix, []string{prefix}, BuildKitVersion())
	if err != nil || !ok {
		return nil, "", false, err
	}
	if !strings.HasPrefix(e.Key, prefix) {
		return nil, "", false, nil
	}
	rc, err := c.Load(ctx, e)
	if errors.Is(err, ErrNotFound) {
		return nil, "", false, nil
	}
	if err != nil {
		return nil, "", false, fmt.Errorf("loading index %s: %w", e.Key, err)
	}
	defer rc.Close()
	data, err = io.ReadAll(io.LimitReader(rc, maxIndexSize+1))
	if err != nil {
		return nil, "", false, fmt.Errorf("loading index %s: %w", e.Key, err)
	}
	if len(data) > maxIndexSize {
		return nil, "", false, fmt.Errorf("index %s is larger than %d bytes", e.Key, maxIndexSize)
	}
	return data, e.Key, true, nil
}

// SaveIndex saves data as the next BuildKit cache index of gha scope name
// scope for the token's writable ref: "<IndexKey>#<n+1>" after the newest
// n, as go-actions-cache's SaveMutable does, so stock BuildKit reads it.
// It returns the key written.
func (c *Client) SaveIndex(ctx context.Context, scope, writeRef string, data []byte) (string, error) {
	base := IndexKey(scope, writeRef)
	n := 0
	e, ok, err := c.Lookup(ctx, base+"#", []string{base + "#"}, BuildKitVersion())
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
