package buildkit

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

func TestStepName(t *testing.T) {
	tests := []struct {
		name string
		step bool
	}{
		{"[1/3] FROM 127.0.0.1:5001/busybox:latest@sha256:abc", false},
		{"[build 1/3] FROM busybox", false},
		{"[2/3] COPY --from=busybox / /", true},
		{"[2/3] RUN echo hi", true},
		{"[build 2/4] COPY a.txt /a.txt", true},
		{"[linux/arm64 stage-1 3/5] RUN make", true},
		{"[internal] load build definition from Dockerfile", false},
		{"[internal] load metadata for 127.0.0.1:5001/busybox:latest", false},
		{"[auth] library/busybox:pull token for registry-1.docker.io", false},
		{"importing cache manifest from 127.0.0.1:5001/cache:main", false},
		{"exporting to image", false},
		{"exporting cache to client directory", false},
		{"resolve image config for docker-image://docker.io/docker/dockerfile:1", false},
		{"RUN [1/2] not a prefix", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isStep(tt.name); got != tt.step {
				t.Errorf("step = %v, want %v", got, tt.step)
			}
		})
	}
}

func at(sec int) *time.Time {
	t := time.Date(2026, 1, 1, 0, 0, sec, 0, time.UTC)
	return &t
}

func TestRecorder(t *testing.T) {
	d := func(s string) digest.Digest { return digest.FromString(s) }
	r := newRecorder()
	updates := []*client.SolveStatus{
		{Vertexes: []*client.Vertex{
			{Digest: d("def"), Name: "[internal] load build definition from Dockerfile", Started: at(0)},
			{Digest: d("from"), Name: "[1/3] FROM busybox", Started: at(0)},
		}},
		{Vertexes: []*client.Vertex{
			{Digest: d("def"), Name: "[internal] load build definition from Dockerfile", Started: at(0), Completed: at(1)},
			{Digest: d("from"), Name: "[1/3] FROM busybox", Started: at(0), Completed: at(1), Cached: true},
			{Digest: d("run"), Name: "[2/3] RUN make", Started: at(1)},
			nil,
		}},
		{Vertexes: []*client.Vertex{
			// a later update without the flag must not clear it
			{Digest: d("from"), Name: "[1/3] FROM busybox", Started: at(0), Completed: at(1)},
			{Digest: d("run"), Name: "[2/3] RUN make", Started: at(1), Completed: at(4), Inputs: []digest.Digest{d("from")}},
			{Digest: d("copy"), Name: "[3/3] COPY x /x", Cached: true},
			{Digest: d("imp"), Name: "importing cache manifest from r/c:main", Started: at(0), Completed: at(0), Error: "connection refused"},
		}, Warnings: []*client.VertexWarning{{Vertex: d("run"), Short: []byte("JSONArgsRecommended: use JSON\n")}, nil}},
	}
	for _, u := range updates {
		r.update(u)
	}
	vs, steps, cached := r.snapshot()
	if steps != 2 || cached != 1 {
		t.Errorf("steps, cached = %d, %d, want 2, 1", steps, cached)
	}
	want := []Vertex{
		{Digest: d("def").String(), Name: "[internal] load build definition from Dockerfile", Duration: time.Second},
		{Digest: d("from").String(), Name: "[1/3] FROM busybox", Cached: true, Duration: time.Second},
		{Digest: d("run").String(), Name: "[2/3] RUN make", Step: true, Duration: 3 * time.Second, Inputs: []string{d("from").String()}},
		{Digest: d("copy").String(), Name: "[3/3] COPY x /x", Step: true, Cached: true},
		{Digest: d("imp").String(), Name: "importing cache manifest from r/c:main", Error: "connection refused"},
	}
	if len(vs) != len(want) {
		t.Fatalf("got %d vertices, want %d: %+v", len(vs), len(want), vs)
	}
	for i := range want {
		if !reflect.DeepEqual(vs[i], want[i]) {
			t.Errorf("vertex %d = %+v, want %+v", i, vs[i], want[i])
		}
	}
	if w := r.buildWarnings(); len(w) != 1 || w[0] != "[2/3] RUN make: JSONArgsRecommended: use JSON" {
		t.Errorf("warnings = %q", w)
	}
}

