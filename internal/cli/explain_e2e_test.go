package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bkcache/bkcache/buildkit"
	"github.com/bkcache/bkcache/internal/buildjob"
	"github.com/bkcache/bkcache/internal/explain"
	"github.com/bkcache/bkcache/internal/mountstore"
	"github.com/bkcache/bkcache/internal/testenv"
)

// explainRow is one cause of a miss, on the real buildkitd: a first build
// exports the cache and its record, change() changes one thing, and a
// second build on a fresh builder must name exactly that thing.
type explainRow struct {
	name  string
	need  []string          // more of the test environment than buildkit and registry
	files map[string]string // the context, Dockerfile included; %BASE% is the base image
	args  []string          // flags of both builds; %CACHE% is the local cache directory, %NAME% a fresh name
	// change changes one thing between the builds; it returns the second
	// build's flags, nil for the same as the first's.
	change func(t *testing.T, r *explainCase) []string
	// want are the causes the second build logs ("why it missed: …"), in
	// any order; the cache-miss-reason output is one of them. Empty: no
	// miss, no output.
	want []string
}

type explainCase struct {
	ctxDir, cacheDir string
	base             string
}

func (c *explainCase) write(t *testing.T, name, body string) {
	t.Helper()
	p := filepath.Join(c.ctxDir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(body, "%BASE%", c.base)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// whyLines are the causes a build logged.
func whyLines(stderr string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if _, why, ok := strings.Cut(l, "why it missed: "); ok {
			out = append(out, why)
		}
	}
	return out
}

func missReason(stdout string) string {
	for _, l := range strings.Split(stdout, "\n") {
		if v, ok := strings.CutPrefix(l, "cache-miss-reason: "); ok {
			return v
		}
	}
	return ""
}

// pushBase builds a one-file image and pushes it to ref.
func pushBase(t *testing.T, addr, base, ref, content string) {
	t.Helper()
	dir := t.TempDir()
	df := fmt.Sprintf("FROM %s\nRUN echo %s > /base.txt\n", base, content)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := buildkit.Build(ctx, buildkit.Request{
		Builder:  addr,
		Progress: "quiet",
		Build:    buildkit.BuildOptions{Context: dir, Tags: []string{ref}, Push: true},
	}, buildkit.WithProgressOutput(&bytes.Buffer{})); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
}

func TestE2EExplainMisses(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry")
	const secretValue = "npm_AbCdEfGhIjKlMnOpQrStUv0123"
	rows := []explainRow{
		{
			name:  "nothing changed",
			files: map[string]string{"Dockerfile": "FROM %BASE%\nCOPY a.txt /a.txt\nRUN cat /a.txt\n", "a.txt": "a"},
		},
		{
			name:  "a context file changed",
			files: map[string]string{"Dockerfile": "FROM %BASE%\nCOPY a.txt /a.txt\nRUN cat /a.txt\n", "a.txt": "a"},
			change: func(t *testing.T, c *explainCase) []string {
				c.write(t, "a.txt", "changed")
				return nil
			},
			want: []string{"COPY a.txt /a.txt: context file changed a.txt"},
		},
		{
			name:  "a file a RUN bind-mounts changed",
			files: map[string]string{"Dockerfile": "FROM %BASE%\nRUN --mount=type=bind,source=a.txt,target=/a.txt cat /a.txt\n", "a.txt": "a"},
			change: func(t *testing.T, c *explainCase) []string {
				c.write(t, "a.txt", "changed")
				return nil
			},
			want: []string{"RUN --mount=type=bind,source=a.txt,target=/a.txt cat /a.txt: context file changed a.txt"},
		},
		{
			name: ".dockerignore lets a new file in; an ignored one changes nothing",
			files: map[string]string{
				"Dockerfile": "FROM %BASE%\nCOPY . /src\nRUN ls /src\n", ".dockerignore": "*.log\n",
				"a.txt": "a", "debug.log": "1",
			},
			change: func(t *testing.T, c *explainCase) []string {
				c.write(t, "debug.log", "2")
				c.write(t, "stamp/build-time", "now")
				return nil
			},
			want: []string{"COPY . /src: context file added stamp/build-time"},
		},
		{
			name:  "a build-arg changed",
			files: map[string]string{"Dockerfile": "FROM %BASE%\nARG VERSION\nRUN echo $VERSION\n"},
			args:  []string{"--build-arg", "VERSION=1.0"},
			change: func(t *testing.T, c *explainCase) []string {
				return []string{"--build-arg", "VERSION=1.1"}
			},
			want: []string{`RUN echo 1.1: build-arg changed: VERSION "1.0" → "1.1"`},
		},
		{
			name:  "a secret build-arg changed",
			files: map[string]string{"Dockerfile": "FROM %BASE%\nARG NPM_TOKEN\nRUN echo installing\n"},
			args:  []string{"--build-arg", "NPM_TOKEN=npm_first0000000000000000000"},
			change: func(t *testing.T, c *explainCase) []string {
				return []string{"--build-arg", "NPM_TOKEN=" + secretValue}
			},
			want: []string{"RUN echo installing: build-arg changed: NPM_TOKEN *** (secret, hash "},
		},
		{
			name:  "the base image moved",
			files: map[string]string{"Dockerfile": "FROM %BASE%\nRUN echo on-base\n"},
			change: func(t *testing.T, c *explainCase) []string {
				pushBase(t, testenv.NewBuildkitd(t), env.BaseImage, c.base, "second")
				return nil
			},
			want: []string{"base image %BASE% moved (sha256:"},
		},
		{
			name:  "an instruction was edited",
			files: map[string]string{"Dockerfile": "FROM %BASE%\nRUN echo one\n"},
			change: func(t *testing.T, c *explainCase) []string {
				c.write(t, "Dockerfile", "FROM %BASE%\nRUN echo two\n")
				return nil
			},
			want: []string{`instruction edited: "RUN echo one" → "RUN echo two"`},
		},
		{
			name: "the platform changed",
			// linux/386 runs on the amd64 worker without emulation; a COPY
			// alone would not do: its cache key leaves the platform out.
			files: map[string]string{"Dockerfile": "FROM %BASE%\nRUN echo platform\n"},
			args:  []string{"--platform", "linux/amd64"},
			change: func(t *testing.T, c *explainCase) []string {
				// The platform is part of the scope's name: read the amd64 one.
				return []string{"--platform", "linux/386", "--cache-from", "type=local,src=" + filepath.Join(c.cacheDir, "buildkit-linux-amd64_main")}
			},
			want: []string{"platform changed (linux/amd64 → linux/386)"},
		},
		{
			name: "mode=min kept only the final stage",
			files: map[string]string{
				"Dockerfile": "FROM %BASE% AS build\nRUN echo built > /out\nFROM %BASE%\nCOPY a.txt /a.txt\nCOPY --from=build /out /out\n",
				"a.txt":      "a",
			},
			args: []string{"--cache", "type=local,dest=%CACHE%,mode=min"},
			change: func(t *testing.T, c *explainCase) []string {
				c.write(t, "a.txt", "changed")
				return nil
			},
			want: []string{
				"COPY a.txt /a.txt: context file changed a.txt",
				"RUN echo built > /out: same step as in the record of local %CACHE%/buildkit_main, but its cache was not imported: the export was mode=min, which keeps only the final stage's cache",
			},
		},
		{
			name:  "the cache was evicted but not the record",
			files: map[string]string{"Dockerfile": "FROM %BASE%\nRUN echo evicted\n"},
			change: func(t *testing.T, c *explainCase) []string {
				if err := os.RemoveAll(filepath.Join(c.cacheDir, "buildkit_main")); err != nil {
					t.Fatal(err)
				}
				return nil
			},
			want: []string{"RUN echo evicted: same step as in the record of local %CACHE%/buildkit_main, but its cache was not imported: an evicted blob, or the cache was exported to another scope"},
		},
		{
			name:  "the BuildKit version changed",
			files: map[string]string{"Dockerfile": "FROM %BASE%\nRUN echo version\n"},
			change: func(t *testing.T, c *explainCase) []string {
				// One buildkitd version is installed: stand for an older
				// builder by rewriting the record's version, and evict the
				// cache as an upgrade's new keys would.
				setRecordVersion(t, filepath.Join(c.cacheDir, "buildkit_main"), "v0.0.1")
				if err := os.RemoveAll(filepath.Join(c.cacheDir, "buildkit_main")); err != nil {
					t.Fatal(err)
				}
				return nil
			},
			want: []string{"BuildKit version changed (v0.0.1 → "},
		},
	}
	for _, store := range []struct{ name, need, line string }{
		{"registry", "registry", "type=registry,ref=" + env.Registry + "/bkcache-explain/%NAME%"},
		{"s3", "s3", "type=s3,bucket=" + testenv.Get().S3Bucket + ",region=" + testenv.Get().S3Region + ",endpoint_url=" + testenv.Get().S3Endpoint +
			",use_path_style=true,access_key_id=" + testenv.Get().S3AccessKey + ",secret_access_key=" + testenv.Get().S3SecretKey + ",prefix=%NAME%/"},
		{"azblob", "azure", "type=azblob,account_url=" + testenv.Get().AzureAccountURL + ",account_name=" + testenv.Get().AzureAccountName +
			",secret_access_key=" + testenv.Get().AzureAccountKey + ",prefix=%NAME%/"},
	} {
		rows = append(rows, explainRow{
			name:  "a context file changed, in the " + store.name + " store",
			need:  []string{store.need},
			files: map[string]string{"Dockerfile": "FROM %BASE%\nCOPY a.txt /a.txt\nRUN cat /a.txt\n", "a.txt": "a"},
			args:  []string{"--cache", store.line},
			change: func(t *testing.T, c *explainCase) []string {
				c.write(t, "a.txt", "changed")
				return nil
			},
			want: []string{"COPY a.txt /a.txt: context file changed a.txt"},
		})
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			if len(row.need) > 0 {
				testenv.Require(t, row.need...)
			}
			c := &explainCase{ctxDir: t.TempDir(), cacheDir: filepath.Join(t.TempDir(), "cache"), base: env.BaseImage}
			if strings.Contains(row.name, "base image") {
				c.base = env.Registry + "/bkcache/explain-base-" + testenv.RandomHex(6) + ":latest"
				pushBase(t, testenv.NewBuildkitd(t), env.BaseImage, c.base, "first")
			}
			for name, body := range row.files {
				c.write(t, name, body)
			}
			fresh := "explain-" + testenv.RandomHex(6)
			for i, a := range row.args {
				row.args[i] = strings.NewReplacer("%CACHE%", c.cacheDir, "%NAME%", fresh).Replace(a)
			}
			code, _, stderr, _ := cliBuild(t, testenv.NewBuildkitd(t), c.cacheDir, c.ctxDir, row.args...)
			if code != 0 {
				t.Fatalf("first build: exit %d\n%s", code, stderr)
			}
			// The scope's first build: nothing to compare with, and the
			// scopes tried are named.
			if len(row.args) == 0 || strings.HasPrefix(row.args[0], "--build-arg") {
				want := "nothing to compare with: no build record in the scopes tried (local " + filepath.Join(c.cacheDir, "buildkit_main") + ")"
				if got := whyLines(stderr); len(got) != 1 || got[0] != want {
					t.Errorf("first build's causes %q, want %q", got, want)
				}
			}
			extra := row.args
			if row.change != nil {
				if flags := row.change(t, c); flags != nil {
					extra = flags
				}
			}
			code, stdout, stderr, _ := cliBuild(t, testenv.NewBuildkitd(t), c.cacheDir, c.ctxDir, extra...)
			if code != 0 {
				t.Fatalf("second build: exit %d\n%s", code, stderr)
			}
			var want []string
			for _, w := range row.want {
				w = strings.ReplaceAll(w, "%BASE%", c.base)
				want = append(want, strings.ReplaceAll(w, "%CACHE%", c.cacheDir))
			}
			got := whyLines(stderr)
			if len(got) != len(want) {
				t.Fatalf("causes:\n%s\nwant:\n%s\n\nlog:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), stderr)
			}
			for _, w := range want {
				if !slices.ContainsFunc(got, func(g string) bool {
					return g == w || (strings.HasSuffix(w, " ") || strings.HasSuffix(w, ":")) && strings.HasPrefix(g, w)
				}) {
					t.Errorf("no cause %q among:\n%s", w, strings.Join(got, "\n"))
				}
			}
			reason := missReason(stdout)
			if (len(got) == 0) != (reason == "") || (reason != "" && !slices.Contains(got, reason)) {
				t.Errorf("cache-miss-reason = %q, want one of the causes %q", reason, got)
			}
			// `bkcache explain` compares the same two records, now both in
			// the store, and names the same causes.
			if !slices.Contains(extra, "--cache-from") {
				var flags []string
				for i := 0; i+1 < len(extra); i += 2 {
					if extra[i] == "--cache" || extra[i] == "--platform" {
						flags = append(flags, extra[i], extra[i+1])
					}
				}
				code, out, errOut := cliExplain(t, c.cacheDir, flags...)
				if code != 0 {
					t.Fatalf("explain: exit %d\n%s", code, errOut)
				}
				if ex := whyLines(out); !slices.Equal(ex, got) {
					t.Errorf("bkcache explain names:\n%s\nthe build named:\n%s", strings.Join(ex, "\n"), strings.Join(got, "\n"))
				}
				if len(got) == 0 && !strings.Contains(out, "no step missed the cache") && !strings.Contains(out, "no earlier build record") {
					t.Errorf("bkcache explain:\n%s", out)
				}
			}
			if strings.Contains(stdout+stderr, secretValue) {
				t.Errorf("the secret build-arg reached the output")
			}
			if b, err := os.ReadFile(filepath.Join(c.cacheDir, "buildkit_main.mounts", mountstore.ArchiveName(buildjob.RecordKey))); err == nil && bytes.Contains(b, []byte(secretValue)) {
				t.Errorf("the secret build-arg is in the record")
			}
		})
	}
}

// cliExplain runs `bkcache explain` for refs/heads/main with the local
// cache in cacheDir.
func cliExplain(t *testing.T, cacheDir string, extra ...string) (int, string, string) {
	t.Helper()
	env := map[string]string{"BKCACHE_CACHE_DIR": cacheDir}
	var out, errb bytes.Buffer
	code := Main(context.Background(), Env{
		Args:     append([]string{"explain", "--ref", "refs/heads/main"}, extra...),
		Getenv:   func(k string) string { return env[k] },
		ReadFile: os.ReadFile,
		Stdout:   &out,
		Stderr:   &errb,
	})
	return code, out.String(), errb.String()
}

// setRecordVersion rewrites the BuildKit version in the record of the
// local cache at dir.
func setRecordVersion(t *testing.T, dir, version string) {
	t.Helper()
	p := filepath.Join(dir+".mounts", mountstore.ArchiveName(buildjob.RecordKey))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	r, err := explain.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	r.BuildKit = version
	if b, err = explain.Encode(r); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
