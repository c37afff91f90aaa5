package mountarchive

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
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
	// Unchanged: pack found the tree it was told to skip (Stats.Tree)
	// and wrote no archive.
	Unchanged bool `json:"unchanged,omitempty"`
	// Fresh: a probe given a time found that every entry of the mount
	// changed since then (see UnpackOptions.FreshSince).
	Fresh bool `json:"fresh,omitempty"`
	// Discarded: unpack emptied that many such fresh entries first.
	Discarded int `json:"discarded,omitempty"`
	// Error: this mount failed; the other mounts of a batch went on.
	Error string `json:"error,omitempty"`
}

// Stdio is the helper's standard streams: the stream commands move
// archives and reports through them.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
}

// RunHelper runs the helper. In a helper build, files carry the archives
// and reports (OUTDIR is the build's output):
//
//	pack DIR OUTDIR MAXBYTES                        archive DIR into OUTDIR
//	unpack ARCHIVE DIR OUTDIR MAXBYTES [keep-setid]  extract ARCHIVE into DIR if DIR is empty
//	probe DIR OUTDIR                                count what DIR holds
//
// In a gateway container, the process's streams carry them (see
// buildkit.MountHelper):
//
//	idle                                              wait until stdin ends
//	probe-stream [fresh-since=NS] DIR...              one report per DIR, a JSON line each, on stdout
//	unpack-stream DIR MAXBYTES keep-setid|drop-setid [fresh-since=NS]
//	                                                  the archive on stdin, the report on stdout
//	pack-stream DIR MAXBYTES [TREE]                   the archive on stdout, the report on stderr;
//	                                                  none when DIR's Stats.Tree is TREE
//
// The stream commands exit 0 with the error in the report, so a report
// that does not come means the helper itself failed.
func RunHelper(ctx context.Context, args []string, stdio Stdio) error {
	switch {
	case len(args) == 1 && args[0] == "idle":
		// A gateway container's first process: the others are started
		// beside it, and the container stops when it ends.
		_, err := io.Copy(io.Discard, stdio.In)
		return err
	case len(args) >= 1 && args[0] == "probe-stream":
		since, dirs, err := freshSince(args[1:])
		if err != nil {
			return fmt.Errorf("probe-stream: %w", err)
		}
		return probeStream(dirs, since, stdio.Out)
	case len(args) >= 4 && args[0] == "unpack-stream" && (args[3] == "keep-setid" || args[3] == "drop-setid"):
		max, err := strconv.ParseInt(args[2], 10, 64)
		if err != nil {
			return fmt.Errorf("unpack-stream: size cap %q: %w", args[2], err)
		}
		since, rest, err := freshSince(args[4:])
		if err != nil || len(rest) > 0 {
			return fmt.Errorf("unpack-stream: arguments %q after the setid word: want at most fresh-since=NS (%v)", args[4:], err)
		}
		rep := unpackStream(ctx, stdio.In, args[1], UnpackOptions{MaxBytes: max, KeepSetID: args[3] == "keep-setid", FreshSince: since})
		return json.NewEncoder(stdio.Out).Encode(rep)
	case (len(args) == 3 || len(args) == 4) && args[0] == "pack-stream":
		max, err := strconv.ParseInt(args[2], 10, 64)
		if err != nil {
			return fmt.Errorf("pack-stream: size cap %q: %w", args[2], err)
		}
		unchanged := ""
		if len(args) == 4 {
			unchanged = args[3]
		}
		rep := packStream(ctx, args[1], stdio.Out, max, unchanged)
		return json.NewEncoder(stdio.Err).Encode(rep)
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
		" probe-all OUTDIR DIR... | pack-all OUTDIR MAXBYTES DIR... | unpack-all OUTDIR MAXBYTES keep-setid|drop-setid ARCHIVE DIR... |"+
		" idle | probe-stream [fresh-since=NS] DIR... | unpack-stream DIR MAXBYTES keep-setid|drop-setid [fresh-since=NS] | pack-stream DIR MAXBYTES [TREE]", HelperCommand)
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
	rep := probeClaimed(dir, time.Time{})
	if rep.Error != "" {
		return errors.New(rep.Error)
	}
	return writeJSON(filepath.Join(outDir, ReportFile), rep)
}

