package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/bkcache/bkcache/scope"
)

// payloads makes the GitHub events the runner would hand a job, and the
// refs its runtime token may read besides its own (GitHub's rules: a pull
// request reads its base and the default branch; a merge group its base;
// a tag push the default branch).
type payloads struct{ repo string }

func (p *payloads) event(e event, fork bool) (scope.Event, []string) {
	repoObj := map[string]any{"full_name": p.repo, "default_branch": defaultBranch}
	switch e.kind {
	case prBuild:
		head := fmt.Sprintf("feature-%d", e.pr)
		side := func(ref, repo string) map[string]any {
			return map[string]any{"ref": ref, "repo": map[string]any{"full_name": repo, "fork": repo != p.repo}}
		}
		headRepo := p.repo
		if fork {
			headRepo = "contributor/app"
		}
		return scope.Event{
			Name: "pull_request", Ref: prRef(e.pr), HeadRef: head, BaseRef: defaultBranch, Repository: p.repo,
			Payload: map[string]any{
				"action": "synchronize", "number": e.pr, "repository": repoObj,
				"pull_request": map[string]any{"number": e.pr, "head": side(head, headRepo), "base": side(defaultBranch, p.repo)},
			},
		}, []string{mainRef}
	case mergeGroup:
		ref := fmt.Sprintf("refs/heads/gh-readonly-queue/%s/pr-%d-%040x", defaultBranch, e.pr, e.pr)
		return scope.Event{
			Name: "merge_group", Ref: ref, Repository: p.repo,
			Payload: map[string]any{
				"action": "checks_requested", "repository": repoObj,
				"merge_group": map[string]any{"head_ref": ref, "base_ref": mainRef},
			},
		}, []string{mainRef}
	case scheduled:
		return scope.Event{Name: "schedule", Ref: mainRef, Repository: p.repo,
			Payload: map[string]any{"schedule": "0 3 * * 1,4", "repository": repoObj}}, nil
	case pushTag:
		ref := "refs/tags/" + e.tag
		return scope.Event{Name: "push", Ref: ref, Repository: p.repo,
			Payload: map[string]any{"ref": ref, "repository": repoObj}}, []string{mainRef}
	}
	return scope.Event{Name: "push", Ref: mainRef, Repository: p.repo,
		Payload: map[string]any{"ref": mainRef, "repository": repoObj}}, nil
}

// layerSource hands out layer content: random bytes, so nothing along the
// way can compress them away. Their digests are not checked (the cache
// service never does), so one buffer serves every layer.
type layerSource struct{ buf []byte }

func newLayerSource(seed uint64, size int64) *layerSource {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, size)
	for i := 0; i+8 <= len(b); i += 8 {
		v := rng.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return &layerSource{buf: b}
}

// reader reads the buffer, repeated, at any offset.
func (l *layerSource) reader() io.ReaderAt { return l }

func (l *layerSource) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.buf[(off+int64(n))%int64(len(l.buf)):])
		n += c
	}
	return n, nil
}

// stats are one strategy's figures over the run.
type stats struct {
	main     stateCount // the default branch's cache at its own builds
	mainAtPR stateCount // ... and at pull requests' first builds
	prFirst  int
	// prHits of prHittable: steps of pull requests' first builds that the
	// default branch's newest build also ran, and how many of them hit.
	prHits, prHittable int
	uploaded           int64 // bytes uploaded (layers, indexes not counted, and cache mounts)
	mountUploaded      int64 // ... of them cache mount archives
	cleaned            int64 // bytes cleanup deleted
	// mountFound of mountRestores: cache mount restores that found an
	// archive.
	mountRestores, mountFound int
	peakUsage                 int64
	usage                     []int64 // at the end of each day
	apiCalls                  int64
}

type stateCount struct{ complete, partial, gone int }

func (c *stateCount) add(s cacheState) {
	switch s {
	case stateComplete:
		c.complete++
	case statePartial:
		c.partial++
	default:
		c.gone++
	}
}

func (c stateCount) total() int { return c.complete + c.partial + c.gone }

// usage is a repository's bytes in the emulator now.
func (w *world) usage(s *strategy) int64 {
	var n int64
	for _, en := range w.emu.Entries(s.repo) {
		n += en.Size
	}
	return n
}

// phase is a job's start or end, or an event that is not a build.
type phase struct {
	at  time.Time
	e   event
	end bool
}

// phases orders the scenario's jobs by time: each build starts (imports)
// at its event and ends (exports, cleans up) after its duration; a job
// that ends at the moment another starts exports first.
func phases(sc scenario) []phase {
	var out []phase
	for _, e := range sc.events {
		out = append(out, phase{at: e.at, e: e})
		if e.dur > 0 {
			out = append(out, phase{at: e.at.Add(e.dur), e: e, end: true})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].at.Equal(out[j].at) {
			return out[i].at.Before(out[j].at)
		}
		if out[i].end != out[j].end {
			return out[i].end
		}
		return out[i].e.seq < out[j].e.seq
	})
	return out
}

