package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	digest "github.com/opencontainers/go-digest"

	"github.com/bkcache/bkcache/ghacache"
	"github.com/bkcache/bkcache/ghacache/emulator"
	"github.com/bkcache/bkcache/internal/cacheentry"
	"github.com/bkcache/bkcache/internal/plan"
	"github.com/bkcache/bkcache/scope"
)

// strategy is one way of running the cache, each in its own repository of
// the same emulator, with the same quota and the same events.
type strategy struct {
	name, repo string
	stock      bool // buildx's cache-to type=gha,mode=max, no cleanup; else bkcache's plan and cleanup
	// The additions (ghacache's ExportCleanup and KeepAlive; budget is the
	// simulation's own, since it proved unnecessary):
	sweep      bool // sweep each ref's blobs its newest index does not name
	mergeQueue bool // delete a merge-queue ref's caches after its build
	budget     bool // near the quota, pull requests export mode=min
	keepAlive  bool // builds that read the default branch refresh its blobs
	// mountReplace deletes a ref's older archives of a cache mount after
	// saving a new one (the simulation's own until the figures show it
	// is needed).
	mountReplace bool
	// scheduled: the repository adds a scheduled run of the default
	// branch (the fix the job summary names for the 7-day expiry).
	scheduled bool
}

func (s *strategy) String() string { return s.name }

// theStrategies are the three of the report; ablations add variants of the
// third, each with one mechanism more or less.
func theStrategies(ablations bool) []*strategy {
	out := []*strategy{
		{name: "1 stock gha mode=max", repo: "sim/stock", stock: true},
		{name: "2 bkcache today", repo: "sim/today"},
		{name: "3 bkcache + economy", repo: "sim/economy", sweep: true, mergeQueue: true, keepAlive: true},
	}
	if ablations {
		out = append(out,
			&strategy{name: "3 without sweep", repo: "sim/nosweep", mergeQueue: true, keepAlive: true},
			&strategy{name: "3 without merge-queue cleanup", repo: "sim/nomq", sweep: true, keepAlive: true},
			&strategy{name: "3 without keep-alive", repo: "sim/nokeepalive", sweep: true, mergeQueue: true},
			&strategy{name: "3 + budget-aware PR exports", repo: "sim/budget", sweep: true, mergeQueue: true, keepAlive: true, budget: true},
			&strategy{name: "3 + mount archives replaced", repo: "sim/mountreplace", sweep: true, mergeQueue: true, keepAlive: true, mountReplace: true},
			&strategy{name: "3 + scheduled runs Mon, Thu", repo: "sim/scheduled", sweep: true, mergeQueue: true, keepAlive: true, scheduled: true},
		)
	}
	return out
}

const defaultBranch = "main"

// budgetFraction is the share of the quota past which budget-aware pull
// requests export mode=min.
const budgetFraction = 0.8

// clock is the simulated time the emulator runs on.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

// Now ticks a microsecond at each call, so that what one job does in one
// phase (uploads, then keep-alive lookups) keeps its order in the
// entries' last access, as on GitHub, where seconds pass between them.
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Microsecond)
	return c.now
}
func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
}

// countingTransport counts the requests one strategy sends to the cache
// service and REST API (blob transfers go elsewhere and are not counted).
type countingTransport struct {
	base  http.RoundTripper
	host  string
	calls atomic.Int64
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == t.host {
		t.calls.Add(1)
	}
	return t.base.RoundTrip(r)
}

// world is the emulator, the clock and the repository's history.
type world struct {
	emu     *emulator.Emulator
	url     string
	clock   *clock
	scale   float64
	quota   int64
	payload *payloads
	layers  *layerSource

	main       tree
	mainRun    []digest.Digest // step keys of the default branch's newest build
	prs        map[int]*prState
	strategies []*strategy
	stats      map[*strategy]*stats
	http       map[*strategy]*countingTransport
	facts      facts
}

// facts are what happened in the scenario, the same for every strategy.
type facts struct {
	builds, forkBuilds, reruns int
	// overlapping builds started while another job of the same ref ran;
	// mainOverlapping of them on the default branch.
	overlapping, mainOverlapping int
}

type prState struct {
	plan    prPlan
	updates int
	open    bool
	tree    tree
}

// tree of pull request n's merge ref after its latest update: the default
// branch with the pull request's changes.
func (w *world) prTree(n int, p *prState) tree {
	t := w.main.with(classSource, short(w.main[classSource], fmt.Sprint(n), fmt.Sprint(p.updates)))
	if p.plan.bumpsDeps {
		t = t.with(classDeps, fmt.Sprintf("pr%d", n))
	}
	return t
}

