package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// builder is a buildkitd of our own with an empty root: a fresh CI runner.
type builder struct {
	root string
	addr string
	cmd  *exec.Cmd
	done chan error
	log  *os.File
}

// startBuilder starts a buildkitd under dir and waits until it answers.
// The start-up time is not part of any measurement.
func (h *harness) startBuilder(ctx context.Context, name string) (*builder, error) {
	root, err := os.MkdirTemp(h.work, "builder-"+name+"-")
	if err != nil {
		return nil, err
	}
	b := &builder{root: root, addr: "unix://" + filepath.Join(root, "buildkitd.sock"), done: make(chan error, 1)}
	b.log, err = os.Create(filepath.Join(root, "buildkitd.log"))
	if err != nil {
		return nil, err
	}
	b.cmd = exec.Command(h.env.buildkitd, "--root", filepath.Join(root, "state"), "--addr", b.addr, "--config", h.env.buildkitdCfg)
	b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
	if err := b.cmd.Start(); err != nil {
		b.log.Close()
		return nil, fmt.Errorf("starting buildkitd: %w", err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	h.builders = append(h.builders, b)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := exec.CommandContext(ctx, h.env.buildctl, "--addr", b.addr, "debug", "workers").Run(); err == nil {
			return b, nil
		}
		select {
		case err := <-b.done:
			b.done <- err
			h.stopBuilder(b)
			return nil, fmt.Errorf("buildkitd exited at start (%v); log in %s", err, b.log.Name())
		case <-ctx.Done():
			h.stopBuilder(b)
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			h.stopBuilder(b)
			return nil, fmt.Errorf("buildkitd did not answer within 60s")
		}
	}
}

// stopBuilder stops the daemon and removes its root (snapshots included).
func (h *harness) stopBuilder(b *builder) {
	if b == nil || b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(os.Interrupt)
	select {
	case <-b.done:
	case <-time.After(15 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
	b.log.Close()
	b.cmd = nil
	_ = exec.Command("umount", "-R", filepath.Join(b.root, "state")).Run()
	if !h.opts.keep {
		_ = os.RemoveAll(b.root)
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
