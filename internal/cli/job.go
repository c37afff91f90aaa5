package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
	rep    reporter
	// inAction is true when the GitHub runner started us.
	inAction bool
}

// planned is a job's resolved cache plan.
type planned struct {
	scopes scope.Plan
	cache  plan.Plan
}

// plan derives the scopes and expands the cache lines. It does no I/O.
func (j *job) plan() (planned, error) {
	sp, err := scope.Derive(j.event, scope.Options{
		Name:                 j.cfg.CacheScope,
		Platform:             strings.Join(j.cfg.Platforms, ","),
		AllowUntrustedExport: j.cfg.AllowUntrust,
		DefaultBranch:        j.cfg.DefaultBranch,
	})
	if err != nil {
		return planned{}, fmt.Errorf("deriving cache scopes: %w", err)
	}
	cp, err := plan.Expand(j.cfg.Cache, j.cfg.CacheFrom, j.cfg.CacheTo, sp, plan.Options{
		GitHubRuntime:   j.getenv("ACTIONS_RUNTIME_TOKEN") != "",
		DefaultLocalDir: defaultLocalCacheDir(j.getenv),
		Tags:            j.cfg.Tags,
		HasImageOutput:  j.cfg.HasImageOutput(),
	})
	if err != nil {
		return planned{}, err
	}
	return planned{scopes: sp, cache: cp}, nil
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

// report prints the plan and sets the plan outputs.
func (j *job) report(p planned) error {
	err := j.rep.Group("bkcache plan", func() error {
		for _, line := range strings.Split(strings.TrimRight(p.cache.Describe(), "\n"), "\n") {
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
	j.reportMounts(p)
	exportScope := ""
	if p.scopes.Export != nil {
		exportScope = p.scopes.Export.Name(p.scopes.Build)
	}
	for _, o := range []struct{ name, value string }{
		{"cache-from", p.cache.CacheFrom()},
		{"cache-to", p.cache.CacheTo()},
		{"cache-scope", exportScope},
	} {
		if err := j.rep.SetOutput(o.name, o.value); err != nil {
			return fmt.Errorf("setting output %q: %w", o.name, err)
		}
	}
	return nil
}

// build runs BuildKit with the plan and reports the result.
func (j *job) build(ctx context.Context, p planned) (buildkit.Result, error) {
	imports, droppedIn := plan.SplitInactive(plan.AddGitHubRuntime(p.cache.Imports, j.getenv))
	exports, droppedOut := plan.SplitInactive(plan.AddGitHubRuntime(p.cache.Exports, j.getenv))
	if n := len(droppedIn) + len(droppedOut); n > 0 {
		// BuildKit would fail the build on a gha entry without a token.
		j.rep.Warnf("gha cache skipped: no ACTIONS_RUNTIME_TOKEN and cache URL; the runner passes them only to JavaScript and container actions, so use `uses: bkcache/bkcache@v1` rather than a run: step")
	}
	j.rep.Mask(plan.Secrets(imports, exports)...)

	req := buildkit.Request{
		Build: buildkit.BuildOptions{
			Context:   j.cfg.Context,
			File:      j.cfg.File,
			Target:    j.cfg.Target,
			BuildArgs: j.cfg.BuildArgs,
			Labels:    j.cfg.Labels,
			Platforms: j.cfg.Platforms,
			Tags:      j.cfg.Tags,
			Outputs:   j.cfg.Outputs,
			Secrets:   j.cfg.Secrets,
			Push:      j.cfg.Push,
			NoCache:   j.cfg.NoCache,
			Pull:      j.cfg.Pull,
		},
		Imports:  buildkitEntries(imports),
		Exports:  buildkitEntries(exports),
		Builder:  j.cfg.Builder,
		Progress: j.progressMode(),
	}
	mounts := j.restoreMounts(ctx, p)
	defer mounts.close()
	start := time.Now()
	var res buildkit.Result
	opts := []buildkit.Option{buildkit.WithGetenv(j.getenv), buildkit.WithProgressOutput(j.rep.Progress())}
	if g := j.rep.StepGroups(); g != nil {
		opts = append(opts, buildkit.WithGrouper(g))
	}
	j.rep.Infof("building %s with %d cache imports and %d exports", j.cfg.Context, len(imports), len(exports))
	// The progress display prints what RUN steps print: the Dockerfile of a
	// pull request must not issue workflow commands.
	err := j.rep.Untrusted(func() error {
		var err error
		res, err = buildkit.Build(ctx, req, opts...)
		return err
	})
	for _, m := range res.Misses {
		j.rep.Infof("cache import %s: nothing there yet", m)
	}
	for _, w := range res.Warnings {
		j.rep.Warnf("%s", w)
	}
	if err != nil {
		return res, err
	}
	elapsed := time.Since(start)
	j.rep.Infof("cache: %d of %d steps cached (%s) in %s", res.Cached, res.Steps, ratio(res.Cached, res.Steps), elapsed.Round(10*time.Millisecond))

	meta, _ := json.Marshal(res.Metadata)
	for _, o := range []struct{ name, value string }{
		{"digest", res.Digest},
		{"imageid", res.ImageID},
		{"metadata", string(meta)},
		{"cache-hits", strconv.Itoa(res.Cached)},
		{"cache-steps", strconv.Itoa(res.Steps)},
	} {
		if err := j.rep.SetOutput(o.name, o.value); err != nil {
			return res, fmt.Errorf("setting output %q: %w", o.name, err)
		}
	}
	sum := j.summary(p, res, elapsed)
	sum.Mounts = j.saveMounts(ctx, mounts, res)
	j.rep.Summary(sum)
	return res, nil
}

func (j *job) progressMode() string {
	if j.cfg.Progress == "auto" && j.inAction {
		return "plain" // the runner's log is not a terminal
	}
	return j.cfg.Progress
}

func (j *job) summary(p planned, res buildkit.Result, elapsed time.Duration) ghaction.Summary {
	bs := ghaction.BuildSummary{
		Name:     p.scopes.Build,
		Steps:    res.Steps,
		Cached:   res.Cached,
		Duration: elapsed,
	}
	for _, v := range res.Vertices {
		if v.Step && v.Cached {
			bs.CachedDuration += v.Duration
		}
	}
	if res.Cached > 0 && len(p.scopes.Imports) > 0 {
		bs.HitScope = describeScopes(p.scopes.Imports)
	}
	for _, e := range p.cache.Imports {
		bs.Imports = append(bs.Imports, e.Redacted())
	}
	for _, e := range p.cache.Exports {
		bs.Exports = append(bs.Exports, ghaction.ExportSummary{Ref: e.Redacted(), Size: -1})
	}
	return ghaction.Summary{Builds: []ghaction.BuildSummary{bs}, Warnings: res.Warnings}
}

// planSummary is the job summary of a dry run: the plan, nothing built.
func (j *job) planSummary(p planned) ghaction.Summary {
	bs := ghaction.BuildSummary{Name: p.scopes.Build + " (dry run: nothing built)"}
	for _, e := range p.cache.Imports {
		bs.Imports = append(bs.Imports, e.Redacted())
	}
	for _, e := range p.cache.Exports {
		bs.Exports = append(bs.Exports, ghaction.ExportSummary{Ref: e.Redacted(), Size: -1})
	}
	return ghaction.Summary{Builds: []ghaction.BuildSummary{bs}}
}

func describeScopes(ss []scope.Scope) string {
	var parts []string
	for _, s := range ss {
		parts = append(parts, fmt.Sprintf("%s (%s)", s.Key, s.Reason))
	}
	return strings.Join(parts, ", ")
}

func ratio(hit, total int) string {
	if total == 0 {
		return "no steps"
	}
	return fmt.Sprintf("%d%%", hit*100/total)
}

// buildkitEntries hands the planned entries to BuildKit as its own type.
func buildkitEntries(es []cacheentry.Entry) []client.CacheOptionsEntry {
	out := make([]client.CacheOptionsEntry, len(es))
	for i, e := range es {
		out[i] = client.CacheOptionsEntry(e)
	}
	return out
}
