package rig

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// Main runs a benchmark command: it parses args, runs until done or
// interrupted, and exits 2 on a usage error, 1 on a failed run. name
// prefixes its errors.
func Main[O any](name string, parse func([]string) (O, error), run func(context.Context, O) error) {
	o, err := parse(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// RunID keeps a run's cache names and image repositories apart from
// every other run's.
func RunID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "r" + hex.EncodeToString(b)
}

// GitCommit is the short commit of the work tree, noting uncommitted
// changes.
func GitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		c += " (with uncommitted changes)"
	}
	return c
}

// LastLines is the last n lines of s on one line, for an error message.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

var (
	hitsLine  = regexp.MustCompile(`(?m)^cache-hits: (\d+)$`)
	stepsLine = regexp.MustCompile(`(?m)^cache-steps: (\d+)$`)
)

// CacheHits reads bkcache's cache-hits and cache-steps outputs (which it
// counts from BuildKit's status stream) from its stdout; -1 when absent.
func CacheHits(stdout string) (hits, steps int) {
	hits, steps = -1, -1
	if m := hitsLine.FindStringSubmatch(stdout); m != nil {
		hits, _ = strconv.Atoi(m[1])
	}
	if m := stepsLine.FindStringSubmatch(stdout); m != nil {
		steps, _ = strconv.Atoi(m[1])
	}
	return hits, steps
}
