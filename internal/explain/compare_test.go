package explain

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// graph is a Go-style Dockerfile as the status stream reports it:
//
//	FROM busybox@<base>
//	COPY go.mod ./
//	RUN <run>
//	COPY . .
//
// The build context's digest changes with every build (its session ID),
// and so do the digests of the steps on it; cached lists the steps hit.
type graph struct {
	session string
	base    string
	run     string
	runEnv  string // stands for the RUN's environment in its digest
	cached  map[string]bool
}

func (g graph) vertices() []BuildVertex {
	from := BuildVertex{Digest: "sha256:from-" + g.base, Name: "[1/4] FROM reg/busybox:latest@sha256:" + g.base}
	ctx := BuildVertex{Digest: "sha256:ctx-" + g.session, Name: "[internal] load build context"}
	meta := BuildVertex{Digest: "sha256:meta-" + g.session, Name: "[internal] load metadata for reg/busybox:latest"}
	cp := BuildVertex{Digest: "sha256:copy-" + g.session + g.base, Name: "[2/4] COPY go.mod ./", Inputs: []string{from.Digest, ctx.Digest}, Cached: g.cached["copy"]}
	run := BuildVertex{Digest: "sha256:run-" + g.session + g.base + g.run + g.runEnv, Name: "[3/4] RUN " + g.run, Inputs: []string{cp.Digest}, Cached: g.cached["run"]}
	all := BuildVertex{Digest: "sha256:all-" + run.Digest, Name: "[4/4] COPY . .", Inputs: []string{run.Digest, ctx.Digest}, Cached: g.cached["all"]}
	imp := BuildVertex{Digest: "sha256:imp-" + g.session, Name: "importing cache manifest from local:123"}
	// The stream reports the COPY before the context it reads.
	return []BuildVertex{imp, meta, from, cp, ctx, run, all}
}

func record(g graph, mut func(*Build)) Record {
	b := Build{
		Scope:     "buildkit_main",
		BuildKit:  "v0.34.2",
		Platforms: []string{"linux/amd64"},
		Mode:      "max",
		Args:      map[string]string{"GO_VERSION": "1.26"},
		Files:     map[string]string{"go.mod": "h-mod", "main.go": "h-main", "pkg/a.go": "h-a"},
		Vertices:  g.vertices(),
		Created:   time.Unix(0, 0),
		Salt:      "salt",
	}
	if mut != nil {
		mut(&b)
	}
	return NewRecord(b)
}

var hitAll = map[string]bool{"copy": true, "run": true, "all": true}

