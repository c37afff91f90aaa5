package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bkcache/bkcache/bench/internal/rig"
)

type harness struct {
	opts     options
	env      env
	work     string
	id       string
	bkcache  string
	builders []*builder
	tokens   map[string]string
	gha      *ghaService

	started, finished time.Time
	samples           []sample
	// calibration: per suite, the steps a one-file change leaves unchanged,
	// measured on a builder that still holds the whole first build locally.
	unchanged map[string]int
	notes     []string
	micro     string
}

// sample is one timed build.
type sample struct {
	Scenario string  `json:"scenario"` // cold, cold-noexport, warm, warm-samerepo, warm-nooutput, newbranch, overhead, compression-export, compression-import
	Suite    string  `json:"suite"`
	Backend  string  `json:"backend,omitempty"`
	Variant  string  `json:"variant,omitempty"` // mode/compression, e.g. "max/zstd"
	Tool     string  `json:"tool"`              // bkcache or buildctl
	Run      int     `json:"run"`
	Seconds  float64 `json:"seconds"`
	Hits     int     `json:"hits"`  // cached steps, -1 when unknown (buildctl)
	Steps    int     `json:"steps"` // steps, -1 when unknown
	RSSKB    int64   `json:"rss_kb"`
	Bytes    int64   `json:"cache_bytes"`         // -1 when not read
	APICalls int     `json:"api_calls,omitempty"` // gha: cache-service requests during the build
	Uploads  int     `json:"uploads,omitempty"`   // gha: entries created during the build
	RecordMS float64 `json:"record_ms"`           // time the build record added after the build; -1 unknown
	Err      string  `json:"error,omitempty"`
}

func (h *harness) logf(format string, args ...any) {
	el := time.Since(h.started).Round(time.Second)
	fmt.Fprintf(os.Stderr, "[%s] %s\n", el, fmt.Sprintf(format, args...))
}

func (h *harness) add(s sample) {
	h.samples = append(h.samples, s)
	status := fmt.Sprintf("%.2fs", s.Seconds)
	if s.Steps >= 0 {
		status += fmt.Sprintf(" hits %d/%d", s.Hits, s.Steps)
	}
	if s.RSSKB > 0 {
		status += fmt.Sprintf(" rss %.1fMB", float64(s.RSSKB)/1024)
	}
	if s.Bytes >= 0 {
		status += fmt.Sprintf(" cache %.1fMB", float64(s.Bytes)/1e6)
	}
	if s.Err != "" {
		status += " ERROR " + s.Err
	}
	h.logf("%-18s %-11s %-8s %-16s %-8s #%d %s", s.Scenario, s.Suite, s.Backend, s.Variant, s.Tool, s.Run, status)
}

// prepare builds bkcache unless given one.
func (h *harness) prepare(ctx context.Context) error {
	if h.opts.bkcache != "" {
		h.bkcache = h.opts.bkcache
		return nil
	}
	h.bkcache = filepath.Join(h.work, "bkcache")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", h.bkcache, ".")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building bkcache: %w", err)
	}
	return nil
}

// outcome is what one timed process gave.
type outcome struct {
	dur         time.Duration
	hits, steps int
	rssKB       int64
	err         error
	// gha backends: requests the emulator logged during the build
	apiCalls, uploads int
	// recordMS is what the build record (why it missed) added after the
	// build, as bkcache logs it; -1 when it did not say.
	recordMS float64
}

var (
	// "build record saved to …; 3 context files hashed (0 reused); 4ms after the build"
	recordLine = regexp.MustCompile(`(?m)^build record .*; (\S+) after the build$`)
)

// timed runs argv and measures its wall time and peak RSS (from wait4).
func timed(ctx context.Context, argv, env []string) outcome {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	o := outcome{dur: time.Since(start), hits: -1, steps: -1, recordMS: -1}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			o.rssKB = ru.Maxrss // kilobytes on Linux
		}
	}
	if err != nil {
		o.err = fmt.Errorf("%s: %w: %s", filepath.Base(argv[0]), err, lastLines(stderr.String(), 3))
		return o
	}
	o.hits, o.steps = rig.CacheHits(stdout.String())
	if m := recordLine.FindStringSubmatch(stderr.String()); m != nil {
		if d, err := time.ParseDuration(m[1]); err == nil {
			o.recordMS = float64(d) / float64(time.Millisecond)
		}
	}
	return o
}

