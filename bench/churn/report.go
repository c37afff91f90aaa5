package main

import (
	"fmt"
	"strings"
)

// markdown renders the result as the "Cache economy" section of
// BENCHMARKS.md.
func (r *result) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	o := r.opts
	modeMax := modeMaxSize(o.scale)
	w("### Quota %g× the mode=max cache\n\n", float64(o.quota)/float64(modeMax))
	ablations := ""
	if o.ablations {
		ablations = " -ablations"
	}
	w("`go run ./bench/churn -days %d -seed %d -scale %g -ratios %g%s`: %d simulated days, quota %s against a mode=max cache of %s (%d steps); ",
		o.days, o.seed, o.scale, float64(o.quota)/float64(modeMax), ablations, o.days, mib(o.quota), mib(modeMax), len(dockerfile))
	w("%d pull request builds, %d merge-queue builds, %d pushes to the default branch, %d tag builds, %d pull requests closed; ran in %s.\n\n",
		r.events[prBuild], r.events[mergeGroup], r.events[pushMain], r.events[pushTag], r.events[prClosed], r.wall.Round(100_000_000))
	w("| Strategy | Default branch complete at its builds | … at PR first builds (complete / partial / gone) | PR first builds: steps hit | Uploaded | Cleanup deleted | Evicted by quota (≈) | Peak usage | API calls |\n")
	w("|:--|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, s := range r.strategies {
		st := r.stats[s]
		end := st.usage[len(st.usage)-1]
		evicted := max(st.uploaded-st.cleaned-end, 0)
		w("| %s | %s | %d / %d / %d | %s | %s | %s | %s | %s (%.0f%% of quota) | %d |\n",
			s, pct(st.main.complete, st.main.total()),
			st.mainAtPR.complete, st.mainAtPR.partial, st.mainAtPR.gone,
			pct(st.prHits, st.prHittable), mib(st.uploaded), mib(st.cleaned), mib(evicted),
			mib(st.peakUsage), 100*float64(st.peakUsage)/float64(o.quota), st.apiCalls)
	}
	w("\nUsage at the end of each day (%% of quota):\n\n| Strategy |")
	days := len(r.stats[r.strategies[0]].usage)
	for d := 1; d <= days; d++ {
		w(" %d |", d)
	}
	w("\n|:--|%s\n", strings.Repeat("--:|", days))
	for _, s := range r.strategies {
		w("| %s |", s)
		for _, u := range r.stats[s].usage {
			w(" %.0f |", 100*float64(u)/float64(o.quota))
		}
		w("\n")
	}
	w("\n")
	return b.String()
}

// modeMaxSize is the size of the Dockerfile's mode=max cache at scale.
func modeMaxSize(scale float64) int64 {
	var n int64
	for _, s := range dockerfile {
		n += layerSize(s, scale)
	}
	return n
}

func pct(n, of int) string {
	if of == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f%% (%d of %d)", 100*float64(n)/float64(of), n, of)
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }
