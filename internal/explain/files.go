package explain

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
)

// FoldFiles folds the hashes of paths deeper than depth elements into one
// hash per directory, named "dir/". depth <= 0 folds everything into "./".
func FoldFiles(files map[string]string, depth int) map[string]string {
	groups := map[string][]string{}
	out := map[string]string{}
	for p, h := range files {
		parts := strings.Split(p, "/")
		if depth > 0 && len(parts) <= depth {
			out[p] = h
			continue
		}
		dir := "./"
		if depth > 0 {
			dir = strings.Join(parts[:depth], "/") + "/"
		}
		groups[dir] = append(groups[dir], p)
	}
	for dir, paths := range groups {
		slices.Sort(paths)
		h := sha256.New()
		for _, p := range paths {
			h.Write([]byte(p + "\x00" + files[p] + "\x00"))
		}
		out[dir] = hex.EncodeToString(h.Sum(nil)[:8])
	}
	return out
}

// FileChange is one context file that differs between two records.
type FileChange struct {
	Path string
	Kind string // "changed", "added" or "removed"
}

// diffFiles compares the file hashes of two records, folded to the
// coarser of their depths, in path order.
func diffFiles(old, cur Record) []FileChange {
	of, cf := old.Files, cur.Files
	if d := coarser(old.FilesDepth, cur.FilesDepth); d != 0 {
		if d < 0 {
			d = 0
		}
		of, cf = FoldFiles(old.Files, d), FoldFiles(cur.Files, d)
		if old.FilesDepth == d || (old.FilesDepth < 0 && d == 0) {
			of = old.Files
		}
		if cur.FilesDepth == d || (cur.FilesDepth < 0 && d == 0) {
			cf = cur.Files
		}
	}
	var out []FileChange
	for _, p := range slices.Sorted(maps.Keys(cf)) {
		oh, ok := of[p]
		switch {
		case !ok:
			out = append(out, FileChange{p, "added"})
		case oh != cf[p]:
			out = append(out, FileChange{p, "changed"})
		}
	}
	for _, p := range slices.Sorted(maps.Keys(of)) {
		if _, ok := cf[p]; !ok {
			out = append(out, FileChange{p, "removed"})
		}
	}
	slices.SortStableFunc(out, func(a, b FileChange) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// coarser returns the smaller positive depth, -1 if either folded
// everything, 0 if neither folded.
func coarser(a, b int) int {
	switch {
	case a < 0 || b < 0:
		return -1
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}
