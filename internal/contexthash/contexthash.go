// Package contexthash hashes the build context files that a Dockerfile's
// COPY and ADD read, leaving out what .dockerignore excludes (with
// BuildKit's own patternmatcher and ignorefile packages, as the client's
// file sync does), for the build record of internal/explain.
//
// BuildKit computes the real content keys inside the daemon (its
// contenthash package, from the synced files' metadata) and does not hand
// them to the client; these hashes only have to tell two builds' files
// apart, so each file's hash is sha256 of its mode and content (a
// symlink's target), shortened to 64 bits.
package contexthash

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/bkcache/bkcache/internal/explain"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"golang.org/x/sync/errgroup"
)

// Options tunes Files.
type Options struct {
	// Dockerfile is the Dockerfile's path; its own ignore file
	// (<Dockerfile>.dockerignore) wins over the context's, as in BuildKit.
	Dockerfile string
	// Reuse is a file of earlier hashes by path, size and mtime; "" reuses
	// nothing. Files changed within a second of the last save are hashed
	// again, since their mtime may not show a later change.
	Reuse string
	// MaxFiles stops hashing after this many files (0: 200000).
	MaxFiles int
}

// Stats says what Files did.
type Stats struct {
	Files, Hashed, Reused int
	Bytes                 int64
	Elapsed               time.Duration
}

// Files returns path → hash of the files under dir that srcs read.
func Files(ctx context.Context, dir string, srcs []string, opt Options) (map[string]string, Stats, error) {
	start := time.Now()
	var st Stats
	pm, err := ignoreMatcher(dir, opt.Dockerfile)
	if err != nil {
		return nil, st, err
	}
	limit := opt.MaxFiles
	if limit == 0 {
		limit = 200000
	}
	type file struct {
		rel  string
		abs  string
		info fs.FileInfo
	}
	var files []file
	parents := map[string]patternmatcher.MatchInfo{}
	err = filepath.WalkDir(dir, func(abs string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, abs)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if pm != nil {
			parent := parents[pathDir(rel)]
			m, info, err := pm.MatchesUsingParentResults(rel, parent)
			if err != nil {
				return err
			}
			if d.IsDir() {
				parents[rel] = info
			}
			if m && !(d.IsDir() && pm.Exclusions()) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if m {
				return nil // an excluded directory that an exception may reopen
			}
		}
		if d.IsDir() {
			if !explain.MayHoldSources(srcs, rel) {
				return filepath.SkipDir
			}
			return nil
		}
		read := false
		for _, s := range srcs {
			if explain.ReadBy(s, rel) {
				read = true
				break
			}
		}
		if !read {
			return nil
		}
		if len(files) >= limit {
			return fmt.Errorf("more than %d context files to hash", limit)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, file{rel, abs, info})
		return nil
	})
	if err != nil {
		return nil, st, fmt.Errorf("hashing the build context: %w", err)
	}
	prev, savedAt := loadReuse(opt.Reuse)
	out := make(map[string]string, len(files))
	next := make(map[string]reuseEntry, len(files))
	var mu sync.Mutex
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(runtime.GOMAXPROCS(0))
	for _, f := range files {
		e := reuseEntry{Size: f.info.Size(), Mtime: f.info.ModTime().UnixNano(), Mode: uint32(f.info.Mode())}
		if p, ok := prev[f.rel]; ok && p.Size == e.Size && p.Mtime == e.Mtime && p.Mode == e.Mode &&
			time.Unix(0, e.Mtime).Before(savedAt.Add(-time.Second)) {
			out[f.rel], next[f.rel] = p.Hash, p
			st.Reused++
			continue
		}
		eg.Go(func() error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			h, n, err := hashFile(f.abs, f.info)
			if err != nil {
				return err
			}
			e.Hash = h
			mu.Lock()
			out[f.rel], next[f.rel] = h, e
			st.Hashed++
			st.Bytes += n
			mu.Unlock()
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, st, fmt.Errorf("hashing the build context: %w", err)
	}
	st.Files = len(out)
	if opt.Reuse != "" && st.Hashed > 0 {
		saveReuse(opt.Reuse, next) // a cache: failing to save it costs time only
	}
	st.Elapsed = time.Since(start)
	return out, st, nil
}

func pathDir(rel string) string {
	i := strings.LastIndex(rel, "/")
	if i < 0 {
		return "."
	}
	return rel[:i]
}

// ignoreMatcher reads <Dockerfile>.dockerignore, else .dockerignore in
// the context, as BuildKit's dockerui does; nil when there is none.
func ignoreMatcher(dir, dockerfile string) (*patternmatcher.PatternMatcher, error) {
	var names []string
	if dockerfile != "" {
		names = append(names, dockerfile+".dockerignore")
	}
	names = append(names, filepath.Join(dir, ".dockerignore"))
	for _, n := range names {
		f, err := os.Open(n)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		patterns, err := ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", n, err)
		}
		return patternmatcher.New(patterns)
	}
	return nil, nil
}

func hashFile(abs string, info fs.FileInfo) (string, int64, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%o\x00", info.Mode().Perm()|info.Mode().Type())
	var n int64
	switch {
	case info.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(abs)
		if err != nil {
			return "", 0, err
		}
		h.Write([]byte(target))
	case info.Mode().IsRegular():
		f, err := os.Open(abs)
		if err != nil {
			return "", 0, err
		}
		n, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", 0, err
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:8]), n, nil
}

type reuseEntry struct {
	Size  int64  `json:"s"`
	Mtime int64  `json:"m"`
	Mode  uint32 `json:"o"`
	Hash  string `json:"h"`
}

func loadReuse(file string) (map[string]reuseEntry, time.Time) {
	if file == "" {
		return nil, time.Time{}
	}
	info, err := os.Stat(file)
	if err != nil {
		return nil, time.Time{}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, time.Time{}
	}
	var m map[string]reuseEntry
	if json.Unmarshal(b, &m) != nil {
		return nil, time.Time{}
	}
	return m, info.ModTime()
}

func saveReuse(file string, m map[string]reuseEntry) {
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return
	}
	tmp := file + ".tmp"
	if os.WriteFile(tmp, b, 0o644) == nil {
		_ = os.Rename(tmp, file)
	}
}