// build is one build to time.
type build struct {
	b       *builder
	ctxDir  string
	ref     string // git ref the build stands for
	st      *store // nil: no cache at all (buildctl only)
	image   string // pushed image; "" for a build with no output (a PR check)
	gha     string // gha runtime token
	imports []string
	exports []string // buildctl cache entries
}

func (h *harness) bkcacheArgv(x build) []string {
	argv := []string{h.bkcache, "build",
		"--builder", x.b.addr,
		"--ref", x.ref, "--default-branch", "main",
		"--cache", h.cacheLine(*x.st), "--cache-scope", x.st.id,
		"--progress", h.opts.progress}
	if x.image != "" {
		argv = append(argv, "--tags", x.image, "--push")
	}
	return append(argv, "--build-args", "BASE="+h.env.baseImage, x.ctxDir)
}

func (h *harness) buildctlArgv(x build) []string {
	argv := []string{h.env.buildctl, "--addr", x.b.buildctlAddr, "build",
		"--frontend", "dockerfile.v0",
		"--local", "context=" + x.ctxDir, "--local", "dockerfile=" + x.ctxDir,
		"--opt", "filename=Dockerfile",
		"--opt", "build-arg:BASE=" + h.env.baseImage,
		"--output", "type=image,name=" + x.image + ",push=true",
		"--progress", "quiet"}
	for _, i := range x.imports {
		argv = append(argv, "--import-cache", i)
	}
	for _, e := range x.exports {
		argv = append(argv, "--export-cache", e)
	}
	return argv
}

func (h *harness) runBkcache(ctx context.Context, x build) outcome {
	if h.gha == nil || x.st == nil || !isGHA(x.st.backend) {
		return timed(ctx, h.bkcacheArgv(x), h.bkcacheEnv(x.gha))
	}
	api0, up0 := h.gha.requestLines()
	o := timed(ctx, h.bkcacheArgv(x), h.bkcacheEnv(x.gha))
	api1, up1 := h.gha.requestLines()
	o.apiCalls, o.uploads = api1-api0, up1-up0
	return o
}

func (h *harness) runBuildctl(ctx context.Context, x build) outcome {
	return timed(ctx, h.buildctlArgv(x), os.Environ())
}

func (o outcome) sample(scenario, suite, backend, variant, tool string, run int) sample {
	s := sample{Scenario: scenario, Suite: suite, Backend: backend, Variant: variant, Tool: tool, Run: run,
		Seconds: o.dur.Seconds(), Hits: o.hits, Steps: o.steps, RSSKB: o.rssKB, Bytes: -1, APICalls: o.apiCalls, Uploads: o.uploads, RecordMS: o.recordMS}
	if o.err != nil {
		s.Err = o.err.Error()
	}
	return s
}

func (h *harness) image(parts ...string) string {
	return h.env.registry + "/bkcache-bench-img/" + h.id + "/" + strings.Join(parts, "-") + ":latest"
}

// suiteDir is the suite's build context in the repository.
func suiteDir(suite string) string { return filepath.Join("bench", "testdata", suite) }

// changedFile is the one file a new branch changes in each suite.
var changedFile = map[string]string{
	"multistage":  "src/b.txt",
	"heavyrun":    "input.txt",
	"smalllayers": "mid.txt",
	"biglayer":    "app.txt",
}

// branchContext copies the suite and changes one file, with content no
// other build has seen.
func (h *harness) branchContext(suite, tag string) (string, error) {
	dst, err := os.MkdirTemp(h.work, "ctx-"+suite+"-")
	if err != nil {
		return "", err
	}
	if err := os.CopyFS(dst, os.DirFS(suiteDir(suite))); err != nil {
		return "", err
	}
	f := filepath.Join(dst, changedFile[suite])
	old, err := os.ReadFile(f)
	if err != nil {
		return "", err
	}
	return dst, os.WriteFile(f, append(old, []byte("changed on branch "+tag+"\n")...), 0o644)
}

// fresh runs fn on a buildkitd of its own, stopped afterwards.
func (h *harness) fresh(ctx context.Context, name string, fn func(b *builder) error) error {
	b, err := h.startBuilder(ctx, name)
	if err != nil {
		return err
	}
	defer h.stopBuilder(b)
	return fn(b)
}

