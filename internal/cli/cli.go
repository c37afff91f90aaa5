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

	"github.com/bkcache/bkcache/internal/mountarchive"
)

// Version is stamped at release time (-X main.version, passed through).
var Version = "dev"

// Env is everything the program takes from its process, injectable for tests.
type Env struct {
	Args     []string // without the program name
	Getenv   func(string) string
	ReadFile func(string) ([]byte, error)
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
		Stdout:   os.Stdout,
		Stderr:   os.Stderr,
		Git: func(args ...string) (string, error) {
			out, err := exec.Command("git", args...).Output()
			return strings.TrimSpace(string(out)), err
		},
	}
}

// errUsage marks errors that already printed their usage text.
var errUsage = errors.New("usage")

// Main runs bkcache and returns the process exit code.
func Main(ctx context.Context, e Env) int {
	if e.Getenv("GITHUB_ACTIONS") == "true" && (len(e.Args) == 0 || e.Args[0] == "post") {
		return runAction(ctx, e, len(e.Args) > 0)
	}
	if len(e.Args) == 0 {
		usage(e.Stderr)
		return 2
	}
	var err error
	switch cmd := e.Args[0]; cmd {
	case "plan", "build":
		err = runCLI(ctx, e, cmd, e.Args[1:])
	case mountarchive.HelperCommand: // runs inside the builder; see buildkit.MountHelper
		err = mountarchive.RunHelper(ctx, e.Args[1:])
	case "version", "--version":
		fmt.Fprintln(e.Stdout, "bkcache", Version)
	case "help", "-h", "--help":
		usage(e.Stdout)
	default:
		fmt.Fprintf(e.Stderr, "bkcache: unknown command %q (allowed: plan, build, version, help)\n", cmd)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(e.Stderr, "bkcache: %v\n", err)
		return 1
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `bkcache: BuildKit builds with the right external cache, every time.

Usage:
  bkcache plan  [flags]   print the cache plan (scopes, cache-from, cache-to); build nothing
  bkcache build [flags]   build with the planned cache imports and exports
  bkcache version

Flags are named like the action's inputs; see 'bkcache build -h'.
Inside a GitHub Actions job the binary runs as the action (inputs from INPUT_*).
`)
}
