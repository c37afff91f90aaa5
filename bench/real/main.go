// Command real measures bkcache on real projects (issue 20): bkcache
// building itself (suite self, context = this repository, the root
// Dockerfile) and a Node.js service (suite node, bench/testdata/node),
// with real `go mod download`, `npm ci` and compiles, dependencies fetched
// from the Go module proxy and the npm registry inside the build.
//
//	scripts/bench-images && source .testenv/env && eval "$(scripts/bench-images env)"
//	go run ./bench/real [-runs 3] [-configs gha-stock,gha] [-delays 0,10] ...
//
// The defaults (-runs 3 -configs nocache,gha-stock,gha -delays 10) stay
// under an hour; -configs nocache,gha-stock,gha,registry,s3 -delays 0,10
// is the whole matrix (about three hours), -runs 1 and fewer configs or
// one suite are quicker, and -runs 3,self=2 gives the self suite, whose
// cold compile takes minutes, fewer runs than node.
//
// Scenarios, each on a fresh buildkitd with an empty root (a fresh runner):
// cold, warm (nothing changed), pr (one source file changed on a new
// branch, importing the default branch) and bump (one dependency added, on
// a new branch). Configurations side by side in one run: no cache at all,
// build-push-action's type=gha,mode=max on stock BuildKit (dataplane=false,
// no cache mounts), bkcache's defaults (gha data plane and cache mounts),
// bkcache with a registry and with s3; each store behind a byte-counting
// proxy, and behind toxiproxy adding each delay of -delays each way.
//
// It writes bench/real/results.md (which `go run ./bench` puts first in
// BENCHMARKS.md) and bench/real/real.png.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bkcache/bkcache/bench/internal/rig"
)

var (
	allSuites    = []string{"self", "node"}
	allConfigs   = []string{"nocache", "gha-stock", "gha", "gha-eager", "registry", "s3"}
	allScenarios = []string{"cold", "warm", "pr", "bump"}

	// The defaults keep a run under an hour on a quiet 2-core machine:
	// the targets' comparison (bkcache's defaults against build-push-action's
	// gha, with no cache as the floor) at a runner's latency, 3 runs. The
	// whole matrix, -configs nocache,gha-stock,gha,registry,s3 -delays 0,10,
	// is about three times that.
	defaultConfigs = []string{"nocache", "gha-stock", "gha"}
	defaultDelays  = "10"
)

type options struct {
	runs      int            // runs per scenario and configuration
	suiteRuns map[string]int // -runs overrides per suite (self=2)
	suites    []string
	configs   []string
	scenarios []string
	delays    []int
	out       string
	plot      string
	raw       string
	from      string
	label     string
	keep      bool
	bkcache   string
	goImage   string
	nodeImage string
}

