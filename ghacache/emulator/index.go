package emulator

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// Entry is one cache entry as the emulator keeps it. Identity on GitHub is
// repository + scope (ref) + key + version.
type Entry struct {
	ID             int64
	Repo           string
	Scope          string // the ref that wrote it, e.g. refs/heads/main
	Key, Version   string
	Blob           string // name in the BlobStore
	Size           int64
	Finalized      bool
	CreatedAt      time.Time
	LastAccessedAt time.Time

	blocks map[int64]int64 // v1 upload: offset -> length of staged chunks
}

// index is the emulator's state; every method expects the caller to hold
// Emulator.mu.
type index struct {
	nextID  int64
	entries map[int64]*Entry
	uploads map[string][]time.Time // repo -> CreateCacheEntry times in the last minute
}

func newIndex() *index {
	return &index{entries: map[int64]*Entry{}, uploads: map[string][]time.Time{}}
}

func sameRepo(a, b string) bool { return strings.EqualFold(a, b) }

// find returns the entry with this identity, finalized or not.
func (ix *index) find(repo, scope, key, version string) *Entry {
	for _, e := range ix.entries {
		if sameRepo(e.Repo, repo) && e.Scope == scope && e.Key == key && e.Version == version {
			return e
		}
	}
	return nil
}

// match implements GitHub's lookup: for each readable scope in order, an
// exact match of key, then a prefix match of key, then prefix matches of
// each restore key in order; among prefix matches the newest wins. Only
// finalized entries of the same version are visible.
func (ix *index) match(repo string, scopes []string, key string, restore []string, version string) *Entry {
	for _, scope := range scopes {
		var cands []*Entry
		for _, e := range ix.entries {
			if e.Finalized && sameRepo(e.Repo, repo) && e.Scope == scope && e.Version == version {
				cands = append(cands, e)
			}
		}
		for _, e := range cands {
			if e.Key == key {
				return e
			}
		}
		for _, prefix := range append([]string{key}, restore...) {
			var best *Entry
			for _, e := range cands {
				if strings.HasPrefix(e.Key, prefix) && (best == nil || newer(e, best)) {
					best = e
				}
			}
			if best != nil {
				return best
			}
		}
	}
	return nil
}

func newer(a, b *Entry) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	return a.ID > b.ID
}

// list returns the finalized entries of repo.
func (ix *index) list(repo string) []*Entry {
	var out []*Entry
	for _, e := range ix.entries {
		if e.Finalized && sameRepo(e.Repo, repo) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *Entry) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// remove drops entries and returns their blob names for deletion.
func (ix *index) remove(es ...*Entry) []string {
	var blobs []string
	for _, e := range es {
		delete(ix.entries, e.ID)
		blobs = append(blobs, e.Blob)
	}
	return blobs
}

// evict removes least-recently-accessed finalized entries of repo until
// its usage fits quota, as GitHub does past the repository's budget.
func (ix *index) evict(repo string, quota int64) []string {
	if quota <= 0 {
		return nil
	}
	es := ix.list(repo)
	var total int64
	for _, e := range es {
		total += e.Size
	}
	slices.SortFunc(es, func(a, b *Entry) int {
		if c := a.LastAccessedAt.Compare(b.LastAccessedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	var victims []*Entry
	for _, e := range es {
		if total <= quota {
			break
		}
		victims = append(victims, e)
		total -= e.Size
	}
	return ix.remove(victims...)
}

// expire removes the finalized entries last accessed before cutoff.
func (ix *index) expire(cutoff time.Time) []string {
	var victims []*Entry
	for _, e := range ix.entries {
		if e.Finalized && e.LastAccessedAt.Before(cutoff) {
			victims = append(victims, e)
		}
	}
	return ix.remove(victims...)
}

// repos returns the repositories with finalized entries.
func (ix *index) repos() []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range ix.entries {
		if k := strings.ToLower(e.Repo); e.Finalized && !seen[k] {
			seen[k] = true
			out = append(out, e.Repo)
		}
	}
	slices.Sort(out)
	return out
}

// allowUpload records an upload for repo unless limit uploads already
// happened in the last minute; then it returns how long to wait.
func (ix *index) allowUpload(repo string, limit int, now time.Time) (time.Duration, bool) {
	key := strings.ToLower(repo)
	recent := ix.uploads[key][:0]
	for _, t := range ix.uploads[key] {
		if now.Sub(t) < time.Minute {
			recent = append(recent, t)
		}
	}
	ix.uploads[key] = recent
	if limit > 0 && len(recent) >= limit {
		return recent[0].Add(time.Minute).Sub(now), false
	}
	ix.uploads[key] = append(recent, now)
	return 0, true
}
