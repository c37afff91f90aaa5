package contexthash

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestFiles(t *testing.T) {
	tree := map[string]string{
		"go.mod": "module x", "go.sum": "", "main.go": "package main",
		"pkg/a.go": "a", "pkg/a_test.go": "t", "node_modules/x/y.js": "y",
		"docs/readme.md": "r", ".git/HEAD": "ref",
	}
	for _, tc := range []struct {
		name   string
		ignore string
		srcs   []string
		want   string
	}{
		{"only what COPY reads", "", []string{"go.mod", "go.sum"}, "go.mod go.sum"},
		{"a directory", "", []string{"pkg"}, "pkg/a.go pkg/a_test.go"},
		{"a wildcard", "", []string{"*.go"}, "main.go"},
		{"everything but .dockerignore", ".git\nnode_modules\n**/*_test.go\n", []string{"."}, ".dockerignore docs/readme.md go.mod go.sum main.go pkg/a.go"},
		{"an exception", "pkg\n!pkg/a.go\n", []string{"pkg"}, "pkg/a.go"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := maps.Clone(tree)
			if tc.ignore != "" {
				files[".dockerignore"] = tc.ignore
			}
			dir := writeTree(t, files)
			got, _, err := Files(context.Background(), dir, tc.srcs, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if keys := strings.Join(slices.Sorted(maps.Keys(got)), " "); keys != tc.want {
				t.Errorf("hashed %q, want %q", keys, tc.want)
			}
		})
	}
}

// Unchanged files are not read again; a changed one is, and its hash
// changes.
func TestFilesReuse(t *testing.T) {
	dir := writeTree(t, map[string]string{"a": "1", "b": "2"})
	old := time.Now().Add(-time.Hour)
	for _, n := range []string{"a", "b"} {
		if err := os.Chtimes(filepath.Join(dir, n), old, old); err != nil {
			t.Fatal(err)
		}
	}
	reuse := filepath.Join(t.TempDir(), "hashes.json")
	first, st, err := Files(context.Background(), dir, []string{"."}, Options{Reuse: reuse})
	if err != nil || st.Hashed != 2 {
		t.Fatalf("first: %+v, %v", st, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b"), []byte("3"), 0o644); err != nil {
		t.Fatal(err)
	}
	second, st, err := Files(context.Background(), dir, []string{"."}, Options{Reuse: reuse})
	if err != nil || st.Hashed != 1 || st.Reused != 1 {
		t.Fatalf("second: %+v, %v; want 1 hashed, 1 reused", st, err)
	}
	if first["a"] != second["a"] || first["b"] == second["b"] {
		t.Errorf("hashes: %v then %v", first, second)
	}
}
