package buildjob

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

var (
	fixturesOnce              sync.Once
	staticExe, dynamicExe     string
	fixturesErr, dynamicError error
)

// helperFixtures builds two tiny Linux programs for this machine: a
// static one (CGO_ENABLED=0) and a dynamically linked one (cgo), as a
// go build on a machine with a C compiler gives.
func helperFixtures(t *testing.T) (static, dynamic string) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the fixtures are Linux executables")
	}
	fixturesOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bkcache-helperbin-")
		if err != nil {
			fixturesErr = err
			return
		}
		build := func(name, src, cgo string) (string, error) {
			d := filepath.Join(dir, name)
			if err := os.MkdirAll(d, 0o755); err != nil {
				return "", err
			}
			if err := os.WriteFile(filepath.Join(d, "go.mod"), []byte("module "+name+"\n"), 0o644); err != nil {
				return "", err
			}
			if err := os.WriteFile(filepath.Join(d, "main.go"), []byte(src), 0o644); err != nil {
				return "", err
			}
			out := filepath.Join(dir, name+".bin")
			cmd := exec.Command("go", "build", "-o", out, ".")
			cmd.Dir, cmd.Env = d, append(os.Environ(), "CGO_ENABLED="+cgo)
			if b, err := cmd.CombinedOutput(); err != nil {
				return "", errors.New(string(b))
			}
			return out, nil
		}
		staticExe, fixturesErr = build("static", "package main\nfunc main() {}\n", "0")
		dynamicExe, dynamicError = build("dynamic", "package main\nimport \"C\"\nfunc main() {}\n", "1")
	})
	if fixturesErr != nil {
		t.Fatal(fixturesErr)
	}
	if dynamicError != nil {
		t.Skipf("no cgo here to build a dynamic executable: %v", dynamicError)
	}
	return staticExe, dynamicExe
}

