package main

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestScenarioDeterministic: one seed, one month.
func TestScenarioDeterministic(t *testing.T) {
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	a, b := newScenario(7, 30, start, 9), newScenario(7, 30, start, 9)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two scenarios from one seed differ")
	}
	counts := map[kind]int{}
	for i, e := range a.events {
		counts[e.kind]++
		if i > 0 && e.at.Before(a.events[i-1].at) {
			t.Fatalf("event %d is out of order", i)
		}
	}
	for _, k := range []kind{pushMain, prBuild, prClosed, mergeGroup, pushTag, baseUpdate, scheduled} {
		if counts[k] == 0 {
			t.Errorf("a month has no %s event", k)
		}
	}
	hs, he := start.Add(holidayDay*24*time.Hour), start.Add((holidayDay+9)*24*time.Hour)
	reruns, forks := 0, 0
	for _, e := range a.events {
		if !e.at.Before(hs) && e.at.Before(he) && e.kind != scheduled && e.kind != baseUpdate {
			t.Errorf("%s at %s, in the holiday", e.kind, e.at)
		}
		if e.rerun > 0 {
			reruns++
			if o := a.events[slicesIndex(a.events, e.rerun-1)]; o.kind != e.kind || o.pr != e.pr {
				t.Errorf("re-run %+v of another job %+v", e, o)
			}
		}
		if e.kind != prClosed && e.kind != baseUpdate && (e.dur < minBuild || e.dur > maxBuild) {
			t.Errorf("%s lasts %s", e.kind, e.dur)
		}
	}
	for _, p := range a.prs {
		if p.fork {
			forks++
		}
	}
	if reruns == 0 || forks == 0 {
		t.Errorf("a month has %d re-runs and %d fork pull requests", reruns, forks)
	}
}

// TestDownloads: a build pulls the chain under its first miss, and the
// image stage when it all hit.
func TestDownloads(t *testing.T) {
	keys := stepKeys(tree{})
	tests := []struct {
		name string
		got  []bool
		want int // layers pulled
	}{
		{name: "cold", got: make([]bool, len(dockerfile)), want: 0},
		{name: "all hit", got: []bool{true, true, true, true, true, true, true, true}, want: 4},
		{name: "source changed", got: []bool{true, true, false, false, true, true, false, false}, want: 2 + 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := downloads(keys, tt.got); len(got) != tt.want {
				t.Errorf("downloads = %d layers, want %d", len(got), tt.want)
			}
		})
	}
}

// TestShortMonth plays a few simulated days against the emulator over
// Azurite and checks the invariants the full month reports on.
func TestShortMonth(t *testing.T) {
	newStore, err := storeFunc("mem")
	if err != nil {
		t.Fatal(err)
	}
	store, closeStore, err := newStore(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	o := options{days: 3, seed: 3, scale: 0.02, expire: 7 * 24 * time.Hour, evict: time.Hour}
	o.quota = 3 * modeMaxSize(o.scale) // tight: the default branch needs the additions
	res, err := simulate(context.Background(), store, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.strategies {
		st := res.stats[s]
		for d, u := range st.usage { // each midnight's eviction batch has run
			if u > o.quota {
				t.Errorf("%s: usage %d above the quota %d at the end of day %d", s, u, o.quota, d+1)
			}
		}
		if st.prHits > st.prHittable || st.main.total() == 0 || st.prFirst == 0 {
			t.Errorf("%s: inconsistent figures %+v", s, st)
		}
		if len(st.usage) != o.days {
			t.Errorf("%s: %d daily usage figures, want %d", s, len(st.usage), o.days)
		}
		if st.apiCalls == 0 || st.uploaded == 0 {
			t.Errorf("%s: no API calls or uploads counted", s)
		}
	}
	// The additions never make things worse than bkcache today (the
	// month's figures against the target are in BENCHMARKS.md).
	today, eco := res.stats[res.strategies[1]], res.stats[res.strategies[2]]
	if eco.main.complete < today.main.complete || eco.mainAtPR.complete < today.mainAtPR.complete {
		t.Errorf("economy kept the default branch complete less often than today: %+v / %+v against %+v / %+v", eco.main, eco.mainAtPR, today.main, today.mainAtPR)
	}
	if eco.prHits < today.prHits {
		t.Errorf("economy's PR first builds hit %d steps, today's %d", eco.prHits, today.prHits)
	}
	if eco.cleaned <= today.cleaned {
		t.Errorf("economy's cleanup deleted %d bytes, no more than today's %d", eco.cleaned, today.cleaned)
	}
	if res.stats[res.strategies[0]].cleaned != 0 {
		t.Errorf("stock cleaned %d bytes; it has no cleanup", res.stats[res.strategies[0]].cleaned)
	}
	rep := &report{opts: o, seeds: []uint64{3}, ratios: []float64{3}}
	rep.add(3, res)
	if md := rep.markdown(); !strings.Contains(md, "Reduced run") || !strings.Contains(md, "| 1 stock gha mode=max |") {
		t.Errorf("report:\n%s", md)
	}
}

// slicesIndex finds the event generated seq-th.
func slicesIndex(es []event, seq int) int {
	for i, e := range es {
		if e.seq == seq {
			return i
		}
	}
	return -1
}

// TestPhases: a job starts at its event and ends after its duration; one
// that ends when another starts exports first.
func TestPhases(t *testing.T) {
	t0 := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	sc := scenario{events: []event{
		{at: t0, kind: pushMain, seq: 0, dur: 20 * time.Minute},
		{at: t0.Add(20 * time.Minute), kind: pushMain, seq: 1, dur: 10 * time.Minute},
		{at: t0.Add(25 * time.Minute), kind: prClosed, seq: 2},
	}}
	var got []string
	for _, p := range phases(sc) {
		got = append(got, fmt.Sprintf("%d:%v@%s", p.e.seq, p.end, p.at.Sub(t0)))
	}
	want := []string{"0:false@0s", "0:true@20m0s", "1:false@20m0s", "2:false@25m0s", "1:true@30m0s"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("phases = %v, want %v", got, want)
	}
}

// TestSpread: median of odd and even counts; one value prints alone.
func TestSpread(t *testing.T) {
	if s := spreadOf([]float64{3, 1, 2}); s != (spread{1, 2, 3}) {
		t.Errorf("spreadOf(3,1,2) = %+v", s)
	}
	if s := spreadOf([]float64{4, 1, 2, 3}); s != (spread{1, 2.5, 4}) {
		t.Errorf("spreadOf(4,1,2,3) = %+v", s)
	}
	if got := spreadOf([]float64{97.4, 97.4}).text(true); got != "97.4%" {
		t.Errorf("equal seeds print %q", got)
	}
	if got := spreadOf([]float64{55.3, 57.9}).text(true); got != "56.6% (55.3%–57.9%)" {
		t.Errorf("spread prints %q", got)
	}
}
