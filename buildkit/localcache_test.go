package buildkit

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/moby/buildkit/client"
)

func TestSplitLocalMisses(t *testing.T) {
	dir := t.TempDir()
	warm := filepath.Join(dir, "warm")
	if err := os.MkdirAll(warm, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(warm, "index.json"), []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty") // exists, but no export ever finished
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	imports := []client.CacheOptionsEntry{
		{Type: "local", Attrs: map[string]string{"src": filepath.Join(dir, "cold")}},
		{Type: "local", Attrs: map[string]string{"src": warm}},
		{Type: "local", Attrs: map[string]string{"src": empty}},
		{Type: "local", Attrs: map[string]string{"src": filepath.Join(dir, "pinned"), "digest": "sha256:1"}},
		{Type: "registry", Attrs: map[string]string{"ref": "r/c:x"}},
	}
	keep, misses := splitLocalMisses(imports)
	if want := []string{"type=local,src=" + filepath.Join(dir, "cold"), "type=local,src=" + empty}; !slices.Equal(misses, want) {
		t.Errorf("misses = %q, want %q", misses, want)
	}
	if len(keep) != 3 || keep[0].Attrs["src"] != warm || keep[1].Attrs["digest"] == "" || keep[2].Type != "registry" {
		t.Errorf("keep = %v", keep)
	}
}

// A failed build leaves no cache directory it created, and never touches
// one that was there before.
func TestRemoveCreatedDirs(t *testing.T) {
	home := t.TempDir()
	before := filepath.Join(home, "existing")
	if err := os.MkdirAll(filepath.Join(before, "buildkit_main"), 0o755); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(home, ".cache", "bkcache", "buildkit_main")
	exports := []client.CacheOptionsEntry{
		{Type: "local", Attrs: map[string]string{"dest": fresh}},
		{Type: "local", Attrs: map[string]string{"dest": filepath.Join(before, "buildkit_main")}},
		{Type: "local", Attrs: map[string]string{"dest": filepath.Join(before, "buildkit_pr-1")}},
	}
	created := missingLocalDirs(exports)
	if len(created) != 2 || created[0].top != filepath.Join(home, ".cache") || created[1].top != filepath.Join(before, "buildkit_pr-1") {
		t.Fatalf("created = %+v", created)
	}
	// What BuildKit's client leaves in an export directory of a failed build.
	for _, d := range []string{filepath.Join(fresh, "ingest"), filepath.Join(before, "buildkit_pr-1", "ingest")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	removeCreatedDirs(created)
	for _, gone := range []string{filepath.Join(home, ".cache"), filepath.Join(before, "buildkit_pr-1")} {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("%s left behind (%v)", gone, err)
		}
	}
	if _, err := os.Stat(filepath.Join(before, "buildkit_main")); err != nil {
		t.Errorf("a directory that was there before is gone: %v", err)
	}
}
