// Package mountarchive packs a cache mount's directory into a zstd tar and
// unpacks it again, keeping owners, modes, mtimes, symlinks and hardlinks.
//
// bkcache runs it inside the builder (see RunHelper): the tar is written
// with containerd's archive package, which BuildKit itself uses for layers,
// so hardlinks and ownership are recorded as in images.
package mountarchive

import (
	"archive/tar"
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
	"time"

	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/klauspost/compress/zstd"
)

// Stats describes a packed or unpacked tree.
type Stats struct {
	Files int   `json:"files"` // entries below the root, directories included
	Bytes int64 `json:"bytes"` // sum of regular file sizes
	// Tree identifies the tree's listing: every entry's name, type,
	// mode, owner, size, modification time and link target. Two trees
	// with the same Tree are taken to hold the same files, as make and
	// rsync take an unchanged size and mtime; bkcache uses it to skip
	// saving a mount that is as it was restored.
	Tree string `json:"tree,omitempty"`
}

// ErrTooLarge says a tree is over the size cap; nothing was written.
var ErrTooLarge = errors.New("cache mount over the size cap")

// walkEntries calls fn for every entry below dir, dir itself left out.
func walkEntries(dir string, fn func(p string, d fs.DirEntry, info fs.FileInfo) error) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return fn(p, d, info)
	})
}

// Measure walks dir and counts what Pack would write.
func Measure(dir string) (Stats, error) {
	var st Stats
	h := sha256.New()
	err := walkEntries(dir, func(p string, d fs.DirEntry, info fs.FileInfo) error {
		st.Files++
		if d.Type().IsRegular() {
			st.Bytes += info.Size()
		}
		rel, _ := filepath.Rel(dir, p)
		uid, gid := owner(info)
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			link, _ = os.Readlink(p)
		}
		// Each field is ended so that no two listings write the same bytes.
		fmt.Fprintf(h, "%q %o %d %d %d %d %q\n", filepath.ToSlash(rel), uint32(info.Mode()), uid, gid, info.Size(), info.ModTime().UnixNano(), link)
		return nil
	})
	st.Tree = hex.EncodeToString(h.Sum(nil))
	return st, err
}

// Pack writes dir as a zstd-compressed tar to w. A tree with more than
// maxBytes of file data (0: no cap) is not written: Pack returns its stats
// and ErrTooLarge.
func Pack(ctx context.Context, dir string, w io.Writer, maxBytes int64) (Stats, error) {
	st, err := Measure(dir)
	if err != nil {
		return st, fmt.Errorf("reading %s: %w", dir, err)
	}
	return st, packMeasured(ctx, dir, st, w, maxBytes)
}

func packMeasured(ctx context.Context, dir string, st Stats, w io.Writer, maxBytes int64) error {
	if maxBytes > 0 && st.Bytes > maxBytes {
		return fmt.Errorf("%w: %d bytes, cap %d", ErrTooLarge, st.Bytes, maxBytes)
	}
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return err
	}
	// An empty lower directory makes the diff the whole tree.
	if err := archive.WriteDiff(ctx, zw, "", dir); err != nil {
		zw.Close()
		return fmt.Errorf("packing %s: %w", dir, err)
	}
	return zw.Close()
}

// UnpackOptions bound an extraction and say what it keeps.
type UnpackOptions struct {
	// MaxBytes caps the regular file data written (0: no cap); past it
	// Unpack stops with ErrTooLarge. The archive comes from a store, and
	// a small archive can unpack to a full disk.
	MaxBytes int64
	// KeepSetID keeps the setuid and setgid bits of regular files. They
	// are dropped by default: a restored cache must not bring programs
	// that run with another user's rights into the builder.
	KeepSetID bool
	// FreshSince, when set, lets the helper's unpack replace a mount whose
	// every entry changed at or after it: what a step wrote in a build
	// that bkcache stopped for the restore, nothing the builder held
	// before. Unpack itself ignores it.
	FreshSince time.Time
}

// Unpack extracts a Pack archive into dir. On error dir may hold part of
// the archive; the helper unpacks into a fresh directory for that reason.
func Unpack(ctx context.Context, r io.Reader, dir string, opt UnpackOptions) error {
	zr, err := zstd.NewReader(r)
	if err != nil {
		return err
	}
	defer zr.Close()
	if err := extract(ctx, tar.NewReader(zr), dir, opt); err != nil {
		return fmt.Errorf("unpacking into %s: %w", dir, err)
	}
	return nil
}

// IsEmpty reports whether dir has no entries.
func IsEmpty(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.ReadDir(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}

// writeJSON writes v to path, for the helper's reports.
func writeJSON(path string, v any) error {
	dt, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, dt, 0o644)
}
