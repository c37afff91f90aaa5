// Package cli is bkcache's front door: it runs as the GitHub Action when the
// runner starts it, and as a plain CLI (`bkcache plan|build`) everywhere
// else. Both read the same inputs into a config.Config and run the same job.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/bkcache/bkcache/buildkit/mountarchive"
)

// Version is stamped at release time (-X main.version, passed through).
var Version = "dev"

// Env is everything the program takes from its process, injectable for tests.
type Env struct {
	Args     []string // without the program name
	Getenv   func(string) string
	ReadFile func(string) ([]byte, error)
	Stdin    io.Reader // read only by the cache mount helper
	Stdout   io.Writer
	Stderr   io.Writer
	// Git runs git with args in the working directory (nil: no git).
	Git func(args ...string) (string, error)
}

// OSEnv is the Env of the running process.
func OSEnv(args []string) Env {
	return Env{
		Args:     args,
		Getenv:   os.Getenv,
		ReadFile: os.ReadFile,
		Stdin:    os.Stdin,
		Stdout:   os.Stdout,
		Stderr:   os.Stderr,
		Git: func(args ...string) (string, error) {
			out, err := exec.Command("git", args...).Output()
			return strings.TrimSpace(string(out)), err
		},
	}
}

// Main runs bkcache and returns the process exit code: 0 on success, 1 when
// the run failed, 2 when the command line could not be read.
func Main(ctx context.Context, e Env) int {
	if e.Getenv("GITHUB_ACTIONS") == "true" && (len(e.Args) == 0 || e.Args[0] == "post") {
		return runAction(ctx, e, len(e.Args) > 0)
	}
	if len(e.Args) > 0 && e.Args[0] == mountarchive.HelperCommand {
		// Runs inside the builder (see buildkit.MountHelper), not for people:
		// no command of the CLI's help.
		if err := mountarchive.RunHelper(ctx, e.Args[1:], mountarchive.Stdio{In: e.Stdin, Out: e.Stdout, Err: e.Stderr}); err != nil {
			fmt.Fprintf(e.Stderr, "error: %v\n", err)
			return 1
		}
		return 0
	}
	root := newRootCommand(e)
	root.SetArgs(e.Args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var u usageError
	if errors.As(err, &u) {
		// One line and a pointer, as docker does, not the whole flag list.
		fmt.Fprintf(e.Stderr, "bkcache: %v\nSee '%s --help'.\n", u.err, u.cmd.CommandPath())
		return 2
	}
	msg, hint := describeError(err)
	fmt.Fprintf(e.Stderr, "error: %s\n", msg)
	if hint != "" {
		fmt.Fprintf(e.Stderr, "hint: %s\n", hint)
	}
	return 1
}
