package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bkcache/bkcache/bench/internal/rig"
)

// sample is one timed build.
type sample struct {
	Suite    string  `json:"suite"`
	Config   string  `json:"config"`
	Scenario string  `json:"scenario"`
	Delay    int     `json:"delay_ms"` // -1: no store (nocache)
	Run      int     `json:"run"`
	Seconds  float64 `json:"seconds"`
	Hits     int     `json:"hits"`  // cached steps (bkcache's cache-hits output); -1 unknown
	Steps    int     `json:"steps"` // -1 unknown
	Up       int64   `json:"bytes_up"`
	Down     int64   `json:"bytes_down"`
	// MountSeconds is the time bkcache spent restoring and saving cache
	// mounts, from its summary of each mount.
	MountSeconds float64  `json:"mount_seconds"`
	Mounts       []string `json:"mounts,omitempty"`
	Err          string   `json:"error,omitempty"`
}

// results is everything a report is made from (and what -raw writes).
type results struct {
	RunID     string            `json:"run_id"`
	Label     string            `json:"label,omitempty"`
	Started   time.Time         `json:"started"`
	Finished  time.Time         `json:"finished"`
	Commit    string            `json:"commit"`
	Machine   map[string]string `json:"machine"`
	Runs      int               `json:"runs"`
	SuiteRuns map[string]int    `json:"suite_runs,omitempty"` // -runs overrides per suite
	Suites    []string          `json:"suites"`
	Configs   []string          `json:"configs"`
	Scenarios []string          `json:"scenarios"`
	Delays    []int             `json:"delays_ms"`
	Samples   []sample          `json:"samples"`
}

func (r *results) writeRaw(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func readRaw(path string) (*results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	// Runs before mountSeconds summed the batches once per mount.
	for i := range r.Samples {
		r.Samples[i].MountSeconds = mountSeconds(r.Samples[i].Mounts)
	}
	return &r, nil
}

func (r *results) write(o options) error {
	if o.plot != "" {
		if err := r.plot(o.plot); err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		fmt.Fprintf(os.Stderr, "real: wrote %s\n", o.plot)
	}
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(r.markdown(o.plot)), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "real: wrote %s\n", o.out)
	}
	return nil
}

// stats is the median and range of one cell.
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

func (s stats) secs() string {
	if !s.ok() {
		return "–"
	}
	if s.n == 1 {
		return fmt.Sprintf("%.1f s", s.median)
	}
	return fmt.Sprintf("%.1f s (%.1f–%.1f)", s.median, s.min, s.max)
}

// pick returns the successful samples of one cell. nocache has one cold
// build per run that stands for every scenario and delay.
func (r *results) pick(suite, config, scenario string, delay int) []sample {
	var out []sample
	for _, s := range r.Samples {
		if s.Err != "" || s.Suite != suite || s.Config != config {
			continue
		}
		if config == "nocache" || (s.Scenario == scenario && s.Delay == delay) {
			out = append(out, s)
		}
	}
	return out
}

func (r *results) cell(suite, config, scenario string, delay int, f func(sample) float64) stats {
	var xs []float64
	for _, s := range r.pick(suite, config, scenario, delay) {
		xs = append(xs, f(s))
	}
	return summarize(xs)
}

func seconds(s sample) float64 { return s.Seconds }

func (r *results) failures() []sample {
	var out []sample
	for _, s := range r.Samples {
		if s.Err != "" {
			out = append(out, s)
		}
	}
	return out
}