func probeStream(dirs []string, since time.Time, out io.Writer) error {
	enc := json.NewEncoder(out)
	for _, dir := range dirs {
		rep := probeClaimed(dir, since)
		if err := enc.Encode(rep); err != nil {
			return err
		}
	}
	return nil
}

func probeClaimed(dir string, since time.Time) Report {
	unlock, err := claim(dir)
	if err != nil {
		return Report{Error: err.Error()}
	}
	defer unlock()
	st, err := Measure(dir)
	if err != nil {
		return Report{Error: err.Error()}
	}
	rep := Report{Stats: st}
	if st.Files > 0 && !since.IsZero() {
		if _, rep.Fresh, err = freshEntries(dir, since); err != nil {
			return Report{Error: err.Error()}
		}
	}
	return rep
}

// freshSince takes a leading fresh-since=NS argument (Unix nanoseconds).
func freshSince(args []string) (time.Time, []string, error) {
	if len(args) == 0 {
		return time.Time{}, args, nil
	}
	v, ok := strings.CutPrefix(args[0], "fresh-since=")
	if !ok {
		return time.Time{}, args, nil
	}
	ns, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ns <= 0 {
		return time.Time{}, nil, fmt.Errorf("fresh-since=%q: want Unix nanoseconds", v)
	}
	return time.Unix(0, ns), args[1:], nil
}

// freshEntries counts the entries below dir and reports whether every one
// changed (its ctime, which no program can set back) at or after since;
// it stops counting at the first that did not.
func freshEntries(dir string, since time.Time) (n int, fresh bool, err error) {
	fresh = true
	err = walkEntries(dir, func(_ string, _ fs.DirEntry, info fs.FileInfo) error {
		if changeTime(info).Before(since) {
			fresh = false
			return filepath.SkipAll
		}
		n++
		return nil
	})
	return n, fresh, err
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
	f, err := os.Create(filepath.Join(outDir, ArchiveFile))
	if err != nil {
		return err
	}
	rep := packClaimed(ctx, dir, f, max, "")
	if err := f.Close(); err != nil && rep.Error == "" {
		return err
	}
	if rep.Error != "" {
		return errors.New(rep.Error)
	}
	if rep.Exceeded {
		os.Remove(f.Name())
	}
	return writeJSON(filepath.Join(outDir, ReportFile), rep)
}

// packStream writes the archive to out, buffered: out is a pipe to
// bkcache, and small writes would each cost a message.
func packStream(ctx context.Context, dir string, out io.Writer, max int64, unchanged string) Report {
	aw := newAheadWriter(out, 1<<20, 16)
	rep := packClaimed(ctx, dir, aw, max, unchanged)
	if err := aw.Close(); err != nil && rep.Error == "" {
		rep.Error = err.Error()
	}
	return rep
}

// aheadWriter lets the packer run up to n chunks ahead of a slow
// destination. stdout in a gateway container is a pipe whose every 32 KiB
// becomes a message through the daemon to bkcache: written to directly,
// packing and sending took turns (a 510 MiB save took 3.0 s; 2.5 s with
// this).
type aheadWriter struct {
	buf  []byte
	size int
	full chan []byte
	free chan []byte
	done chan error
}

func newAheadWriter(w io.Writer, size, n int) *aheadWriter {
	a := &aheadWriter{size: size, full: make(chan []byte, n), free: make(chan []byte, n), done: make(chan error, 1)}
	go func() {
		var err error
		for b := range a.full {
			if err == nil {
				_, err = w.Write(b)
			}
			select {
			case a.free <- b[:0]:
			default: // the packer has enough
			}
		}
		a.done <- err
	}()
	return a
}

