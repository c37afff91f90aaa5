// Package buildjob is one bkcache job, from the inputs to the cleanup: the
// pipeline that internal/cli starts for the action's steps and for
// `bkcache plan|build|explain`. It is named for what it runs (a build
// job), not for who starts it: internal/cli keeps the commands and flags.
//
// A job goes through these phases, in this order (job.run):
//
//  1. plan: derive the scopes and expand the cache lines (plan, scope).
//  2. report the plan: print it, set cache-scope, mask the secrets it holds.
//     A dry run (and `bkcache plan`) ends here; `bkcache explain` instead
//     compares the last two build records.
//  3. serve stores: start the gha data plane (the session store, or the
//     cache endpoint on the loopback) that BuildKit reads and writes.
//  4. plan mounts: find the Dockerfile's cache mounts to restore (with
//     BKCACHE_MOUNT_RESTORE=eager, restore them from the store now).
//  5. build, restoring mounts only if a step needs them: run BuildKit
//     without them; when a step that uses them starts to run, stop,
//     restore them and build again (buildLazily). Then finish the data
//     plane's index writes.
//  6. save mounts: pack the cache mounts a step ran with back into the
//     store.
//  7. report: outputs, why steps missed, the new build record, and the job
//     summary, written once the mounts are saved (it lists them).
//  8. clean up: stop the stores, then, in the action, prune superseded gha
//     entries (cache-cleanup). The post step (Post) cleans up a closed
//     pull request's caches.
//
// A cache failure never fails the build: it becomes a warning.
package buildjob

import (
	"context"
	"io"
	"time"

	"github.com/bkcache/bkcache/internal/config"
	"github.com/bkcache/bkcache/scope"
)

// Command is what a job does with its plan.
type Command int

const (
	// Build builds with the plan (unless the dry-run input says not to).
	Build Command = iota
	// Plan reports the plan and builds nothing.
	Plan
	// Explain says why the last build of the scope missed the cache.
	Explain
)

// Options are one job's inputs: the command, the parsed inputs, the event
// they run for, and where the job reports.
type Options struct {
	Command  Command
	Config   config.Config
	Event    scope.Event
	Getenv   func(string) string
	Reporter Reporter
	// InAction is true when the GitHub runner started the job: only then
	// does it read the Actions cache's usage, write a dry run's summary and
	// clean up after the build.
	InAction bool
	// Stdout is where Explain prints.
	Stdout io.Writer
}

// Run runs one job through its phases and returns the first error that
// fails it.
func Run(ctx context.Context, o Options) error {
	j := &job{cfg: o.Config, event: o.Event, getenv: o.Getenv, rep: o.Reporter, inAction: o.InAction, bkLog: captureBuildKitLog()}
	defer j.bkLog.restore()
	return j.run(ctx, o.Command, o.Stdout)
}

// Post is the action's post step: cleanup that must run even when the
// build failed. It runs in the action only, whatever o.InAction says.
func Post(ctx context.Context, o Options) error {
	j := &job{cfg: o.Config, event: o.Event, getenv: o.Getenv, rep: o.Reporter, inAction: true}
	return postCleanup(ctx, j)
}

// run is the pipeline, one phase per call.
func (j *job) run(ctx context.Context, cmd Command, stdout io.Writer) error {
	p, err := j.plan()
	if err != nil {
		return err
	}
	if cmd == Explain {
		return j.explainLast(ctx, p, stdout)
	}
	planOnly := cmd == Plan || j.cfg.DryRun
	if err := j.reportPlan(p, planOnly); err != nil {
		return err
	}
	if planOnly {
		return j.dryRun(p)
	}
	if j.inAction {
		j.reportGHAScopes(ctx, p)
	}
	b, err := j.serveStores(ctx, p)
	defer b.close()
	if err != nil {
		return err
	}
	if j.eagerMountRestore() {
		b.mounts = j.restoreMounts(ctx, p, time.Time{})
	} else {
		b.lazy = j.planLazyMounts(p)
	}
	b.why = j.startExplain(ctx, p)
	if err := j.runBuild(ctx, b); err != nil { // restores mounts if a step needs them
		return err
	}
	sum, err := j.reportBuild(ctx, b)
	if err != nil {
		return err
	}
	sum.Mounts = j.saveMounts(ctx, b)
	j.rep.Summary(sum)
	return j.cleanUp(ctx, p, b)
}

// reportPlan masks the plan's secrets and prints it. The action prints
// the entries even in a dry run; the CLI's plan leaves them to the
// outputs.
func (j *job) reportPlan(p planned, planOnly bool) error {
	// Keys written into cache lines (S3, Azure) are masked before the plan
	// prints, like the runtime token before anything.
	j.rep.Mask(j.cfg.SecretValues()...)
	j.rep.Mask(p.cache.SecretValues()...)
	return j.report(p, j.inAction || !planOnly)
}

// dryRun ends a job that builds nothing: the plan becomes the cache-from
// and cache-to outputs, so a dry run shows exactly what a build gets.
func (j *job) dryRun(p planned) error {
	if err := j.setCacheOutputs(p); err != nil {
		return err
	}
	if j.inAction {
		j.rep.Infof("dry-run: nothing built")
		j.rep.Summary(j.planSummary(p))
	}
	return nil
}

// cleanUp stops the build's stores and mounts, then prunes, in the
// action, what the build's gha export superseded.
func (j *job) cleanUp(ctx context.Context, p planned, b *buildRun) error {
	b.close()
	if !j.inAction {
		return nil
	}
	return j.afterBuild(ctx, p)
}
