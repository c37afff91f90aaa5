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
	root, addr string
	cmd        *exec.Cmd
	done       chan error
	log        *os.File
}

// fresh runs fn on a new buildkitd, stopped and removed afterwards. The
// daemon's start-up is not timed.
func (h *harness) fresh(ctx context.Context, fn func(b *builder) error) error {
	root, err := os.MkdirTemp(h.work, "builder-")
	if err != nil {
		return err
	}
	b := &builder{root: root, addr: "unix://" + filepath.Join(root, "buildkitd.sock"), done: make(chan error, 1)}
	if b.log, err = os.Create(filepath.Join(root, "buildkitd.log")); err != nil {
		return err
	}
	b.cmd = exec.Command(h.env.buildkitd, "--root", filepath.Join(root, "state"), "--addr", b.addr, "--config", h.cfgFile)
	b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
	if err := b.cmd.Start(); err != nil {
		b.log.Close()
		return fmt.Errorf("starting buildkitd: %w", err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	defer h.stopBuilder(b)
	deadline := time.Now().Add(60 * time.Second)
	for exec.CommandContext(ctx, h.env.buildctl, "--addr", b.addr, "debug", "workers").Run() != nil {
		select {
		case err := <-b.done:
			b.done <- err
			return fmt.Errorf("buildkitd exited at start (%v); log in %s", err, b.log.Name())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("buildkitd did not answer within 60s")
		}
	}
	return fn(b)
}

// stopBuilder stops the daemon and removes its root (snapshots, cache
// mounts and all).
func (h *harness) stopBuilder(b *builder) {
	_ = b.cmd.Process.Signal(os.Interrupt)
	select {
	case <-b.done:
	case <-time.After(15 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
	b.log.Close()
	_ = exec.Command("umount", "-R", filepath.Join(b.root, "state")).Run()
	if !h.opts.keep {
		_ = os.RemoveAll(b.root)
	}
}
