package buildjob

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bkcache/bkcache/buildkit"
	"github.com/bkcache/bkcache/internal/cacheentry"
	"github.com/bkcache/bkcache/internal/config"
	"github.com/bkcache/bkcache/internal/ghaction"
	"github.com/bkcache/bkcache/internal/plan"
	"github.com/bkcache/bkcache/scope"
	"github.com/moby/buildkit/client"
)

// job is one run: the inputs, the event they run for, and where to report.
type job struct {
	cfg    config.Config
	event  scope.Event
	getenv func(string) string
	rep    Reporter
	// inAction is true when the GitHub runner started us.
	inAction bool
	// bkLog holds BuildKit's client log until the build is over.
	bkLog *buildkitLog
	// readMounts is when this job last read gha mount or record entries
	// (cleanupExport keeps superseded ones read later: another job's).
	readMounts time.Time
}

// planned is a job's resolved cache plan.
type planned struct {
	scopes scope.Plan
	cache  plan.Plan
}

// plan derives the scopes and expands the cache lines. Its only I/O is
// resolving local cache paths for the trust decision (resolvePath).
func (j *job) plan() (planned, error) {
	sp, err := scope.Derive(j.event, scope.Options{
		Name:                 j.cfg.CacheScope,
		Platform:             strings.Join(j.cfg.Platforms, ","),
		AllowUntrustedExport: j.cfg.AllowUntrust,
		DefaultBranch:        j.cfg.DefaultBranch,
	})
	if err != nil {
		return planned{}, err // it names the event already
	}
	cp, err := plan.Expand(j.cfg.Cache, j.cfg.CacheFrom, j.cfg.CacheTo, sp, plan.Options{
		GitHubRuntime:   j.getenv("ACTIONS_RUNTIME_TOKEN") != "",
		DefaultLocalDir: defaultLocalCacheDir(j.getenv),
		Tags:            j.cfg.Tags,
		HasImageOutput:  j.cfg.HasImageOutput(),
		Repository:      j.event.Repository,
		ResolvePath:     resolvePath,
	})
	if err != nil {
		return planned{}, err
	}
	// What is reported, dry run included, is exactly what BuildKit gets.
	return planned{scopes: sp, cache: plan.Finalize(cp, j.getenv)}, nil
}

// resolvePath is a local cache path as it is on disk, for the trust
// decision: absolute, with the symlinks of its longest existing prefix
// resolved (a cache directory is often not there yet), so a directory
// named for this build's scope cannot point into another scope's.
func resolvePath(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	rest := ""
	for dir := abs; ; dir = filepath.Dir(dir) {
		if r, err := filepath.EvalSymlinks(dir); err == nil {
			return filepath.Join(r, rest)
		}
		if dir == filepath.Dir(dir) {
			return abs
		}
		rest = filepath.Join(filepath.Base(dir), rest)
	}
}

// defaultLocalCacheDir is where the default `local` cache lives outside
// GitHub: $BKCACHE_CACHE_DIR, else the user cache directory.
func defaultLocalCacheDir(getenv func(string) string) string {
	if d := getenv("BKCACHE_CACHE_DIR"); d != "" {
		return d
	}
	if d := getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "bkcache")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".cache", "bkcache")
	}
	return filepath.Join(os.TempDir(), "bkcache")
}

