package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/bkcache/bkcache/bench/internal/rig"
)

// stats summarizes one measurement.
type stats struct {
	n                int
	median, min, max float64
}

func summarize(xs []float64) stats {
	var s stats
	s.n, s.median, s.min, s.max = rig.Summarize(xs)
	return s
}

func (s stats) ok() bool { return s.n > 0 }

// secs prints "median s (min–max)".
func (s stats) secs() string {
	if !s.ok() {
		return "–"
	}
	return fmt.Sprintf("%.2f s (%.2f–%.2f)", s.median, s.min, s.max)
}

func (s stats) ms() string {
	if !s.ok() {
		return "–"
	}
	return fmt.Sprintf("%.0f ms (%.0f–%.0f)", s.median*1000, s.min*1000, s.max*1000)
}

func (s stats) mb() string {
	if !s.ok() {
		return "–"
	}
	return fmt.Sprintf("%.1f MB (%.1f–%.1f)", s.median/1e6, s.min/1e6, s.max/1e6)
}

type filter struct{ scenario, suite, backend, variant, tool string }

func (f filter) match(s sample) bool {
	return s.Err == "" && s.Scenario == f.scenario && s.Suite == f.suite &&
		(f.backend == "" || s.Backend == f.backend) && (f.variant == "" || s.Variant == f.variant) &&
		(f.tool == "" || s.Tool == f.tool)
}

func (h *harness) pick(f filter) []sample {
	var out []sample
	for _, s := range h.samples {
		if f.match(s) {
			out = append(out, s)
		}
	}
	return out
}

func (h *harness) time(f filter) stats {
	var xs []float64
	for _, s := range h.pick(f) {
		xs = append(xs, s.Seconds)
	}
	return summarize(xs)
}

func (h *harness) size(f filter) stats {
	var xs []float64
	for _, s := range h.pick(f) {
		if s.Bytes >= 0 {
			xs = append(xs, float64(s.Bytes))
		}
	}
	return summarize(xs)
}

// hitText is "min hits/steps over runs" ("9/9", or "7–9/9").
func (h *harness) hitText(f filter) string {
	ss := h.pick(f)
	if len(ss) == 0 {
		return "–"
	}
	lo, hi, steps := ss[0].Hits, ss[0].Hits, ss[0].Steps
	for _, s := range ss {
		lo, hi, steps = min(lo, s.Hits), max(hi, s.Hits), max(steps, s.Steps)
	}
	if lo == hi {
		return fmt.Sprintf("%d/%d", lo, steps)
	}
	return fmt.Sprintf("%d–%d/%d", lo, hi, steps)
}

func ratio(a, b stats) string {
	if !a.ok() || !b.ok() || b.median == 0 {
		return "–"
	}
	return fmt.Sprintf("%.3f", a.median/b.median)
}

func pct(a, b stats) string {
	if !a.ok() || !b.ok() || b.median == 0 {
		return "–"
	}
	return fmt.Sprintf("%+.0f%%", (a.median/b.median-1)*100)
}

// command reproduces this run.
func (h *harness) command() string {
	o := h.opts
	cmd := fmt.Sprintf("source .testenv/env && go run ./bench -runs %d -delay-ms %d -backends %s -suite %s -scenarios %s -compression-backends %s -compression-suite %s",
		o.runs, o.delayMS, strings.Join(o.backends, ","), strings.Join(o.suites, ","), strings.Join(o.scenarios, ","),
		strings.Join(o.compBackends, ","), strings.Join(o.compSuites, ","))
	if o.progress != "" && o.progress != "quiet" {
		cmd += " -progress " + o.progress
	}
	if o.builder != "" && o.builder != "local" {
		cmd = "source .testenv/builders.env && " + cmd + " -builder " + o.builder
	}
	return cmd
}

var suiteText = map[string]string{
	"multistage":  "three stages (20 MB + 10 MB of random data in the builder stages, a small final image), 9 steps",
	"heavyrun":    "four CPU-bound `RUN` steps (hashing 1 GB in total) with tiny outputs, 5 steps",
	"smalllayers": "24 `RUN` steps of a few bytes each and a `COPY` in the middle, 25 steps",
	"biglayer":    "one 200 MB layer from /dev/urandom (incompressible) and a small app layer, 3 steps",
}

