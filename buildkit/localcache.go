package buildkit

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/moby/buildkit/client"
)

// splitLocalMisses splits off the local cache imports whose directory has
// no OCI index yet. BuildKit's client skips such an import itself, but only
// says so in a raw log line ("local cache import at … skipped due to err:
// could not read …/index.json"); here it is the same "nothing there yet"
// miss as on every other backend. An import pinned to a digest is left to
// BuildKit.
func splitLocalMisses(imports []client.CacheOptionsEntry) (keep []client.CacheOptionsEntry, misses []string) {
	for _, e := range imports {
		if e.Type == "local" && e.Attrs["src"] != "" && e.Attrs["digest"] == "" {
			_, err := os.Stat(filepath.Join(e.Attrs["src"], "index.json"))
			if errors.Is(err, fs.ErrNotExist) {
				misses = append(misses, redacted(e))
				continue
			}
		}
		keep = append(keep, e)
	}
	return keep, misses
}

// createdLocalDir is a local export directory that a build is about to
// create, and the first of its parents that did not exist either.
type createdLocalDir struct{ dest, top string }

// missingLocalDirs lists the local export directories that do not exist
// yet, so that a failed build can take back what it created.
func missingLocalDirs(exports []client.CacheOptionsEntry) []createdLocalDir {
	var out []createdLocalDir
	for _, e := range exports {
		dest := e.Attrs["dest"]
		if e.Type != "local" || dest == "" {
			continue
		}
		dest = filepath.Clean(dest)
		top := ""
		for d := dest; ; d = filepath.Dir(d) {
			if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) {
				break
			}
			top = d
			if filepath.Dir(d) == d {
				break
			}
		}
		if top != "" {
			out = append(out, createdLocalDir{dest: dest, top: top})
		}
	}
	return out
}

// removeCreatedDirs undoes missingLocalDirs' directories after a failed
// build: BuildKit exports nothing then, so a directory holding no index
// has only its empty content store. Parents go only when empty.
func removeCreatedDirs(dirs []createdLocalDir) {
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d.dest, "index.json")); err == nil {
			continue // another run exported here meanwhile
		}
		_ = os.RemoveAll(d.dest)
		for p := filepath.Dir(d.dest); len(p) >= len(d.top) && p != filepath.Dir(p); p = filepath.Dir(p) {
			if os.Remove(p) != nil {
				break
			}
		}
	}
}