func (a *aheadWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if a.buf == nil {
			select {
			case a.buf = <-a.free:
			default:
				a.buf = make([]byte, 0, a.size)
			}
		}
		k := min(len(p), a.size-len(a.buf))
		a.buf = append(a.buf, p[:k]...)
		p = p[k:]
		if len(a.buf) == a.size {
			a.full <- a.buf
			a.buf = nil
		}
	}
	return n, nil
}

// Close sends what is buffered and returns the destination's error.
func (a *aheadWriter) Close() error {
	if len(a.buf) > 0 {
		a.full <- a.buf
	}
	close(a.full)
	return <-a.done
}

// packClaimed packs dir into w, unless its tree is unchanged (not "").
func packClaimed(ctx context.Context, dir string, w io.Writer, max int64, unchanged string) Report {
	unlock, err := claim(dir)
	if err != nil {
		return Report{Error: err.Error()}
	}
	defer unlock()
	st, err := Measure(dir)
	if err != nil {
		return Report{Error: fmt.Sprintf("reading %s: %v", dir, err)}
	}
	if unchanged != "" && st.Tree == unchanged {
		return Report{Stats: st, Unchanged: true}
	}
	err = packMeasured(ctx, dir, st, w, max)
	switch {
	case errors.Is(err, ErrTooLarge):
		return Report{Stats: st, Exceeded: true}
	case err != nil:
		return Report{Error: err.Error()}
	}
	return Report{Stats: st}
}

// unpack restores into dir only when it is empty, and atomically: the
// archive is extracted into a fresh directory inside dir, and its
// entries are moved into place only when all of it is there. On any
// failure dir is emptied again, as it was found, so that a half-filled
// mount never passes for the builder's own contents.
func unpack(ctx context.Context, archivePath, dir, outDir string, opt UnpackOptions) error {
	f, err := os.Open(archivePath)
	if err != nil {
		return err
	}
	defer f.Close()
	rep := unpackClaimed(ctx, f, dir, opt)
	if rep.Error != "" {
		return errors.New(rep.Error)
	}
	return writeJSON(filepath.Join(outDir, ReportFile), rep)
}

// unpackStream restores the archive on in. It reads in to its end even
// when the mount is kept, so that bkcache's copy into the pipe ends.
func unpackStream(ctx context.Context, in io.Reader, dir string, opt UnpackOptions) Report {
	rep := unpackClaimed(ctx, bufio.NewReaderSize(in, 1<<20), dir, opt)
	_, _ = io.Copy(io.Discard, in)
	return rep
}

func unpackClaimed(ctx context.Context, archive io.Reader, dir string, opt UnpackOptions) Report {
	unlock, err := claim(dir)
	if err != nil {
		return Report{Error: err.Error()}
	}
	defer unlock()
	empty, err := IsEmpty(dir)
	if err != nil {
		return Report{Error: err.Error()}
	}
	rep := Report{}
	if !empty && !opt.FreshSince.IsZero() {
		// Only what the stopped build wrote: not the builder's own.
		n, fresh, err := freshEntries(dir, opt.FreshSince)
		if err != nil {
			return Report{Error: err.Error()}
		}
		if fresh {
			if err := emptyDir(dir); err != nil {
				return Report{Error: err.Error()}
			}
			empty, rep.Discarded = true, n
		}
	}
	if empty {
		err := unpackStaged(ctx, archive, dir, opt)
		if err != nil {
			if cerr := emptyDir(dir); cerr != nil {
				return Report{Error: errors.Join(err, cerr).Error()}
			}
			if !errors.Is(err, ErrTooLarge) {
				return Report{Error: err.Error()}
			}
			rep.Exceeded = true
		} else {
			rep.Restored = true
		}
	}
	if rep.Stats, err = Measure(dir); err != nil {
		return Report{Error: err.Error()}
	}
	return rep
}

func unpackStaged(ctx context.Context, archive io.Reader, dir string, opt UnpackOptions) error {
	staging, err := os.MkdirTemp(dir, stagingPrefix)
	if err != nil {
		return err
	}
	if err := Unpack(ctx, archive, staging, opt); err != nil {
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