// A step matched in an imported index whose layer was evicted reports the
// failed load, then runs: it is no hit.
func TestRecorderEvictedLayer(t *testing.T) {
	d := digest.FromString("run")
	r := newRecorder()
	for _, v := range []*client.Vertex{
		{Digest: d, Name: "[2/3] RUN make", Started: at(0), Completed: at(0), Cached: true},
		{Digest: d, Name: "[2/3] RUN make", Started: at(0), Completed: at(1), Cached: true, Error: "blob sha256:abc not found"},
		{Digest: d, Name: "[2/3] RUN make", Started: at(1)},
		{Digest: d, Name: "[2/3] RUN make", Started: at(1), Completed: at(3)},
	} {
		r.update(&client.SolveStatus{Vertexes: []*client.Vertex{v}})
	}
	vs, steps, cached := r.snapshot()
	if steps != 1 || cached != 0 || vs[0].Error != "" {
		t.Fatalf("steps=%d cached=%d error=%q, want 1, 0 and no error", steps, cached, vs[0].Error)
	}
}

func TestCacheWarnings(t *testing.T) {
	req := Request{
		Imports: []client.CacheOptionsEntry{
			{Type: "registry", Attrs: map[string]string{"ref": "127.0.0.1:1/c:main"}},
			{Type: "s3", Attrs: map[string]string{"bucket": "b", "secret_access_key": "KEYVALUE"}},
			{Type: "registry", Attrs: map[string]string{"ref": "127.0.0.1:1/c:new"}},
		},
		Exports: []client.CacheOptionsEntry{{Type: "registry", Attrs: map[string]string{"ref": "127.0.0.1:1/c:pr"}}},
	}
	vs := []Vertex{
		{Name: "importing cache manifest from 127.0.0.1:1/c:main", Error: "dial tcp: connection refused\nstack"},
		{Name: "importing cache manifest from s3:12345", Error: "403"},
		{Name: "exporting cache to registry", Error: "push failed"},
		{Name: "importing cache manifest from 127.0.0.1:1/c:new", Error: "failed to configure registry cache importer: 127.0.0.1:1/c:new: not found"},
		{Name: "exporting to image"},
		{Name: "[1/2] RUN false", Error: "exit code 1"},
	}
	got, misses := cacheWarnings(vs, req, true)
	want := []string{
		"cache import type=registry,ref=127.0.0.1:1/c:main failed, building without it: dial tcp: connection refused",
		"cache import type=s3,bucket=b,secret_access_key=*** failed, building without it: 403",
		"cache export type=registry,ref=127.0.0.1:1/c:pr failed, the build is kept: push failed",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if want := "type=registry,ref=127.0.0.1:1/c:new"; strings.Join(misses, "\n") != want {
		t.Errorf("misses = %q, want only %q (a scope not exported yet is no warning)", misses, want)
	}
	if got, _ := cacheWarnings(vs, req, false); len(got) != 2 {
		t.Errorf("after a failed build: %q, want only the import warnings", got)
	}
	if got := failedExport(vs, req.Exports); got != "type=registry,ref=127.0.0.1:1/c:pr" {
		t.Errorf("failedExport = %q", got)
	}
}

func TestDroppableExport(t *testing.T) {
	s3 := client.CacheOptionsEntry{Type: "s3", Attrs: map[string]string{"bucket": "b"}}
	s3strict := client.CacheOptionsEntry{Type: "s3", Attrs: map[string]string{"bucket": "b", "ignore-error": "false"}}
	reg := client.CacheOptionsEntry{Type: "registry", Attrs: map[string]string{"ref": "r"}}
	err := errors.New("failed to solve: failed to configure s3 cache exporter: missing region")
	// A user's type=local beside the gha data plane's: BuildKit names the type only.
	user := client.CacheOptionsEntry{Type: "local", Attrs: map[string]string{"dest": "/cache/user", "compression": "zztop"}}
	plane := client.CacheOptionsEntry{Type: "local", Attrs: map[string]string{"dest": "/tmp/bkcache-gha-1/export-2", "mode": "max"}}
	planeStrict := client.CacheOptionsEntry{Type: "local", Attrs: map[string]string{"dest": "/tmp/bkcache-gha-1/export-2", "ignore-error": "false"}}
	badCompression := errors.New("failed to solve: failed to configure local cache exporter: unsupported compression type zztop")
	noSession := errors.New("failed to solve: failed to configure local cache exporter: local cache exporter/importer requires session")
	tests := []struct {
		name    string
		err     error
		exports []client.CacheOptionsEntry
		ok      bool
		dropped []client.CacheOptionsEntry
	}{
		{"drops s3", err, []client.CacheOptionsEntry{reg, s3}, true, []client.CacheOptionsEntry{s3}},
		{"strict s3 stays fatal", err, []client.CacheOptionsEntry{reg, s3strict}, false, nil},
		{"other error", errors.New("exit code 1"), []client.CacheOptionsEntry{s3}, false, nil},
		{"no such export", err, []client.CacheOptionsEntry{reg}, false, nil},
		{"the local export whose value the error quotes, listed last", badCompression, []client.CacheOptionsEntry{plane, reg, user}, true, []client.CacheOptionsEntry{user}},
		{"the local export whose value the error quotes, listed first", badCompression, []client.CacheOptionsEntry{user, plane}, true, []client.CacheOptionsEntry{user}},
		{"cannot tell which local export: both dropped", noSession, []client.CacheOptionsEntry{plane, reg, user}, true, []client.CacheOptionsEntry{plane, user}},
		{"cannot tell which, one strict: fatal", noSession, []client.CacheOptionsEntry{user, planeStrict}, false, nil},
		{"the quoted one is droppable though another is strict", badCompression, []client.CacheOptionsEntry{planeStrict, user}, true, []client.CacheOptionsEntry{user}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dropped, rest, ok := droppableExport(tt.err, tt.exports)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			if !reflect.DeepEqual(dropped, tt.dropped) {
				t.Errorf("dropped %v, want %v", dropped, tt.dropped)
			}
			if len(rest)+len(dropped) != len(tt.exports) {
				t.Errorf("rest %v", rest)
			}
			for _, r := range rest {
				for _, d := range dropped {
					if reflect.DeepEqual(r, d) {
						t.Errorf("%v both dropped and kept", r)
					}
				}
			}
		})
	}
}

