package buildjob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bkcache/bkcache/buildkit"
	"github.com/bkcache/bkcache/internal/cachemount"
	"github.com/bkcache/bkcache/internal/ghaction"
)

// TestLazyMountsNeeds: the names are the vertex names BuildKit v0.34's
// Dockerfile frontend gave the steps of a real build (captured from
// `bkcache build --progress plain`), with the mounts discovery carries.
func TestLazyMountsNeeds(t *testing.T) {
	mod := cachemount.Mount{ID: "/go/pkg/mod", Target: "/go/pkg/mod", Targets: []string{"/go/pkg/mod"}}
	lm := &lazyMounts{mounts: []cachemount.Mount{mod}}
	for _, tc := range []struct {
		step  string
		needs bool
	}{
		// Captured from a build of a Dockerfile that tries each form (the
		// frontend pads the step number and collapses line continuations
		// into spaces).
		{"[build  1/12] FROM 127.0.0.1:5001/bkcache/busybox:latest@sha256:a328598bddf85f9a922997df2d12d7946284953ea17833ff4c8a6fccd8fe6595", false},
		{"[build  2/12] WORKDIR /src", false},
		{"[build  3/12] RUN echo cap1 > /plain", false},
		{"[build  4/12] RUN --mount=type=cache,target=/go/pkg/mod     echo cap1 > /dl", true},
		{"[build  5/12] RUN --mount=type=cache,target=/go/pkg/mod     --mount=type=cache,target=/root/.cache/go-build     echo cap1 > /built", true},
		// Cache mounts that are not the carried one: the safety net.
		{"[build  6/12] RUN --mount=type=cache,id=npm,dst=/root/.npm/,sharing=locked echo cap1 > /npm", true},
		{"[build  7/12] RUN --mount=target=/var/cache/app,type=cache echo cap1 > /varcache", true},
		{"[build  8/12] RUN --mount=type=bind,target=/ctx echo cap1 > /bind", false},
		// Another kind of mount at a carried target: a needless restore.
		{"[build  9/12] RUN --mount=type=tmpfs,target=/go/pkg/mod echo cap1 > /tmpfs", true},
		{`[build 10/12] RUN --network=none --mount=type=cache,target=/tmp/c ["sh", "-c", "echo cap1 > /exec"]`, true},
		{"[build 11/12] RUN --mount=type=cache,target=/tmp/h <<EOT (echo cap1 > /heredoc)", true},
		{"[build 12/12] COPY Dockerfile /df", false},
		{"[stage-1 2/2] COPY --from=build /built /built", false},
		{"[internal] load build definition from Dockerfile", false},
		{"importing cache manifest from local:15387151634441263211", false},
		// The command's own text is not a flag.
		{"[build  3/12] RUN echo --mount=type=cache,target=/go/pkg/mod", false},
	} {
		t.Run(tc.step, func(t *testing.T) {
			if got := lm.needs(tc.step); got != tc.needs {
				t.Errorf("needs = %v, want %v", got, tc.needs)
			}
		})
	}
}

// fakeAttempt is a build that reports the steps it runs, one by one,
// and stops when its context is cancelled. A step an earlier attempt
// completed is a cache hit, as in the builder.
type fakeAttempt struct {
	runs  [][]string // the steps each attempt reaches, in order
	errs  []error    // each attempt's error when it is not stopped
	calls int
	ctxs  []context.Context
	done  map[string]bool
}

