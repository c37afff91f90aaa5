package cli

import (
	"context"
	"errors"
	"fmt"
	"github.com/bkcache/bkcache/buildkit"
	"strings"

	"github.com/bkcache/bkcache/internal/buildjob"
	"github.com/bkcache/bkcache/internal/config"
	"github.com/bkcache/bkcache/scope"
	"github.com/spf13/cobra"
)

// usageError is a command line bkcache cannot read: Main prints it with a
// pointer to the command's --help and exits 2.
type usageError struct {
	cmd *cobra.Command
	err error
}

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usageErrorf(cmd *cobra.Command, format string, args ...any) error {
	return usageError{cmd: cmd, err: fmt.Errorf(format, args...)}
}

// newRootCommand is `bkcache` with its subcommands, in the convention of
// docker, buildx and kubectl (cobra and pflag): GNU --flags anywhere on the
// line, one flag set per command, shell completion.
func newRootCommand(e Env) *cobra.Command {
	root := &cobra.Command{
		Use:   "bkcache",
		Short: "BuildKit builds with the right external cache, every time",
		Long: `bkcache builds with BuildKit and derives the cache imports and exports from
the git ref: this branch, the pull request, its base, the default branch.

Flags are named like the action's inputs. Inside a GitHub Actions job the
binary runs as the action (inputs from INPUT_*).`,
		Version:       Version,
		SilenceErrors: true,
		SilenceUsage:  true,
		// Without this, an unknown subcommand would not be an error.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q", args[0])
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %q?)", s[0])
			}
			return usageErrorf(cmd, "%s", msg)
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(cmd.ErrOrStderr())
			_ = cmd.Help()
			return usageErrorf(cmd, "no command given")
		},
	}
	root.SuggestionsMinimumDistance = 2
	root.SetVersionTemplate("bkcache {{.Version}}\n")
	root.SetOut(e.Stdout)
	root.SetErr(e.Stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError{cmd: cmd, err: err} })
	root.CompletionOptions.HiddenDefaultCmd = false
	root.AddCommand(
		newPlanOrBuildCommand(e, "plan"),
		newPlanOrBuildCommand(e, "build"),
		newPlanOrBuildCommand(e, "explain"),
		&cobra.Command{
			Use:   "version",
			Short: "Show the bkcache version",
			Args:  noArgs,
			Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "bkcache", Version) },
		},
	)
	return root
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf(cmd, "%q takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}

// cliOptions are the flags that exist only on the command line: the event
// a run outside GitHub stands for.
type cliOptions struct {
	ref, event string
	// refSet, eventSet: the flag was given (--event has a default).
	refSet, eventSet bool
}

func newPlanOrBuildCommand(e Env, name string) *cobra.Command {
	var opts cliOptions
	var inputs *inputSet
	cmd := &cobra.Command{Use: name}
	switch name {
	case "plan":
		cmd.Short = "Print the cache plan (scopes, cache-from, cache-to); build nothing"
		cmd.Example = `  bkcache plan --cache type=registry,ref=reg.example/app-cache --ref refs/heads/feature/x
  bkcache plan --ref refs/pull/42/merge --event pull_request --cache type=local,dest=/mnt/cache`
		cmd.Args = noArgs
	case "explain":
		cmd.Short = "Say why the last build of a scope missed the cache, from its two last build records"
		cmd.Long = `explain reads the last two build records that builds saved in the scope
this ref exports to (or else the first scope it imports), and names the cause
of each first miss of the last build: a context file, a build-arg, a moved
base image, an edited instruction, the platform, the BuildKit version, or a
cache that was not imported.`
		cmd.Example = `  bkcache explain
  bkcache explain --cache type=registry,ref=reg.example/app-cache --ref refs/heads/main`
		cmd.Args = noArgs
	case "build":
		cmd.Use = "build [flags] PATH"
		cmd.Short = "Build with the planned cache imports and exports"
		cmd.Example = `  bkcache build .
  bkcache build ./app --cache type=s3,bucket=b,region=us-east-1 -t reg.example/app:dev --push
  bkcache build . --ref refs/heads/feature/x --progress quiet`
		cmd.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageErrorf(cmd, "one build context expected, got %d: %q", len(args), args)
			}
			return nil
		}
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 1 {
			// `bkcache build ./app` reads like `docker build ./app`.
			if cmd.Flags().Changed(config.InputContext) {
				return usageErrorf(cmd, "the build context is given twice: as --context and as the argument %q", args[0])
			}
			if err := inputs.set(config.InputContext, args[0]); err != nil {
				return err
			}
		}
		opts.refSet, opts.eventSet = cmd.Flags().Changed("ref"), cmd.Flags().Changed("event")
		return runCLI(cmd.Context(), e, name, inputs, opts)
	}
	command := onBuild
	if name == "plan" || name == "explain" {
		command = onPlan
	}
	fs := cmd.Flags()
	fs.SortFlags = true
	inputs = registerInputs(fs, command)
	if command == onBuild {
		_ = cmd.RegisterFlagCompletionFunc(config.InputProgress, cobra.FixedCompletions(buildkit.ProgressModes, cobra.ShellCompDirectiveNoFileComp))
	}
	fs.StringVar(&opts.ref, "ref", "", "Git `ref` this build stands for, e.g. refs/heads/feature (default: the checked-out branch)")
	fs.StringVar(&opts.event, "event", "push", "GitHub `event` name this build stands for")
	return cmd
}