func TestCheckLocalExports(t *testing.T) {
	blocker := t.TempDir() + "/file"
	if err := writeFile(blocker); err != nil {
		t.Fatal(err)
	}
	ok := client.CacheOptionsEntry{Type: "local", Attrs: map[string]string{"dest": t.TempDir() + "/new/dir"}}
	bad := client.CacheOptionsEntry{Type: "local", Attrs: map[string]string{"dest": blocker + "/sub"}}
	strict := client.CacheOptionsEntry{Type: "local", Attrs: map[string]string{"dest": blocker + "/sub", "ignore-error": "false"}}

	keep, warnings, err := checkLocalExports([]client.CacheOptionsEntry{ok, bad})
	if err != nil || len(keep) != 1 || len(warnings) != 1 || !strings.Contains(warnings[0], "type=local") {
		t.Errorf("keep=%v warnings=%q err=%v", keep, warnings, err)
	}
	if _, _, err := checkLocalExports([]client.CacheOptionsEntry{strict}); err == nil || !strings.Contains(err.Error(), "cache export type=local") {
		t.Errorf("strict: err = %v", err)
	}
}

func writeFile(path string) error {
	return (func() error {
		f, err := createFile(path)(nil)
		if err != nil {
			return err
		}
		return f.Close()
	})()
}

type fakeGrouper struct{ buf *bytes.Buffer }

func (g fakeGrouper) Group(title string) { g.buf.WriteString("::group::" + title + "\n") }
func (g fakeGrouper) EndGroup()          { g.buf.WriteString("::endgroup::\n") }