func short(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "|")))
	return hex.EncodeToString(h[:4])
}

// job is one build of one strategy: who it is and what it may touch.
type job struct {
	ref       string   // GITHUB_REF
	write     string   // the runtime token's writable scope: ref, or "" (a fork's read-only token)
	readable  []string // further scopes the token reads, in GitHub's order
	scopeName string   // gha scope= of the exports and imports
	mode      string   // export mode; "" means no export
	keys      []digest.Digest
}

// plan turns an event into a job the way the strategy would: stock always
// exports mode=max to scope "buildkit"; bkcache derives scopes and expands
// its default gha line through scope.Derive and plan.Expand.
func (w *world) plan(s *strategy, e event, t tree) (job, error) {
	fork := e.kind == prBuild && w.prs[e.pr] != nil && w.prs[e.pr].plan.fork
	ev, readable := w.payload.event(e, fork)
	j := job{ref: ev.Ref, write: ev.Ref, readable: readable, keys: stepKeys(t)}
	if fork {
		// Read-only since 2026-06: stock's export is refused by the
		// cache service (buildx warns), bkcache's plan drops it.
		j.write = ""
	}
	if s.stock {
		j.scopeName, j.mode = "buildkit", "max"
		if j.write == "" {
			j.mode = ""
		}
		return j, nil
	}
	sp, err := scope.Derive(ev, scope.Options{DefaultBranch: defaultBranch})
	if err != nil {
		return j, err
	}
	cp, err := plan.Expand([]string{"type=gha"}, nil, nil, sp, plan.Options{GitHubRuntime: true})
	if err != nil {
		return j, err
	}
	for _, in := range cp.Imports {
		if in.Type == cacheentry.TypeGHA {
			j.scopeName = in.Attrs["scope"]
		}
	}
	for _, out := range cp.Exports {
		if out.Type == cacheentry.TypeGHA {
			j.scopeName, j.mode = out.Attrs["scope"], out.Attrs["mode"]
		}
	}
	if j.write == "" && j.mode != "" {
		return j, fmt.Errorf("the plan exports %s from a read-only token", j.ref)
	}
	// plan.Finalize's trust rule: the gha exporter writes the ref the
	// runtime token may write, so an export planned for another scope is
	// dropped (a merge group plans the shared merge-queue scope, and its
	// token writes its own gh-readonly-queue ref: it exports nothing).
	if j.mode != "" && (sp.Export == nil || sp.Export.Ref != j.write) {
		j.mode = ""
	}
	return j, nil
}

// clients returns the job's cache-service client (a runtime token for its
// refs) and REST client.
func (w *world) clients(s *strategy, j job) (*ghacache.Client, *ghacache.REST, error) {
	read := j.readable
	if j.write == "" && j.ref != "" {
		read = append([]string{j.ref}, read...) // a read-only token still reads its own ref
	}
	tok, err := w.emu.Token(emulator.TokenOptions{Repo: s.repo, Write: j.write, Read: read, Now: w.clock.Now()})
	if err != nil {
		return nil, nil, err
	}
	hc := &http.Client{Transport: w.http[s], Timeout: 5 * time.Minute}
	c, err := ghacache.NewClient(ghacache.Config{ResultsURL: w.url, Token: tok, ServiceV2: true, HTTPClient: hc, BlockSize: 8 << 20})
	if err != nil {
		return nil, nil, err
	}
	rest, err := ghacache.NewREST(hc, w.url, "sim-github-token")
	return c, rest, err
}

// present reports which layer blobs the job's token could load now. It
// reads the emulator's state directly, so measuring touches nothing.
func (w *world) present(s *strategy, refs []string) map[string]bool {
	ok := map[string]bool{}
	for _, en := range w.emu.Entries(s.repo) {
		for _, r := range refs {
			if en.Scope == r {
				ok[en.Key] = true
			}
		}
	}
	return ok
}

// hits counts the steps a build with these indexes would take from the
// cache: the step's record is in an index and every blob of its layer
// chain can be loaded.
func hits(keys []digest.Digest, indexes []*cacheimporttypes.CacheConfig, present map[string]bool) []bool {
	out := make([]bool, len(keys))
	for i, k := range keys {
		for _, cfg := range indexes {
			if recordLoads(cfg, k, present) {
				out[i] = true
				break
			}
		}
	}
	return out
}

