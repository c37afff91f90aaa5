package buildkit

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

// Vertex is one node of the build graph as the status stream reported it.
type Vertex struct {
	Digest   string
	Name     string
	Step     bool // a Dockerfile instruction other than FROM: counted in Result.Steps
	Cached   bool
	Error    string
	Duration time.Duration // zero when it never ran (e.g. cached)
	// Inputs are the digests of the vertices this one is built on: the
	// build graph's edges, as the status stream reports them.
	Inputs []string
}

// stepName matches the names the Dockerfile frontend gives its instructions:
// "[2/4] RUN …", "[build 1/3] FROM …", "[linux/arm64 stage-1 3/5] COPY …".
// Everything else is bookkeeping — "[internal] load build definition",
// "[auth] …", "importing cache manifest from …", "exporting to image",
// "exporting cache to registry", "resolve image config for …" — and is not
// a step: its cache state says nothing about the user's build.
//
// FROM is not a step either. It only fetches the base image, and on a
// fresh builder that imports a complete cache BuildKit resolves it without
// marking it Cached (nothing needs pulling, but nothing was a cache hit
// either), so counting it would make a fully cached build look like a miss.
var stepName = regexp.MustCompile(`^\[[^\]]*\b\d+/\d+\] `)

var fromName = regexp.MustCompile(`^\[[^\]]*\b\d+/\d+\] FROM `)

func isStep(name string) bool { return stepName.MatchString(name) && !fromName.MatchString(name) }

// recorder folds the status stream into per-vertex state. Updates for a
// vertex repeat (started, then completed); the last one wins, except for
// Cached (see update).
type recorder struct {
	mu       sync.Mutex
	order    []digest.Digest
	vertices map[digest.Digest]*vertexState
	warnings []string
}

type vertexState struct {
	client.Vertex
	first time.Time // first Started seen
	ran   bool      // update returned it as a running step
}

func newRecorder() *recorder {
	return &recorder{vertices: map[digest.Digest]*vertexState{}}
}

// update folds s in and returns the names of the steps that s shows
// starting to run for the first time (see runs).
func (r *recorder) update(s *client.SolveStatus) (running []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range s.Vertexes {
		if v == nil {
			continue
		}
		st, ok := r.vertices[v.Digest]
		if !ok {
			st = &vertexState{}
			r.vertices[v.Digest] = st
			r.order = append(r.order, v.Digest)
		}
		if !st.ran && runs(v) {
			st.ran = true
			running = append(running, v.Name)
		}
		// Cached sticks: later updates of a cached step (loading its
		// result for the steps after it) come without the flag. But an
		// error clears it: a step matched in an imported index whose layer
		// is gone (an evicted blob) reports the failed load and then runs,
		// and that is no hit. The last completed update decides the error.
		cached, errText := st.Cached, st.Error
		switch {
		case v.Error != "":
			cached = false
		case v.Cached:
			cached = true
		}
		if v.Error != "" || v.Completed != nil {
			errText = v.Error
		}
		// Inputs stick too: a cached step whose lazy layers are pulled
		// later is reported again by the pull's progress, without its
		// inputs (BuildKit's progress controller), and the build record
		// needs the graph's edges.
		inputs := st.Inputs
		st.Vertex = *v
		if len(st.Inputs) == 0 {
			st.Inputs = inputs
		}
		st.Cached, st.Error = cached, errText
		if v.Started != nil && (st.first.IsZero() || v.Started.Before(st.first)) {
			st.first = *v.Started
		}
	}
	for _, w := range s.Warnings {
		if w == nil {
			continue
		}
		msg := strings.TrimSpace(string(w.Short))
		if v, ok := r.vertices[w.Vertex]; ok && v.Name != "" {
			msg = fmt.Sprintf("%s: %s", v.Name, msg)
		}
		r.warnings = append(r.warnings, msg)
	}
	return running
}

// runs reports whether an update says that BuildKit executes a step
// rather than loads it from the cache. The solver reports an execution as
// Started without Cached, a cache load as Started with Cached (solver/
// jobs.go, notifyStarted), both with the vertex's inputs. A cached step's
// lazy layers pulled later (by a step on top of it, or the exporter) are
// reported again as Started without Cached, but by the progress controller
// (util/progress/controller), which sends no inputs: that is no run. A RUN
// always has an input (its root filesystem). A step that failed at once
// ran too.
func runs(v *client.Vertex) bool {
	return v.Started != nil && !v.Cached && len(v.Inputs) > 0 && isStep(v.Name)
}

// snapshot returns the vertices in the order they first appeared, and the
// number of steps and of cached steps among them.
func (r *recorder) snapshot() (vs []Vertex, steps, cached int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.order {
		st := r.vertices[d]
		v := Vertex{
			Digest: d.String(),
			Name:   st.Name,
			Step:   isStep(st.Name),
			Cached: st.Cached,
			Error:  st.Error,
		}
		for _, in := range st.Inputs {
			v.Inputs = append(v.Inputs, in.String())
		}
		if st.Completed != nil && !st.first.IsZero() {
			v.Duration = st.Completed.Sub(st.first)
		}
		if v.Step {
			steps++
			if v.Cached {
				cached++
			}
		}
		vs = append(vs, v)
	}
	return vs, steps, cached
}

func (r *recorder) buildWarnings() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.warnings...)
}
