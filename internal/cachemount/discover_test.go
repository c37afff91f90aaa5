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
			name: "variables and relative targets are carried; what bkcache cannot reproduce is skipped",
			dockerfile: `FROM alpine
ARG DIR=/x
WORKDIR /src
RUN --mount=type=cache,target=$DIR true
RUN --mount=type=cache,target=/y,from=alpine true
RUN --mount=type=cache,target=./rel/ true
RUN --mount=type=cache,target=/s,source=sub true
RUN --mount=type=cache,target=/z,sharing=private --mount=type=secret,id=s true
`,
			want: []Mount{
				{ID: "/x", Target: "/x", Mode: DefaultMode, Sharing: SharingShared, Stage: "stage-0", Targets: []string{"/x"}},
				{ID: "rel", Target: "rel", Mode: DefaultMode, Sharing: SharingShared, Stage: "stage-0", Targets: []string{"./rel/"}},
				{ID: "/z", Target: "/z", Mode: DefaultMode, Sharing: SharingPrivate, Stage: "stage-0", Targets: []string{"/z"}},
			},
			skipped: []string{"/y", "/s"},
		},
		{
			// One bad mount used to end discovery for the whole Dockerfile.
			name: "a mount whose flags do not resolve is skipped alone",
			dockerfile: `FROM python:3.12 AS py
RUN --mount=type=cache,target=/root/.cache/pip,uid=$APP_UID --mount=type=cache,target=/root/.cache/other true
RUN --mount=type=cache,target=/bad,sharing=bogus true
ENV GOCACHE=$HOME/.cache/go-build
RUN --mount=type=cache,target=$GOCACHE true
FROM alpine AS unused
RUN --mount=type=cache,target=/u,gid=$G true
FROM py
RUN --mount=type=cache,target=/last true
`,
			want: []Mount{
				{ID: "/root/.cache/other", Target: "/root/.cache/other", Mode: DefaultMode, Sharing: SharingShared, Stage: "py", Targets: []string{"/root/.cache/other"}},
				{ID: "/last", Target: "/last", Mode: DefaultMode, Sharing: SharingShared, Stage: "stage-2", Targets: []string{"/last"}},
			},
			skipped: []string{"/root/.cache/pip", "/bad", "$GOCACHE"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Discover([]byte(tc.dockerfile), Options{Target: tc.target})
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

// describe is a mount in one line for the real-world table: the log's
// form, then the stage and the targets as the RUN steps name them.
func describe(ms []Mount) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.String()+" @"+m.Stage+" "+strings.Join(m.Targets, ","))
	}
	return out
}

