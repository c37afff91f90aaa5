package buildjob

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/bkcache/bkcache/buildkit"
	"github.com/bkcache/bkcache/buildkit/mountarchive"
	"github.com/bkcache/bkcache/internal/cacheentry"
	"github.com/bkcache/bkcache/internal/cachemount"
	"github.com/bkcache/bkcache/internal/config"
	"github.com/bkcache/bkcache/internal/mountstore"
	"github.com/bkcache/bkcache/internal/plan"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	units "github.com/docker/go-units"
)

// mountPlan is where a build's Dockerfile cache mounts come from and go.
type mountPlan struct {
	mounts  []cachemount.Mount
	imports []cacheentry.Entry // stores to restore from, in lookup order
	export  *cacheentry.Entry  // the store to save to; nil: no save
	noSave  string             // why export is nil
	// needsPlatform: ids use the platform's variables, and the plan was
	// made without the builder's platform.
	needsPlatform bool
}

// mountStoreTypes are the cache types that carry mount archives.
var mountStoreTypes = []string{cacheentry.TypeLocal, cacheentry.TypeGHA, cacheentry.TypeS3, cacheentry.TypeAzblob, cacheentry.TypeRegistry}

// planMounts finds the cache mounts the target uses and the stores that
// carry them: the build cache's own, with its scopes and trust rules. A
// nil plan means there is nothing to do; notes say why. builderPlatform
// is the builder's platform, "" before bkcache connects to it.
func (j *job) planMounts(p planned, builderPlatform string) (*mountPlan, []string, error) {
	if slices.Equal(j.cfg.CacheMounts, []string{cachemount.None}) {
		return nil, nil, nil
	}
	if j.cfg.NoCache {
		// BuildKit empties the cache mounts of steps it runs without cache.
		return nil, []string{"no-cache: cache mounts are neither restored nor saved"}, nil
	}
	file := j.cfg.File
	if file == "" {
		file = filepath.Join(j.cfg.Context, "Dockerfile")
	}
	dt, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the Dockerfile for its cache mounts: %w", err)
	}
	found, err := cachemount.Discover(dt, cachemount.Options{
		Target: j.cfg.Target, BuildArgs: j.cfg.BuildArgs, Platforms: j.cfg.Platforms, BuildPlatform: builderPlatform,
	})
	if err != nil {
		return nil, nil, err
	}
	notes := slices.Clone(found.Notes)
	for _, s := range found.Skipped {
		notes = append(notes, fmt.Sprintf("cache mount %s (stage %s) not carried: %s", s.Target, s.Stage, s.Reason))
	}
	sel, unknown := cachemount.Select(found.Mounts, j.cfg.CacheMounts)
	for _, id := range unknown {
		notes = append(notes, fmt.Sprintf("input cache-mounts names %q, but no RUN --mount=type=cache in the target has that id", id))
	}
	if len(sel) == 0 {
		if found.NeedsPlatform {
			// restoreMounts plans again with the builder's platform.
			return &mountPlan{needsPlatform: true}, notes, nil
		}
		return nil, notes, nil
	}
	mp := &mountPlan{mounts: sel, needsPlatform: found.NeedsPlatform}
	carries := mountCarrier(j.cfg.Cache)
	for _, e := range plan.AddGitHubRuntime(p.cache.Imports, j.getenv) {
		if carries(e) {
			mp.imports = append(mp.imports, e)
		}
	}
	for _, e := range plan.AddGitHubRuntime(p.cache.Exports, j.getenv) {
		if carries(e) {
			mp.export = &e
			break
		}
	}
	if len(mp.imports) == 0 && mp.export == nil {
		// An inline cache has no place for an archive: use the Actions
		// cache when the runtime is there.
		if p.scopes.Deleted {
			return nil, notes, nil // a deleted ref reads and writes nothing
		}
		if !ghaRuntime(j.getenv) {
			notes = append(notes, "cache mounts found, but no cache store carries them (inline does not): add a local, gha, s3, azblob or registry cache line")
			return nil, notes, nil
		}
		gha := plan.AddGitHubRuntime([]cacheentry.Entry{{Type: cacheentry.TypeGHA, Attrs: map[string]string{"scope": p.scopes.Build}}}, j.getenv)[0]
		mp.imports = []cacheentry.Entry{gha}
		mp.export = &gha
	}
	switch {
	case p.scopes.Export == nil:
		// Untrusted events restore but never save.
		mp.export, mp.noSave = nil, "this event exports no cache"
	case mp.export == nil:
		mp.noSave = "no cache export to a store that carries mounts"
	default:
		// A save is a write like any cache-to: the same trust decision,
		// which the gha fallback above has not been through.
		if why := p.cache.Trust.WriteRefusal(*mp.export); why != "" {
			mp.export, mp.noSave = nil, why
		}
	}
	return mp, notes, nil
}