func recordLoads(cfg *cacheimporttypes.CacheConfig, k digest.Digest, present map[string]bool) bool {
	for _, r := range cfg.Records {
		if r.Digest != k {
			continue
		}
		for _, res := range r.Results {
			complete := true
			for li := res.LayerIndex; li >= 0 && li < len(cfg.Layers); li = cfg.Layers[li].ParentIndex {
				if !present[ghacache.BlobKey(cfg.Layers[li].Blob.String())] {
					complete = false
					break
				}
				if cfg.Layers[li].ParentIndex == li {
					break
				}
			}
			if complete {
				return true
			}
		}
	}
	return false
}

// buildIndex is the CacheConfig BuildKit's gha exporter would write for
// these step keys in mode: every step (max) or the final stage (min).
func buildIndex(keys []digest.Digest, mode string, scale float64) (*cacheimporttypes.CacheConfig, []int) {
	cfg := &cacheimporttypes.CacheConfig{}
	layerOf := map[int]int{}
	recOf := map[int]int{}
	var exported []int
	for i, s := range dockerfile {
		if mode != "max" && !s.final {
			continue
		}
		parent := -1
		if s.parent >= 0 {
			parent = layerOf[s.parent]
		}
		layerOf[i] = len(cfg.Layers)
		cfg.Layers = append(cfg.Layers, cacheimporttypes.CacheLayer{
			Blob:        layerDigest(keys[i]),
			ParentIndex: parent,
			Annotations: &cacheimporttypes.LayerAnnotations{
				MediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
				DiffID:    digest.FromString("diff|" + keys[i].String()),
				Size:      layerSize(s, scale),
			},
		})
		rec := cacheimporttypes.CacheRecord{Digest: keys[i], Results: []cacheimporttypes.CacheResult{{LayerIndex: layerOf[i]}}}
		for _, dep := range []int{s.parent, s.from} {
			if r, ok := recOf[dep]; ok {
				rec.Inputs = append(rec.Inputs, []cacheimporttypes.CacheInput{{LinkIndex: r}})
			}
		}
		recOf[i] = len(cfg.Records)
		cfg.Records = append(cfg.Records, rec)
		exported = append(exported, i)
	}
	return cfg, exported
}

// downloads are the layers a build with these hits pulls: in each stage,
// the chain under its first miss (to run that step on), or the whole stage
// when nothing missed and its result is used (the image, or a stage a
// missed step copies from).
func downloads(keys []digest.Digest, got []bool) []digest.Digest {
	used := map[int]bool{}
	var out []digest.Digest
	chain := func(i int) {
		for ; i >= 0; i = dockerfile[i].parent {
			out = append(out, layerDigest(keys[i]))
		}
	}
	for i := len(dockerfile) - 1; i >= 0; i-- {
		s := dockerfile[i]
		if !got[i] {
			if s.from >= 0 {
				used[s.from] = true
			}
			continue
		}
		last := true
		for k, t := range dockerfile {
			if t.parent == i {
				last = false
				if !got[k] {
					chain(i) // the first miss runs on this chain
				}
			}
		}
		if last && (s.final || used[i]) {
			chain(i)
		}
	}
	return out
}

func layerSize(s step, scale float64) int64 { return max(int64(s.mib*scale*(1<<20)), 1024) }

// pending is a job that started (imported) and has not yet ended.
type pending struct {
	e    event
	j    job
	c    *ghacache.Client
	rest *ghacache.REST
	got  []bool
}

// closePR is the post step's cleanup when a pull request closes.
func (w *world) closePR(ctx context.Context, s *strategy, e event) error {
	if s.stock || w.prs[e.pr] == nil || w.prs[e.pr].plan.fork {
		return nil // buildx leaves a closed pull request's caches; a fork's wrote none
	}
	_, rest, err := w.clients(s, job{ref: prRef(e.pr), write: prRef(e.pr)})
	if err != nil {
		return err
	}
	// The post step's cleanup, as internal/buildjob's postCleanup runs it.
	_, freed, _, err := rest.CleanupRef(ctx, "sim", strings.TrimPrefix(s.repo, "sim/"), prRef(e.pr), w.clock.Now().Add(-ghacache.DefaultSweepGrace))
	w.stats[s].cleaned += freed
	return err
}

