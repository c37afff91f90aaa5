package buildjob

import (
	"context"
	"fmt"
	"time"

	"github.com/bkcache/bkcache/ghacache"
	"github.com/bkcache/bkcache/internal/ghaction"
)

// githubCacheQuota is GitHub's default per-repository cache limit; the
// REST API (go-github v57) does not tell a repository's own.
const githubCacheQuota = 10 << 30

// cleanupExport is cache-cleanup after a gha export: prune the scope's
// superseded indexes and mount archives and build records, sweep the ref's blobs no index names (when the
// runtime token can read the ref's index), delete a merge-queue ref's
// caches, refresh the default branch's blobs from other refs' builds,
// then report usage and whether the default branch's cache is complete.
// Failures are warnings: they never fail the build. bench/churn shows
// what each of these is worth.
func (j *job) cleanupExport(ctx context.Context, rest *ghacache.REST, owner, repo, ref, name string, p planned) {
	o := ghacache.ExportCleanup{Owner: owner, Repo: repo, Ref: ref, Scope: name, Transient: j.event.Name == "merge_group",
		Mounts: true, MountsReadAt: j.readMounts}
	var c *ghacache.Client
	if cfg, ok := ghacache.ConfigFromEnv(j.getenv); ok {
		if cl, err := ghacache.NewClient(cfg); err == nil {
			c, o.Sweep = cl, true
		}
	}
	var lines []string
	if rep, err := rest.CleanupAfterExport(ctx, c, o); err != nil {
		j.rep.Warnf("cache-cleanup: %v", err)
	} else {
		lines = cleanupLines(o, rep)
	}
	for _, l := range lines {
		j.rep.Infof("cache-cleanup: %s", l)
	}
	mainRef := ""
	if p.scopes.DefaultBranch != "" {
		mainRef = "refs/heads/" + p.scopes.DefaultBranch
	}
	if c != nil && mainRef != "" && mainRef != ref {
		// The default branch's own export looks every blob up already.
		if n, err := ghacache.KeepAlive(ctx, c, name, mainRef); err != nil {
			j.rep.Warnf("cache keep-alive: %v", err)
		} else if n > 0 {
			j.rep.Infof("cache keep-alive: refreshed %d layer blobs of the default branch's cache: the quota evicts the least recently used first, and this build's layers are newer", n)
		}
	}
	s := ghaction.Summary{Cache: &ghaction.CacheSummary{Quota: githubCacheQuota, Removed: lines}}
	if _, used, err := rest.Usage(ctx, owner, repo); err == nil {
		s.Cache.Used = used
		// Only beside a known total: a share of nothing says nothing.
		if m, err := rest.MountUsage(ctx, owner, repo); err == nil {
			s.Cache.Mounts = m
		}
	}
	if c != nil && mainRef != "" {
		missing, total, found, err := rest.Completeness(ctx, c, owner, repo, name, mainRef)
		switch w := defaultBranchState(missing, total, found); {
		case err != nil:
			j.rep.Warnf("cache-cleanup: checking the default branch's cache: %v", err)
		case !found && ref != mainRef:
			j.rep.Infof("cache-cleanup: %s", w)
		case found && w != "":
			j.rep.Warnf("%s", w)
			s.Warnings = append(s.Warnings, w)
		}
	}
	j.rep.Summary(s)
}

// defaultBranchState says what is wrong with the default branch's cache
// as cleanup left it, and the fix; "" when it is whole. bench/churn shows
// the two ways it goes: the quota evicts blobs its index names, and a week
// without a job (GitHub removes entries nobody read for 7 days) takes all.
func defaultBranchState(missing, total int, found bool) string {
	const expiry = "GitHub removes entries nobody read for 7 days, so a week without jobs (a holiday) empties it; a scheduled run of the default branch's build (on: schedule) keeps it"
	switch {
	case !found:
		return "the default branch has no cache index: builds here start cold until it builds again. " + expiry
	case missing > 0:
		return fmt.Sprintf("the default branch's cache is incomplete: %d of the %d layer blobs its index names are gone (evicted, or unused for 7 days); its next build exports them again", missing, total)
	}
	return ""
}

// githubExpiry is how long GitHub keeps a cache entry nobody reads.
const githubExpiry = 7 * 24 * time.Hour

// expiryWarning warns, before a build reads it, when the default branch's
// cache index was last read (by any job) within a day of GitHub's 7-day
// expiry: the repository's quiet spells come close to losing its cache
// (bench/churn's holiday). This job's import refreshes it; the fix keeps
// it over a longer spell. lastRead zero means unknown.
func expiryWarning(lastRead, now time.Time) string {
	if lastRead.IsZero() || now.Sub(lastRead) < githubExpiry-24*time.Hour {
		return ""
	}
	days := int(now.Sub(lastRead) / (24 * time.Hour))
	return fmt.Sprintf("no job had read the default branch's cache for %d days: GitHub removes entries nobody reads for 7 days, so a quiet week loses it; a scheduled run of the default branch's build (on: schedule, e.g. cron '0 3 * * 1,4') keeps it", days)
}

// cleanupLines says what cleanup removed, one line per mechanism that
// ran, each with the reason it runs.
func cleanupLines(o ghacache.ExportCleanup, r ghacache.CleanupReport) []string {
	if o.Transient {
		return []string{fmt.Sprintf("deleted %d cache entries of %s (%s), kept %d read within the last %s (another job of the group may be reading them): no later run can read a merge-queue ref's cache", r.Transient, refText(o.Ref), bytesText(r.TransientBytes), r.TransientKept, ghacache.DefaultSweepGrace)}
	}
	lines := []string{fmt.Sprintf("deleted %d superseded index entries of scope %s on %s (%s): only the newest is read", r.Superseded, o.Scope, refText(o.Ref), bytesText(r.SupersededBytes))}
	if r.Mounts > 0 {
		lines = append(lines, fmt.Sprintf("deleted %d superseded cache mount archives and build records on %s (%s): a restore reads only the newest of each", r.Mounts, refText(o.Ref), bytesText(r.MountsBytes)))
	}
	if o.Sweep {
		lines = append(lines, fmt.Sprintf("swept %d layer blobs of %s (%s) that its newest index does not name and nobody used since, kept %d: unreferenced blobs push the default branch's cache out at quota", r.Swept.Deleted, refText(o.Ref), bytesText(r.Swept.Freed), r.Swept.Kept))
	}
	return lines
}