// mountCarrier tells the planned entries that can hold mount archives:
// those of a store type that has room for files, and for registries only
// the repositories of registry cache lines (an inline cache imports the
// image tags as registry entries, and archives do not belong there).
func mountCarrier(cacheLines []string) func(cacheentry.Entry) bool {
	repos := map[string]bool{}
	for _, line := range cacheLines {
		if e, err := cacheentry.ParseSyntax(line); err == nil && e.Type == cacheentry.TypeRegistry {
			if n, err := reference.ParseNormalizedNamed(e.Attrs["ref"]); err == nil {
				repos[n.Name()] = true
			}
		}
	}
	return func(e cacheentry.Entry) bool {
		if !slices.Contains(mountStoreTypes, e.Type) || !active(e) {
			return false
		}
		if e.Type != cacheentry.TypeRegistry {
			return true
		}
		n, err := reference.ParseNormalizedNamed(e.Attrs["ref"])
		return err == nil && repos[n.Name()]
	}
}

// active drops gha entries without a runtime, as the build does.
func active(e cacheentry.Entry) bool {
	kept, _ := plan.SplitInactive([]cacheentry.Entry{e})
	return len(kept) == 1
}

// ghaRuntime reports whether the runner gave us the Actions cache.
func ghaRuntime(getenv func(string) string) bool {
	return active(plan.AddGitHubRuntime([]cacheentry.Entry{{Type: cacheentry.TypeGHA, Attrs: map[string]string{}}}, getenv)[0])
}

// describe lists the plan for the log and dry runs.
func (mp *mountPlan) describe() []string {
	var lines []string
	for _, m := range mp.mounts {
		line := fmt.Sprintf("cache mount %s: restore from %s", m, entryList(mp.imports))
		if mp.export != nil {
			line += "; save to " + mountstore.Describe(*mp.export)
		} else {
			line += "; no save: " + mp.noSave
		}
		lines = append(lines, line)
	}
	return lines
}

func entryList(es []cacheentry.Entry) string {
	if len(es) == 0 {
		return "nowhere"
	}
	s := ""
	for i, e := range es {
		if i > 0 {
			s += ", then "
		}
		s += mountstore.Describe(e)
	}
	return s
}

// reportMounts logs the mount plan (plan and dry-run included).
func (j *job) reportMounts(p planned) {
	mp, notes, err := j.planMounts(p, "")
	if err != nil {
		j.rep.Warnf("cache mounts: %v", err)
		return
	}
	for _, n := range notes {
		j.rep.Infof("note: %s", n)
	}
	if mp != nil {
		for _, l := range mp.describe() {
			j.rep.Infof("%s", l)
		}
	}
}

// mountRun carries the mounts of one build from restore to save.
type mountRun struct {
	plan              *mountPlan
	helper            mountHelper
	tmp               string
	results           []mountResult
	stoppedBuildStart time.Time // see restoreMounts
}