func (h *harness) report() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	o := h.opts
	w("# Benchmarks\n\n")
	// bench/real writes the real-project section (go run ./bench/real,
	// issue 20); it comes first: it is what a user feels.
	if r, err := os.ReadFile(filepath.Join(filepath.Dir(h.opts.analysis), "real", "results.md")); err == nil {
		w("## Real projects\n\n%s\n\n## Synthetic suites\n\n", strings.TrimSpace(string(r)))
	}
	w("Written by the harness in `bench/` (issue 7). Run %s, %s, commit %s; the run took %s.\n\n",
		h.id, h.started.UTC().Format("2006-01-02 15:04 UTC"), gitCommit(), h.finished.Sub(h.started).Round(time.Second))
	w("Reproduce with `make bench` (the test environment, then this exact command):\n\n```\n%s\n```\n\n", h.command())
	w("`go run ./bench -h` lists the knobs (`-runs`, `-backends`, `-suite`, `-scenarios`, `-compression-backends`, `-compression-suite`, `-raw`).\n\n")

	w("## Machine\n\n")
	for _, l := range machine(h.env) {
		w("- %s\n", l)
	}
	w("\n## What was run\n\n")
	w("Each measurement: %d runs; times are the median with min–max in brackets.\n\n", o.runs)
	w("Suite (`bench/testdata/`):\n\n")
	for _, s := range o.suites {
		w("- `%s`: %s; new branch changes `%s`.\n", s, suiteText[s], changedFile[s])
	}
	w("\nBackends: %s. Scenarios: %s. Mode × compression grid: %s on %s.\n\n",
		strings.Join(o.backends, ", "), strings.Join(o.scenarios, ", "), strings.Join(o.compSuites, ", "), strings.Join(o.compBackends, ", "))
	w("Method:\n\n")
	if o.builder == "" || o.builder == "local" {
		w("- Every cold, warm, new-branch and compression build runs on a buildkitd of its own with an empty `--root` (a fresh CI runner), started before and stopped after the timed command; daemon start-up is not timed.\n")
	} else {
		w("- Every build runs on the testbed's `%s` docker-container builder (scripts/testenv-builders), wiped with `docker buildx prune --all --force` before each cold, warm, new-branch and compression build (a fresh CI runner); the wipe is not timed.\n", o.builder)
	}
	w("- Every build pushes its image to a repository of its own in the test registry, so a warm build really moves its layers; except `warm-samerepo`, which pushes to the cold build's repository (its layers are already there), and `warm-nooutput`, which has no output at all (a pull request's check).\n")
	w("- Each cold run exports to a store no build has used (run id + suite + backend + run number in the cache scope and location); the warm and new-branch builds of that run import it.\n")
	w("- `cold` is `bkcache build` with the backend's `cache:` line (mode=max, gzip, as bkcache defaults). bkcache has no way to build without a cache (no `cache:` means a local one), so the no-export baseline is `buildctl build` with the same frontend options and image output and no cache flags.\n")
	w("- `new branch`: `--ref refs/heads/featN` with one file changed; bkcache imports the branch scope (empty) and the default branch's. The steps the change leaves unchanged were counted once per suite by building the changed context on the builder that had just built the original (everything local).\n")
	w("- `overhead`: one fresh builder per suite and backend; after one warm-up build of each tool, bkcache and `buildctl` alternate (AB, BA, …) with the same cache entries, written by hand from `bkcache plan` (the harness checks they match) and the same image push. These builds are fully cached locally, so the build is as short as it gets and any fixed cost of the action shows as a large share.\n")
	w("- Cache size is read where the backend keeps it: the registry's cache manifest (sum of its descriptors), the local directory, the S3 gateway's bucket directory (a per-run `prefix`). Not read for azblob and gha.\n")
	w("- Peak RSS is the bkcache process's `ru_maxrss` from wait4.\n\n")

	w("## Targets\n\n")
	w("| Target | Measured | Met |\n|---|---|---|\n")
	for _, t := range h.targets() {
		w("| %s | %s | %s |\n", t[0], t[1], t[2])
	}

	if o.has("cold") {
		w("\n## 1. Cold build: the cost of exporting\n\n")
		w("| Suite | Backend | no cache (buildctl) | cold, export (bkcache) | export overhead | cache size |\n|---|---|---|---|---|---|\n")
		for _, s := range o.suites {
			base := h.time(filter{scenario: "cold-noexport", suite: s})
			for _, be := range o.backends {
				c := h.time(filter{scenario: "cold", suite: s, backend: be})
				w("| %s | %s | %s | %s | %s | %s |\n", s, be, base.secs(), c.secs(), pct(c, base), h.size(filter{scenario: "cold", suite: s, backend: be}).mb())
			}
		}
	}
	if o.anyWarm() {
		w("\n## 2. Warm build on a fresh builder\n\n")
		w("Each warm build imports the cold build's cache on a builder of its own; they differ in where the image goes: ")
		var titles []string
		for _, wv := range warmVariants {
			titles = append(titles, fmt.Sprintf("`%s`, %s", wv.scenario, wv.title))
		}
		w("%s.\n\n", strings.Join(titles, "; "))
		w("| Suite | Backend | Warm | cold | warm | warm/cold | steps cached |\n|---|---|---|---|---|---|---|\n")
		for _, s := range o.suites {
			for _, be := range o.backends {
				c := h.time(filter{scenario: "cold", suite: s, backend: be})
				for _, wv := range warmVariants {
					if !o.has(wv.scenario) {
						continue
					}
					f := filter{scenario: wv.scenario, suite: s, backend: be}
					wm := h.time(f)
					w("| %s | %s | %s | %s | %s | %s | %s |\n", s, be, wv.scenario, c.secs(), wm.secs(), ratio(wm, c), h.hitText(f))
				}
			}
		}
	}
	if o.has("newbranch") {
		w("\n## 3. First build of a new branch after a one-file change\n\n")
		w("| Suite | Backend | cold | new branch | branch/cold | steps cached | unchanged steps cached |\n|---|---|---|---|---|---|---|\n")
		for _, s := range o.suites {
			for _, be := range o.backends {
				c := h.time(filter{scenario: "cold", suite: s, backend: be})
				f := filter{scenario: "newbranch", suite: s, backend: be}
				nb := h.time(f)
				w("| %s | %s | %s | %s | %s | %s | %s |\n", s, be, c.secs(), nb.secs(), ratio(nb, c), h.hitText(f), h.unchangedText(f))
			}
		}
	}
	if o.has("overhead") {
		w("\n## 4. bkcache against hand-written buildctl, same builder, alternating\n\n")
		w("| Suite | Backend | buildctl | bkcache | overhead (medians) | paired difference | bkcache peak RSS | buildctl peak RSS |\n|---|---|---|---|---|---|---|---|\n")
		for _, s := range o.suites {
			for _, be := range o.backends {
				bc := h.time(filter{scenario: "overhead", suite: s, backend: be, tool: "buildctl"})
				bk := h.time(filter{scenario: "overhead", suite: s, backend: be, tool: "bkcache"})
				over := "–"
				if bc.ok() && bk.ok() {
					over = fmt.Sprintf("%+.0f ms, %s", (bk.median-bc.median)*1000, pct(bk, bc))
				}
				w("| %s | %s | %s | %s | %s | %s | %s | %s |\n", s, be, bc.ms(), bk.ms(), over, h.paired(s, be).ms(),
					h.rss(filter{scenario: "overhead", suite: s, backend: be, tool: "bkcache"}),
					h.rss(filter{scenario: "overhead", suite: s, backend: be, tool: "buildctl"}))
			}
		}
	}
	if o.has("compression") {
		w("\n## 5. mode and compression\n\n")
		w("Export: cold build with export on a fresh builder. Import: a fresh builder importing that cache and pushing the image (gzip layers).\n\n")
		w("| Suite | Backend | mode/compression | export | import | import/export | steps cached on import | cache size |\n|---|---|---|---|---|---|---|---|\n")
		for _, s := range o.compSuites {
			for _, be := range o.compBackends {
				for _, mode := range []string{"min", "max"} {
					for _, comp := range []string{"gzip", "zstd", "uncompressed"} {
						v := mode + "/" + comp
						ex := h.time(filter{scenario: "compression-export", suite: s, backend: be, variant: v})
						fi := filter{scenario: "compression-import", suite: s, backend: be, variant: v}
						im := h.time(fi)
						w("| %s | %s | %s | %s | %s | %s | %s | %s |\n", s, be, v, ex.secs(), im.secs(), ratio(im, ex), h.hitText(fi),
							h.size(filter{scenario: "compression-export", suite: s, backend: be, variant: v}).mb())
					}
				}
			}
		}
	}

	h.recordCost(w)

	w("\n## Peak RSS of the bkcache process\n\n| Scenario | runs | median | max |\n|---|---|---|---|\n")
	for _, sc := range []string{"cold", "warm", "warm-samerepo", "warm-nooutput", "newbranch", "overhead", "compression-export", "compression-import"} {
		var xs []float64
		for _, s := range h.samples {
			if s.Scenario == sc && s.Tool == "bkcache" && s.Err == "" {
				xs = append(xs, float64(s.RSSKB))
			}
		}
		if st := summarize(xs); st.ok() {
			w("| %s | %d | %.1f MB | %.1f MB |\n", sc, st.n, st.median/1024, st.max/1024)
		}
	}

	var failed []sample
	for _, s := range h.samples {
		if s.Err != "" {
			failed = append(failed, s)
		}
	}
	if len(failed) > 0 || len(h.notes) > 0 {
		w("\n## Failures and warnings\n\n")
		for _, s := range failed {
			w("- %s %s %s %s #%d: %s\n", s.Scenario, s.Suite, s.Backend, s.Tool, s.Run, s.Err)
		}
		for _, n := range h.notes {
			w("- %s\n", n)
		}
	}

	w("%s", h.dataPlaneSection())

	if a, err := os.ReadFile(h.opts.analysis); err == nil {
		w("\n## Analysis\n\n%s\n", strings.TrimSpace(string(a)))
	}

	if c, err := os.ReadFile(h.opts.churn); err == nil {
		w("\n## Cache economy: a month of pull-request churn at quota\n\n%s\n", strings.TrimSpace(string(c)))
	}
	// bench/mounts writes its own section (go run ./bench/mounts).
	if m, err := os.ReadFile(filepath.Join(filepath.Dir(h.opts.analysis), "mounts", "results.md")); err == nil {
		w("\n## Cache mounts\n%s\n", strings.TrimRight(string(m), "\n"))
		// Written by hand after a run: why the figures are what they are.
		if a, err := os.ReadFile(filepath.Join(filepath.Dir(h.opts.analysis), "mounts", "analysis.md")); err == nil {
			w("\n%s\n", strings.TrimSpace(string(a)))
		}
	}

	if h.micro != "" {
		w("\n## Go micro-benchmarks\n\n`go test -run '^$' -bench . -benchmem ./internal/... ./scope/...`:\n\n```\n%s\n```\n", strings.TrimSpace(h.micro))
	}
	return b.String()
}

