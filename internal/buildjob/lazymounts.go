package buildjob

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bkcache/bkcache/buildkit"
	"github.com/bkcache/bkcache/internal/cachemount"
)

// Cache mounts are restored lazily by default: the build starts without
// them and stops for a restore only when a step that uses them runs. A
// re-run where nothing changed (the most common CI build) is then all
// cached and restores nothing; downloading and unpacking hundreds of MB
// of mount archives first made it many times slower than the build.
// BKCACHE_MOUNT_RESTORE=eager restores before the build, as bkcache did.
const (
	mountRestoreEnv   = "BKCACHE_MOUNT_RESTORE"
	mountRestoreEager = "eager"
	mountRestoreLazy  = "lazy"
)

// eagerMountRestore reads BKCACHE_MOUNT_RESTORE; a value it does not know
// is warned about and restores lazily, the default.
func (j *job) eagerMountRestore() bool {
	switch v := j.getenv(mountRestoreEnv); v {
	case mountRestoreEager:
		return true
	case "", mountRestoreLazy:
		return false
	default:
		j.rep.Warnf("%s=%q is neither %q nor %q: restoring cache mounts lazily", mountRestoreEnv, v, mountRestoreLazy, mountRestoreEager)
		return false
	}
}

// lazyMounts is a build's cache mounts before they are restored.
type lazyMounts struct {
	plan planned // what restoreMounts restores from
	// mounts are the carried mounts; empty when their ids wait for the
	// builder's platform (restoreMounts plans them then).
	mounts []cachemount.Mount
	// neededBy is the step that made the build restore them; "" when
	// none ran. restored is true once restoreMounts ran for it.
	neededBy string
	restored bool
}

// planLazyMounts returns the mounts that a step may need, nil when there
// are none to restore.
func (j *job) planLazyMounts(p planned) *lazyMounts {
	mp, _, err := j.planMounts(p, "")
	if err != nil {
		j.rep.Warnf("cache mounts: %v", err)
		return nil
	}
	if mp == nil {
		return nil
	}
	return &lazyMounts{plan: p, mounts: mp.mounts}
}

// needs is the rule that stops the build for a restore: a running step
// needs the mounts when it is a RUN whose --mount flags mount a carried
// mount's target (Mount.UsedBy, the rule saveMounts uses), or declare any
// type=cache mount.
//
// The Dockerfile frontend names a RUN vertex "[<platform> <stage> i/n] "
// followed by the instruction's own text, flags included and build
// variables expanded (dockerfile2llb dispatchRun: prefixCommand(
// uppercaseCmd(processCmdEnv(c.String())))), e.g. "[build 4/5] RUN
// --mount=type=cache,target=/root/.cache/go-build go build .". The second
// clause is a safety net for names the first cannot match (mount ids that
// wait for the builder's platform, a target the frontend expanded
// otherwise): such a step must not run with an empty mount and then be
// saved over its archive. A step with a cache mount bkcache does not carry
// only costs a restore, which eager restore always did.
func (lm *lazyMounts) needs(step string) bool {
	flags, ok := runFlags(step)
	if !ok {
		return false
	}
	for _, m := range lm.mounts {
		// The flags only: a command's own text can say "target=/x".
		if m.UsedBy(strings.Join(flags, " ")) {
			return true
		}
	}
	return mountsCache(flags)
}

// runFlags returns the leading --flags of a RUN step's name; ok is false
// for any other step.
func runFlags(step string) (flags []string, ok bool) {
	if !strings.HasPrefix(step, "[") {
		return nil, false
	}
	_, rest, found := strings.Cut(step, "] ")
	if !found {
		return nil, false
	}
	rest = strings.TrimPrefix(rest, "ONBUILD ")
	rest, ok = strings.CutPrefix(rest, "RUN ")
	if !ok {
		return nil, false
	}
	for _, f := range strings.Fields(rest) {
		if !strings.HasPrefix(f, "--") {
			break
		}
		flags = append(flags, f)
	}
	return flags, true
}

// mountsCache reports whether a --mount flag among flags is type=cache.
func mountsCache(flags []string) bool {
	for _, f := range flags {
		v, ok := strings.CutPrefix(f, "--mount=")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(v, ",") {
			if strings.EqualFold(strings.Trim(kv, `"'`), "type=cache") {
				return true
			}
		}
	}
	return false
}