// mountHelper is what a mountRun needs of buildkit.MountHelper: one
// helper run per phase for all the mounts.
type mountHelper interface {
	ProbeAll(ctx context.Context, ms []buildkit.CacheMount, freshSince time.Time) ([]mountarchive.Report, error)
	RestoreAll(ctx context.Context, ms []buildkit.CacheMount, archives []io.Reader, opt mountarchive.UnpackOptions) ([]mountarchive.Report, error)
	SaveAll(ctx context.Context, ms []buildkit.CacheMount, maxBytes int64, ws []io.Writer, unchanged []string) ([]mountarchive.Report, error)
	Close() error
}

// close ends the helper's connection and removes the spooled archives.
func (run *mountRun) close() {
	if run == nil {
		return
	}
	run.helper.Close()
	os.RemoveAll(run.tmp)
}

type mountResult struct {
	restored string // "restored from … (size, time)", "kept the builder's own", "nothing saved yet"
	saved    string
	// tree is the mount's mountarchive.Stats.Tree just after a restore:
	// a save finds whether it changed since.
	tree string
}

// restoreMounts fills the builder's cache mounts from the store, before
// the build or when a step needs them (buildLazily). It never fails the
// build: problems are warnings. stoppedBuildStart is when the build that
// stopped for the restore started (zero before the build): a mount that
// holds only what changed since then is what its step wrote before it was
// stopped, and is restored over.
func (j *job) restoreMounts(ctx context.Context, p planned, stoppedBuildStart time.Time) *mountRun {
	mp, _, err := j.planMounts(p, "")
	if err != nil {
		j.rep.Warnf("cache mounts: %v", err)
		return nil
	}
	if mp == nil {
		return nil
	}
	h, err := buildkit.NewMountHelper(ctx, j.cfg.Builder, j.getenv, j.helperFinder().find)
	if err != nil {
		j.rep.Warnf("cache mounts not restored: %v", err)
		return nil
	}
	if mp.needsPlatform {
		// Mount ids that use the platform's variables are known now.
		if mp, _, err = j.planMounts(p, platforms.Format(h.Platform())); err != nil || mp == nil || len(mp.mounts) == 0 {
			h.Close()
			return nil
		}
		for _, l := range mp.describe() {
			j.rep.Infof("%s", l)
		}
	}
	tmp, err := os.MkdirTemp("", "bkcache-mounts-")
	if err != nil {
		h.Close()
		j.rep.Warnf("cache mounts not restored: %v", err)
		return nil
	}
	run := &mountRun{plan: mp, helper: h, tmp: tmp, results: make([]mountResult, len(mp.mounts)), stoppedBuildStart: stoppedBuildStart}
	j.restoreAll(ctx, run)
	j.readMounts = time.Now()
	for i, m := range mp.mounts {
		j.rep.Infof("cache mount %s: %s", m.ID, run.results[i].restored)
	}
	return run
}