// TestDiscoverRealWorld runs Discover on the shapes of well-known
// Dockerfiles (written here, not copied): every mount is carried or
// skipped with a reason.
func TestDiscoverRealWorld(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		opt     Options
		want    []string
		skipped []string // "target: part of the reason"
		notes   []string // parts of Found.Notes
		needs   bool     // Found.NeedsPlatform
	}{
		{
			name: "go", file: "go.Dockerfile",
			want: []string{
				"/go/pkg/mod @build /go/pkg/mod",
				"/root/.cache/go-build @build /root/.cache/go-build",
			},
		},
		{
			name: "node with npm and pnpm", file: "node.Dockerfile",
			want: []string{
				"pnpm (/pnpm/store) sharing=locked @deps /pnpm/store",
				"/root/.npm @npm /root/.npm",
				"/app/.next/cache uid=1000 gid=1000 mode=0755 @stage-3 /app/.next/cache",
			},
		},
		{
			name: "node with the uid from a build arg", file: "node.Dockerfile",
			opt: Options{BuildArgs: map[string]string{"NODE_UID": "1001"}},
			want: []string{
				"pnpm (/pnpm/store) sharing=locked @deps /pnpm/store",
				"/root/.npm @npm /root/.npm",
				"/app/.next/cache uid=1001 gid=1000 mode=0755 @stage-3 /app/.next/cache",
			},
		},
		{
			name: "rust", file: "rust.Dockerfile",
			want: []string{
				"/usr/local/cargo/registry @builder /usr/local/cargo/registry",
				"/usr/local/cargo/git @builder /usr/local/cargo/git",
				"target sharing=private @builder target",
			},
		},
		{
			name: "apt with sharing=locked", file: "apt.Dockerfile",
			want: []string{
				"/var/cache/apt sharing=locked @stage-0 /var/cache/apt",
				"/var/lib/apt sharing=locked @stage-0 /var/lib/apt",
			},
		},
		{
			name: "python with pip", file: "python.Dockerfile",
			want: []string{
				"/root/.cache/pip @builder /root/.cache/pip",
				"pip-app (/home/app/.cache/pip) uid=10001 gid=10001 mode=0755 @runtime /home/app/.cache/pip",
			},
			skipped: []string{"/home/app/.cache/uv: $UV_UID"},
		},
		{
			name: "base chosen by a meta-arg", file: "variant.Dockerfile",
			want:  []string{"/var/cache/apk @base-alpine /var/cache/apk", "/final @stage-2 /final"},
			notes: []string{"COPY --from=${VARIANT}"},
		},
		{
			name: "base chosen by a build arg", file: "variant.Dockerfile",
			opt:   Options{BuildArgs: map[string]string{"VARIANT": "debian"}},
			want:  []string{"/var/cache/apt @base-debian /var/cache/apt", "/final @stage-2 /final"},
			notes: []string{"COPY --from=${VARIANT}"},
		},
		{
			name: "two platforms, ids keyed by TARGETPLATFORM", file: "mastodon.Dockerfile",
			opt: Options{Platforms: []string{"linux/amd64", "linux/arm64"}, BuildPlatform: "linux/amd64"},
			want: []string{
				"apt-cache-linux/amd64 (/var/cache/apt) sharing=locked @ruby /var/cache/apt",
				"apt-lib-linux/amd64 (/var/lib/apt) sharing=locked @ruby /var/lib/apt",
				"bundle-cache-amd64 (/usr/local/bundle/cache) @bundler /usr/local/bundle/cache/",
				"corepack-cache-linux/amd64 (/usr/local/share/.cache/corepack) sharing=locked @yarn /usr/local/share/.cache/corepack",
				"yarn-cache-linux/amd64 (/usr/local/share/.cache/yarn) sharing=locked @yarn /usr/local/share/.cache/yarn",
				"apt-cache-linux/arm64 (/var/cache/apt) sharing=locked @ruby /var/cache/apt",
				"apt-lib-linux/arm64 (/var/lib/apt) sharing=locked @ruby /var/lib/apt",
				"bundle-cache-arm64 (/usr/local/bundle/cache) @bundler /usr/local/bundle/cache/",
				"corepack-cache-linux/arm64 (/usr/local/share/.cache/corepack) sharing=locked @yarn /usr/local/share/.cache/corepack",
				"yarn-cache-linux/arm64 (/usr/local/share/.cache/yarn) sharing=locked @yarn /usr/local/share/.cache/yarn",
			},
		},
		{
			name: "the builder's platform by default", file: "mastodon.Dockerfile",
			opt: Options{BuildPlatform: "linux/arm64"},
			want: []string{
				"apt-cache-linux/arm64 (/var/cache/apt) sharing=locked @ruby /var/cache/apt",
				"apt-lib-linux/arm64 (/var/lib/apt) sharing=locked @ruby /var/lib/apt",
				"bundle-cache-arm64 (/usr/local/bundle/cache) @bundler /usr/local/bundle/cache/",
				"corepack-cache-linux/arm64 (/usr/local/share/.cache/corepack) sharing=locked @yarn /usr/local/share/.cache/corepack",
				"yarn-cache-linux/arm64 (/usr/local/share/.cache/yarn) sharing=locked @yarn /usr/local/share/.cache/yarn",
			},
		},
		{
			name: "a dry run does not know the builder's platform", file: "mastodon.Dockerfile",
			skipped: []string{
				"/var/cache/apt: $TARGETPLATFORM", "/var/lib/apt: $TARGETPLATFORM",
				"/usr/local/bundle/cache/: $TARGETARCH",
				"/usr/local/share/.cache/corepack: $TARGETPLATFORM", "/usr/local/share/.cache/yarn: $TARGETPLATFORM",
			},
			needs: true,
		},
		{
			name: "a meta-arg from the platform, unknown", file: "derived-platform.Dockerfile",
			skipped: []string{"/c: uses $ARCH (from $TARGETARCH), and the builder's platform"},
			needs:   true,
		},
		{
			name: "a meta-arg from the platform, known", file: "derived-platform.Dockerfile",
			opt:  Options{BuildPlatform: "linux/arm64"},
			want: []string{"c-arm64 (/c) @stage-0 /c"},
		},
		{
			name: "a custom frontend is named once", file: "custom-frontend.Dockerfile",
			want:  []string{"/root/.cache @stage-0 /root/.cache"},
			notes: []string{"example.com/frontends/dockerfile-plus:1 (# syntax=)"},
		},
		{
			name: "BUILDKIT_SYNTAX overrides # syntax=", file: "go.Dockerfile",
			opt: Options{BuildArgs: map[string]string{"BUILDKIT_SYNTAX": "example.com/fe"}},
			want: []string{
				"/go/pkg/mod @build /go/pkg/mod",
				"/root/.cache/go-build @build /root/.cache/go-build",
			},
			notes: []string{"frontend example.com/fe"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dt, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			f, err := Discover(dt, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(f.Mounts); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("mounts:\n got %q\nwant %q", got, tc.want)
			}
			if len(f.Skipped) != len(tc.skipped) {
				t.Errorf("skipped %+v, want %q", f.Skipped, tc.skipped)
			}
			for i, s := range f.Skipped {
				if i < len(tc.skipped) {
					target, reason, _ := strings.Cut(tc.skipped[i], ": ")
					if s.Target != target || !strings.Contains(s.Reason, reason) {
						t.Errorf("skipped %+v, want %q", s, tc.skipped[i])
					}
				}
			}
			if len(f.Notes) != len(tc.notes) {
				t.Errorf("notes %q, want %q", f.Notes, tc.notes)
			}
			for i, n := range tc.notes {
				if i < len(f.Notes) && !strings.Contains(f.Notes[i], n) {
					t.Errorf("note %q, want %q", f.Notes[i], n)
				}
			}
			if f.NeedsPlatform != tc.needs {
				t.Errorf("NeedsPlatform = %v", f.NeedsPlatform)
			}
		})
	}
}

