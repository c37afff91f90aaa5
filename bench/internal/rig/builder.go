package rig

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Daemon is how to start builders: the buildkitd and buildctl binaries,
// buildkitd's config, and whether a stopped builder's root is kept.
type Daemon struct {
	Buildkitd, Buildctl, Config string
	Keep                        bool
}

// Builder is a buildkitd of our own with an empty root: a fresh CI runner.
type Builder struct {
	Root, Addr string
	keep       bool
	cmd        *exec.Cmd
	done       chan error
	log        *os.File
}

// Start starts a buildkitd with its root in a new directory under dir
// (named by pattern, as os.MkdirTemp does) and waits until it answers.
// The start-up is not part of any measurement. When it fails to answer,
// the daemon is stopped.
func (d Daemon) Start(ctx context.Context, dir, pattern string) (*Builder, error) {
	root, err := os.MkdirTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	b := &Builder{Root: root, Addr: "unix://" + filepath.Join(root, "buildkitd.sock"), keep: d.Keep, done: make(chan error, 1)}
	if b.log, err = os.Create(filepath.Join(root, "buildkitd.log")); err != nil {
		return nil, err
	}
	// Its own OpenTelemetry socket: every buildkitd takes
	// /run/buildkit/otel-grpc.sock otherwise, and two starting at once race.
	b.cmd = exec.Command(d.Buildkitd, "--root", filepath.Join(root, "state"), "--addr", b.Addr, "--config", d.Config,
		"--otel-socket-path", filepath.Join(root, "otel-grpc.sock"))
	b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
	if err := b.cmd.Start(); err != nil {
		b.log.Close()
		return nil, fmt.Errorf("starting buildkitd: %w", err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for exec.CommandContext(ctx, d.Buildctl, "--addr", b.Addr, "debug", "workers").Run() != nil {
		select {
		case err := <-b.done:
			b.done <- err
			b.Stop()
			return nil, fmt.Errorf("buildkitd exited at start (%v); log in %s", err, b.log.Name())
		case <-ctx.Done():
			b.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Stop()
			return nil, fmt.Errorf("buildkitd did not answer within 60s")
		}
	}
	return b, nil
}

// Stop stops the daemon and removes its root (snapshots, cache mounts and
// all) unless the daemon keeps it. Stopping a stopped builder does
// nothing.
func (b *Builder) Stop() {
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
	_ = exec.Command("umount", "-R", filepath.Join(b.Root, "state")).Run()
	if !b.keep {
		_ = os.RemoveAll(b.Root)
	}
}