// restoreAll probes every mount in one helper run and restores the empty
// ones in a second, their archives streamed from the stores.
func (j *job) restoreAll(ctx context.Context, run *mountRun) {
	mounts := run.plan.mounts
	cms := make([]buildkit.CacheMount, len(mounts))
	for i, m := range mounts {
		cms[i] = j.cacheMount(m)
	}
	failed := func(is []int) {
		for _, i := range is {
			run.results[i].restored = "not restored (failed)"
		}
	}
	all := make([]int, len(mounts))
	for i := range all {
		all[i] = i
	}
	// A builder that kept a mount (not a fresh runner) needs no archive.
	pctx, cancel := context.WithTimeout(ctx, helperTimeout(0))
	probes, err := run.helper.ProbeAll(pctx, cms, run.stoppedBuildStart)
	cancel()
	if err != nil {
		j.rep.Warnf("cache mounts not restored: %v", helperErr(ctx, err, helperTimeout(0)))
		failed(all)
		return
	}
	type fetched struct {
		i     int
		rc    io.ReadCloser
		in    *archiveReader
		store string
	}
	var todo []fetched
	var total int64
	defer func() {
		for _, f := range todo {
			f.rc.Close()
		}
	}()
	limit := archiveLimit(j.cfg.CacheMountsMaxSize)
	for i, m := range mounts {
		switch {
		case probes[i].Error != "":
			j.rep.Warnf("cache mount %s: not restored: %s", m.ID, probes[i].Error)
			failed([]int{i})
			continue
		case probes[i].Files > 0 && !probes[i].Fresh:
			run.results[i].restored = fmt.Sprintf("kept the builder's own contents (%d files)", probes[i].Files)
			continue
		}
		rc, size, store, result := j.openMount(ctx, run, m, limit)
		if rc == nil {
			run.results[i].restored = result
			continue
		}
		todo = append(todo, fetched{i, rc, &archiveReader{r: rc, limit: limit}, store})
		if size < 0 {
			size = cmp.Or(limit, config.DefaultCacheMountsMaxSize) // limit is 0 without a cap
		}
		total += size
	}
	if len(todo) == 0 {
		return
	}
	start := time.Now()
	sel := make([]buildkit.CacheMount, len(todo))
	archives := make([]io.Reader, len(todo))
	var is []int
	for k, f := range todo {
		sel[k], archives[k] = cms[f.i], f.in
		is = append(is, f.i)
	}
	// The archives stream from their stores into the builder: the
	// timeout covers the download too.
	timeout := helperTimeout(total)
	rctx, cancel := context.WithTimeout(ctx, timeout)
	reps, err := run.helper.RestoreAll(rctx, sel, archives, mountarchive.UnpackOptions{
		MaxBytes: j.cfg.CacheMountsMaxSize, KeepSetID: keepSetID(j.getenv), FreshSince: run.stoppedBuildStart,
	})
	cancel()
	if err != nil {
		j.rep.Warnf("cache mounts not restored: %v", helperErr(ctx, err, timeout))
		failed(is)
		return
	}
	took := time.Since(start).Round(10 * time.Millisecond)
	for k, f := range todo {
		m, rep := mounts[f.i], reps[k]
		switch {
		case f.in.over:
			run.results[f.i].restored = j.archiveOverCap(m, f.store)
		case rep.Error != "":
			j.rep.Warnf("cache mount %s: restoring from %s: %s", m.ID, f.store, rep.Error)
			failed([]int{f.i})
		case rep.Exceeded:
			j.rep.Warnf("cache mount %s: not restored: the archive in %s holds more than cache-mounts-max-size (%s) of files", m.ID, f.store, units.BytesSize(float64(j.cfg.CacheMountsMaxSize)))
			run.results[f.i].restored = "not restored: the archive is over the size cap"
		case !rep.Restored:
			run.results[f.i].restored = fmt.Sprintf("kept the builder's own contents (%d files)", rep.Files)
		default:
			// One helper run restored them all: the time is the batch's.
			run.results[f.i].restored = fmt.Sprintf("restored from %s (%s, %d files) in %s", f.store, units.BytesSize(float64(f.in.n)), rep.Files, took)
			if rep.Discarded > 0 {
				run.results[f.i].restored += fmt.Sprintf(", over %d files the stopped step had written", rep.Discarded)
			}
			run.results[f.i].tree = rep.Tree
		}
	}
}

// openMount opens m's archive in the first store that has it. With no
// reader, result says why there is nothing to restore.
func (j *job) openMount(ctx context.Context, run *mountRun, m cachemount.Mount, limit int64) (rc io.ReadCloser, size int64, store, result string) {
	for _, e := range run.plan.imports {
		s, err := mountstore.FromEntry(ctx, e, j.getenv)
		if err != nil {
			j.rep.Warnf("cache mount %s: %s: %v", m.ID, e.Redacted(), err)
			continue
		}
		rc, size, err := s.Get(ctx, m.Key())
		if errors.Is(err, mountstore.ErrNotFound) {
			continue
		}
		if err != nil {
			j.rep.Warnf("cache mount %s: reading %s: %v", m.ID, s, err)
			continue
		}
		if limit > 0 && size > limit {
			rc.Close()
			return nil, 0, "", j.archiveOverCap(m, s.String())
		}
		return rc, size, s.String(), ""
	}
	return nil, 0, "", "nothing saved yet"
}

