package main

import (
	"context"

	"github.com/bkcache/bkcache/bench/internal/rig"
)

// builder is a buildkitd of our own with an empty root: a fresh CI runner.
type builder struct {
	addr string
	d    *rig.Builder
}

// startBuilder starts a buildkitd under the work directory and waits
// until it answers. The start-up time is not part of any measurement.
func (h *harness) startBuilder(ctx context.Context, name string) (*builder, error) {
	d, err := rig.Daemon{Buildkitd: h.env.buildkitd, Buildctl: h.env.buildctl, Config: h.env.buildkitdCfg, Keep: h.opts.keep}.
		Start(ctx, h.work, "builder-"+name+"-")
	if err != nil {
		return nil, err
	}
	b := &builder{addr: d.Addr, d: d}
	h.builders = append(h.builders, b)
	return b, nil
}

// stopBuilder stops the daemon and removes its root (snapshots included).
func (h *harness) stopBuilder(b *builder) {
	if b == nil {
		return
	}
	b.d.Stop()
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