// start is a job's first half for one strategy: it imports (reads the
// indexes, downloads what the build goes on from, restores cache mounts)
// and measures what it found.
func (w *world) start(ctx context.Context, s *strategy, e event, t tree) (*pending, error) {
	st := w.stats[s]
	j, err := w.plan(s, e, t)
	if err != nil {
		return nil, err
	}
	c, rest, err := w.clients(s, j)
	if err != nil {
		return nil, err
	}
	refs := append([]string{j.ref}, j.readable...)

	// Import: BuildKit loads the newest index of every readable scope.
	var indexes []*cacheimporttypes.CacheConfig
	var mainIndex *cacheimporttypes.CacheConfig
	for _, r := range refs {
		ie, ok, err := c.LatestIndex(ctx, j.scopeName, r)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		cfg, err := c.ReadIndex(ctx, ie)
		if err != nil {
			return nil, err
		}
		indexes = append(indexes, cfg)
		if r == mainRef {
			mainIndex = cfg
		}
	}
	present := w.present(s, refs)
	got := hits(j.keys, indexes, present)
	// BuildKit downloads the layers the build goes on from: each blob
	// lookup moves the entry's last access, which the LRU quota goes by.
	for _, d := range downloads(j.keys, got) {
		if _, _, err := c.Lookup(ctx, ghacache.BlobKey(d.String()), nil, ghacache.BuildKitVersion()); err != nil {
			return nil, err
		}
	}
	// bkcache restores every cache mount before the build (a prefix
	// lookup in each readable scope, as mountstore.GHA does).
	if !s.stock {
		for _, m := range cacheMounts {
			p := mountPrefix(j.scopeName, m)
			_, found, err := c.Lookup(ctx, p, []string{p}, mountVersion)
			if err != nil {
				return nil, err
			}
			st.mountRestores++
			if found {
				st.mountFound++
			}
		}
	}
	if e.kind == pushMain && e.rerun == 0 {
		st.main.add(mainState(mainIndex, present))
	}
	if e.kind == prBuild && e.first && w.mainRun != nil {
		st.mainAtPR.add(mainState(mainIndex, present))
		inMain := map[digest.Digest]bool{}
		for _, k := range w.mainRun {
			inMain[k] = true
		}
		for i, k := range j.keys {
			if inMain[k] {
				st.prHittable++
				if got[i] {
					st.prHits++
				}
			}
		}
		st.prFirst++
	}
	return &pending{e: e, j: j, c: c, rest: rest, got: got}, nil
}

// finish is a job's second half: the export, the cache mounts' saves and
// bkcache's cleanup.
func (w *world) finish(ctx context.Context, s *strategy, p *pending) error {
	st, j, e, c, rest := w.stats[s], p.j, p.e, p.c, p.rest
	if j.mode == "" {
		return nil
	}
	owner, repo := "sim", strings.TrimPrefix(s.repo, "sim/")
	if s.budget && e.kind == prBuild && j.mode == "max" {
		_, used, err := rest.Usage(ctx, owner, repo)
		if err != nil {
			return err
		}
		if float64(used) >= budgetFraction*float64(w.quota) {
			j.mode = "min"
		}
	}
	if err := w.export(ctx, s, c, rest, j); err != nil {
		return err
	}
	if s.stock {
		return nil
	}
	// A cache mount is saved when a step that uses it ran: one new entry
	// per save (mountstore.GHA's key is the prefix and the time).
	for _, m := range cacheMounts {
		if p.got[m.step] {
			continue
		}
		size := max(int64(m.mib*w.scale*(1<<20)), 1024)
		key := ghacache.MountKey(j.scopeName, m.id, w.clock.Now())
		if err := c.Save(ctx, key, mountVersion, w.layers.reader(), size); err != nil {
			return fmt.Errorf("saving cache mount %s: %w", m.id, err)
		}
		st.uploaded += size
		st.mountUploaded += size
		if s.mountReplace {
			// The archive this job restored was read at its start: what
			// was read since, another job read.
			freed, err := pruneOlder(ctx, rest, owner, repo, j.ref, mountPrefix(j.scopeName, m), e.at.Add(time.Nanosecond))
			if err != nil {
				return err
			}
			st.cleaned += freed
		}
	}
	if s.keepAlive && j.ref != mainRef { // the default branch's own export looks its blobs up already
		if _, err := ghacache.KeepAlive(ctx, c, j.scopeName, mainRef); err != nil {
			return err
		}
	}
	// The cleanup internal/buildjob's afterBuild runs with cache-cleanup on.
	o := ghacache.ExportCleanup{Owner: owner, Repo: repo, Ref: j.ref, Scope: j.scopeName}
	o.Sweep = s.sweep
	o.Transient = s.mergeQueue && e.kind == mergeGroup
	o.Now = w.clock.Now()
	cr, err := rest.CleanupAfterExport(ctx, c, o)
	st.cleaned += cr.Freed()
	return err
}

