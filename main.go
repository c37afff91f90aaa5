// Command bkcache builds with BuildKit and the right external cache. It runs
// as the GitHub Action when the runner starts it, and as a CLI elsewhere.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/bkcache/bkcache/internal/cli"
)

// version is stamped by scripts/dist.sh (-X main.version=…).
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cli.Version = version
	code := cli.Main(ctx, cli.OSEnv(os.Args[1:]))
	stop()
	os.Exit(code)
}
