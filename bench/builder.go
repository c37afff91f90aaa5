package main

import (
	"context"
	"fmt"
	"os/exec"

	"github.com/bkcache/bkcache/bench/internal/rig"
)

// The builders -builder picks: the harness's own buildkitd per fresh
// builder, or one of the testbed's docker-container builders
// (scripts/testenv-builders), wiped before each fresh-builder measurement.
var allBuilders = []string{"local", "docker-container", "bridge"}

// bridgeUnreachable are the backends whose servers a builder on Docker's
// bridge network cannot reach in the testbed: they listen on the host's
// loopback, and BuildKit's own exporters talk to them from the container.
var bridgeUnreachable = []string{"s3", "azblob", "gha-stock"}

// builder is where one measurement builds: a buildkitd of our own with an
// empty root, or a pruned docker-container builder; both a fresh CI runner.
type builder struct {
	addr         string // bkcache --builder
	buildctlAddr string // buildctl --addr
	d            *rig.Builder
}

// startBuilder starts a buildkitd under the work directory and waits
// until it answers, or wipes the -builder docker-container builder. The
// start-up (or wipe) time is not part of any measurement.
func (h *harness) startBuilder(ctx context.Context, name string) (*builder, error) {
	if bx := h.env.buildx; bx != "" {
		// --all: the base image and every cache record, as on a new runner.
		if out, err := exec.CommandContext(ctx, "docker", "buildx", "prune", "--all", "--force", "--builder", bx).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("wiping builder %s: docker buildx prune: %w: %s", bx, err, lastLines(string(out), 3))
		}
		b := &builder{addr: bx, buildctlAddr: "docker-container://buildx_buildkit_" + bx + "0"}
		h.builders = append(h.builders, b)
		return b, nil
	}
	d, err := rig.Daemon{Buildkitd: h.env.buildkitd, Buildctl: h.env.buildctl, Config: h.env.buildkitdCfg, Keep: h.opts.keep}.
		Start(ctx, h.work, "builder-"+name+"-")
	if err != nil {
		return nil, err
	}
	b := &builder{addr: d.Addr, buildctlAddr: d.Addr, d: d}
	h.builders = append(h.builders, b)
	return b, nil
}

// stopBuilder stops the daemon and removes its root (snapshots included);
// a docker-container builder stays, to be wiped by the next start.
func (h *harness) stopBuilder(b *builder) {
	if b == nil {
		return
	}
	if b.d != nil {
		b.d.Stop()
	}
	for i, x := range h.builders {
		if x == b {
			h.builders = append(h.builders[:i], h.builders[i+1:]...)
			break
		}
	}
}

func (h *harness) stopBuilders() {
	for len(h.builders) > 0 {
		h.stopBuilder(h.builders[0])
	}
}
