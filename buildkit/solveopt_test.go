package buildkit

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/buildkit/client"
)

// newContext writes a build context with a Dockerfile and returns its dir.
func newContext(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestNewSolveOptFrontendAttrs(t *testing.T) {
	dir := newContext(t)
	sub := filepath.Join(dir, "docker")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "app.Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		b    BuildOptions
		want map[string]string
	}{
		{"defaults", BuildOptions{Context: dir}, map[string]string{"filename": "Dockerfile"}},
		{"everything", BuildOptions{
			Context: dir, File: filepath.Join(sub, "app.Dockerfile"), Target: "final",
			BuildArgs: map[string]string{"A": "1", "B": ""},
			Labels:    map[string]string{"org.opencontainers.image.source": "x"},
			Platforms: []string{"linux/amd64", "linux/arm64"},
			NoCache:   true, Pull: true,
		}, map[string]string{
			"filename": "app.Dockerfile", "target": "final",
			"build-arg:A": "1", "build-arg:B": "",
			"label:org.opencontainers.image.source": "x",
			"platform":                              "linux/amd64,linux/arm64",
			"no-cache":                              "",
			"image-resolve-mode":                    "pull",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt, err := NewSolveOpt(Request{Build: tt.b})
			if err != nil {
				t.Fatal(err)
			}
			if opt.Frontend != "dockerfile.v0" {
				t.Errorf("Frontend = %q", opt.Frontend)
			}
			if !reflect.DeepEqual(opt.FrontendAttrs, tt.want) {
				t.Errorf("FrontendAttrs = %v, want %v", opt.FrontendAttrs, tt.want)
			}
			if opt.LocalMounts["context"] == nil || opt.LocalMounts["dockerfile"] == nil {
				t.Errorf("LocalMounts = %v, want context and dockerfile", opt.LocalMounts)
			}
		})
	}
}

func TestNewSolveOptCache(t *testing.T) {
	dir := newContext(t)
	imports := []client.CacheOptionsEntry{{Type: "registry", Attrs: map[string]string{"ref": "r/c:main"}}}
	exports := []client.CacheOptionsEntry{
		{Type: "local", Attrs: map[string]string{"dest": "/tmp/c", "mode": "max"}},
		{Type: "registry", Attrs: map[string]string{"ref": "r/c:pr", "ignore-error": "false"}},
	}
	opt, err := NewSolveOpt(Request{Build: BuildOptions{Context: dir}, Imports: imports, Exports: exports})
	if err != nil {
		t.Fatal(err)
	}
	wantImports := []client.CacheOptionsEntry{{Type: "registry", Attrs: map[string]string{"ref": "r/c:main"}}}
	wantExports := []client.CacheOptionsEntry{
		{Type: "local", Attrs: map[string]string{"dest": "/tmp/c", "mode": "max", "ignore-error": "true"}},
		{Type: "registry", Attrs: map[string]string{"ref": "r/c:pr", "ignore-error": "false"}},
	}
	if !reflect.DeepEqual(opt.CacheImports, wantImports) {
		t.Errorf("CacheImports = %v, want %v", opt.CacheImports, wantImports)
	}
	if !reflect.DeepEqual(opt.CacheExports, wantExports) {
		t.Errorf("CacheExports = %v, want %v", opt.CacheExports, wantExports)
	}
	// BuildKit's client writes into the attrs; the plan must not change.
	opt.CacheImports[0].Attrs["digest"] = "sha256:x"
	opt.CacheExports[0].Attrs["x"] = "y"
	if _, ok := imports[0].Attrs["digest"]; ok {
		t.Error("import attrs shared with the request")
	}
	if _, ok := exports[0].Attrs["ignore-error"]; ok {
		t.Error("export attrs shared with the request")
	}
}