// measure runs the selected scenarios; a failed build is recorded and the
// run goes on.
func (h *harness) measure(ctx context.Context) {
	h.unchanged = map[string]int{}
	for _, suite := range h.opts.suites {
		if h.opts.has("cold") || h.opts.has("newbranch") {
			h.coldNoExport(ctx, suite)
		}
		for _, backend := range h.opts.backends {
			if ctx.Err() != nil {
				return
			}
			if h.opts.has("cold") || h.opts.anyWarm() || h.opts.has("newbranch") {
				h.coldWarmBranch(ctx, suite, backend)
			}
			if h.opts.has("overhead") {
				h.overhead(ctx, suite, backend)
			}
		}
	}
	if h.opts.has("compression") {
		for _, suite := range h.opts.compSuites {
			for _, backend := range h.opts.compBackends {
				h.compression(ctx, suite, backend)
			}
		}
	}
}

// coldNoExport times plain buildctl with no cache at all on fresh builders
// (bkcache always imports and exports a cache), and after the first run
// counts, on that same builder, the steps a one-file change leaves cached.
func (h *harness) coldNoExport(ctx context.Context, suite string) {
	for i := 1; i <= h.opts.runs && ctx.Err() == nil; i++ {
		err := h.fresh(ctx, "noexport", func(b *builder) error {
			x := build{b: b, ctxDir: suiteDir(suite), ref: "refs/heads/main", image: h.image(suite, "noexport", strconv.Itoa(i))}
			o := h.runBuildctl(ctx, x)
			h.add(o.sample("cold-noexport", suite, "", "", "buildctl", i))
			if i != 1 || o.err != nil {
				return nil
			}
			dir, err := h.branchContext(suite, "calibration")
			if err != nil {
				return err
			}
			st := store{backend: "local", id: h.id + "-" + suite + "-calib"}
			o = h.runBkcache(ctx, build{b: b, ctxDir: dir, ref: "refs/heads/calib", st: &st, image: h.image(suite, "calib")})
			if o.err != nil {
				return o.err
			}
			h.unchanged[suite] = o.hits
			h.logf("calibration %s: a one-file change leaves %d of %d steps unchanged", suite, o.hits, o.steps)
			return nil
		})
		if err != nil {
			h.failf("cold-noexport %s #%d: %v", suite, i, err)
		}
	}
}

func (h *harness) failf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	h.notes = append(h.notes, msg)
	h.logf("ERROR %s", msg)
}

type warmVariant struct{ scenario, title string }

// warmVariants are the warm builds of issue 25, each on a fresh builder
// importing the cold build's cache: they differ only in where the image goes.
var warmVariants = []warmVariant{
	{"warm", "push to a new repository"},                     // layers move
	{"warm-samerepo", "push to the cold build's repository"}, // layers already there
	{"warm-nooutput", "no output (a PR check)"},              // a lazy importer moves no layer
}

// coldWarmBranch: per run, a cold build exporting to a new store, the warm
// builds of warmVariants, each on another fresh builder importing it, and
// a new branch's first build after a one-file change on a fresh builder.
func (h *harness) coldWarmBranch(ctx context.Context, suite, backend string) {
	for i := 1; i <= h.opts.runs && ctx.Err() == nil; i++ {
		st := store{backend: backend, id: fmt.Sprintf("%s-%s-%s-%d", h.id, suite, backend, i)}
		var tok string
		var err error
		if isGHA(backend) {
			if tok, err = h.ghaToken(ctx, "refs/heads/main"); err != nil {
				h.failf("%v", err)
				return
			}
		}
		coldImage := h.image(suite, backend, "cold", strconv.Itoa(i))
		cold := func(b *builder) error {
			o := h.runBkcache(ctx, build{b: b, ctxDir: suiteDir(suite), ref: "refs/heads/main", st: &st, gha: tok, image: coldImage})
			s := o.sample("cold", suite, backend, "max/gzip", "bkcache", i)
			if o.err == nil {
				s.Bytes = h.cacheSize(ctx, st)
			}
			h.add(s)
			return nil
		}
		if err := h.fresh(ctx, "cold", cold); err != nil {
			h.failf("cold %s %s #%d: %v", suite, backend, i, err)
			continue
		}
		for _, wv := range warmVariants {
			if !h.opts.has(wv.scenario) {
				continue
			}
			image := ""
			switch wv.scenario {
			case "warm":
				image = h.image(suite, backend, "warm", strconv.Itoa(i))
			case "warm-samerepo":
				image = coldImage
			}
			err := h.fresh(ctx, wv.scenario, func(b *builder) error {
				o := h.runBkcache(ctx, build{b: b, ctxDir: suiteDir(suite), ref: "refs/heads/main", st: &st, gha: tok, image: image})
				h.add(o.sample(wv.scenario, suite, backend, "max/gzip", "bkcache", i))
				return nil
			})
			if err != nil {
				h.failf("%s %s %s #%d: %v", wv.scenario, suite, backend, i, err)
			}
		}
		if h.opts.has("newbranch") {
			branch := fmt.Sprintf("feat%d", i)
			ref := "refs/heads/" + branch
			btok := ""
			if isGHA(backend) {
				if btok, err = h.ghaToken(ctx, ref, "refs/heads/main"); err != nil {
					h.failf("%v", err)
					continue
				}
			}
			dir, err := h.branchContext(suite, st.id)
			if err != nil {
				h.failf("%v", err)
				continue
			}
			err = h.fresh(ctx, "branch", func(b *builder) error {
				o := h.runBkcache(ctx, build{b: b, ctxDir: dir, ref: ref, st: &st, gha: btok, image: h.image(suite, backend, "branch", strconv.Itoa(i))})
				h.add(o.sample("newbranch", suite, backend, "max/gzip", "bkcache", i))
				return nil
			})
			if err != nil {
				h.failf("newbranch %s %s #%d: %v", suite, backend, i, err)
			}
		}
	}
}

