package ghacache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// DefaultSweepGrace is how long a blob unnamed by the newest index is kept
// after it was last used: a concurrent export on the same ref may have
// uploaded it for an index not yet saved.
const DefaultSweepGrace = time.Hour

// SweepResult says what a sweep did.
type SweepResult struct {
	Deleted int   // blob entries deleted
	Freed   int64 // their bytes
	Kept    int   // blob entries on the ref kept: named by the index, or used recently
}

// SweepRef is mark-and-sweep over one ref's layer blobs: it deletes the
// BuildKit layer blobs saved on ref that ref's newest index of gha scope
// name scope does not name, and that nobody has looked up since grace
// before that index was written.
//
// It never looks beyond ref: the runtime token (c) must read ref's index,
// and entries of other refs are named by indexes it may not be able to
// read. Other refs' builds can still name blobs saved on ref (a pull
// request reuses the default branch's), but their imports and exports look
// those blobs up, which moves their last access past the index: they are
// kept. Without an index on ref nothing is deleted.
func SweepRef(ctx context.Context, rest *REST, c *Client, owner, repo, ref, scope string, grace time.Duration) (SweepResult, error) {
	var res SweepResult
	if ref == "" || scope == "" {
		return res, errors.New("sweep: empty ref or scope")
	}
	idx, ok, err := c.LatestIndex(ctx, scope, ref)
	if err != nil || !ok {
		return res, wrapSweep(ref, err)
	}
	cfg, err := c.ReadIndex(ctx, idx)
	if err != nil {
		return res, wrapSweep(ref, err)
	}
	named := map[string]bool{}
	for _, d := range IndexBlobs(cfg) {
		named[BlobKey(d.String())] = true
	}
	entries, err := rest.List(ctx, owner, repo, ListOptions{Ref: ref})
	if err != nil {
		return res, wrapSweep(ref, err)
	}
	var indexCreated time.Time
	for _, e := range entries {
		if e.Key == idx.Key && sameRef(e.Ref, ref) {
			indexCreated = e.CreatedAt
		}
	}
	if indexCreated.IsZero() {
		// The index the cache service served is not listed on ref (it is
		// another ref's, or was just replaced): nothing here is known.
		return res, nil
	}
	cutoff := indexCreated.Add(-grace)
	for _, e := range entries {
		if !sameRef(e.Ref, ref) || !isLayerBlob(e) {
			continue
		}
		if named[e.Key] || !e.LastAccessedAt.Before(cutoff) {
			res.Kept++
			continue
		}
		if err := rest.DeleteByID(ctx, owner, repo, e.ID); err != nil {
			return res, wrapSweep(ref, err)
		}
		res.Deleted++
		res.Freed += e.SizeInBytes
	}
	return res, nil
}

// isLayerBlob tells BuildKit's layer blobs from its index signatures
// ("-sig") and from other tools' caches.
func isLayerBlob(e CacheEntry) bool {
	return strings.HasPrefix(e.Key, buildkitBlobPrefix) && !strings.HasSuffix(e.Key, "-sig") &&
		e.Version == BuildKitVersion()
}

func wrapSweep(ref string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("sweep %s: %w", ref, err)
}
