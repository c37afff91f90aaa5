package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"sync"

	"github.com/bkcache/bkcache/scope"
)

// payloads makes the GitHub events the runner would hand a job, and the
// refs its runtime token may read besides its own (GitHub's rules: a pull
// request reads its base and the default branch; a merge group its base;
// a tag push the default branch).
type payloads struct{ repo string }

func (p *payloads) event(e event) (scope.Event, []string) {
	repoObj := map[string]any{"full_name": p.repo, "default_branch": defaultBranch}
	switch e.kind {
	case prBuild:
		head := fmt.Sprintf("feature-%d", e.pr)
		side := func(ref string) map[string]any {
			return map[string]any{"ref": ref, "repo": map[string]any{"full_name": p.repo}}
		}
		return scope.Event{
			Name: "pull_request", Ref: prRef(e.pr), HeadRef: head, BaseRef: defaultBranch, Repository: p.repo,
			Payload: map[string]any{
				"action": "synchronize", "number": e.pr, "repository": repoObj,
				"pull_request": map[string]any{"number": e.pr, "head": side(head), "base": side(defaultBranch)},
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
	uploaded           int64 // layer bytes uploaded
	cleaned            int64 // bytes cleanup deleted
	peakUsage          int64
	usage              []int64 // at the end of each day
	apiCalls           int64
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

// play runs every event of the scenario for every strategy.
func (w *world) play(ctx context.Context, sc scenario, days int) error {
	day := -1
	start := w.clock.Now()
	for _, e := range sc.events {
		for d := int(e.at.Sub(start).Hours() / 24); day < d; {
			w.endOfDay(day)
			day++
		}
		w.clock.set(e.at)
		t, skip := w.advance(e, sc)
		if skip {
			continue
		}
		// The strategies' repositories are independent: play them at once.
		errs := make([]error, len(w.strategies))
		var wg sync.WaitGroup
		for i, s := range w.strategies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := w.run(ctx, s, e, t); err != nil {
					errs[i] = fmt.Errorf("%s: %s at %s: %w", s, e.kind, e.at.Format("Jan 2 15:04"), err)
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		for _, s := range w.strategies {
			if u := w.usage(s); u > w.stats[s].peakUsage {
				w.stats[s].peakUsage = u
			}
		}
		if e.kind == pushMain {
			w.mainRun = stepKeys(t)
		}
	}
	for day < days-1 {
		w.endOfDay(day)
		day++
	}
	w.endOfDay(day)
	for _, s := range w.strategies {
		w.stats[s].apiCalls = w.http[s].calls.Load()
	}
	return nil
}

func (w *world) endOfDay(day int) {
	if day < 0 {
		return
	}
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
