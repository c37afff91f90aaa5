package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/bkcache/bkcache/internal/config"
	"github.com/bkcache/bkcache/scope"
)

// runCLI runs `bkcache plan` or `bkcache build` with flags named like the
// action's inputs.
func runCLI(ctx context.Context, e Env, cmd string, args []string) error {
	f := newInputFlags(cmd, e.Stderr)
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if f.fs.NArg() > 0 {
		// `bkcache build ./app` reads like `docker build ./app`.
		if f.fs.NArg() > 1 || f.input(config.InputContext) != "" {
			return fmt.Errorf("unexpected arguments %q: pass the context once, as --context or as the only argument", f.fs.Args())
		}
		f.values[config.InputContext].vals = []string{f.fs.Arg(0)}
	}
	cfg, err := config.Parse(func(name string) string { return f.input(name) })
	if err != nil {
		return err
	}
	ev, err := cliEvent(e, f)
	if err != nil {
		return err
	}
	if cfg.DefaultBranch == "" {
		cfg.DefaultBranch = gitDefaultBranch(e)
	}
	rep := newTerminalReporter(e.Stdout, e.Stderr)
	j := &job{cfg: cfg, event: ev, getenv: e.Getenv, rep: rep}
	p, err := j.plan()
	if err != nil {
		return err
	}
	if err := j.report(p); err != nil {
		return err
	}
	if cmd == "plan" || cfg.DryRun {
		rep.printOutputs("cache-scope", "cache-from", "cache-to")
		return nil
	}
	if _, err := j.build(ctx, p); err != nil {
		return err
	}
	rep.printOutputs("digest", "imageid", "cache-hits", "cache-steps", "cache-scope")
	return nil
}

// cliEvent is the event a CLI run stands for. Inside a GitHub job (a `run:`
// step) that is the job's own event; elsewhere a push of --ref, or of the
// checked-out branch.
func cliEvent(e Env, f *inputFlags) (scope.Event, error) {
	if e.Getenv("GITHUB_EVENT_NAME") != "" && f.ref == "" {
		return scope.EventFromEnv(e.Getenv, e.ReadFile)
	}
	ref := f.ref
	if ref == "" && e.Git != nil {
		if out, err := e.Git("symbolic-ref", "-q", "HEAD"); err == nil && out != "" {
			ref = out
		}
	}
	if ref == "" {
		return scope.Event{}, errors.New("cannot tell which branch this build is for: pass --ref refs/heads/NAME (no git branch checked out here)")
	}
	if !strings.HasPrefix(ref, "refs/") {
		ref = "refs/heads/" + ref
	}
	return scope.Event{Name: f.event, Ref: ref}, nil
}

// gitDefaultBranch asks git for origin's default branch ("" if unknown).
func gitDefaultBranch(e Env) string {
	if e.Git == nil {
		return ""
	}
	out, err := e.Git("symbolic-ref", "-q", "--short", "refs/remotes/origin/HEAD")
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(out, "origin/")
}