func TestGroupWriter(t *testing.T) {
	var buf bytes.Buffer
	gw := &groupWriter{w: &buf, g: fakeGrouper{&buf}}
	in := "#1 [internal] load build definition\n#1 DONE 0.0s\n\n#2 [1/2] RUN a\n#3 [2/2] RUN b\n#2 0.1 hel"
	in2 := "lo\n#2 DONE 0.2s\n------\n > [2/2] RUN b:\n#3 ERROR"
	gw.Write([]byte(in))
	gw.Write([]byte(in2))
	gw.Close()
	want := `::group::#1 [internal] load build definition
#1 [internal] load build definition
#1 DONE 0.0s

::endgroup::
::group::#2 [1/2] RUN a
#2 [1/2] RUN a
::endgroup::
::group::#3 [2/2] RUN b
#3 [2/2] RUN b
::endgroup::
::group::#2 [1/2] RUN a
#2 0.1 hello
#2 DONE 0.2s
::endgroup::
------
 > [2/2] RUN b:
::group::#3 [2/2] RUN b
#3 ERROR
::endgroup::
`
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestProgressMode(t *testing.T) {
	for _, m := range append(ProgressModes, "") {
		if _, err := progressMode(m); err != nil {
			t.Errorf("progressMode(%q): %v", m, err)
		}
	}
	if _, err := progressMode("tty"); err == nil || !strings.Contains(err.Error(), `progress: unknown mode "tty" (allowed: auto, plain, rawjson, quiet)`) {
		t.Errorf("err = %v", err)
	}
}

// TestRecorderKeepsInputs: a cached step whose lazy layers are pulled for
// the step after it is reported again by the pull's progress, without its
// inputs; the edges from the first report stay (the build record needs
// them to match the step with the record's).
func TestRecorderKeepsInputs(t *testing.T) {
	from, copyStep := digest.FromString("from"), digest.FromString("copy")
	r := newRecorder()
	for _, v := range []*client.Vertex{
		{Digest: from, Name: "[1/2] FROM base", Started: at(0), Completed: at(0)},
		{Digest: copyStep, Name: "[2/2] COPY a /a", Inputs: []digest.Digest{from}, Started: at(0), Completed: at(0), Cached: true},
		{Digest: copyStep, Name: "[2/2] COPY a /a", Started: at(1)},
		{Digest: copyStep, Name: "[2/2] COPY a /a", Started: at(1), Completed: at(2)},
	} {
		r.update(&client.SolveStatus{Vertexes: []*client.Vertex{v}})
	}
	vs, _, _ := r.snapshot()
	for _, v := range vs {
		if v.Digest == copyStep.String() && (len(v.Inputs) != 1 || v.Inputs[0] != from.String()) {
			t.Fatalf("COPY inputs = %v, want [%s]", v.Inputs, from)
		}
	}
}

// TestRecorderRunningSteps: update names a step once, when BuildKit starts
// to execute it; cache loads, the lazy pulls of cached steps (no inputs)
// and bookkeeping vertices are no runs.
func TestRecorderRunningSteps(t *testing.T) {
	d := func(s string) digest.Digest { return digest.FromString(s) }
	in := []digest.Digest{d("base")}
	tests := []struct {
		name    string
		updates [][]*client.Vertex
		want    []string
	}{
		{"executed", [][]*client.Vertex{
			{{Digest: d("run"), Name: "[2/3] RUN make", Inputs: in}},
			{{Digest: d("run"), Name: "[2/3] RUN make", Inputs: in, Started: at(1)}},
			{{Digest: d("run"), Name: "[2/3] RUN make", Inputs: in, Started: at(1), Completed: at(2)}},
		}, []string{"[2/3] RUN make"}},
		{"started and done in one update", [][]*client.Vertex{
			{{Digest: d("run"), Name: "[2/3] RUN make", Inputs: in, Started: at(1), Completed: at(1)}},
		}, []string{"[2/3] RUN make"}},
		{"cache load", [][]*client.Vertex{
			{{Digest: d("run"), Name: "[2/3] RUN make", Inputs: in, Started: at(1), Cached: true}},
			{{Digest: d("run"), Name: "[2/3] RUN make", Inputs: in, Started: at(1), Completed: at(1), Cached: true}},
		}, nil},
		{"lazy pull of a cached step", [][]*client.Vertex{
			{{Digest: d("run"), Name: "[2/3] RUN make", Inputs: in, Started: at(1), Completed: at(1), Cached: true}},
			{{Digest: d("run"), Name: "[2/3] RUN make", Started: at(3)}},
			{{Digest: d("run"), Name: "[2/3] RUN make", Started: at(3), Completed: at(4)}},
		}, nil},
		{"failed cache load, then run", [][]*client.Vertex{
			{{Digest: d("run"), Name: "[2/3] RUN make", Inputs: in, Started: at(1), Completed: at(1), Cached: true, Error: "lease not found"}},
			{{Digest: d("run"), Name: "[2/3] RUN make", Inputs: in, Started: at(2)}},
		}, []string{"[2/3] RUN make"}},
		{"not a step", [][]*client.Vertex{
			{{Digest: d("exp"), Name: "exporting to image", Inputs: in, Started: at(1)}},
			{{Digest: d("from"), Name: "[1/3] FROM busybox", Inputs: in, Started: at(1)}},
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRecorder()
			var got []string
			for _, vs := range tt.updates {
				got = append(got, r.update(&client.SolveStatus{Vertexes: vs})...)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("running steps = %q, want %q", got, tt.want)
			}
		})
	}
}
