package mountarchive

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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
	// Exceeded: pack found more than the cap and wrote no archive.
	Exceeded bool `json:"exceeded,omitempty"`
	// Restored: unpack extracted the archive. False means the mount was
	// not empty, so the builder's own, newer contents were kept.
	Restored bool `json:"restored,omitempty"`
}

// RunHelper runs the helper:
//
//	pack DIR OUTDIR MAXBYTES    archive DIR into OUTDIR
//	unpack ARCHIVE DIR OUTDIR   extract ARCHIVE into DIR if DIR is empty
//	probe DIR OUTDIR            count what DIR holds
func RunHelper(ctx context.Context, args []string) error {
	switch {
	case len(args) == 4 && args[0] == "pack":
		max, err := strconv.ParseInt(args[3], 10, 64)
		if err != nil {
			return fmt.Errorf("pack: size cap %q: %w", args[3], err)
		}
		return pack(ctx, args[1], args[2], max)
	case len(args) == 4 && args[0] == "unpack":
		return unpack(ctx, args[1], args[2], args[3])
	case len(args) == 3 && args[0] == "probe":
		st, err := Measure(args[1])
		if err != nil {
			return err
		}
		return writeJSON(filepath.Join(args[2], ReportFile), Report{Stats: st})
	}
	return fmt.Errorf("usage: %s pack DIR OUTDIR MAXBYTES | unpack ARCHIVE DIR OUTDIR | probe DIR OUTDIR", HelperCommand)
}

func pack(ctx context.Context, dir, outDir string, max int64) error {
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

func unpack(ctx context.Context, archivePath, dir, outDir string) error {
	empty, err := IsEmpty(dir)
	if err != nil {
		return err
	}
	rep := Report{}
	if empty {
		f, err := os.Open(archivePath)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := Unpack(ctx, f, dir); err != nil {
			return err
		}
		rep.Restored = true
	}
	if rep.Stats, err = Measure(dir); err != nil {
		return err
	}
	return writeJSON(filepath.Join(outDir, ReportFile), rep)
}