// unchangedText is the share of unchanged steps the new branch got from
// the cache, the worst run first: "100% (4 of 4)".
func (h *harness) unchangedText(f filter) string {
	want, ok := h.unchanged[f.suite]
	ss := h.pick(f)
	if !ok || len(ss) == 0 || want == 0 {
		return "–"
	}
	worst := ss[0].Hits
	for _, s := range ss {
		worst = min(worst, s.Hits)
	}
	return fmt.Sprintf("%.0f%% (%d of %d)", 100*float64(worst)/float64(want), worst, want)
}

func (h *harness) paired(suite, backend string) stats {
	by := map[int]map[string]float64{}
	for _, s := range h.pick(filter{scenario: "overhead", suite: suite, backend: backend}) {
		if by[s.Run] == nil {
			by[s.Run] = map[string]float64{}
		}
		by[s.Run][s.Tool] = s.Seconds
	}
	var d []float64
	for _, m := range by {
		bk, ok1 := m["bkcache"]
		bc, ok2 := m["buildctl"]
		if ok1 && ok2 {
			d = append(d, bk-bc)
		}
	}
	return summarize(d)
}

func (h *harness) rss(f filter) string {
	var xs []float64
	for _, s := range h.pick(f) {
		xs = append(xs, float64(s.RSSKB))
	}
	st := summarize(xs)
	if !st.ok() {
		return "–"
	}
	return fmt.Sprintf("%.1f MB", st.max/1024)
}