// pruneOlder deletes ref's entries under prefix but the newest, except
// those read since keepReadSince (another job on ref restored them).
func pruneOlder(ctx context.Context, rest *ghacache.REST, owner, repo, ref, prefix string, keepReadSince time.Time) (int64, error) {
	es, err := rest.List(ctx, owner, repo, ghacache.ListOptions{Key: prefix, Ref: ref})
	if err != nil {
		return 0, err
	}
	var newest ghacache.CacheEntry
	for _, e := range es {
		if e.Ref == ref && strings.HasPrefix(e.Key, prefix) && e.CreatedAt.After(newest.CreatedAt) {
			newest = e
		}
	}
	var freed int64
	for _, e := range es {
		if e.Ref != ref || !strings.HasPrefix(e.Key, prefix) || e.ID == newest.ID || !e.LastAccessedAt.Before(keepReadSince) {
			continue
		}
		if err := rest.DeleteByID(ctx, owner, repo, e.ID); err != nil {
			return freed, err
		}
		freed += e.SizeInBytes
	}
	return freed, nil
}

// mountVersion and mountPrefix are internal/mountstore's GHA keys.
const mountVersion = ghacache.MountVersion

func mountPrefix(scopeName string, m cacheMount) string {
	return ghacache.MountSeriesKey(scopeName, m.id)
}

// export is BuildKit's gha exporter (cache/remotecache/gha Finalize): each
// layer is looked up and saved when the lookup finds nothing, then the
// index is saved as the next "#n".
func (w *world) export(ctx context.Context, s *strategy, c *ghacache.Client, rest *ghacache.REST, j job) error {
	mode := j.mode
	cfg, steps := buildIndex(j.keys, mode, w.scale)
	// buildx and docker/build-push-action pass GITHUB_TOKEN as ghtoken:
	// BuildKit then lists the blobs of every readable scope through the
	// REST API instead of looking each one up, so existing blobs are not
	// touched. bkcache passes no ghtoken: each blob is looked up.
	var listed map[string]bool
	if s.stock {
		listed = map[string]bool{}
		for _, r := range append([]string{j.ref}, j.readable...) {
			es, err := rest.List(ctx, "sim", strings.TrimPrefix(s.repo, "sim/"), ghacache.ListOptions{Key: "buildkit-blob-", Ref: r})
			if err != nil {
				return err
			}
			for _, e := range es {
				listed[e.Key] = true
			}
		}
	}
	for n, i := range steps {
		key := ghacache.BlobKey(cfg.Layers[n].Blob.String())
		if listed != nil {
			if listed[key] {
				continue
			}
		} else if _, ok, err := c.Lookup(ctx, key, nil, ghacache.BuildKitVersion()); err != nil {
			return err
		} else if ok {
			continue
		}
		size := layerSize(dockerfile[i], w.scale)
		if err := c.Save(ctx, key, ghacache.BuildKitVersion(), w.layers.reader(), size); err != nil {
			return fmt.Errorf("saving layer %s: %w", dockerfile[i].name, err)
		}
		w.stats[s].uploaded += size
	}
	return c.SaveIndexConfig(ctx, j.scopeName, j.ref, cfg)
}

// cacheState is the default branch's cache as a build finds it.
type cacheState int

const (
	stateGone cacheState = iota
	statePartial
	stateComplete
)

func (c cacheState) String() string { return [...]string{"gone", "partial", "complete"}[c] }

// mainState is the default branch's newest index as a build finds it:
// complete when every blob it names can be loaded.
func mainState(cfg *cacheimporttypes.CacheConfig, present map[string]bool) cacheState {
	if cfg == nil {
		return stateGone
	}
	missing, total := 0, 0
	for _, d := range ghacache.IndexBlobs(cfg) {
		total++
		if !present[ghacache.BlobKey(d.String())] {
			missing++
		}
	}
	switch {
	case missing == 0:
		return stateComplete
	case missing == total:
		return stateGone
	}
	return statePartial
}

const mainRef = "refs/heads/" + defaultBranch

func prRef(n int) string { return fmt.Sprintf("refs/pull/%d/merge", n) }
