package main

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// The simulated repository: a two-stage Dockerfile whose steps each make
// one layer, and a month of events on it.

// class is what makes a step change: a step's key changes when the version
// of its class changes (or a step before it does).
type class string

const (
	classBuilderBase class = "builder-base" // FROM golang: new on the base-image update
	classDeps        class = "deps"         // go mod download: when go.sum changes
	classSource      class = "source"       // every commit
	classRuntimeBase class = "runtime-base" // FROM the runtime image
	classPackages    class = "packages"     // apt-get install: rarely
)

// step is one Dockerfile step. Steps of a stage form a layer chain; the
// last stage is the image, which mode=min exports alone.
type step struct {
	name   string
	class  class
	mib    float64 // layer size at scale 1
	final  bool    // in the final (image) stage
	parent int     // previous step of the same stage, -1 for its FROM
	from   int     // a step of another stage it copies from, -1 if none
}

// dockerfile is sized so that its mode=max cache is ~100 MiB, a third of it
// new on every commit: the ratio the 1 GB quota is scaled against.
var dockerfile = []step{
	{name: "FROM golang", class: classBuilderBase, mib: 25, parent: -1, from: -1},
	{name: "RUN go mod download", class: classDeps, mib: 20, parent: 0, from: -1},
	{name: "COPY . .", class: classSource, mib: 3, parent: 1, from: -1},
	{name: "RUN go build", class: classSource, mib: 22, parent: 2, from: -1},
	{name: "FROM debian-slim", class: classRuntimeBase, mib: 8, final: true, parent: -1, from: -1},
	{name: "RUN apt-get install", class: classPackages, mib: 12, final: true, parent: 4, from: -1},
	{name: "COPY --from=build /app", class: classSource, mib: 8, final: true, parent: 5, from: 3},
	{name: "COPY config", class: classSource, mib: 1, final: true, parent: 6, from: -1},
}

// tree is the content of one commit: a version per class.
type tree map[class]string

func (t tree) with(c class, v string) tree {
	out := tree{}
	for k, x := range t {
		out[k] = x
	}
	out[c] = v
	return out
}

// stepKeys returns each step's cache key: a hash of its class version and
// the keys of the steps it depends on, as BuildKit's content-addressed
// cache keys are.
func stepKeys(t tree) []digest.Digest {
	keys := make([]digest.Digest, len(dockerfile))
	for i, s := range dockerfile {
		in := fmt.Sprintf("%s|%s=%s", s.name, s.class, t[s.class])
		if s.parent >= 0 {
			in += "|" + keys[s.parent].String()
		}
		if s.from >= 0 {
			in += "|" + keys[s.from].String()
		}
		keys[i] = digest.FromString(in)
	}
	return keys
}

// layerDigest is the digest of the layer step key k makes.
func layerDigest(k digest.Digest) digest.Digest {
	h := sha256.Sum256([]byte("layer|" + k.String()))
	return digest.NewDigestFromBytes(digest.SHA256, h[:])
}

// kind of event the simulated workflow runs on.
type kind int

const (
	pushMain   kind = iota // push to the default branch (a merge)
	prBuild                // pull_request opened or synchronize
	prClosed               // pull_request closed (the post step cleans up)
	mergeGroup             // merge_group checks_requested
	pushTag                // push of a release tag
	baseUpdate             // not a build: the base images get a new release
	scheduled              // a scheduled run of the default branch (only strategies that add one)
)

func (k kind) String() string {
	return [...]string{"push", "pull_request", "pull_request closed", "merge_group", "tag", "base update", "schedule"}[k]
}

type event struct {
	at    time.Time
	kind  kind
	pr    int  // pull request number
	first bool // the pull request's first build
	seq   int  // tie-breaker, generation order
	tag   string
	// dur is how long the job runs: it imports at at and exports (then
	// cleans up) at at+dur, so jobs overlap.
	dur time.Duration
	// rerun, when > 0, makes this a re-run of the build event whose seq
	// is rerun-1: the same commit on the same ref, later.
	rerun int
}

type prPlan struct {
	bumpsDeps bool
	merged    bool
	fork      bool // from a fork: its token reads but never writes the cache
}

// scenario is a month of a busy repository's life.
type scenario struct {
	events []event
	prs    map[int]prPlan
}

// The scenario's shape. Every figure here is an assumption, stated in
// the report.
const (
	forkOneIn     = 4  // one pull request in 4 comes from a fork
	rerunOneIn    = 10 // one build in 10 is re-run after it ended (a flaky test)
	holidayDay    = 12 // a holiday starts on the second Saturday of the month
	minBuild      = 10 * time.Minute
	maxBuild      = 30 * time.Minute
	mergeAfterMQ  = time.Minute // the push follows its merge group's checks
	closeAfterMrg = time.Minute
)