// runCLI runs `bkcache plan` or `bkcache build`.
func runCLI(ctx context.Context, e Env, cmd string, inputs *inputSet, opts cliOptions) error {
	cfg, err := config.Parse(inputs.input)
	if err != nil {
		return err
	}
	ev, err := cliEvent(e, opts)
	if err != nil {
		return err
	}
	if cfg.DefaultBranch == "" {
		cfg.DefaultBranch = gitDefaultBranch(e)
	}
	rep := buildjob.NewTerminalReporter(e.Stdout, e.Stderr, cfg.Progress == "quiet")
	command := map[string]buildjob.Command{"build": buildjob.Build, "plan": buildjob.Plan, "explain": buildjob.Explain}[cmd]
	err = buildjob.Run(ctx, buildjob.Options{Command: command, Config: cfg, Event: ev, Getenv: e.Getenv, Reporter: rep, Stdout: e.Stdout})
	switch {
	case err != nil || command == buildjob.Explain:
		return err
	case command == buildjob.Plan || cfg.DryRun:
		rep.PrintOutputs("cache-scope", "cache-from", "cache-to")
	default:
		rep.PrintOutputs("digest", "imageid", "cache-hits", "cache-steps", "cache-miss-reason", "cache-scope")
	}
	return nil
}

// cliEvent is the event a CLI run stands for. Inside a GitHub Actions job
// (a `run:` step) that is the job's own event; elsewhere a push of --ref,
// or of the checked-out branch.
//
// Inside a job, --ref and --event that differ from the job's event are
// refused rather than planned. They could only widen trust there: a fork's
// pull_request_target job that says `--ref refs/heads/master` would plan a
// trusted push and export to master's scope. Telling a narrowing change
// from a widening one would mean inventing the payload the flags imply
// (which PR, which fork), and planning the job's event while ignoring the
// flags would plan something other than what the command line says, so an
// error that names the job's event is the one answer that is always right.
func cliEvent(e Env, opts cliOptions) (scope.Event, error) {
	if inJob(e.Getenv) {
		ev, err := scope.EventFromEnv(e.Getenv, e.ReadFile)
		if err != nil {
			return scope.Event{}, err
		}
		ref := opts.ref
		if ref != "" && !strings.HasPrefix(ref, "refs/") {
			ref = "refs/heads/" + ref
		}
		var given []string
		if opts.refSet && ref != ev.Ref {
			given = append(given, fmt.Sprintf("--ref %q", opts.ref))
		}
		if opts.eventSet && opts.event != ev.Name {
			given = append(given, fmt.Sprintf("--event %q", opts.event))
		}
		if len(given) > 0 {
			return scope.Event{}, fmt.Errorf("%s: inside a GitHub Actions job the cache plan comes from the job's own event (%s on %s), which sets what this build may write; remove %s", strings.Join(given, " and "), ev.Name, ev.Ref, strings.Join(given, " and "))
		}
		return ev, nil
	}
	if e.Getenv("GITHUB_EVENT_NAME") != "" && opts.ref == "" {
		return scope.EventFromEnv(e.Getenv, e.ReadFile)
	}
	ref := opts.ref
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
	return scope.Event{Name: opts.event, Ref: ref}, nil
}

// inJob reports whether this process runs inside a GitHub Actions job:
// the runner sets GITHUB_ACTIONS and hands every step the event payload.
func inJob(getenv func(string) string) bool {
	return getenv("GITHUB_ACTIONS") == "true" && getenv("GITHUB_EVENT_PATH") != ""
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