// report prints the plan and sets the cache-scope output. withEntries
// prints the cache entries too; without, they are left to the outputs
// (setCacheOutputs).
func (j *job) report(p planned, withEntries bool) error {
	text := p.cache.DescribeScopes()
	if withEntries {
		text = p.cache.Describe()
	}
	err := j.rep.Group("bkcache plan", func() error {
		for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
			j.rep.Infof("%s", line)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, n := range p.cache.Notes {
		j.rep.Infof("note: %s", n)
	}
	for _, d := range p.cache.Dropped {
		j.rep.Warnf("%s", d)
	}
	if addr := sharedBuilder(j.cfg.Builder, j.getenv); addr != "" && !p.scopes.Trusted {
		j.rep.Warnf("untrusted %s run on a long-lived builder (%s): its local cache is shared with trusted builds, so what this build leaves there can be reused by them; use an ephemeral builder for untrusted events", p.scopes.Event, addr)
	}
	j.reportMounts(p)
	j.reportRecord(p)
	exportScope := ""
	if p.scopes.Export != nil {
		exportScope = p.scopes.Export.Name(p.scopes.Build)
	}
	if err := j.rep.SetOutput("cache-scope", exportScope); err != nil {
		return fmt.Errorf("setting output %q: %w", "cache-scope", err)
	}
	return nil
}

// setCacheOutputs sets the cache-from and cache-to outputs to p's entries:
// the plan in a dry run, what BuildKit got in a build (runBuild).
func (j *job) setCacheOutputs(p planned) error {
	for _, o := range []struct{ name, value string }{
		{"cache-from", p.cache.CacheFrom()},
		{"cache-to", p.cache.CacheTo()},
	} {
		if err := j.rep.SetOutput(o.name, o.value); err != nil {
			return fmt.Errorf("setting output %q: %w", o.name, err)
		}
	}
	return nil
}

// buildRun carries one build from serveStores to close: the request,
// the stores and mounts serving it, and what BuildKit returned.
type buildRun struct {
	req buildkit.Request
	dp  *dataPlane
	// ran is what the build runs: the outputs and the summary name no
	// entry the data plane could not set up. Cache mounts pick their
	// store from the plan, as before.
	ran    planned
	mounts *mountRun
	// lazy are the mounts to restore if a step needs them (buildLazily);
	// nil when they were restored before the build, or there are none.
	lazy    *lazyMounts
	why     *explainRun
	res     buildkit.Result
	dpr     dataPlaneResult
	elapsed time.Duration
}

// serveStores turns the plan into a BuildKit request and starts the gha
// data plane (the session store or the cache endpoint) that serves it.
// The returned buildRun is never nil: close it even on error.
func (j *job) serveStores(ctx context.Context, p planned) (*buildRun, error) {
	j.rep.Mask(cacheentry.Secrets(p.cache.Imports, p.cache.Exports)...)
	b := &buildRun{req: buildkit.Request{
		Build: buildkit.BuildOptions{
			Context:   j.cfg.Context,
			File:      j.cfg.File,
			Target:    j.cfg.Target,
			BuildArgs: j.cfg.BuildArgs,
			Labels:    j.cfg.Labels,
			Platforms: j.cfg.Platforms,
			Tags:      j.cfg.Tags,
			Outputs:   j.cfg.Outputs,
			Secrets:   buildkitSecrets(j.cfg.Secrets),
			Push:      j.cfg.Push,
			NoCache:   j.cfg.NoCache,
			Pull:      j.cfg.Pull,
		},
		Imports:  cacheentry.As[client.CacheOptionsEntry](p.cache.Imports),
		Exports:  cacheentry.As[client.CacheOptionsEntry](p.cache.Exports),
		Builder:  j.cfg.Builder,
		Progress: j.progressMode(),
	}}
	dp, err := startDataPlane(ctx, &b.req, p.cache.Trust, j.getenv, builderReach(j.cfg.Builder, j.getenv), j.rep.Infof)
	if dp != nil {
		b.dp = dp
		j.rep.Mask(dp.secrets...)
	}
	if err != nil {
		return b, err
	}
	run, skipped := dp.ran(p)
	for _, d := range skipped {
		j.rep.Warnf("%s", d)
	}
	b.ran = run
	return b, nil
}

// close stops what serveStores and restoreMounts started, the mounts
// first; a second call does nothing.
func (b *buildRun) close() {
	b.mounts.close()
	b.mounts = nil
	if b.dp != nil {
		b.dp.close()
		b.dp = nil
	}
}

// runBuild runs BuildKit, then lets the data plane finish (its index
// writes), and logs what both said. The cache outputs name what the build
// ran with, set even when it failed.
func (j *job) runBuild(ctx context.Context, b *buildRun) error {
	dp := b.dp
	start := time.Now()
	var res buildkit.Result
	opts := []buildkit.Option{buildkit.WithGetenv(j.getenv), buildkit.WithProgressOutput(j.rep.Progress())}
	if g := j.rep.StepGroups(); g != nil {
		opts = append(opts, buildkit.WithGrouper(g))
	}
	j.rep.Infof("building %s with %d cache imports and %d exports", j.cfg.Context, len(b.ran.cache.Imports), len(b.ran.cache.Exports))
	if len(j.cfg.Tags) == 0 && len(j.cfg.Outputs) == 0 && !j.cfg.Push {
		j.rep.Infof("no tags, outputs or push: the result stays only in the build cache")
	}
	build := func(ctx context.Context, onRun func(step string)) (res buildkit.Result, err error) {
		opts := opts
		if onRun != nil {
			opts = append(slices.Clone(opts), buildkit.WithRunningSteps(onRun))
		}
		// The progress display prints what RUN steps print: the Dockerfile
		// of a pull request must not issue workflow commands.
		err = j.rep.Untrusted(func() error {
			var err error
			res, err = buildkit.Build(ctx, b.req, opts...)
			if err != nil && dp.evictedDuringBuild() {
				err = fmt.Errorf("%w (%s)", err, evictedHint)
			}
			return err
		})
		return res, err
	}
	var err error
	if b.lazy != nil {
		res, err = j.buildLazily(ctx, b, build)
	} else {
		res, err = build(ctx, nil)
	}
	if j.bkLog != nil {
		j.bkLog.flush(j.rep)
	}
	// The cache outputs name what the build ran with, set even when it
	// failed.
	b.ran = dp.ranIn(b.ran, res)
	if oerr := j.setCacheOutputs(b.ran); oerr != nil && err == nil {
		err = oerr
	}
	dpr, dpErr := dp.finish(ctx, err == nil)
	res.Misses = append(res.Misses, dp.misses...)
	res.Warnings = append(append(dp.notes, res.Warnings...), dpr.Warnings...)
	for _, l := range dpr.describe() {
		j.rep.Infof("%s", l)
	}
	if err == nil {
		err = dpErr
	}
	for _, m := range res.Misses {
		j.rep.Infof("cache import %s: nothing there yet", m)
	}
	for _, w := range res.Warnings {
		j.rep.Warnf("%s", w)
	}
	b.res, b.dpr = res, dpr
	if err != nil {
		return err
	}
	b.elapsed = time.Since(start)
	j.rep.Infof("cache: %d of %d steps cached (%s) in %s", res.Cached, res.Steps, ratio(res.Cached, res.Steps), b.elapsed.Round(10*time.Millisecond))
	return nil
}

// reportBuild sets the outputs of a build that succeeded, says why its
// steps missed (saving the new build record) and returns its job summary,
// which the caller completes with the saved mounts.
func (j *job) reportBuild(ctx context.Context, b *buildRun) (ghaction.Summary, error) {
	res := b.res
	meta, _ := json.Marshal(res.Metadata)
	for _, o := range []struct{ name, value string }{
		{"digest", res.Digest},
		{"imageid", res.ImageID},
		{"metadata", string(meta)},
		{"cache-hits", strconv.Itoa(res.Cached)},
		{"cache-steps", strconv.Itoa(res.Steps)},
	} {
		if err := j.rep.SetOutput(o.name, o.value); err != nil {
			return ghaction.Summary{}, fmt.Errorf("setting output %q: %w", o.name, err)
		}
	}
	missed := j.finishExplain(ctx, b.why, res)
	sum := j.summary(ctx, b.ran, res, b.elapsed)
	sum.Builds[0].MissReasons = missed
	b.dpr.addToSummary(&sum, res.Cached)
	return sum, nil
}

func (j *job) progressMode() string {
	if j.cfg.Progress == "auto" && j.inAction {
		return "plain" // the runner's log is not a terminal
	}
	return j.cfg.Progress
}

// summary is the job summary of a build: figures from the status stream
// and the stores, nothing estimated.
func (j *job) summary(ctx context.Context, p planned, res buildkit.Result, elapsed time.Duration) ghaction.Summary {
	bs := ghaction.BuildSummary{
		Name:     p.scopes.Build,
		Steps:    res.Steps,
		Cached:   res.Cached,
		Duration: elapsed,
		Imports:  importSummaries(p.cache.Imports, res.Misses),
	}
	// BuildKit does not say which import a hit came from, so HitScope stays
	// empty and the summary lists the imports tried, in order.
	sizes := buildkit.ExportSizes(ctx, res, cacheentry.As[client.CacheOptionsEntry](p.cache.Exports))
	for i, e := range p.cache.Exports {
		bs.Exports = append(bs.Exports, ghaction.ExportSummary{Ref: plan.Display(e), Size: sizes[i]})
	}
	return ghaction.Summary{Builds: []ghaction.BuildSummary{bs}, Warnings: append(droppedWarnings(p), res.Warnings...)}
}

// droppedWarnings are the plan's left-out entries, for the job summary.
func droppedWarnings(p planned) []string {
	var out []string
	for _, d := range p.cache.Dropped {
		out = append(out, d.String())
	}
	return out
}

// planSummary is the job summary of a dry run: the plan, nothing built.
func (j *job) planSummary(p planned) ghaction.Summary {
	bs := ghaction.BuildSummary{Name: p.scopes.Build, DryRun: true, Imports: importSummaries(p.cache.Imports, nil)}
	for _, e := range p.cache.Exports {
		bs.Exports = append(bs.Exports, ghaction.ExportSummary{Ref: plan.Display(e), Size: -1})
	}
	return ghaction.Summary{Builds: []ghaction.BuildSummary{bs}, Warnings: droppedWarnings(p)}
}

// importSummaries lists the imports in lookup order, marking those the
// build found empty (res.Misses names them as Redacted does).
func importSummaries(imports []cacheentry.Entry, misses []string) []ghaction.ImportSummary {
	missed := map[string]bool{}
	for _, m := range misses {
		missed[m] = true
	}
	out := make([]ghaction.ImportSummary, len(imports))
	for i, e := range imports {
		out[i] = ghaction.ImportSummary{Ref: plan.Display(e), Missed: missed[e.Redacted()]}
	}
	return out
}

func ratio(hit, total int) string {
	if total == 0 {
		return "no steps"
	}
	return fmt.Sprintf("%d%%", hit*100/total)
}

// sharedBuilder returns the address of a builder that outlives this job
// and can be detected from its address (tcp://, kube-pod://), from the
// builder input or else BUILDKIT_HOST; "" when none is detected.
func sharedBuilder(input string, getenv func(string) string) string {
	addr := input
	if addr == "" {
		addr = getenv("BUILDKIT_HOST")
	}
	for _, p := range []string{"tcp://", "kube-pod://"} {
		if strings.HasPrefix(addr, p) {
			u, _, _ := strings.Cut(addr, "?") // TLS file paths are not the point
			return u
		}
	}
	return ""
}

// buildkitSecrets hands the secrets inputs to BuildKit.
func buildkitSecrets(ss []config.Secret) []buildkit.Secret {
	var out []buildkit.Secret
	for _, s := range ss {
		out = append(out, buildkit.Secret{ID: s.ID, Value: []byte(s.Value), File: s.File, Env: s.Env})
	}
	return out
}