func TestDiscoverErrors(t *testing.T) {
	for _, tc := range []struct{ name, dockerfile, target, want string }{
		{"no FROM", "RUN true\n", "", "parsing Dockerfile"},
		{"unknown target", "FROM alpine AS a\n", "b", `target stage "b" not found`},
		{"from= with a variable", "FROM alpine\nRUN --mount=type=cache,from=$X,target=/x true\n", "", "parsing Dockerfile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Discover([]byte(tc.dockerfile), Options{Target: tc.target})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// A custom frontend whose syntax BuildKit's parser cannot read is said
// once, and is not an error: the build may well succeed.
func TestDiscoverUnreadableFrontend(t *testing.T) {
	f, err := Discover([]byte("# syntax=example.com/yaml-frontend\nstages:\n  - from: alpine\n"), Options{})
	if err != nil || len(f.Notes) != 1 || !strings.Contains(f.Notes[0], "cannot read") || len(f.Mounts) != 0 {
		t.Fatalf("found %+v, err %v", f, err)
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
		found, err := Discover(dockerfile, Options{Target: target, Platforms: []string{"linux/amd64", "linux/arm/v7"}})
		if err != nil {
			return
		}
		keys := map[string]bool{}
		for _, m := range found.Mounts {
			if m.ID == "" || m.Target == "" || m.Target == "/" || len(m.Targets) == 0 {
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