func TestNewSolveOptExports(t *testing.T) {
	dir := newContext(t)
	out := t.TempDir()
	type exp struct {
		Type    string
		Attrs   map[string]string
		HasFile bool
		Dir     string
	}
	tests := []struct {
		name    string
		b       BuildOptions
		want    []exp
		wantErr string
	}{
		{"nothing", BuildOptions{}, nil, ""},
		{"tags only", BuildOptions{Tags: []string{"a:1", "a:2"}},
			[]exp{{Type: "image", Attrs: map[string]string{"name": "a:1,a:2"}}}, ""},
		{"tags and push", BuildOptions{Tags: []string{"r/a:1"}, Push: true},
			[]exp{{Type: "image", Attrs: map[string]string{"name": "r/a:1", "push": "true"}}}, ""},
		{"push without tags", BuildOptions{Push: true}, nil, "push: needs tags"},
		{"registry output takes tags", BuildOptions{Tags: []string{"r/a:1"}, Outputs: []string{"type=registry"}},
			[]exp{{Type: "image", Attrs: map[string]string{"name": "r/a:1", "push": "true"}}}, ""},
		{"image output keeps its name", BuildOptions{Tags: []string{"r/a:1"}, Outputs: []string{"type=image,name=r/b:2,push=true"}},
			[]exp{{Type: "image", Attrs: map[string]string{"name": "r/b:2", "push": "true"}}}, ""},
		{"local output", BuildOptions{Outputs: []string{"type=local,dest=" + out}},
			[]exp{{Type: "local", Attrs: map[string]string{}, Dir: out}}, ""},
		{"local and tags", BuildOptions{Tags: []string{"a:1"}, Outputs: []string{"type=local,dest=" + out}},
			[]exp{{Type: "local", Attrs: map[string]string{}, Dir: out}, {Type: "image", Attrs: map[string]string{"name": "a:1"}}}, ""},
		{"tar output", BuildOptions{Outputs: []string{"type=tar,dest=" + filepath.Join(out, "x.tar")}},
			[]exp{{Type: "tar", Attrs: map[string]string{}, HasFile: true}}, ""},
		{"oci output", BuildOptions{Outputs: []string{"type=oci,dest=" + filepath.Join(out, "x.tar")}},
			[]exp{{Type: "oci", Attrs: map[string]string{}, HasFile: true}}, ""},
		{"oci dir output", BuildOptions{Outputs: []string{"type=oci,tar=false,dest=" + out}},
			[]exp{{Type: "oci", Attrs: map[string]string{"tar": "false"}, Dir: out}}, ""},
		{"docker output", BuildOptions{Outputs: []string{`"type=docker","dest=` + filepath.Join(out, "d.tar") + `",name=a:1`}},
			[]exp{{Type: "docker", Attrs: map[string]string{"name": "a:1"}, HasFile: true}}, ""},
		{"unknown type", BuildOptions{Outputs: []string{"type=foo"}}, nil,
			`outputs: unknown type "foo" (allowed: image, registry, local, tar, oci, docker)`},
		{"missing type", BuildOptions{Outputs: []string{"dest=x"}}, nil, `outputs: "dest=x": missing type=`},
		{"local without dest", BuildOptions{Outputs: []string{"type=local"}}, nil, "type=local needs dest=<directory>"},
		{"tar to stdout", BuildOptions{Outputs: []string{"type=tar,dest=-"}}, nil, "type=tar needs dest=<file>"},
		{"image with dest", BuildOptions{Outputs: []string{"type=image,dest=x"}}, nil, "dest is not supported by type=image"},
		{"not key=value", BuildOptions{Outputs: []string{"type=local,foo"}}, nil, `field "foo" is not key=value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.b.Context = dir
			opt, err := NewSolveOpt(Request{Build: tt.b})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []exp
			for _, e := range opt.Exports {
				got = append(got, exp{Type: e.Type, Attrs: e.Attrs, HasFile: e.Output != nil, Dir: e.OutputDir})
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Exports = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestOutputFileCreatedLazily(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "sub", "image.tar")
	e, err := parseOutput("type=tar,dest=" + dest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatalf("dest exists before the build: %v", err)
	}
	w, err := e.Output(nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("x"))
	w.Close()
	if b, err := os.ReadFile(dest); err != nil || string(b) != "x" {
		t.Fatalf("dest = %q, %v", b, err)
	}
}

func TestNewSolveOptSecrets(t *testing.T) {
	dir := newContext(t)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BKCACHE_TEST_SECRET", "value")
	tests := []struct {
		name    string
		secrets []Secret
		wantErr string
	}{
		{"file", []Secret{{ID: "a", File: file}}, ""},
		{"env", []Secret{{ID: "a", Env: "BKCACHE_TEST_SECRET"}}, ""},
		{"value", []Secret{{ID: "a", Value: []byte("s3cret")}}, ""},
		{"all kinds", []Secret{{ID: "a", File: file}, {ID: "b", Env: "BKCACHE_TEST_SECRET"}, {ID: "c", Value: []byte("s3cret")}}, ""},
		{"no source", []Secret{{ID: "x"}}, `secrets: id "x": give exactly one source`},
		{"two sources", []Secret{{ID: "x", Value: []byte("s3cret"), File: file}}, `secrets: id "x": give exactly one source`},
		{"missing id", []Secret{{File: file}}, "has no id"},
		{"unset env", []Secret{{ID: "a", Env: "BKCACHE_TEST_UNSET_VAR"}}, `secrets: id "a": environment variable BKCACHE_TEST_UNSET_VAR is not set`},
		{"missing file", []Secret{{ID: "a", File: "/nonexistent/f"}}, "secrets: "},
		{"duplicate", []Secret{{ID: "a", Env: "BKCACHE_TEST_SECRET"}, {ID: "a", Value: []byte("s3cret")}}, `duplicate id "a"`},
		{"too big", []Secret{{ID: "a", Value: make([]byte, 600*1024)}}, `secrets: id "a": larger than`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt, err := NewSolveOpt(Request{Build: BuildOptions{Context: dir, Secrets: tt.secrets}})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "value") && !strings.Contains(tt.wantErr, "value") {
					t.Errorf("error leaks a secret value: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(opt.Session) != 1 {
				t.Errorf("Session has %d attachables, want the secrets", len(opt.Session))
			}
		})
	}
}

func TestNewSolveOptInputErrors(t *testing.T) {
	dir := newContext(t)
	tests := []struct {
		name    string
		b       BuildOptions
		wantErr string
	}{
		{"missing context", BuildOptions{Context: filepath.Join(dir, "nope")}, "context: "},
		{"context is a file", BuildOptions{Context: filepath.Join(dir, "Dockerfile")}, "context: "},
		{"remote context", BuildOptions{Context: "https://github.com/a/b.git"}, "only a local directory"},
		{"missing file", BuildOptions{Context: dir, File: filepath.Join(dir, "Nope")}, "file: "},
		{"file is a dir", BuildOptions{Context: dir, File: dir}, "is a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSolveOpt(Request{Build: tt.b})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func FuzzParseOutput(f *testing.F) {
	for _, s := range []string{"type=local,dest=out", "type=registry", "type=oci,tar=false,dest=d", `"type=tar","dest=a,b"`, "type=foo", "=", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := parseOutput(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "outputs: ") {
				t.Errorf("error %q does not name the input", err)
			}
			return
		}
		switch e.Type {
		case "image":
		case "local":
			if e.OutputDir == "" {
				t.Error("local output without dir")
			}
		case "tar", "oci", "docker":
			if e.Output == nil && e.OutputDir == "" {
				t.Error("file output without destination")
			}
		default:
			t.Errorf("accepted type %q", e.Type)
		}
		if _, ok := e.Attrs["dest"]; ok {
			t.Error("dest left in exporter attrs")
		}
	})
}
