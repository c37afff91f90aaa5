package mountarchive

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// HelperCommand is the hidden bkcache subcommand that runs inside the
// builder, in a helper build that mounts the cache (see buildkit.SaveMount).
const HelperCommand = "__cache-mount"

// Files the helper writes into its output directory. The report sorts
// before the archive, so a client reading the exported tar sees it first.
const (
	ReportFile  = "0-report.json"
	ArchiveFile = "1-archive.tar.zst"
)

// Report is what the helper tells bkcache about one pack or unpack.
type Report struct {
	Stats
	// Exceeded: pack found more than the cap and wrote no archive, or
	// unpack found more than the cap in the archive and restored nothing.
	Exceeded bool `json:"exceeded,omitempty"`
	// Restored: unpack extracted the archive. False means the mount was
	// not empty, so the builder's own, newer contents were kept.
	Restored bool `json:"restored,omitempty"`
	// Error: this mount failed; the other mounts of a batch went on.
	Error string `json:"error,omitempty"`
}

// RunHelper runs the helper:
//
//	pack DIR OUTDIR MAXBYTES                        archive DIR into OUTDIR
//	unpack ARCHIVE DIR OUTDIR MAXBYTES [keep-setid]  extract ARCHIVE into DIR if DIR is empty
//	probe DIR OUTDIR                                count what DIR holds
func RunHelper(ctx context.Context, args []string) error {
	switch {
	case len(args) == 4 && args[0] == "pack":
		max, err := strconv.ParseInt(args[3], 10, 64)
		if err != nil {
			return fmt.Errorf("pack: size cap %q: %w", args[3], err)
		}
		return pack(ctx, args[1], args[2], max)
	case (len(args) == 5 || len(args) == 6 && args[5] == "keep-setid") && args[0] == "unpack":
		max, err := strconv.ParseInt(args[4], 10, 64)
		if err != nil {
			return fmt.Errorf("unpack: size cap %q: %w", args[4], err)
		}
		return unpack(ctx, args[1], args[2], args[3], UnpackOptions{MaxBytes: max, KeepSetID: len(args) == 6})
	case len(args) >= 2 && args[0] == "probe-all":
		return forEach(args[1], args[2:], 1, func(sub string, a []string) error { return probe(a[0], sub) })
	case len(args) >= 4 && args[0] == "pack-all":
		max, err := strconv.ParseInt(args[2], 10, 64)
		if err != nil {
			return fmt.Errorf("pack-all: size cap %q: %w", args[2], err)
		}
		return forEach(args[1], args[3:], 1, func(sub string, a []string) error { return pack(ctx, a[0], sub, max) })
	case len(args) >= 4 && args[0] == "unpack-all":
		max, err := strconv.ParseInt(args[2], 10, 64)
		if err != nil {
			return fmt.Errorf("unpack-all: size cap %q: %w", args[2], err)
		}
		opt := UnpackOptions{MaxBytes: max, KeepSetID: args[3] == "keep-setid"}
		return forEach(args[1], args[4:], 2, func(sub string, a []string) error { return unpack(ctx, a[0], a[1], sub, opt) })
	case len(args) == 3 && args[0] == "probe":
		return probe(args[1], args[2])
	}
	return fmt.Errorf("usage: %s pack DIR OUTDIR MAXBYTES | unpack ARCHIVE DIR OUTDIR MAXBYTES [keep-setid] | probe DIR OUTDIR |"+
		" probe-all OUTDIR DIR... | pack-all OUTDIR MAXBYTES DIR... | unpack-all OUTDIR MAXBYTES keep-setid|drop-setid ARCHIVE DIR...", HelperCommand)
}

// forEach runs one mount's work per group of n arguments, with its own
// output directory OUTDIR/<i>. A mount that fails gets its error in its
// report, and the others go on: one helper build serves all of a build's
// mounts.
func forEach(outDir string, args []string, n int, do func(sub string, a []string) error) error {
	if len(args)%n != 0 {
		return fmt.Errorf("%d arguments, want groups of %d", len(args), n)
	}
	for i := 0; i*n < len(args); i++ {
		sub := filepath.Join(outDir, strconv.Itoa(i))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return err
		}
		if err := do(sub, args[i*n:(i+1)*n]); err != nil {
			os.Remove(filepath.Join(sub, ArchiveFile))
			if err := writeJSON(filepath.Join(sub, ReportFile), Report{Error: err.Error()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// claim locks the mount's directory for one probe, pack or unpack and
// removes the staging a killed helper may have left in it.
func claim(dir string) (unlock func(), err error) {
	unlock, err = lockDir(dir)
	if err != nil {
		return nil, err
	}
	if err := removeStaging(dir); err != nil {
		unlock()
		return nil, err
	}
	return unlock, nil
}

func probe(dir, outDir string) error {
	unlock, err := claim(dir)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := Measure(dir)
	if err != nil {
		return err
	}
	return writeJSON(filepath.Join(outDir, ReportFile), Report{Stats: st})
}

// stagingPrefix names the directory inside a mount that a restore fills
// before it moves the contents into place.
const stagingPrefix = ".bkcache-restore-"

// removeStaging removes what a restore that was stopped (a timeout kills
// the helper) left in dir, so that it neither counts as the mount's
// contents nor gets saved.
func removeStaging(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), stagingPrefix) {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

func pack(ctx context.Context, dir, outDir string, max int64) error {
	unlock, err := claim(dir)
	if err != nil {
		return err
	}
	defer unlock()
	f, err := os.Create(filepath.Join(outDir, ArchiveFile))
	if err != nil {
		return err
	}
	st, err := Pack(ctx, dir, f, max)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, ErrTooLarge) {
		os.Remove(f.Name())
		return writeJSON(filepath.Join(outDir, ReportFile), Report{Stats: st, Exceeded: true})
	}
	if err != nil {
		return err
	}
	return writeJSON(filepath.Join(outDir, ReportFile), Report{Stats: st})
}

// unpack restores into dir only when it is empty, and atomically: the
// archive is extracted into a fresh directory inside dir, and its
// entries are moved into place only when all of it is there. On any
// failure dir is emptied again, as it was found, so that a half-filled
// mount never passes for the builder's own contents.
func unpack(ctx context.Context, archivePath, dir, outDir string, opt UnpackOptions) error {
	unlock, err := claim(dir)
	if err != nil {
		return err
	}
	defer unlock()
	empty, err := IsEmpty(dir)
	if err != nil {
		return err
	}
	rep := Report{}
	if empty {
		err := unpackStaged(ctx, archivePath, dir, opt)
		if err != nil {
			if cerr := emptyDir(dir); cerr != nil {
				return errors.Join(err, cerr)
			}
			if !errors.Is(err, ErrTooLarge) {
				return err
			}
			rep.Exceeded = true
		} else {
			rep.Restored = true
		}
	}
	if rep.Stats, err = Measure(dir); err != nil {
		return err
	}
	return writeJSON(filepath.Join(outDir, ReportFile), rep)
}

func unpackStaged(ctx context.Context, archivePath, dir string, opt UnpackOptions) error {
	f, err := os.Open(archivePath)
	if err != nil {
		return err
	}
	defer f.Close()
	staging, err := os.MkdirTemp(dir, stagingPrefix)
	if err != nil {
		return err
	}
	if err := Unpack(ctx, f, staging, opt); err != nil {
		return err
	}
	// Renames within one filesystem: each is whole or not done.
	entries, err := os.ReadDir(staging)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.Rename(filepath.Join(staging, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return os.Remove(staging)
}

// emptyDir removes everything in dir but dir itself, a mount point.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
