package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/bkcache/bkcache/internal/buildjob"
	"github.com/bkcache/bkcache/internal/config"
	"github.com/bkcache/bkcache/internal/ghaction"
	"github.com/bkcache/bkcache/scope"
)

// runAction runs bkcache as the GitHub Action: inputs from INPUT_*, outputs
// and state through the runner's files, errors as annotations.
func runAction(ctx context.Context, e Env, post bool) int {
	r := ghaction.New(e.Getenv, e.Stdout)
	// Masks first: nothing may print before the runtime token is masked.
	r.MaskSecrets(append([]string{e.Getenv("ACTIONS_RUNTIME_TOKEN"), r.Input(config.InputGitHubToken)},
		config.SecretInputValues(r.Input)...)...)
	rep := buildjob.NewActionReporter(r)

	if post {
		return runPost(ctx, r, rep)
	}
	if err := actionMain(ctx, e, r, rep); err != nil {
		msg, hint := describeError(err)
		if hint != "" {
			msg += "; hint: " + hint
		}
		r.Error(ghaction.SafeLine(msg))
		return 1
	}
	return 0
}

func actionMain(ctx context.Context, e Env, r *ghaction.Runner, rep buildjob.Reporter) error {
	cfg, err := config.Parse(r.Input)
	if err != nil {
		return err
	}
	ev, err := scope.EventFromEnv(e.Getenv, e.ReadFile)
	if err != nil {
		return fmt.Errorf("reading the GitHub event: %w", err)
	}
	return buildjob.Run(ctx, buildjob.Options{Command: buildjob.Build, Config: cfg, Event: ev, Getenv: e.Getenv, Reporter: rep, InAction: true})
}

// runPost is the post step: cleanup that must run even when the build failed.
func runPost(ctx context.Context, r *ghaction.Runner, rep buildjob.Reporter) int {
	cfg, err := config.Parse(r.Input)
	if err != nil {
		return 0 // the main step already reported bad inputs
	}
	if !cfg.CacheCleanup {
		return 0
	}
	ev, err := scope.EventFromEnv(r.Getenv, os.ReadFile)
	if err != nil {
		rep.Warnf("cache cleanup: reading the GitHub event: %v", err)
		return 0
	}
	if err := buildjob.Post(ctx, buildjob.Options{Config: cfg, Event: ev, Getenv: r.Getenv, Reporter: rep}); err != nil {
		rep.Warnf("cache cleanup: %v", err)
	}
	return 0
}