func copyFile(t *testing.T, src, dst string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestCheckHelper(t *testing.T) {
	static, dynamic := helperFixtures(t)
	text := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(text, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	for _, tc := range []struct {
		name, path, arch, want string
	}{
		{"static", static, runtime.GOARCH, ""},
		{"dynamic", dynamic, runtime.GOARCH, "dynamically linked"},
		{"another architecture", static, other, "is built for"},
		{"not an executable", text, runtime.GOARCH, "not a Linux executable"},
		{"missing", filepath.Join(t.TempDir(), "none"), runtime.GOARCH, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkHelper(tc.path, tc.arch)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestHelperFinder: a bkcache built with cgo is never sent into the
// builder; a static helper is found, or built once, or the one warning
// says how to fix it.
func TestHelperFinder(t *testing.T) {
	static, dynamic := helperFixtures(t)
	linux := ocispecs.Platform{OS: "linux", Architecture: runtime.GOARCH}
	sibling := "bkcache-linux-" + runtime.GOARCH
	for _, tc := range []struct {
		name     string
		exe      string // fixture copied as the running bkcache
		sibling  bool   // a static dist/ binary beside it
		env      string // BKCACHE_MOUNT_HELPER: "static" or "dynamic"
		build    error  // what building returns; nil builds the static fixture
		noGo     bool   // no way to build
		platform ocispecs.Platform
		want     string // "exe", "sibling", "env", "built", or an error part
		builds   int
	}{
		{name: "static binary is its own helper", exe: static, want: "exe"},
		{name: "a static dist/ binary first", exe: dynamic, sibling: true, want: "sibling"},
		{name: "BKCACHE_MOUNT_HELPER first", exe: static, sibling: true, env: "static", want: "env"},
		{name: "a dynamic BKCACHE_MOUNT_HELPER is refused", exe: static, env: "dynamic", want: "BKCACHE_MOUNT_HELPER: "},
		{name: "a dynamic binary builds a static helper once", exe: dynamic, want: "built", builds: 1},
		{name: "building fails: how to fix it", exe: dynamic, build: errors.New("no Go toolchain on PATH"), want: "CGO_ENABLED=0 go install github.com/bkcache/bkcache@latest", builds: 1},
		{name: "no way to build: how to fix it", exe: dynamic, noGo: true, want: "this bkcache: "},
		{name: "not a linux builder", exe: static, platform: ocispecs.Platform{OS: "windows", Architecture: "amd64"}, want: "cache mounts need a linux builder"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			exe := copyFile(t, tc.exe, filepath.Join(dir, "dist", "bkcache"))
			if tc.sibling {
				copyFile(t, static, filepath.Join(dir, "dist", sibling))
			}
			env := map[string]string{}
			switch tc.env {
			case "static":
				env["BKCACHE_MOUNT_HELPER"] = copyFile(t, static, filepath.Join(dir, "env", "helper"))
			case "dynamic":
				env["BKCACHE_MOUNT_HELPER"] = copyFile(t, dynamic, filepath.Join(dir, "env", "helper"))
			}
			builds := 0
			f := &helperFinder{
				getenv: func(k string) string { return env[k] }, exe: exe, cacheDir: filepath.Join(dir, "cache"),
				build: func(_ context.Context, out, arch string) error {
					builds++
					if tc.build != nil {
						return tc.build
					}
					copyFile(t, static, out)
					return nil
				},
				infof: t.Logf,
			}
			if tc.noGo {
				f.build = nil
			}
			p := linux
			if tc.platform.OS != "" {
				p = tc.platform
			}
			got, err := f.find(p)
			// A second job finds what the first built.
			if err == nil {
				if again, err := f.find(p); err != nil || again != got {
					t.Errorf("second find: %s, %v", again, err)
				}
			}
			switch tc.want {
			case "exe", "sibling", "env", "built":
				want := map[string]string{"exe": exe, "sibling": filepath.Join(dir, "dist", sibling), "env": env["BKCACHE_MOUNT_HELPER"]}[tc.want]
				if tc.want == "built" {
					if err != nil || !strings.HasPrefix(got, f.cacheDir) || checkHelper(got, runtime.GOARCH) != nil {
						t.Fatalf("got %s, %v; want a static helper in %s", got, err, f.cacheDir)
					}
				} else if err != nil || got != want {
					t.Fatalf("got %s, %v; want %s", got, err, want)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %s, %v; want an error with %q", got, err, tc.want)
				}
			}
			if builds != tc.builds {
				t.Errorf("%d builds, want %d", builds, tc.builds)
			}
		})
	}
}

// TestGoBuildHelper builds the real helper from this checkout, as a
// development build of bkcache with cgo does on first use.
func TestGoBuildHelper(t *testing.T) {
	if testing.Short() {
		t.Skip("builds bkcache")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no Go toolchain")
	}
	out := filepath.Join(t.TempDir(), "bkcache-linux-"+runtime.GOARCH)
	if err := goBuildHelper(context.Background(), out, runtime.GOARCH); err != nil {
		t.Fatal(err)
	}
	if err := checkHelper(out, runtime.GOARCH); err != nil {
		t.Fatal(err)
	}
}

// TestHelperBuildRemovesOlder: building the helper of a new bkcache
// removes the helpers older bkcache builds left; one another bkcache
// wrote since the build started, and what is not a helper, stay.
func TestHelperBuildRemovesOlder(t *testing.T) {
	static, dynamic := helperFixtures(t)
	dir := t.TempDir()
	exe := copyFile(t, dynamic, filepath.Join(dir, "dist", "bkcache"))
	root := filepath.Join(dir, "cache", "bkcache-mount-helper")
	arch := runtime.GOARCH
	old := []string{"0123456789abcdef", "fedcba9876543210"}
	for _, k := range old {
		copyFile(t, static, filepath.Join(root, k, "bkcache-linux-"+arch))
		past := time.Now().Add(-48 * time.Hour)
		if err := os.Chtimes(filepath.Join(root, k), past, past); err != nil {
			t.Fatal(err)
		}
	}
	const concurrent = "00000000000000aa" // another bkcache's, written during the build
	notHelper := filepath.Join(root, "notes")
	if err := os.MkdirAll(notHelper, 0o755); err != nil {
		t.Fatal(err)
	}
	f := &helperFinder{
		getenv: func(string) string { return "" }, exe: exe, cacheDir: filepath.Join(dir, "cache"),
		build: func(_ context.Context, out, arch string) error {
			copyFile(t, static, filepath.Join(root, concurrent, "bkcache-linux-"+arch))
			copyFile(t, static, out)
			return nil
		},
		infof: t.Logf,
	}
	got, err := f.find(ocispecs.Platform{OS: "linux", Architecture: arch})
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Base(filepath.Dir(got))
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	want := []string{concurrent, key, "notes"}
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
}