// archiveOverCap warns of an archive larger than the cap allows, as its
// store declared it or as it streamed in, and returns the mount's result.
func (j *job) archiveOverCap(m cachemount.Mount, store string) string {
	j.rep.Warnf("cache mount %s: not restored: the archive in %s is larger than cache-mounts-max-size (%s) allows", m.ID, store, units.BytesSize(float64(j.cfg.CacheMountsMaxSize)))
	return "not restored: the archive is over the size cap"
}

var errArchiveOverCap = errors.New("archive over the size cap")

// archiveReader counts an archive's bytes as they stream into the
// builder and fails past limit (0: no limit): a store's object can be
// any size, and its size as the store said it is not checked by it.
type archiveReader struct {
	r     io.Reader
	limit int64
	n     int64
	over  bool
}

func (a *archiveReader) Read(p []byte) (int, error) {
	if a.limit > 0 && a.n > a.limit {
		a.over = true
		return 0, errArchiveOverCap
	}
	n, err := a.r.Read(p)
	a.n += int64(n)
	return n, err
}

// archiveLimit is the largest archive a mount of at most maxBytes of files
// can have: zstd at its fastest level can outgrow incompressible data a
// little, and tar adds headers per file.
func archiveLimit(maxBytes int64) int64 {
	if maxBytes <= 0 {
		return 0
	}
	return maxBytes + maxBytes/4 + 1<<20
}

// helperTimeout bounds one helper build: a start-up allowance plus the
// archive at a slow 10 MiB/s. A helper build that hangs (the 5-hour hang
// of buildkit-cache-dance#60) then costs one mount, not the job.
func helperTimeout(archiveBytes int64) time.Duration {
	const pace = 10 << 20
	return helperStartup + time.Duration(archiveBytes/pace)*time.Second
}

// helperStartup is the part of a helper build's timeout that does not
// depend on the archive (a var for tests).
var helperStartup = 2 * time.Minute

// helperErr says that a helper build ran out of time, rather than
// "context deadline exceeded".
func helperErr(ctx context.Context, err error, timeout time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return fmt.Errorf("the cache mount helper did not finish in %s and was stopped", timeout)
	}
	return err
}

// keepSetID is the opt-in to restore setuid and setgid bits of files,
// which are dropped by default (see README, Cache mounts).
func keepSetID(getenv func(string) string) bool {
	v, _ := strconv.ParseBool(getenv("BKCACHE_MOUNT_KEEP_SETID"))
	return v
}

// saveMounts saves each mount that a step of the build ran with, in one
// helper build, and returns the summary lines. It never fails the build.
func (j *job) saveMounts(ctx context.Context, b *buildRun) []string {
	run := b.mounts
	if run == nil {
		if b.lazy == nil || b.lazy.restored {
			return nil // none, or the restore failed and said so
		}
		lines := b.lazy.summary()
		for _, l := range lines {
			j.rep.Infof("cache mount %s", l)
		}
		return lines
	}
	j.saveAll(ctx, run, b.res)
	var lines []string
	for i, m := range run.plan.mounts {
		r := &run.results[i]
		line := fmt.Sprintf("%s: %s; %s", m.ID, r.restored, r.saved)
		j.rep.Infof("cache mount %s", line)
		lines = append(lines, line)
	}
	return lines
}