// hits is "h/n" over the runs of a cell ("–" for buildctl's nocache).
func (r *results) hits(suite, config, scenario string, delay int) string {
	ss := r.pick(suite, config, scenario, delay)
	if len(ss) == 0 || ss[0].Steps < 0 {
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

var configText = map[string]string{
	"nocache":   "no cache",
	"gha-stock": "build-push-action gha",
	"gha":       "bkcache (gha)",
	"gha-eager": "bkcache (gha), mounts restored first",
	"registry":  "bkcache registry",
	"s3":        "bkcache s3",
}

var scenarioText = map[string]string{
	"cold": "cold",
	"warm": "warm",
	"pr":   "one-file PR",
	"bump": "dependency bump",
}

func mb(b float64) string { return fmt.Sprintf("%.1f MB", b/1e6) }

func (r *results) markdown(plotPath string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	if r.Label != "" {
		w("**%s**\n\n", r.Label)
	}
	w("Written by `go run ./bench/real` (issue 20): run %s, %s, commit %s; the run took %s.\n\n",
		r.RunID, r.Started.UTC().Format("2006-01-02 15:04 UTC"), r.Commit, r.Finished.Sub(r.Started).Round(time.Second))
	w("```\n%s\n```\n\n", r.command())
	var mach []string
	for _, k := range []string{"cores", "go", "buildkit", "load at start"} {
		if v := r.Machine[k]; v != "" {
			mach = append(mach, k+": "+v)
		}
	}
	w("Machine: %s.\n\n", strings.Join(mach, "; "))
	w("What a user feels: the time from push to an image, on a fresh runner, for two real projects:\n\n")
	for _, s := range r.Suites {
		w("- `%s`: %s.\n", s, suitesInfo[s].steps)
	}
	w("\nEvery build runs on a buildkitd with an empty root (a fresh runner) and pushes its image; dependencies come from the Go module proxy and the npm registry inside the build. ")
	w("Scenarios: **cold** (empty store), **warm** (nothing changed), **one-file PR** (`%s` / `%s` changed, on a new branch that imports the default branch's cache), **dependency bump** (one dependency added: `%s` / `dayjs`, on a new branch). ",
		suitesInfo["self"].prFile, suitesInfo["node"].prFile, selfBumpModule)
	w("Configurations: **no cache** (`buildctl`, no import or export; every scenario is a cold build, timed once per run); **build-push-action gha** (`type=gha,mode=max` on stock BuildKit: bkcache with `dataplane=false` and `cache-mounts: none`, the same scopes build-push-action uses); **bkcache (gha)** (its defaults: the gha cache endpoint, the session data plane before issue 25, and cache mounts); **bkcache registry**, **bkcache s3** (cache mounts too). ")
	w("Each store sits behind a byte-counting proxy and, for a delay, toxiproxy adding that latency each way. Times are the median of %s with the range in brackets; hits are bkcache's `cache-hits`/`cache-steps` outputs, counted from BuildKit's status stream.\n\n", r.runsText())
	if plotPath != "" {
		w("![Build time per scenario and configuration](%s)\n\n", filepath.ToSlash(plotPath))
	}

	w("### Targets\n\n| Target | Measured | Met |\n|:--|:--|:--|\n")
	for _, t := range r.targets() {
		w("| %s | %s | %s |\n", t[0], t[1], t[2])
	}

	for _, suite := range r.Suites {
		for _, d := range r.Delays {
			w("\n### `%s`, %s: time (cached steps)\n\n", suite, delayText(d))
			w("| Scenario |")
			for _, c := range r.Configs {
				w(" %s |", configText[c])
			}
			w("\n|:--|%s\n", strings.Repeat("--:|", len(r.Configs)))
			for _, sc := range r.Scenarios {
				w("| %s |", scenarioText[sc])
				for _, c := range r.Configs {
					t := r.cell(suite, c, sc, d, seconds)
					h := r.hits(suite, c, sc, d)
					if h != "–" {
						w(" %s, %s |", t.secs(), h)
					} else {
						w(" %s |", t.secs())
					}
				}
				w("\n")
			}
		}
	}

	var stores []string
	for _, c := range r.Configs {
		if c != "nocache" {
			stores = append(stores, c)
		}
	}
	if len(stores) > 0 {
		w("\n### Bytes moved per store (median, up to the store / down from it)\n\n")
		w("Counted on the wire at the store's proxy: cache layers, cache manifests and cache-mount archives; the image push and base image pulls go to the registry directly and are not counted.\n\n")
		w("| Suite | Delay | Scenario |")
		for _, c := range stores {
			w(" %s |", configText[c])
		}
		w("\n|:--|--:|:--|%s\n", strings.Repeat("--:|", len(stores)))
		for _, suite := range r.Suites {
			for _, d := range r.Delays {
				for _, sc := range r.Scenarios {
					w("| %s | %d ms | %s |", suite, d, scenarioText[sc])
					for _, c := range stores {
						up := r.cell(suite, c, sc, d, func(s sample) float64 { return float64(s.Up) })
						down := r.cell(suite, c, sc, d, func(s sample) float64 { return float64(s.Down) })
						if !up.ok() {
							w(" – |")
							continue
						}
						w(" ↑%s ↓%s |", mb(up.median), mb(down.median))
					}
					w("\n")
				}
			}
		}

		w("\n### The cache mounts' share of the time (median)\n\n")
		w("Time bkcache spent restoring and saving Dockerfile cache mounts (from its summary of each mount: the restore batch, and the longest mount's save, its share of the pack plus its upload), against the whole build. build-push-action's gha carries no mounts.\n\n")
		w("| Suite | Delay | Scenario |")
		var mountCfgs []string
		for _, c := range stores {
			if c != "gha-stock" {
				mountCfgs = append(mountCfgs, c)
				w(" %s |", configText[c])
			}
		}
		w("\n|:--|--:|:--|%s\n", strings.Repeat("--:|", len(mountCfgs)))
		for _, suite := range r.Suites {
			for _, d := range r.Delays {
				for _, sc := range r.Scenarios {
					w("| %s | %d ms | %s |", suite, d, scenarioText[sc])
					for _, c := range mountCfgs {
						m := r.cell(suite, c, sc, d, func(s sample) float64 { return s.MountSeconds })
						t := r.cell(suite, c, sc, d, seconds)
						if !m.ok() || !t.ok() || t.median == 0 {
							w(" – |")
							continue
						}
						w(" %.1f s of %.1f s (%.0f%%) |", m.median, t.median, 100*m.median/t.median)
					}
					w("\n")
				}
			}
		}
	}
	if f := r.failures(); len(f) > 0 {
		w("\n### Failed builds (left out of the tables)\n\n")
		for _, s := range f {
			w("- %s %s %s, %s, run %d: %s\n", s.Suite, s.Config, s.Scenario, delayText(s.Delay), s.Run, oneLine(s.Err))
		}
	}
	if a, err := os.ReadFile(filepath.Join("bench", "real", "analysis.md")); err == nil {
		w("\n%s\n", strings.TrimSpace(string(a)))
	}
	return b.String()
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func delayText(d int) string {
	if d <= 0 {
		return "loopback"
	}
	return fmt.Sprintf("%d ms each way", d)
}

// runsSpec is -runs as given: 3, or 3,self=2.
func (r *results) runsSpec() string {
	spec := fmt.Sprint(r.Runs)
	for _, s := range r.Suites {
		if n, ok := r.SuiteRuns[s]; ok && n != r.Runs {
			spec += fmt.Sprintf(",%s=%d", s, n)
		}
	}
	return spec
}

// runsText says how many runs a median is of: "3 runs", or
// "3 runs (`self`: 2)" when a suite had its own count.
func (r *results) runsText() string {
	text := fmt.Sprintf("%d runs", r.Runs)
	var per []string
	for _, s := range r.Suites {
		if n, ok := r.SuiteRuns[s]; ok && n != r.Runs {
			per = append(per, fmt.Sprintf("`%s`: %d", s, n))
		}
	}
	if len(per) > 0 {
		text += " (" + strings.Join(per, ", ") + ")"
	}
	return text
}

func (r *results) command() string {
	ds := make([]string, len(r.Delays))
	for i, d := range r.Delays {
		ds[i] = fmt.Sprint(d)
	}
	var sc []string
	for _, s := range r.Scenarios {
		if s != "cold" {
			sc = append(sc, s)
		}
	}
	return fmt.Sprintf("go run ./bench/real -runs %s -suites %s -configs %s -scenarios %s -delays %s",
		r.runsSpec(), strings.Join(r.Suites, ","), strings.Join(r.Configs, ","), strings.Join(sc, ","), strings.Join(ds, ","))
}

// target is one of the targets: bkcache's defaults against
// build-push-action's gha in one scenario.
type target struct {
	name            string
	suite, scenario string
	limit           float64
}

var targetList = []target{
	{"one-file PR on `self`: bkcache defaults ≤ 0.4× build-push-action's gha", "self", "pr", 0.4},
	{"warm, nothing changed (`self`): bkcache defaults ≤ 1.1× stock gha", "self", "warm", 1.1},
	{"warm, nothing changed (`node`): bkcache defaults ≤ 1.1× stock gha", "node", "warm", 1.1},
	{"dependency bump on `node`: bkcache defaults ≤ 0.5× stock gha", "node", "bump", 0.5},
}

// targets measures each target at every delay of the run, side by side
// in that run; the reason column gives what decides it.
func (r *results) targets() [][3]string {
	var rows [][3]string
	for _, t := range targetList {
		if !slices.Contains(r.Suites, t.suite) || !slices.Contains(r.Scenarios, t.scenario) {
			continue
		}
		var parts []string
		met, measured := true, false
		for _, d := range r.Delays {
			bk := r.cell(t.suite, "gha", t.scenario, d, seconds)
			st := r.cell(t.suite, "gha-stock", t.scenario, d, seconds)
			if !bk.ok() || !st.ok() || st.median == 0 {
				continue
			}
			measured = true
			ratio := bk.median / st.median
			met = met && ratio <= t.limit
			mnt := r.cell(t.suite, "gha", t.scenario, d, func(s sample) float64 { return s.MountSeconds })
			parts = append(parts, fmt.Sprintf("%s: %.2f× (%.1f s vs %.1f s; hits %s vs %s; mounts %.1f s)",
				delayText(d), ratio, bk.median, st.median, r.hits(t.suite, "gha", t.scenario, d), r.hits(t.suite, "gha-stock", t.scenario, d), mnt.median))
		}
		verdict := "not measured (needs configs gha and gha-stock)"
		if measured {
			verdict = "met"
			if !met {
				verdict = "**missed**"
			}
		}
		rows = append(rows, [3]string{t.name, strings.Join(parts, "; "), verdict})
	}
	return rows
}