// overhead alternates bkcache and buildctl with the same cache entries,
// written by hand, on one builder: after a first build of each, every
// build is fully cached locally and still imports, exports and pushes,
// so what differs is the cost of the action itself.
func (h *harness) overhead(ctx context.Context, suite, backend string) {
	st := store{backend: backend, id: fmt.Sprintf("%s-%s-%s-ovh", h.id, suite, backend)}
	var tok string
	if isGHA(backend) {
		var err error
		if tok, err = h.ghaToken(ctx, "refs/heads/main"); err != nil {
			h.failf("%v", err)
			return
		}
	}
	imp, exp := h.handWritten(st, tok)
	h.checkHandWritten(ctx, st, tok, imp, exp)
	err := h.fresh(ctx, "overhead", func(b *builder) error {
		x := build{b: b, ctxDir: suiteDir(suite), ref: "refs/heads/main", st: &st, gha: tok,
			image: h.image(suite, backend, "overhead"), imports: []string{imp}, exports: []string{exp}}
		// Warm-up: the first build of each tool fills the builder and the store.
		for _, o := range []outcome{h.runBkcache(ctx, x), h.runBuildctl(ctx, x)} {
			if o.err != nil {
				return o.err
			}
		}
		for i := 1; i <= h.opts.runs && ctx.Err() == nil; i++ {
			order := []string{"bkcache", "buildctl"}
			if i%2 == 0 {
				order = []string{"buildctl", "bkcache"}
			}
			for _, tool := range order {
				var o outcome
				if tool == "bkcache" {
					o = h.runBkcache(ctx, x)
				} else {
					o = h.runBuildctl(ctx, x)
				}
				h.add(o.sample("overhead", suite, backend, "", tool, i))
			}
		}
		return nil
	})
	if err != nil {
		h.failf("overhead %s %s: %v", suite, backend, err)
	}
}

// checkHandWritten compares the hand-written buildctl entries with what
// `bkcache plan` prints for the same store, so the comparison is fair.
func (h *harness) checkHandWritten(ctx context.Context, st store, tok, imp, exp string) {
	argv := []string{h.bkcache, "plan", "--ref", "refs/heads/main", "--default-branch", "main",
		"--cache", h.cacheLine(st), "--cache-scope", st.id, suiteDir("multistage")}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = h.bkcacheEnv(tok)
	out, err := cmd.CombinedOutput()
	if err != nil {
		h.failf("bkcache plan for %s: %v: %s", st.backend, err, lastLines(string(out), 3))
		return
	}
	from, to := planEntries(string(out))
	want := fmt.Sprintf("from %v to %v", from, to)
	got := fmt.Sprintf("from [%s] to [%s]", comparable(imp), comparable(exp))
	if want != got {
		h.failf("hand-written buildctl flags for %s differ from bkcache's plan: plan %s, hand-written %s", st.backend, want, got)
	}
}

