package ghacache

import (
	"context"
	"time"
)

// ExportCleanup says what a job that exported a BuildKit gha cache cleans
// up afterwards. All of it needs a token with actions:write.
type ExportCleanup struct {
	Owner, Repo string
	Ref         string // the job's writable cache ref (GITHUB_REF)
	Scope       string // the gha scope= it exported
	// Sweep also deletes Ref's layer blobs that its newest index does not
	// name (SweepRef), after SweepGrace (DefaultSweepGrace when zero).
	Sweep      bool
	SweepGrace time.Duration
	// Transient says no later run can read Ref's caches (a merge-queue
	// branch: each group gets a new one): all of them are deleted but
	// those read within SweepGrace, which another job of the same group
	// may still be reading.
	Transient bool
	// Now is the time the grace counts back from (time.Now when zero).
	Now time.Time
	// Mounts also deletes Ref's cache mount archives and build records
	// that a newer save of the same series supersedes (PruneMounts), but
	// those another job read after MountsReadAt, when this job had read
	// its own (on the clock of the keys' stamps; zero: it read none).
	Mounts       bool
	MountsReadAt time.Time
}

// CleanupReport says what a cleanup removed.
type CleanupReport struct {
	Superseded      int // older index entries of the scope on Ref
	SupersededBytes int64
	// Mounts are Ref's cache mount archives and build records that a
	// newer save of the same series supersedes (PruneMounts).
	Mounts         int
	MountsBytes    int64
	Swept          SweepResult
	Transient      int // entries of a transient ref
	TransientBytes int64
	TransientKept  int // entries of a transient ref read within the grace
}

// Freed is the bytes the cleanup removed.
func (r CleanupReport) Freed() int64 {
	return r.SupersededBytes + r.MountsBytes + r.Swept.Freed + r.TransientBytes
}

// CleanupAfterExport runs the cleanup o asks for. c is the job's cache
// client (its runtime token reads o.Ref).
func (r *REST) CleanupAfterExport(ctx context.Context, c *Client, o ExportCleanup) (CleanupReport, error) {
	var rep CleanupReport
	var err error
	grace := o.SweepGrace
	if grace == 0 {
		grace = DefaultSweepGrace
	}
	if o.Transient {
		now := o.Now
		if now.IsZero() {
			now = time.Now()
		}
		rep.Transient, rep.TransientBytes, rep.TransientKept, err = r.CleanupRef(ctx, o.Owner, o.Repo, o.Ref, now.Add(-grace))
		return rep, err
	}
	rep.Superseded, rep.SupersededBytes, err = r.PruneSuperseded(ctx, o.Owner, o.Repo, o.Ref, IndexKey(o.Scope, o.Ref), 1)
	if err != nil {
		return rep, err
	}
	if o.Mounts {
		// The job saved its mounts and record before this runs: theirs
		// are now the newest of their series.
		rep.Mounts, rep.MountsBytes, err = r.PruneMounts(ctx, o.Owner, o.Repo, o.Ref, o.MountsReadAt)
		if err != nil {
			return rep, err
		}
	}
	if !o.Sweep {
		return rep, err
	}
	rep.Swept, err = SweepRef(ctx, r, c, o.Owner, o.Repo, o.Ref, o.Scope, grace)
	return rep, err
}

// Completeness reports how many of the layer blobs ref's newest index of
// gha scope name scope names are missing from ref: an index that loads
// while its blobs are gone makes every such layer a miss at build time.
// found is false when ref has no index. It reads through the REST listing,
// so it refreshes no entry's last access.
func (r *REST) Completeness(ctx context.Context, c *Client, owner, repo, scope, ref string) (missing, total int, found bool, err error) {
	idx, ok, err := c.LatestIndex(ctx, scope, ref)
	if err != nil || !ok {
		return 0, 0, false, err
	}
	cfg, err := c.ReadIndex(ctx, idx)
	if err != nil {
		return 0, 0, true, err
	}
	entries, err := r.List(ctx, owner, repo, ListOptions{Key: buildkitBlobPrefix, Ref: ref})
	if err != nil {
		return 0, 0, true, err
	}
	have := map[string]bool{}
	for _, e := range entries {
		if sameRef(e.Ref, ref) {
			have[e.Key] = true
		}
	}
	for _, d := range IndexBlobs(cfg) {
		total++
		if !have[BlobKey(d.String())] {
			missing++
		}
	}
	return missing, total, true, nil
}

// KeepAlive looks up every layer blob ref's newest index of gha scope name
// scope names, which moves their last access to now: the LRU quota then
// evicts other entries first. It returns how many were found.
func KeepAlive(ctx context.Context, c *Client, scope, ref string) (touched int, err error) {
	idx, ok, err := c.LatestIndex(ctx, scope, ref)
	if err != nil || !ok {
		return 0, err
	}
	cfg, err := c.ReadIndex(ctx, idx)
	if err != nil {
		return 0, err
	}
	for _, d := range IndexBlobs(cfg) {
		_, found, err := c.Lookup(ctx, BlobKey(d.String()), nil, BuildKitVersion())
		if err != nil {
			return touched, err
		}
		if found {
			touched++
		}
	}
	return touched, nil
}