// targets checks the targets: [target, measured, met].
func (h *harness) targets() [][3]string {
	o := h.opts
	var out [][3]string
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	if o.has("warm") {
		worst, where, n := 0.0, "", 0
		for _, s := range o.suites {
			for _, be := range o.backends {
				c, wm := h.time(filter{scenario: "cold", suite: s, backend: be}), h.time(filter{scenario: "warm", suite: s, backend: be})
				if c.ok() && wm.ok() {
					n++
					if r := wm.median / c.median; r > worst {
						worst, where = r, s+"/"+be
					}
				}
			}
		}
		if n > 0 {
			out = append(out, [3]string{"warm/cold ≤ 0.1", fmt.Sprintf("worst %.3f (%s), over %d suite×backend medians", worst, where, n), yes(worst <= 0.1)})
		}
	}
	if o.has("newbranch") {
		worst, where, n := 2.0, "", 0
		for _, s := range o.suites {
			want := h.unchanged[s]
			if want == 0 {
				continue
			}
			for _, be := range o.backends {
				for _, x := range h.pick(filter{scenario: "newbranch", suite: s, backend: be}) {
					n++
					if r := float64(x.Hits) / float64(want); r < worst {
						worst, where = r, fmt.Sprintf("%s/%s #%d: %d of %d", s, be, x.Run, x.Hits, want)
					}
				}
			}
		}
		if n > 0 {
			out = append(out, [3]string{"new branch: 100% of unchanged steps cached", fmt.Sprintf("worst %.0f%% (%s), over %d builds", worst*100, where, n), yes(worst >= 1)})
		}
	}
	if o.has("overhead") {
		worstMS, worstPct, whereMS, wherePct, n := -1e9, -1e9, "", "", 0
		for _, s := range o.suites {
			for _, be := range o.backends {
				bc := h.time(filter{scenario: "overhead", suite: s, backend: be, tool: "buildctl"})
				bk := h.time(filter{scenario: "overhead", suite: s, backend: be, tool: "bkcache"})
				if !bc.ok() || !bk.ok() {
					continue
				}
				n++
				d := (bk.median - bc.median) * 1000
				p := (bk.median/bc.median - 1) * 100
				if d > worstMS {
					worstMS, whereMS = d, s+"/"+be
				}
				if p > worstPct {
					worstPct, wherePct = p, s+"/"+be
				}
			}
		}
		if n > 0 {
			out = append(out, [3]string{"bkcache overhead ≤ 5% of build time", fmt.Sprintf("worst %+.1f%% (%s), over %d medians", worstPct, wherePct, n), yes(worstPct <= 5)})
			out = append(out, [3]string{"bkcache overhead < 100 ms", fmt.Sprintf("worst %+.0f ms (%s)", worstMS, whereMS), yes(worstMS < 100)})
		}
	}
	var maxRSS int64
	for _, s := range h.samples {
		if s.Tool == "bkcache" && s.Err == "" {
			maxRSS = max(maxRSS, s.RSSKB)
		}
	}
	if maxRSS > 0 {
		out = append(out, [3]string{"bkcache process < 64 MB RSS", fmt.Sprintf("max %.1f MB over every bkcache run", float64(maxRSS)/1024), yes(maxRSS < 64*1024)})
	}
	return out
}