func main() { rig.Main("real", parseFlags, run) }

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("real", flag.ContinueOnError)
	runs := fs.String("runs", "3", "runs per scenario and configuration; a suite=N item sets one suite's (3,self=2)")
	suites := fs.String("suites", strings.Join(allSuites, ","), "real projects to build")
	configs := fs.String("configs", strings.Join(defaultConfigs, ","), "configurations of "+strings.Join(allConfigs, ", ")+": nocache, gha-stock (build-push-action's type=gha,mode=max), gha (bkcache defaults), gha-eager (the same with BKCACHE_MOUNT_RESTORE=eager: mounts restored before the build), registry, s3 (bkcache)")
	scenarios := fs.String("scenarios", strings.Join(allScenarios, ","), "scenarios after the cold build: warm, pr (one-file change), bump (one dependency added); cold always runs")
	delays := fs.String("delays", defaultDelays, "latency in ms toxiproxy adds each way in front of the stores (0: loopback)")
	fs.StringVar(&o.out, "out", "bench/real/results.md", "report section to write (go run ./bench puts it first in BENCHMARKS.md; empty: none)")
	fs.StringVar(&o.plot, "plot", "bench/real/real.png", "plot to write (empty: none)")
	fs.StringVar(&o.raw, "raw", "", "also write every sample as JSON to this file")
	fs.StringVar(&o.from, "report-from", "", "write the report and plot from a -raw file, building nothing")
	fs.StringVar(&o.label, "label", "", "a line to put at the top of the report (e.g. \"Smoke run, not a measurement\")")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (builder logs, contexts)")
	fs.StringVar(&o.bkcache, "bkcache", "", "bkcache binary to measure (default: go build of the module)")
	fs.StringVar(&o.goImage, "go-image", os.Getenv("BKCACHE_BENCH_GO_IMAGE"), "base image with Go for suite self (scripts/bench-images)")
	fs.StringVar(&o.nodeImage, "node-image", os.Getenv("BKCACHE_BENCH_NODE_IMAGE"), "base image with Node.js for suite node (scripts/bench-images)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./bench/real [flags]  (after scripts/bench-images, `source .testenv/env` and `eval \"$(scripts/bench-images env)\"`)\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var err error
	o.runs, o.suiteRuns, err = parseRuns(*runs)
	if err != nil {
		return o, err
	}
	pick := func(name, v string, allowed []string) []string {
		var out []string
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" || slices.Contains(out, s) {
				continue
			}
			if !slices.Contains(allowed, s) {
				err = errors.Join(err, fmt.Errorf("-%s: unknown %q (allowed: %s)", name, s, strings.Join(allowed, ", ")))
				continue
			}
			out = append(out, s)
		}
		return out
	}
	o.suites = pick("suites", *suites, allSuites)
	o.configs = pick("configs", *configs, allConfigs)
	o.scenarios = append([]string{"cold"}, pick("scenarios", *scenarios, allScenarios)...)
	o.scenarios = slices.Compact(o.scenarios)
	for _, d := range strings.Split(*delays, ",") {
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		n, perr := strconv.Atoi(d)
		if perr != nil || n < 0 {
			err = errors.Join(err, fmt.Errorf("-delays: %q is not a number of milliseconds", d))
			continue
		}
		if !slices.Contains(o.delays, n) {
			o.delays = append(o.delays, n)
		}
	}
	if err != nil {
		return o, err
	}
	for s := range o.suiteRuns {
		if !slices.Contains(allSuites, s) {
			err = errors.Join(err, fmt.Errorf("-runs: unknown suite %q (allowed: %s)", s, strings.Join(allSuites, ", ")))
		}
	}
	if err != nil {
		return o, err
	}
	if len(o.suites) == 0 || len(o.configs) == 0 || len(o.delays) == 0 {
		return o, errors.New("need at least one suite, configuration and delay")
	}
	if o.from == "" {
		if slices.Contains(o.suites, "self") && o.goImage == "" {
			return o, errors.New("no Go image: run scripts/bench-images and eval \"$(scripts/bench-images env)\", or pass -go-image")
		}
		if slices.Contains(o.suites, "node") && o.nodeImage == "" {
			return o, errors.New("no Node.js image: run scripts/bench-images and eval \"$(scripts/bench-images env)\", or pass -node-image")
		}
	}
	return o, nil
}

// parseRuns reads -runs: a count for every suite, and suite=N items for
// some (the self suite's cold compile takes minutes, node's a minute).
func parseRuns(v string) (int, map[string]int, error) {
	runs, per := 0, map[string]int{}
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		suite, count, named := strings.Cut(item, "=")
		if !named {
			count = item
		}
		n, err := strconv.Atoi(count)
		if err != nil || n < 1 {
			return 0, nil, fmt.Errorf("-runs: %q is not a count of at least 1 (as in 3 or self=2)", item)
		}
		if named {
			per[suite] = n
		} else {
			runs = n
		}
	}
	if runs == 0 {
		runs = 3
	}
	return runs, per, nil
}

// runsOf is how many runs suite gets.
func (o options) runsOf(suite string) int {
	if n, ok := o.suiteRuns[suite]; ok {
		return n
	}
	return o.runs
}

func (o options) has(scenario string) bool { return slices.Contains(o.scenarios, scenario) }

func run(ctx context.Context, o options) error {
	if o.from != "" {
		r, err := readRaw(o.from)
		if err != nil {
			return err
		}
		if o.label != "" {
			r.Label = o.label
		}
		return r.write(o)
	}
	h, err := newHarness(ctx, o)
	if err != nil {
		return err
	}
	defer h.close()
	h.measure(ctx)
	h.res.Finished = time.Now()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if o.raw != "" {
		if err := h.res.writeRaw(o.raw); err != nil {
			return err
		}
	}
	return h.res.write(o)
}