func TestCompare(t *testing.T) {
	base := graph{session: "s1", base: "aaa", run: "go mod download", cached: hitAll}
	old := record(base, nil)
	for _, tc := range []struct {
		name string
		old  *Record // nil: old
		g    graph
		mut  func(*Build)
		want []string // kind: text
	}{
		{
			name: "all cached",
			g:    graph{session: "s2", base: "aaa", run: "go mod download", cached: hitAll},
		},
		{
			name: "a source file changed",
			g:    graph{session: "s2", base: "aaa", run: "go mod download", cached: map[string]bool{"copy": true, "run": true}},
			mut:  func(b *Build) { b.Files["main.go"] = "h-main2" },
			want: []string{"context: COPY . .: context file changed main.go"},
		},
		{
			name: "lock file changed: only the files the first missed COPY reads",
			g:    graph{session: "s2", base: "aaa", run: "go mod download"},
			mut:  func(b *Build) { b.Files["go.mod"] = "h-mod2"; b.Files["main.go"] = "h-main2" },
			want: []string{"context: COPY go.mod ./: context file changed go.mod"},
		},
		{
			name: "files added and removed",
			g:    graph{session: "s2", base: "aaa", run: "go mod download", cached: map[string]bool{"copy": true, "run": true}},
			mut: func(b *Build) {
				delete(b.Files, "pkg/a.go")
				b.Files[".timestamp"] = "t"
			},
			want: []string{"context: COPY . .: context files added .timestamp, removed pkg/a.go"},
		},
		{
			name: "build-arg in the step's text",
			old:  ptr(record(graph{session: "s1", base: "aaa", run: "echo 1.26", cached: hitAll}, nil)),
			g:    graph{session: "s2", base: "aaa", run: "echo 1.27", cached: map[string]bool{"copy": true}},
			mut:  func(b *Build) { b.Args["GO_VERSION"] = "1.27" },
			want: []string{`build-arg: RUN echo 1.27: build-arg changed: GO_VERSION "1.26" → "1.27"`},
		},
		{
			name: "build-arg only in the environment",
			g:    graph{session: "s2", base: "aaa", run: "go mod download", runEnv: "x", cached: map[string]bool{"copy": true}},
			mut:  func(b *Build) { b.Args["COMMIT"] = "0123abc" },
			want: []string{`build-arg: RUN go mod download: build-arg changed: COMMIT (unset) → "0123abc"`},
		},
		{
			name: "secret build-arg is never shown",
			old: ptr(record(graph{session: "s1", base: "aaa", run: "go mod download", cached: hitAll}, func(b *Build) {
				b.Args["NPM_TOKEN"] = "npm_AAAAbbbbCCCCdddd1234"
			})),
			g:    graph{session: "s2", base: "aaa", run: "go mod download", runEnv: "x", cached: map[string]bool{"copy": true}},
			mut:  func(b *Build) { b.Args["NPM_TOKEN"] = "npm_ZZZZyyyyXXXXwwww9876" },
			want: []string{"build-arg: RUN go mod download: build-arg changed: NPM_TOKEN *** (secret, hash "},
		},
		{
			name: "an unchanged secret build-arg is no cause",
			old: ptr(record(graph{session: "s1", base: "aaa", run: "go mod download", cached: hitAll}, func(b *Build) {
				b.Args["NPM_TOKEN"] = "npm_AAAAbbbbCCCCdddd1234"
			})),
			g:    graph{session: "s2", base: "aaa", run: "go mod download", runEnv: "x", cached: map[string]bool{"copy": true}},
			mut:  func(b *Build) { b.Args["NPM_TOKEN"] = "npm_AAAAbbbbCCCCdddd1234"; b.Args["COMMIT"] = "abc" },
			want: []string{`build-arg: RUN go mod download: build-arg changed: COMMIT (unset) → "abc"`},
		},
		{
			name: "base image moved",
			g:    graph{session: "s2", base: "bbb", run: "go mod download"},
			want: []string{"base-image: base image reg/busybox:latest moved (sha256:aaa → sha256:bbb)"},
		},
		{
			name: "instruction edited",
			g:    graph{session: "s2", base: "aaa", run: "go mod download -x", cached: map[string]bool{"copy": true}},
			want: []string{`instruction: instruction edited: "RUN go mod download" → "RUN go mod download -x"`},
		},
		{
			name: "platform changed",
			g:    graph{session: "s2", base: "ccc", run: "go mod download"},
			mut:  func(b *Build) { b.Platforms = []string{"linux/arm64"} },
			want: []string{"platform: platform changed (linux/amd64 → linux/arm64)"},
		},
		{
			name: "platform changed, same step names",
			g:    graph{session: "s2", base: "aaa", run: "go mod download"},
			mut:  func(b *Build) { b.Platforms = []string{"linux/arm64"} },
			want: []string{"platform: platform changed (linux/amd64 → linux/arm64)"},
		},
		{
			name: "same steps, cache not imported",
			g:    graph{session: "s2", base: "aaa", run: "go mod download"},
			want: []string{"cache-missing: COPY go.mod ./: same step as in the record of buildkit_main, but its cache was not imported: an evicted blob, or the cache was exported to another scope"},
		},
		{
			name: "a file a RUN bind-mounts changed",
			old:  ptr(record(graph{session: "s1", base: "aaa", run: "--mount=type=bind,source=go.sum,target=/go.sum go mod download", cached: hitAll}, nil)),
			g:    graph{session: "s2", base: "aaa", run: "--mount=type=bind,source=go.sum,target=/go.sum go mod download", cached: map[string]bool{"copy": true}},
			mut:  func(b *Build) { b.Files["go.sum"] = "h-sum2" },
			want: []string{"context: RUN --mount=type=bind,source=go.sum,target=/go.sum go mod download: context file added go.sum"},
		},
		{
			name: "context not hashed",
			g:    graph{session: "s2", base: "aaa", run: "go mod download"},
			mut:  func(b *Build) { b.Files = nil },
			want: []string{"unknown: COPY go.mod ./: same step as in the record, but the context files were not hashed in both builds: a changed file, or a cache that was not imported"},
		},
		{
			name: "same steps, mode=min",
			old:  ptr(record(base, func(b *Build) { b.Mode = "min" })),
			g:    graph{session: "s2", base: "aaa", run: "go mod download"},
			want: []string{"cache-missing: COPY go.mod ./: same step as in the record of buildkit_main, but its cache was not imported: the export was mode=min, which keeps only the final stage's cache"},
		},
		{
			name: "BuildKit version changed",
			g:    graph{session: "s2", base: "aaa", run: "go mod download"},
			mut:  func(b *Build) { b.BuildKit = "v0.35.0" },
			want: []string{"buildkit-version: BuildKit version changed (v0.34.2 → v0.35.0)"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := old
			if tc.old != nil {
				o = *tc.old
			}
			cur := record(tc.g, tc.mut)
			var got []string
			for _, c := range Compare(o, cur) {
				got = append(got, c.Kind+": "+c.Text)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("causes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) || (!strings.HasSuffix(tc.want[i], " ") && got[i] != tc.want[i]) {
					t.Errorf("cause %d:\n got %s\nwant %s", i, got[i], tc.want[i])
				}
				if strings.Contains(got[i], "npm_") {
					t.Errorf("a secret value reached the cause: %s", got[i])
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestNoRecord(t *testing.T) {
	for _, tc := range []struct {
		tried []string
		want  string
	}{
		{nil, "nothing to compare with: no cache scope was imported"},
		{[]string{"local a", "local b"}, "nothing to compare with: no build record in the scopes tried (local a, local b)"},
	} {
		if got := NoRecord(tc.tried); got.Text != tc.want || got.Kind != KindNoRecord {
			t.Errorf("NoRecord(%q) = %+v, want %q", tc.tried, got, tc.want)
		}
	}
}

func TestNewRecordMasksSecrets(t *testing.T) {
	secret := "ghp_abcdefghijklmnopqrstuvwxyz0123456789"
	r := NewRecord(Build{
		Args:     map[string]string{"GH": secret, "VERSION": "1.2"},
		Vertices: []BuildVertex{{Digest: "sha256:1", Name: "[1/2] RUN curl -H " + secret}},
	})
	b, err := Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Args["GH"].Value != "" || !got.Args["GH"].Secret || got.Args["VERSION"].Value != "1.2" {
		t.Errorf("args = %+v", got.Args)
	}
	if strings.Contains(got.Vertices[0].Name, secret) || got.Vertices[0].Name != "[1/2] RUN curl -H ***" {
		t.Errorf("name = %q", got.Vertices[0].Name)
	}
}

func TestSecretLike(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        bool
	}{
		{"GO_VERSION", "1.26", false},
		{"COMMIT_SHA", "0123456789abcdef0123456789abcdef01234567", false},
		{"NPM_TOKEN", "x", true},
		{"DB_PASSWORD", "hunter2", true},
		{"X", "ghp_abc", true},
		{"X", "AKIAIOSFODNN7EXAMPLE", true},
		{"X", "aB3dE5gH7jK9mN1pQ3sT5vW7", true},
		{"URL", "https://example.com/SomePath/Long1Enough", false},
	} {
		if got := SecretLike(tc.name, tc.value); got != tc.want {
			t.Errorf("SecretLike(%q, %q) = %v, want %v", tc.name, tc.value, got, tc.want)
		}
	}
}

// A 50-step build with a large context stays under MaxSize, and the
// folded file hashes still tell which directory changed.
func TestEncodeSize(t *testing.T) {
	for _, files := range []int{100, 5000, 20000} {
		t.Run(fmt.Sprint(files), func(t *testing.T) {
			var vs []BuildVertex
			prev := ""
			for i := range 50 {
				v := BuildVertex{Digest: fmt.Sprintf("sha256:%064d", i), Name: fmt.Sprintf("[stage-1 %d/50] RUN make step-%d --with-a-long-flag=value", i+1, i), Cached: i%2 == 0}
				if prev != "" {
					v.Inputs = []string{prev}
				}
				prev = v.Digest
				vs = append(vs, v)
			}
			mk := func(changed string) Record {
				fs := map[string]string{}
				for i := range files {
					p := fmt.Sprintf("src/module%03d/pkg%02d/file%05d.go", i%200, i%17, i)
					fs[p] = fmt.Sprintf("%016x", i)
					if p == changed {
						fs[p] = "changed"
					}
				}
				return NewRecord(Build{Vertices: vs, Files: fs})
			}
			changed := fmt.Sprintf("src/module%03d/pkg%02d/file%05d.go", 7%200, 7%17, 7)
			var recs [2]Record
			for i, c := range []string{"", changed} {
				b, err := Encode(mk(c))
				if err != nil {
					t.Fatal(err)
				}
				if len(b) > MaxSize {
					t.Fatalf("%d bytes, want at most %d", len(b), MaxSize)
				}
				t.Logf("%d files: %d bytes", files, len(b))
				if recs[i], err = Decode(b); err != nil {
					t.Fatal(err)
				}
			}
			ch := diffFiles(recs[0], recs[1])
			if len(ch) != 1 || !strings.HasPrefix(changed, ch[0].Path) || ch[0].Kind != "changed" {
				t.Errorf("changes = %+v, want one under %s", ch, changed)
			}
		})
	}
}

func TestContextSources(t *testing.T) {
	for _, tc := range []struct {
		step string
		want string
		ok   bool
	}{
		{"COPY go.mod go.sum ./", "go.mod go.sum", true},
		{"COPY --chown=1:1 --link src/ /app/", "src/", true},
		{"COPY --from=build /out /out", "", false},
		{`COPY ["a b", "c", "/d/"]`, "a b c", true},
		{"ADD . /app", ".", true},
		{"RUN make", "", false},
		{"RUN --mount=type=bind,source=go.sum,target=/x go mod download", "go.sum", true},
		{"RUN --mount=type=bind,target=/src make", ".", true},
		{"RUN --mount=type=bind,from=build,target=/x make", "", false},
		{"RUN --mount=type=cache,target=/root/.cache make", "", false},
	} {
		got, ok := contextSources(tc.step)
		if strings.Join(got, " ") != tc.want || ok != tc.ok {
			t.Errorf("contextSources(%q) = %q, %v; want %q, %v", tc.step, got, ok, tc.want, tc.ok)
		}
	}
}

// A large graph compares in well under a second, whatever missed.
func TestCompareLarge(t *testing.T) {
	mk := func(salt string, cached bool) Record {
		var vs []BuildVertex
		for i := range 2000 {
			v := BuildVertex{Digest: fmt.Sprintf("sha256:%s-%d", salt, i), Name: fmt.Sprintf("[%d/2000] RUN step %d", i+1, i), Cached: cached}
			if i == 0 {
				v = BuildVertex{Digest: "sha256:from", Name: "[1/2000] FROM img@sha256:1"}
			} else {
				v.Inputs = []string{vs[i-1].Digest}
				if i > 10 {
					v.Inputs = append(v.Inputs, vs[i-10].Digest)
				}
			}
			vs = append(vs, v)
		}
		return NewRecord(Build{Vertices: vs, Salt: "s"})
	}
	old, cur := mk("old", true), mk("new", false)
	start := time.Now()
	causes := Compare(old, cur)
	if d := time.Since(start); d > time.Second {
		t.Errorf("Compare took %s", d)
	}
	if len(causes) != 1 || causes[0].Kind != KindDefinition || causes[0].Step != "RUN step 1" {
		t.Errorf("causes = %+v, want the first RUN's definition", causes)
	}
}

// BenchmarkRecord makes, encodes and compares the record of a 50-step
// build with 2000 context files.
func BenchmarkRecord(b *testing.B) {
	var vs []BuildVertex
	for i := range 50 {
		v := BuildVertex{Digest: fmt.Sprintf("sha256:%064d", i), Name: fmt.Sprintf("[%d/50] RUN make step-%d", i+1, i)}
		if i > 0 {
			v.Inputs = []string{vs[i-1].Digest}
		}
		vs = append(vs, v)
	}
	files := map[string]string{}
	for i := range 2000 {
		files[fmt.Sprintf("pkg%02d/f%04d.go", i%40, i)] = fmt.Sprintf("%016x", i)
	}
	old := NewRecord(Build{Vertices: vs, Files: files, Salt: "s"})
	for b.Loop() {
		r := NewRecord(Build{Vertices: vs, Files: files, Salt: "s"})
		if _, err := Encode(r); err != nil {
			b.Fatal(err)
		}
		Compare(old, r)
	}
}

func TestSame(t *testing.T) {
	old := record(graph{session: "s1", base: "aaa", run: "go mod download", cached: hitAll}, nil)
	for _, tc := range []struct {
		name string
		g    graph
		mut  func(*Build)
		want bool
	}{
		{"the same build, all cached", graph{session: "s2", base: "aaa", run: "go mod download", cached: hitAll}, nil, true},
		{"a step missed", graph{session: "s2", base: "aaa", run: "go mod download", cached: map[string]bool{"copy": true}}, nil, false},
		{"a file changed", graph{session: "s2", base: "aaa", run: "go mod download", cached: hitAll}, func(b *Build) { b.Files["main.go"] = "x" }, false},
		{"an arg changed", graph{session: "s2", base: "aaa", run: "go mod download", cached: hitAll}, func(b *Build) { b.Args["X"] = "1" }, false},
		{"another base", graph{session: "s2", base: "bbb", run: "go mod download", cached: hitAll}, nil, false},
	} {
		if got := Same(old, record(tc.g, tc.mut)); got != tc.want {
			t.Errorf("%s: Same = %v, want %v", tc.name, got, tc.want)
		}
	}
}