// machine describes the CPU, memory and software the numbers come from.
func machine(e env) []string {
	var out []string
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	out = append(out, fmt.Sprintf("CPU: %s, %d cores (nproc)", cpu, runtime.NumCPU()))
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				var kb int64
				fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "MemTotal:")), "%d", &kb)
				out = append(out, fmt.Sprintf("Memory: %.1f GiB", float64(kb)/1024/1024))
			}
		}
	}
	if b, err := exec.Command("uname", "-sr").Output(); err == nil {
		out = append(out, "Kernel: "+strings.TrimSpace(string(b)))
	}
	out = append(out, "Go: "+runtime.Version())
	if b, err := exec.Command(e.buildkitd, "--version").Output(); err == nil {
		out = append(out, "BuildKit: "+strings.TrimSpace(string(b))+" (runc worker, overlayfs)")
	}
	out = append(out, "Servers (scripts/testenv, all on loopback): docker-registry (distribution 2.8), Versity S3 gateway, Azurite, bkcache's gha cache emulator on Azurite")
	return out
}

// recordCost reports what the build record (why it missed) adds after the
// build: reading the imported record, comparing and saving the new one,
// as bkcache logs it. Hashing the context runs while BuildKit builds, so
// it adds nothing unless the build is shorter.
func (h *harness) recordCost(w func(string, ...any)) {
	type key struct{ scenario, suite, backend string }
	var keys []key
	byKey := map[key][]sample{}
	for _, s := range h.samples {
		if s.Tool != "bkcache" || s.Err != "" || s.RecordMS < 0 {
			continue
		}
		k := key{s.Scenario, s.Suite, s.Backend}
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], s)
	}
	if len(keys) == 0 {
		return
	}
	w("\n## Build record (why it missed): time added after the build\n\n")
	w("Reading the imported scope's record, comparing and saving this build's (none when nothing changed), as bkcache logs it (`… after the build`); the context hashes are made while the build runs. Share: of the median build time of the same rows.\n\n")
	w("| Scenario | Suite | Backend | runs | median | max | share of the build |\n|---|---|---|---|---|---|---|\n")
	for _, k := range keys {
		var ms, secs []float64
		for _, s := range byKey[k] {
			ms = append(ms, s.RecordMS)
			secs = append(secs, s.Seconds)
		}
		m, b := summarize(ms), summarize(secs)
		share := "–"
		if b.ok() && b.median > 0 {
			share = fmt.Sprintf("%.1f%%", m.median/10/b.median)
		}
		w("| %s | %s | %s | %d | %.0f ms | %.0f ms | %s |\n", k.scenario, k.suite, k.backend, m.n, m.median, m.max, share)
	}
}
