package cachemount

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestDiscover(t *testing.T) {
	tests := []struct {
		name       string
		dockerfile string
		target     string
		want       []Mount
		skipped    []string
	}{
		{
			name: "id, sharing, uid under a user",
			dockerfile: `FROM alpine
RUN --mount=type=cache,id=gomod,target=/go/pkg/mod,sharing=locked go mod download
USER 1000
RUN --mount=type=cache,target=/home/u/.cache,uid=1000 true
`,
			want: []Mount{
				{ID: "gomod", Target: "/go/pkg/mod", Mode: DefaultMode, Sharing: SharingLocked, Stage: "stage-0", Targets: []string{"/go/pkg/mod"}},
				{ID: "/home/u/.cache", Target: "/home/u/.cache", Owned: true, UID: 1000, Mode: DefaultMode, Sharing: SharingShared, Stage: "stage-0", Targets: []string{"/home/u/.cache"}},
			},
		},
		{
			name: "only the stages the target needs",
			dockerfile: `FROM alpine AS deps
RUN --mount=type=cache,target=/root/.npm npm ci
FROM alpine AS unused
RUN --mount=type=cache,target=/unused true
FROM alpine AS tools
RUN --mount=type=cache,target=/tools,mode=0700,gid=5 true
FROM deps AS build
COPY --from=tools /x /x
RUN --mount=type=cache,target=/root/.npm/ npm run build
FROM alpine
RUN --mount=type=cache,target=/final true
`,
			target: "BUILD",
			want: []Mount{
				{ID: "/root/.npm", Target: "/root/.npm", Mode: DefaultMode, Sharing: SharingShared, Stage: "deps", Targets: []string{"/root/.npm", "/root/.npm/"}},
				{ID: "/tools", Target: "/tools", Owned: true, GID: 5, Mode: 0o700, Sharing: SharingShared, Stage: "tools", Targets: []string{"/tools"}},
			},
		},
		{
			name: "one id with two uids is two caches; a mount from= a stage pulls it in",
			dockerfile: `FROM alpine AS src
RUN --mount=type=cache,id=c,target=/a true
FROM alpine
RUN --mount=type=bind,from=src,target=/src true
RUN --mount=type=cache,id=c,target=/b,uid=1 true
RUN --mount=type=cache,id=c,target=/c true
`,
			want: []Mount{
				{ID: "c", Target: "/a", Mode: DefaultMode, Sharing: SharingShared, Stage: "src", Targets: []string{"/a", "/c"}},
				{ID: "c", Target: "/b", Owned: true, UID: 1, Mode: DefaultMode, Sharing: SharingShared, Stage: "stage-1", Targets: []string{"/b"}},
			},
		},
		{
			name: "what bkcache cannot reproduce is skipped",
			dockerfile: `FROM alpine
ARG DIR=/x
RUN --mount=type=cache,target=$DIR true
RUN --mount=type=cache,target=/y,from=alpine true
RUN --mount=type=cache,target=rel true
RUN --mount=type=cache,target=/z,sharing=private --mount=type=secret,id=s true
`,
			want: []Mount{
				{ID: "/z", Target: "/z", Mode: DefaultMode, Sharing: SharingPrivate, Stage: "stage-0", Targets: []string{"/z"}},
			},
			skipped: []string{"$DIR", "/y", "rel"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Discover([]byte(tc.dockerfile), tc.target)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(f.Mounts, tc.want) {
				t.Errorf("mounts:\n got %+v\nwant %+v", f.Mounts, tc.want)
			}
			var skipped []string
			for _, s := range f.Skipped {
				skipped = append(skipped, s.Target)
				if s.Reason == "" {
					t.Errorf("skipped %s without a reason", s.Target)
				}
			}
			if !reflect.DeepEqual(skipped, tc.skipped) {
				t.Errorf("skipped = %q, want %q", skipped, tc.skipped)
			}
		})
	}
}

func TestDiscoverErrors(t *testing.T) {
	for _, tc := range []struct{ name, dockerfile, target, want string }{
		{"no FROM", "RUN true\n", "", "parsing Dockerfile"},
		{"unknown target", "FROM alpine AS a\n", "b", `target stage "b" not found`},
		{"bad mount", "FROM alpine\nRUN --mount=type=cache,sharing=bogus,target=/x true\n", "", "parsing Dockerfile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Discover([]byte(tc.dockerfile), tc.target)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestKey(t *testing.T) {
	a := Mount{ID: "/root/.cache/go-build"}
	b := a
	b.Owned, b.UID = true, 1000
	if a.Key() == b.Key() {
		t.Errorf("uid does not change the key: %s", a.Key())
	}
	if !strings.HasPrefix(a.Key(), "root-.cache-go-build-") {
		t.Errorf("key = %s", a.Key())
	}
	if got := a.CacheID(""); got != "//root/.cache/go-build" {
		t.Errorf("CacheID = %q", got)
	}
}

func TestSelect(t *testing.T) {
	found := []Mount{{ID: "a"}, {ID: "b"}}
	for _, tc := range []struct {
		name    string
		want    []string
		ids     []string
		unknown []string
	}{
		{"default", nil, []string{"a", "b"}, nil},
		{"auto", []string{Auto}, []string{"a", "b"}, nil},
		{"none", []string{None}, nil, nil},
		{"list", []string{"b", "c"}, []string{"b"}, []string{"c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sel, unknown := Select(found, tc.want)
			var ids []string
			for _, m := range sel {
				ids = append(ids, m.ID)
			}
			if !reflect.DeepEqual(ids, tc.ids) || !reflect.DeepEqual(unknown, tc.unknown) {
				t.Errorf("got %q %q, want %q %q", ids, unknown, tc.ids, tc.unknown)
			}
		})
	}
}

func FuzzDiscover(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.Dockerfile"))
	for _, s := range seeds {
		dt, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(dt, "")
	}
	f.Add([]byte("FROM a AS b\nFROM b\nCOPY --from=0 / /\nRUN --mount=type=cache,target=/c,uid=1,gid=2,mode=0700 x\n"), "")
	f.Fuzz(func(t *testing.T, dockerfile []byte, target string) {
		found, err := Discover(dockerfile, target)
		if err != nil {
			return
		}
		keys := map[string]bool{}
		for _, m := range found.Mounts {
			if m.ID == "" || !strings.HasPrefix(m.Target, "/") || len(m.Targets) == 0 {
				t.Fatalf("incomplete mount %+v", m)
			}
			if keys[m.Key()] {
				t.Fatalf("duplicate key %s", m.Key())
			}
			keys[m.Key()] = true
		}
	})
}

func TestUsedBy(t *testing.T) {
	m := Mount{Targets: []string{"/c", "/root/.npm/"}}
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"[stage-0 2/3] RUN --mount=type=cache,target=/c make", true},
		{"[2/3] RUN --mount=type=cache,id=x,target=/c,uid=1 make", true},
		{"[2/3] RUN --mount=type=cache,dst=/root/.npm/ npm ci", true},
		{"[2/3] RUN --mount=type=cache,target=/cache make", false},
		{"[2/3] RUN echo target=/c", false},
		{"[2/3] RUN --mount=type=cache,target=/d make target=/c/x", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := m.UsedBy(tc.name); got != tc.want {
				t.Errorf("UsedBy = %v, want %v", got, tc.want)
			}
		})
	}
}