func (f *fakeAttempt) build(ctx context.Context, onRun func(string)) (buildkit.Result, error) {
	n := f.calls
	f.calls++
	f.ctxs = append(f.ctxs, ctx)
	if f.done == nil {
		f.done = map[string]bool{}
	}
	var res buildkit.Result
	for _, step := range f.runs[n] {
		res.Steps++
		if f.done[step] {
			res.Vertices = append(res.Vertices, buildkit.Vertex{Digest: step, Name: step, Step: true, Cached: true})
			res.Cached++
			continue
		}
		if onRun != nil {
			onRun(step)
		}
		if ctx.Err() != nil {
			res.Vertices = append(res.Vertices, buildkit.Vertex{Digest: step, Name: step, Step: true, Duration: time.Millisecond, Error: "context canceled"})
			return res, fmt.Errorf("build on tcp://x: %w", ctx.Err())
		}
		res.Vertices = append(res.Vertices, buildkit.Vertex{Digest: step, Name: step, Step: true, Duration: time.Second})
		f.done[step] = true
	}
	return res, f.errs[n]
}

func TestBuildRestoringOnDemand(t *testing.T) {
	needs := func(step string) bool { return step == "RUN mount" }
	failed := errors.New("process did not complete successfully")
	for _, tc := range []struct {
		name     string
		runs     [][]string
		errs     []error
		neededBy string
		calls    int
		restores int
		err      error
		cached   int // cache hits of the returned result
	}{
		{name: "nothing needs the mounts", runs: [][]string{{"COPY", "RUN plain"}}, errs: []error{nil}, calls: 1},
		{name: "a step fails without them", runs: [][]string{{"RUN plain"}}, errs: []error{failed}, calls: 1, err: failed},
		{
			name: "a step needs them: stop, restore, build again",
			runs: [][]string{{"COPY", "RUN mount", "RUN after"}, {"COPY", "RUN mount", "RUN after"}}, errs: []error{nil, nil},
			neededBy: "RUN mount", calls: 2, restores: 1,
		},
		{
			name: "the second build fails as the build would",
			runs: [][]string{{"RUN mount"}, {"RUN mount"}}, errs: []error{nil, failed},
			neededBy: "RUN mount", calls: 2, restores: 1, err: failed,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeAttempt{runs: tc.runs, errs: tc.errs}
			var restored []string
			build := f.build
			res, neededBy, err := buildRestoringOnDemand(context.Background(), needs, build, func(step string) { restored = append(restored, step) })
			if neededBy != tc.neededBy || f.calls != tc.calls || len(restored) != tc.restores {
				t.Errorf("neededBy %q, %d builds, restores %q; want %q, %d, %d", neededBy, f.calls, restored, tc.neededBy, tc.calls, tc.restores)
			}
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Errorf("err = %v, want %v", err, tc.err)
			}
			if f.calls == 2 && f.ctxs[1].Err() != nil {
				t.Errorf("the second build ran with a cancelled context")
			}
			// COPY ran in the stopped build: the second build's hit on it
			// is no hit of this job.
			if res.Cached != tc.cached {
				t.Errorf("cached = %d, want %d (%+v)", res.Cached, tc.cached, res.Vertices)
			}
			for _, v := range res.Vertices {
				if v.Cached {
					t.Errorf("step %q reported cached", v.Name)
				}
			}
		})
	}
}