// attemptFunc runs the build once; onRun, when not nil, is told the name
// of each step that starts to run (buildkit.WithRunningSteps).
type attemptFunc func(ctx context.Context, onRun func(step string)) (buildkit.Result, error)

// buildRestoringOnDemand runs the build without the mounts restored. When
// a step that needs them starts to run, it stops that build at once,
// calls restore and builds again with the same request: what the stopped
// build completed is in the builder's cache, so the second build goes on
// where it stopped. neededBy names that step, "" when none ran.
//
// The second build's result is the one returned, with the steps the
// stopped build ran marked as run (withEarlierRuns). A stopped build that
// finished anyway (the step ended before the cancel reached BuildKit) is
// returned as it is, without a restore. Whatever else fails, fails as the
// build would have.
func buildRestoringOnDemand(ctx context.Context, needs func(step string) bool, build attemptFunc, restore func(step string)) (res buildkit.Result, neededBy string, err error) {
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	onRun := func(step string) {
		if !needs(step) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if neededBy == "" {
			neededBy = step
			cancel()
		}
	}
	first, err := build(actx, onRun)
	mu.Lock()
	step := neededBy
	mu.Unlock()
	if step == "" && err == nil {
		// A safety net, should the status stream not have said that a
		// step ran: then it is treated as one that finished first.
		for _, v := range first.Vertices {
			if v.Step && !v.Cached && needs(v.Name) {
				return first, v.Name, nil
			}
		}
	}
	if step == "" || err == nil || ctx.Err() != nil {
		return first, step, err
	}
	restore(step)
	final, err := build(ctx, nil)
	return withEarlierRuns(final, first), step, err
}

// withEarlierRuns marks the steps of final that the stopped build ran to
// completion as run: the second build found them in the builder's cache,
// but for this job they were misses, and the hit count and the build
// record must say so.
//
// A step is matched by its digest or by its name: the Dockerfile
// frontend puts the session's ID into the build context's definition, so
// a step built on the context (COPY . .) has another digest in each
// build; its name ("[build 3/5] COPY . .") is the same and unique.
func withEarlierRuns(final, first buildkit.Result) buildkit.Result {
	ran := map[string]time.Duration{}
	for _, v := range first.Vertices {
		if v.Step && !v.Cached && v.Error == "" && v.Duration > 0 {
			ran["digest "+v.Digest] = v.Duration
			if v.Name != "" {
				ran["name "+v.Name] = v.Duration
			}
		}
	}
	if len(ran) == 0 {
		return final
	}
	final.Vertices = slices.Clone(final.Vertices)
	for i, v := range final.Vertices {
		d, ok := ran["digest "+v.Digest]
		if !ok && v.Name != "" {
			d, ok = ran["name "+v.Name]
		}
		if ok && v.Step && v.Cached {
			final.Vertices[i].Cached, final.Vertices[i].Duration = false, d
			final.Cached--
		}
	}
	return final
}

// buildLazily runs the build, restoring the mounts only if a step needs
// them, and logs which it was.
func (j *job) buildLazily(ctx context.Context, b *buildRun, build attemptFunc) (buildkit.Result, error) {
	lm := b.lazy
	started := time.Now()
	res, step, err := buildRestoringOnDemand(ctx, lm.needs, build, func(step string) {
		j.rep.Infof("cache mounts: step %q runs and uses a cache mount: stopping the build to restore the mounts, then building again", step)
		b.mounts = j.restoreMounts(ctx, lm.plan, started)
		lm.restored = true
	})
	lm.neededBy = step
	switch {
	case err != nil:
	case step == "":
		j.rep.Infof("cache mounts not restored: not needed, every step that uses them was cached")
	case !lm.restored:
		j.rep.Warnf("cache mounts not restored: step %q finished before the build could be stopped for the restore; the mounts are not saved", step)
	}
	return res, err
}

// summary lists the mounts that were never restored, as saveMounts lists
// the others.
func (lm *lazyMounts) summary() []string {
	restored, saved := "not restored: not needed", "not saved: every step that uses it was cached, so it is unchanged"
	if lm.neededBy != "" {
		restored, saved = "not restored: the step that needed it finished first", "not saved: it ran without its restored contents"
	}
	var lines []string
	for _, m := range lm.mounts {
		lines = append(lines, fmt.Sprintf("%s: %s; %s", m.ID, restored, saved))
	}
	return lines
}