// compression builds cold with each mode and compression on fresh
// builders, reads the cache size, and imports it on another fresh builder.
func (h *harness) compression(ctx context.Context, suite, backend string) {
	for _, mode := range []string{"min", "max"} {
		for _, comp := range []string{"gzip", "zstd", "uncompressed"} {
			variant := mode + "/" + comp
			for i := 1; i <= h.opts.runs && ctx.Err() == nil; i++ {
				st := store{backend: backend, id: fmt.Sprintf("%s-%s-%s-%s-%s-%d", h.id, suite, backend, mode, comp, i),
					extra: map[string]string{"mode": mode, "compression": comp}}
				ok := false
				err := h.fresh(ctx, "cexport", func(b *builder) error {
					o := h.runBkcache(ctx, build{b: b, ctxDir: suiteDir(suite), ref: "refs/heads/main", st: &st, image: h.image(suite, backend, mode, comp, "export", strconv.Itoa(i))})
					s := o.sample("compression-export", suite, backend, variant, "bkcache", i)
					if o.err == nil {
						s.Bytes = h.cacheSize(ctx, st)
						ok = true
					}
					h.add(s)
					return nil
				})
				if err == nil && ok {
					err = h.fresh(ctx, "cimport", func(b *builder) error {
						o := h.runBkcache(ctx, build{b: b, ctxDir: suiteDir(suite), ref: "refs/heads/main", st: &st, image: h.image(suite, backend, mode, comp, "import", strconv.Itoa(i))})
						h.add(o.sample("compression-import", suite, backend, variant, "bkcache", i))
						return nil
					})
				}
				if err != nil {
					h.failf("compression %s %s %s #%d: %v", suite, backend, variant, i, err)
				}
			}
		}
	}
}

// rawRun is everything a report is made from, so that -report-from can
// write the report again (e.g. after editing bench/analysis.md).
type rawRun struct {
	RunID     string         `json:"run_id"`
	Started   time.Time      `json:"started"`
	Finished  time.Time      `json:"finished"`
	Options   rawOptions     `json:"options"`
	Unchanged map[string]int `json:"unchanged_steps"`
	Notes     []string       `json:"notes,omitempty"`
	Micro     string         `json:"micro,omitempty"`
	Samples   []sample       `json:"samples"`
}

type rawOptions struct {
	Runs         int      `json:"runs"`
	Backends     []string `json:"backends"`
	Suites       []string `json:"suites"`
	Scenarios    []string `json:"scenarios"`
	CompBackends []string `json:"compression_backends"`
	CompSuites   []string `json:"compression_suites"`
	Builder      string   `json:"builder,omitempty"`
}

func (h *harness) writeRaw(path string) error {
	o := h.opts
	b, err := json.MarshalIndent(rawRun{
		RunID: h.id, Started: h.started, Finished: h.finished,
		Options:   rawOptions{o.runs, o.backends, o.suites, o.scenarios, o.compBackends, o.compSuites, o.builder},
		Unchanged: h.unchanged, Notes: h.notes, Micro: h.micro, Samples: h.samples,
	}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// readRaw makes a harness from a -raw file, to report on it again.
func readRaw(path string, o options) (*harness, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r rawRun
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	ro := r.Options
	o.runs, o.backends, o.suites, o.scenarios, o.compBackends, o.compSuites = ro.Runs, ro.Backends, ro.Suites, ro.Scenarios, ro.CompBackends, ro.CompSuites
	if o.builder = ro.Builder; o.builder == "" {
		o.builder = "local"
	}
	e := env{buildkitd: os.Getenv("BKCACHE_TEST_BUILDKITD")}
	return &harness{opts: o, env: e, id: r.RunID, started: r.Started, finished: r.Finished,
		unchanged: r.Unchanged, notes: r.Notes, micro: r.Micro, samples: r.Samples}, nil
}

// runMicro runs the Go micro-benchmarks and returns their output.
func runMicro(ctx context.Context) string {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", ".", "-benchmem", "./internal/...", "./scope/...")
	out, err := cmd.CombinedOutput()
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Benchmark") || strings.HasPrefix(l, "pkg:") || strings.HasPrefix(l, "cpu:") || strings.HasPrefix(l, "FAIL") || strings.HasPrefix(l, "---") {
			keep = append(keep, l)
		}
	}
	res := strings.Join(keep, "\n")
	if err != nil {
		res += fmt.Sprintf("\n(go test exited: %v)", err)
	}
	return res
}