// TestBuildRestoringOnDemandFinishedFirst: a stopped build that finished
// anyway is kept, without a restore; a cancelled job restores nothing.
func TestBuildRestoringOnDemandFinishedFirst(t *testing.T) {
	needs := func(step string) bool { return step == "RUN mount" }
	finished := func(ctx context.Context, onRun func(string)) (buildkit.Result, error) {
		onRun("RUN mount")
		return buildkit.Result{Steps: 1}, nil
	}
	restore := func(string) { t.Errorf("restored") }
	res, neededBy, err := buildRestoringOnDemand(context.Background(), needs, finished, restore)
	if err != nil || neededBy != "RUN mount" || res.Steps != 1 {
		t.Errorf("got %+v, %q, %v", res, neededBy, err)
	}

	// The same when the status stream never said the step ran.
	unseen := func(ctx context.Context, onRun func(string)) (buildkit.Result, error) {
		return buildkit.Result{Steps: 1, Vertices: []buildkit.Vertex{{Name: "RUN mount", Step: true, Duration: time.Second}}}, nil
	}
	if _, neededBy, err := buildRestoringOnDemand(context.Background(), needs, unseen, restore); err != nil || neededBy != "RUN mount" {
		t.Errorf("a step that ran unseen: %q, %v", neededBy, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	stopped := func(bctx context.Context, onRun func(string)) (buildkit.Result, error) {
		calls++
		cancel() // the job's own context ends while the build runs
		onRun("RUN mount")
		return buildkit.Result{}, bctx.Err()
	}
	_, _, err = buildRestoringOnDemand(ctx, needs, stopped, restore)
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Errorf("err = %v after %d builds, want the cancellation after 1", err, calls)
	}
}

func TestWithEarlierRuns(t *testing.T) {
	first := buildkit.Result{Vertices: []buildkit.Vertex{
		{Digest: "a", Step: true, Duration: time.Second},                            // ran
		{Digest: "b", Step: true, Cached: true},                                     // a hit both times
		{Digest: "c", Step: true, Duration: time.Second, Error: "context canceled"}, // stopped
		{Digest: "d", Name: "exporting to image", Duration: time.Second},            // no step
		// Ran; built on the context, so the next build's digest differs.
		{Digest: "e1", Name: "[2/3] COPY . .", Step: true, Duration: time.Second},
	}}
	final := buildkit.Result{Steps: 4, Cached: 4, Vertices: []buildkit.Vertex{
		{Digest: "a", Step: true, Cached: true},
		{Digest: "b", Step: true, Cached: true},
		{Digest: "c", Step: true, Cached: true},
		{Digest: "d", Cached: true},
		{Digest: "e2", Name: "[2/3] COPY . .", Step: true, Cached: true},
	}}
	got := withEarlierRuns(final, first)
	var cached []string
	for _, v := range got.Vertices {
		if v.Cached {
			cached = append(cached, v.Digest)
		}
	}
	if got.Cached != 2 || !slices.Equal(cached, []string{"b", "c", "d"}) || got.Vertices[0].Duration != time.Second {
		t.Errorf("cached %d: %q, want 2: b, c, d; %+v", got.Cached, cached, got.Vertices)
	}
	if !final.Vertices[0].Cached {
		t.Errorf("final was changed in place")
	}
}

func TestEagerMountRestore(t *testing.T) {
	for _, tc := range []struct {
		value string
		eager bool
		warn  string
	}{
		{"", false, ""},
		{"lazy", false, ""},
		{"eager", true, ""},
		{"Eager", false, `::warning::BKCACHE_MOUNT_RESTORE="Eager" is neither "lazy" nor "eager": restoring cache mounts lazily`},
	} {
		t.Run(tc.value, func(t *testing.T) {
			var out bytes.Buffer
			getenv := func(k string) string {
				if k == "BKCACHE_MOUNT_RESTORE" {
					return tc.value
				}
				return ""
			}
			j := &job{getenv: getenv, rep: &actionReporter{r: ghaction.New(getenv, &out)}}
			if got := j.eagerMountRestore(); got != tc.eager {
				t.Errorf("eager = %v, want %v", got, tc.eager)
			}
			if got := strings.TrimSpace(out.String()); got != tc.warn {
				t.Errorf("log %q, want %q", got, tc.warn)
			}
		})
	}
}

func FuzzLazyMountsNeeds(f *testing.F) {
	for _, s := range []string{"[2/3] RUN --mount=type=cache,target=/c make", "[a] RUN", "[1/2] ONBUILD RUN --mount=\"type=cache\" x", "] RUN --mount=type=cache"} {
		f.Add(s)
	}
	lm := &lazyMounts{mounts: []cachemount.Mount{{ID: "/c", Target: "/c", Targets: []string{"/c"}}}}
	f.Fuzz(func(t *testing.T, step string) {
		if lm.needs(step) && !strings.Contains(step, "RUN ") {
			t.Errorf("%q is no RUN step but needs the mounts", step)
		}
	})
}