// newScenario plays out days of activity from seed: on weekdays a few pull
// requests open (one in forkOneIn from a fork), each is updated a few
// times over hours to days, most merge through the merge queue (its checks
// run, then the push), some close unmerged; a tag every week; the base
// images update once, mid-month; builds take 10–30 minutes, so a push can
// start while the previous push's job still runs, and one build in
// rerunOneIn is re-run after it ended. Weekends are quiet but for the odd
// update; a holiday of holiday days (from the second Saturday) is quiet
// altogether: what would have happened in it happens after it.
func newScenario(seed uint64, days int, start time.Time, holiday int) scenario {
	rng := rand.New(rand.NewPCG(seed, 0x6275636b6574))
	sc := scenario{prs: map[int]prPlan{}}
	seq := 0
	add := func(e event) event {
		e.seq = seq
		seq++
		if e.kind != prClosed && e.kind != baseUpdate {
			e.dur = minBuild + time.Duration(rng.Int64N(int64(maxBuild-minBuild)))
		}
		sc.events = append(sc.events, e)
		return e
	}
	inHoliday := func(d int) bool { return holiday > 0 && d >= holidayDay && d < holidayDay+holiday }
	pr := 100
	for d := 0; d < days; d++ {
		day := start.Add(time.Duration(d) * 24 * time.Hour)
		if d == days/2 { // upstream releases, holiday or not
			add(event{at: day.Add(6 * time.Hour), kind: baseUpdate})
		}
		if inHoliday(d) {
			continue
		}
		if wd := day.Weekday(); wd == time.Saturday || wd == time.Sunday {
			if rng.IntN(3) == 0 { // the odd weekend update
				add(event{at: day.Add(hours(rng, 10, 18)), kind: prBuild, pr: 100 + rng.IntN(max(pr-100, 1))})
			}
			continue
		}
		if day.Weekday() == time.Friday {
			add(event{at: day.Add(16 * time.Hour), kind: pushTag, tag: fmt.Sprintf("v1.%d.0", d/7+1)})
		}
		for n := 2 + rng.IntN(3); n > 0; n-- {
			pr++
			p := prPlan{bumpsDeps: rng.IntN(5) == 0, merged: rng.IntN(7) != 0, fork: rng.IntN(forkOneIn) == 0}
			sc.prs[pr] = p
			t := day.Add(hours(rng, 9, 17))
			add(event{at: t, kind: prBuild, pr: pr, first: true})
			for u := rng.IntN(5); u > 0; u-- {
				t = t.Add(hours(rng, 1, 20))
				add(event{at: t, kind: prBuild, pr: pr})
			}
			t = t.Add(hours(rng, 1, 30))
			if p.merged {
				mq := add(event{at: t, kind: mergeGroup, pr: pr})
				t = t.Add(mq.dur + mergeAfterMQ)
				add(event{at: t, kind: pushMain, pr: pr})
			}
			add(event{at: t.Add(closeAfterMrg), kind: prClosed, pr: pr})
		}
	}
	// Re-runs: the same job again, after it ended.
	for _, e := range sc.events {
		if (e.kind == prBuild || e.kind == pushMain) && rng.IntN(rerunOneIn) == 0 {
			add(event{at: e.at.Add(e.dur + time.Duration(5+rng.IntN(56))*time.Minute), kind: e.kind, pr: e.pr, rerun: e.seq + 1})
		}
	}
	// The scheduled runs (cron '0 3 * * 1,4'), holiday or not.
	for d := 0; d < days; d++ {
		day := start.Add(time.Duration(d) * 24 * time.Hour)
		if wd := day.Weekday(); wd == time.Monday || wd == time.Thursday {
			sc.events = append(sc.events, event{at: day.Add(3 * time.Hour), kind: scheduled, seq: seq, dur: minBuild})
			seq++
		}
	}
	// What falls into the holiday (a pull request's later updates) waits
	// for its end.
	if holiday > 0 {
		hs := start.Add(holidayDay * 24 * time.Hour)
		he := hs.Add(time.Duration(holiday) * 24 * time.Hour)
		for i, e := range sc.events {
			if !e.at.Before(hs) && e.at.Before(he) && e.kind != scheduled && e.kind != baseUpdate {
				sc.events[i].at = e.at.Add(time.Duration(holiday) * 24 * time.Hour)
			}
		}
	}
	end := start.Add(time.Duration(days) * 24 * time.Hour)
	kept := sc.events[:0]
	for _, e := range sc.events {
		if e.at.Before(end) {
			kept = append(kept, e)
		}
	}
	sc.events = kept
	sort.SliceStable(sc.events, func(i, j int) bool {
		if !sc.events[i].at.Equal(sc.events[j].at) {
			return sc.events[i].at.Before(sc.events[j].at)
		}
		return sc.events[i].seq < sc.events[j].seq
	})
	return sc
}

func hours(rng *rand.Rand, lo, hi int) time.Duration {
	return time.Duration(lo)*time.Hour + time.Duration(rng.Int64N(int64(hi-lo)*int64(time.Hour)))
}

// cacheMount is a RUN --mount=type=cache of the Dockerfile, saved as one
// archive when the step that uses it ran (was not cached).
type cacheMount struct {
	id   string
	step int     // the dockerfile step that uses it
	mib  float64 // archive size at scale 1
}

// cacheMounts are the Go toolchain's two caches, sized like the layers at
// a tenth of a real project's (the 1 GB quota is a tenth of
// GitHub's 10 GB): the module cache as big as the layer `go mod download`
// makes, 25 MiB, and the build cache 40 MiB, a bit under twice the `go
// build` layer, as Go's build cache holds every package's compiled output.
// The real-project suite (issue 20) will measure them.
var cacheMounts = []cacheMount{
	{id: "gomod", step: 1, mib: 25},
	{id: "gobuild", step: 3, mib: 40},
}
