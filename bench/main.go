// Command bench measures bkcache on the test environment's real servers
// (scripts/testenv up) and writes BENCHMARKS.md: cold, warm and new-branch
// builds per cache backend, the export overhead, mode and compression, and
// bkcache against hand-written buildctl flags on the same builder.
//
//	source .testenv/env && go run ./bench [-runs 5] [-backends registry,local] ...
//
// Every "fresh builder" measurement starts its own buildkitd with an empty
// root, as a new CI runner would have (or, with -builder, prunes one of the
// testbed's docker-container builders); every run uses its own cache names,
// so no run can see another's cache.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bkcache/bkcache/bench/internal/rig"
)

var (
	allBackends  = []string{"registry", "local", "s3", "azblob", "gha", "gha-stock", "gha-endpoint"}
	allSuites    = []string{"multistage", "heavyrun", "smalllayers", "biglayer"}
	allScenarios = []string{"cold", "warm", "warm-samerepo", "warm-nooutput", "newbranch", "overhead", "compression"}
	// compressible lists the backends whose exporters honour compression
	// (BuildKit's azblob and gha exporters hard-code gzip).
	compressible = []string{"registry", "local", "s3"}
)

type options struct {
	runs         int
	backends     []string
	suites       []string
	scenarios    []string
	compBackends []string
	compSuites   []string
	out          string
	raw          string
	analysis     string
	churn        string
	micro        bool
	keep         bool
	bkcache      string
	s3Root       string
	reportFrom   string
	delayMS      int
	progress     string
	builder      string
}

func main() { rig.Main("bench", parseFlags, run) }

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&o.runs, "runs", 5, "runs per measurement (the issue asks for at least 5)")
	backends := fs.String("backends", strings.Join(allBackends, ","), "cache backends for cold, warm, newbranch and overhead")
	suites := fs.String("suite", strings.Join(allSuites, ","), "Dockerfiles of bench/testdata to build")
	scenarios := fs.String("scenarios", strings.Join(allScenarios, ","), "scenarios: cold (with and without export); warm (push to a new repository), warm-samerepo (push to the cold build's repository), warm-nooutput (no output, a PR check); newbranch, overhead, compression")
	compBackends := fs.String("compression-backends", "registry", "backends for the mode × compression grid (of "+strings.Join(compressible, ", ")+")")
	compSuites := fs.String("compression-suite", "multistage", "suites for the mode × compression grid")
	fs.StringVar(&o.out, "out", "BENCHMARKS.md", "report to write (empty: none)")
	fs.StringVar(&o.raw, "raw", "", "also write every sample as JSON to this file")
	fs.StringVar(&o.analysis, "analysis", "bench/analysis.md", "hand-written notes to include in the report, if the file exists")
	fs.StringVar(&o.churn, "churn", "bench/churn/results.md", "the cache-economy simulation's report (go run ./bench/churn) to include, if the file exists")
	fs.BoolVar(&o.micro, "micro", true, "also run the Go micro-benchmarks of the parser, planner and scopes")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (builder roots, logs, local caches)")
	fs.StringVar(&o.bkcache, "bkcache", "", "bkcache binary to measure (default: go build of the module)")
	fs.StringVar(&o.progress, "progress", "quiet", "bkcache's --progress; with plain its log is read for the build record's cost")
	fs.IntVar(&o.delayMS, "delay-ms", 0, "latency toxiproxy adds each way in front of Azurite and the gha emulator (gha backends; 0: loopback)")
	fs.StringVar(&o.builder, "builder", "local", "where to build: local (a buildkitd of the harness's own per fresh builder), docker-container (the testbed's, network=host) or bridge (the testbed's, on Docker's default bridge, as setup-buildx-action creates it; backends "+strings.Join(bridgeUnreachable, ", ")+" cannot reach the testbed from there); the docker-container builders are wiped (docker buildx prune -af) before each fresh-builder measurement (source .testenv/builders.env)")
	fs.StringVar(&o.reportFrom, "report-from", "", "write the report from a -raw file of an earlier run, building nothing")
	fs.StringVar(&o.s3Root, "s3-root", "", "directory of the S3 gateway's buckets, to read cache sizes (default: .testenv/s3 next to the buildkitd config)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./bench [flags]  (after `source .testenv/env`)\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.runs < 1 {
		return o, fmt.Errorf("-runs: must be at least 1, got %d", o.runs)
	}
	var err error
	pick := func(flagName, v string, allowed []string) []string {
		if err != nil {
			return nil
		}
		var out []string
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if !slices.Contains(allowed, s) {
				err = fmt.Errorf("-%s: unknown %q (allowed: %s)", flagName, s, strings.Join(allowed, ", "))
				return nil
			}
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
		return out
	}
	o.backends = pick("backends", *backends, allBackends)
	o.suites = pick("suite", *suites, allSuites)
	o.scenarios = pick("scenarios", *scenarios, allScenarios)
	o.compBackends = pick("compression-backends", *compBackends, compressible)
	o.compSuites = pick("compression-suite", *compSuites, allSuites)
	pick("builder", o.builder, allBuilders)
	if err == nil && o.builder == "bridge" {
		for _, b := range append(slices.Clone(o.backends), o.compBackends...) {
			if slices.Contains(bridgeUnreachable, b) {
				return o, fmt.Errorf("-backends %s: a bridge builder cannot reach the testbed's %s (it listens on the host's loopback); allowed there: %s",
					b, b, strings.Join(slices.DeleteFunc(slices.Clone(allBackends), func(x string) bool { return slices.Contains(bridgeUnreachable, x) }), ", "))
			}
		}
	}
	return o, err
}

func (o options) has(scenario string) bool { return slices.Contains(o.scenarios, scenario) }

// anyWarm reports whether any of the warm variants is selected.
func (o options) anyWarm() bool {
	return slices.ContainsFunc(warmVariants, func(w warmVariant) bool { return o.has(w.scenario) })
}

func run(ctx context.Context, o options) error {
	if o.reportFrom != "" {
		h, err := readRaw(o.reportFrom, o)
		if err != nil {
			return err
		}
		return os.WriteFile(o.out, []byte(h.report()), 0o644)
	}
	e, err := loadEnv(o)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "bkcache-bench-")
	if err != nil {
		return err
	}
	h := &harness{opts: o, env: e, work: work, id: runID(), started: time.Now()}
	defer func() {
		h.stopBuilders()
		if h.gha != nil {
			h.gha.stop()
		}
		if o.keep {
			fmt.Fprintf(os.Stderr, "bench: kept %s\n", work)
			return
		}
		os.RemoveAll(work)
	}()
	if err := h.prepare(ctx); err != nil {
		return err
	}
	if slices.ContainsFunc(o.backends, isGHA) {
		if err := h.startGHA(ctx); err != nil {
			return err
		}
	}
	h.logf("run %s: runs=%d builder=%s backends=%s suites=%s scenarios=%s", h.id, o.runs, o.builder,
		strings.Join(o.backends, ","), strings.Join(o.suites, ","), strings.Join(o.scenarios, ","))
	h.measure(ctx)
	h.finished = time.Now()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if o.micro {
		h.logf("micro-benchmarks: go test -run '^$' -bench . -benchmem ./internal/... ./scope/...")
		h.micro = runMicro(ctx)
		fmt.Fprintln(os.Stderr, h.micro)
	}
	if o.raw != "" {
		if err := h.writeRaw(o.raw); err != nil {
			return err
		}
	}
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(h.report()), 0o644); err != nil {
			return err
		}
		abs, _ := filepath.Abs(o.out)
		h.logf("wrote %s", abs)
	}
	return nil
}