// play runs every job of the scenario for every strategy.
func (w *world) play(ctx context.Context, sc scenario, days int) error {
	day := -1
	start := w.clock.Now()
	built := map[int]tree{}         // the tree each started build event built, by seq
	running := map[int][]*pending{} // started jobs, by seq: one per strategy
	runningRefs := map[string]int{} // jobs running per ref
	var e event
	each := func(f func(i int, s *strategy) error) error {
		// The strategies' repositories are independent: play them at once.
		errs := make([]error, len(w.strategies))
		var wg sync.WaitGroup
		for i, s := range w.strategies {
			if e.kind == scheduled && !s.scheduled {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = f(i, s)
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	for _, ph := range phases(sc) {
		e = ph.e
		for d := int(ph.at.Sub(start).Hours() / 24); day < d; {
			w.endOfDay(ctx, start, day)
			day++
		}
		w.clock.set(ph.at)
		w.emu.Housekeep(ctx)
		where := func(s *strategy) string {
			return fmt.Sprintf("%s: %s at %s", s, e.kind, ph.at.Format("Jan 2 15:04"))
		}
		switch {
		case e.kind == prClosed:
			w.advance(e, sc)
			if err := each(func(_ int, s *strategy) error {
				if err := w.closePR(ctx, s, e); err != nil {
					return fmt.Errorf("%s: %w", where(s), err)
				}
				return nil
			}); err != nil {
				return err
			}
		case !ph.end:
			var t tree
			skip := false
			if e.rerun > 0 {
				t, skip = built[e.rerun-1]
				skip = !skip || (e.kind == prBuild && !w.prs[e.pr].open)
			} else {
				t, skip = w.advance(e, sc)
			}
			if skip {
				continue
			}
			built[e.seq] = t
			if e.kind != scheduled {
				w.facts.builds++
			}
			if e.kind == prBuild && w.prs[e.pr].plan.fork {
				w.facts.forkBuilds++
			}
			if e.rerun > 0 {
				w.facts.reruns++
			}
			ref := w.refOf(e)
			if runningRefs[ref] > 0 && e.kind != scheduled {
				w.facts.overlapping++
				if ref == mainRef {
					w.facts.mainOverlapping++
				}
			}
			runningRefs[ref]++
			ps := make([]*pending, len(w.strategies))
			if err := each(func(i int, s *strategy) error {
				p, err := w.start(ctx, s, e, t)
				if err != nil {
					return fmt.Errorf("%s: %w", where(s), err)
				}
				ps[i] = p
				return nil
			}); err != nil {
				return err
			}
			running[e.seq] = ps
		default:
			ps, ok := running[e.seq]
			if !ok {
				continue
			}
			delete(running, e.seq)
			runningRefs[w.refOf(e)]--
			if err := each(func(i int, s *strategy) error {
				if ps[i] == nil {
					return nil
				}
				if err := w.finish(ctx, s, ps[i]); err != nil {
					return fmt.Errorf("%s (end): %w", where(s), err)
				}
				return nil
			}); err != nil {
				return err
			}
			if w.refOf(e) == mainRef && e.kind != scheduled {
				w.mainRun = stepKeys(built[e.seq])
			}
		}
		for _, s := range w.strategies {
			if u := w.usage(s); u > w.stats[s].peakUsage {
				w.stats[s].peakUsage = u
			}
		}
	}
	for day < days-1 {
		w.endOfDay(ctx, start, day)
		day++
	}
	w.endOfDay(ctx, start, day)
	for _, s := range w.strategies {
		w.stats[s].apiCalls = w.http[s].calls.Load()
	}
	return nil
}

// refOf is the ref event e's job runs on.
func (w *world) refOf(e event) string {
	ev, _ := w.payload.event(e, false)
	return ev.Ref
}

// endOfDay records each strategy's usage at midnight after day, once
// the cache service's housekeeping ran.
func (w *world) endOfDay(ctx context.Context, start time.Time, day int) {
	if day < 0 {
		return
	}
	w.clock.set(start.Add(time.Duration(day+1) * 24 * time.Hour))
	w.emu.Housekeep(ctx)
	for _, s := range w.strategies {
		w.stats[s].usage = append(w.stats[s].usage, w.usage(s))
	}
}

// advance moves the repository's history to event e and returns the tree
// the event builds; skip is true when there is nothing to build.
func (w *world) advance(e event, sc scenario) (tree, bool) {
	switch e.kind {
	case baseUpdate:
		w.main = w.main.with(classBuilderBase, w.main[classBuilderBase]+"+").with(classRuntimeBase, w.main[classRuntimeBase]+"+")
		return nil, true
	case prBuild:
		p := w.prs[e.pr]
		if p == nil {
			if !e.first {
				return nil, true // a weekend update of a pull request not opened
			}
			p = &prState{plan: sc.prs[e.pr], open: true}
			w.prs[e.pr] = p
		}
		if !p.open {
			return nil, true
		}
		p.updates++
		p.tree = w.prTree(e.pr, p)
		return p.tree, false
	case mergeGroup:
		p := w.prs[e.pr]
		p.tree = w.prTree(e.pr, p) // the queue tests the pull request on the newest default branch
		return p.tree, false
	case pushMain:
		w.main = w.prs[e.pr].tree
		return w.main, false
	case scheduled:
		return w.main, false
	case prClosed:
		if p := w.prs[e.pr]; p != nil {
			p.open = false
		}
		return nil, false
	}
	return w.main, false // a tag of the default branch's head
}

func hostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Host
}