func (j *job) saveAll(ctx context.Context, run *mountRun, res buildkit.Result) {
	var todo []int
	for i, m := range run.plan.mounts {
		r := &run.results[i]
		if run.plan.export == nil {
			r.saved = "not saved: " + run.plan.noSave
			continue
		}
		if ran, seen := mountRan(m, res.Vertices); seen && !ran {
			r.saved = "not saved: every step that uses it was cached, so it is unchanged"
			continue
		}
		todo = append(todo, i)
	}
	if len(todo) == 0 {
		return
	}
	fail := func(saved string, err error) {
		j.rep.Warnf("cache mounts not saved: %v", err)
		for _, i := range todo {
			run.results[i].saved = saved
		}
	}
	start := time.Now()
	s, err := mountstore.FromEntry(ctx, *run.plan.export, j.getenv)
	if err != nil {
		fail("not saved (store failed)", err)
		return
	}
	// Each archive goes to a file first: only a complete one is stored.
	files := make([]*os.File, len(todo))
	ws := make([]io.Writer, len(todo))
	cms := make([]buildkit.CacheMount, len(todo))
	// A mount as it was restored is in a store already: a job that only
	// read it (a one-file change that leaves go.mod alone) uploads nothing.
	unchanged := make([]string, len(todo))
	for k, i := range todo {
		m := run.plan.mounts[i]
		f, err := os.Create(filepath.Join(run.tmp, "save-"+mountstore.ArchiveName(m.Key())))
		if err != nil {
			fail("not saved (failed)", err)
			return
		}
		defer os.Remove(f.Name())
		defer f.Close()
		files[k], ws[k], cms[k], unchanged[k] = f, f, j.cacheMount(m), run.results[i].tree
	}
	timeout := helperTimeout(j.cfg.CacheMountsMaxSize * int64(len(todo)))
	sctx, cancel := context.WithTimeout(ctx, timeout)
	reps, err := run.helper.SaveAll(sctx, cms, j.cfg.CacheMountsMaxSize, ws, unchanged)
	cancel()
	if err != nil {
		fail("not saved (reading it failed)", helperErr(ctx, err, timeout))
		return
	}
	packed := time.Since(start)
	for k, i := range todo {
		m, rep, r := run.plan.mounts[i], reps[k], &run.results[i]
		switch {
		case rep.Error != "":
			j.rep.Warnf("cache mount %s not saved: %s", m.ID, rep.Error)
			r.saved = "not saved (reading it failed)"
			continue
		case rep.Exceeded:
			j.rep.Warnf("cache mount %s not saved: %s of files is over cache-mounts-max-size (%s)", m.ID, units.BytesSize(float64(rep.Bytes)), units.BytesSize(float64(j.cfg.CacheMountsMaxSize)))
			r.saved = fmt.Sprintf("not saved: %s is over the size cap", units.BytesSize(float64(rep.Bytes)))
			continue
		case rep.Unchanged:
			r.saved = "not saved: unchanged since the restore"
			continue
		case rep.Files == 0:
			r.saved = "not saved: it is empty"
			continue
		}
		put := time.Now()
		size, err := files[k].Seek(0, io.SeekEnd)
		if err == nil {
			err = s.Put(ctx, m.Key(), files[k], size)
		}
		if err != nil {
			j.rep.Warnf("cache mount %s not saved: %v", m.ID, err)
			r.saved = "not saved (store failed)"
			continue
		}
		// The helper build packed all of them; the upload is this one's.
		r.saved = fmt.Sprintf("saved to %s (%s, %d files) in %s", s, units.BytesSize(float64(size)), rep.Files, (packed + time.Since(put)).Round(10*time.Millisecond))
	}
}

// mountRan reports whether a build step that mounts m ran (was not
// cached); seen is false when no step names the mount, and then the
// mount is saved to be safe.
func mountRan(m cachemount.Mount, vs []buildkit.Vertex) (ran, seen bool) {
	for _, v := range vs {
		if !v.Step || !m.UsedBy(v.Name) {
			continue
		}
		seen = true
		if !v.Cached {
			ran = true
		}
	}
	return ran, seen
}

func (j *job) cacheMount(m cachemount.Mount) buildkit.CacheMount {
	return buildkit.CacheMount{
		CacheID: m.CacheID(j.cfg.BuildArgs["BUILDKIT_CACHE_MOUNT_NS"]),
		Owned:   m.Owned, UID: m.UID, GID: m.GID, Mode: os.FileMode(m.Mode),
		Sharing: m.Sharing,
	}
}
