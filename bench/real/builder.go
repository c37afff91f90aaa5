package main

import (
	"context"

	"github.com/bkcache/bkcache/bench/internal/rig"
)

// fresh runs fn on a new buildkitd (a fresh runner), stopped and removed
// afterwards. The daemon's start-up is not timed.
func (h *harness) fresh(ctx context.Context, fn func(b *rig.Builder) error) error {
	b, err := rig.Daemon{Buildkitd: h.env.buildkitd, Buildctl: h.env.buildctl, Config: h.cfgFile, Keep: h.opts.keep}.
		Start(ctx, h.work, "builder-")
	if err != nil {
		return err
	}
	defer b.Stop()
	return fn(b)
}
