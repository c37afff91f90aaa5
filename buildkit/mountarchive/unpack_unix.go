//go:build unix

package mountarchive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// extract writes a Pack tar into dir, which the helper only ever fills
// when it is empty. It does what containerd's archive.Apply does for a
// layer without whiteouts, with a fraction of its system calls (Apply
// resolves every path component against symlinks on disk, which made it
// the slowest part of a restore): names are cleaned, and a path through a
// symlink this archive created is refused, which keeps every write inside
// dir because dir started empty.
//
// Small files are written by a few goroutines while the archive is read
// on: creating a file costs the kernel hundreds of microseconds on a busy
// disk, and one at a time made the restore slower than tar's.
func extract(ctx context.Context, tr *tar.Reader, dir string, opt UnpackOptions) (err error) {
	type dirTimes struct {
		path         string
		atime, mtime time.Time
	}
	var dirs []dirTimes
	var written int64
	buf := make([]byte, 1<<20)
	files := newFileWriters(opt)
	defer func() {
		if werr := files.close(); err == nil {
			err = werr
		}
	}()
	symlinks := map[string]bool{}
	throughSymlink := func(name string) bool {
		for p := path.Dir(name); p != "/"; p = path.Dir(p) {
			if symlinks[p] {
				return true
			}
		}
		return false
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		name := path.Clean("/" + hdr.Name)
		if name == "/" {
			continue // the mount's root keeps what BuildKit gave it
		}
		if throughSymlink(name) {
			return fmt.Errorf("%s: path goes through a symlink", hdr.Name)
		}
		if hdr.Typeflag != tar.TypeDir && hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeSymlink && hdr.Typeflag != tar.TypeLink {
			continue // devices and fifos have no place in a cache
		}
		if hdr.Typeflag == tar.TypeReg {
			// Counted before writing: the cap holds for the disk too.
			written += hdr.Size
			if opt.MaxBytes > 0 && written > opt.MaxBytes {
				return fmt.Errorf("%w: more than %d bytes of files", ErrTooLarge, opt.MaxBytes)
			}
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		linkTarget := ""
		if hdr.Typeflag == tar.TypeLink {
			target := path.Clean("/" + hdr.Linkname)
			if symlinks[target] || throughSymlink(target) {
				return fmt.Errorf("%s: hardlink to a symlink", hdr.Name)
			}
			linkTarget = filepath.Join(dir, filepath.FromSlash(target))
			// The target may still be being written.
			if err := files.wait(); err != nil {
				return err
			}
		}
		if hdr.Typeflag == tar.TypeReg && hdr.Size <= smallFile {
			if err := files.write(p, hdr, tr); err != nil {
				return err
			}
			continue
		}
		err = create(p, hdr, tr, linkTarget, opt, buf)
		if errors.Is(err, fs.ErrNotExist) {
			// A parent the archive did not list.
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			err = create(p, hdr, tr, linkTarget, opt, buf)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
		switch hdr.Typeflag {
		case tar.TypeSymlink:
			symlinks[name] = true
		case tar.TypeLink, tar.TypeReg:
			// A hardlink shares its target's inode and metadata; create
			// set a file's through its descriptor.
			continue
		}
		if err := os.Lchown(p, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeSymlink {
			ts := []unix.Timespec{unix.NsecToTimespec(hdr.AccessTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
			if hdr.AccessTime.IsZero() {
				ts[0] = ts[1]
			}
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("%s: %w", hdr.Name, err)
			}
			continue
		}
		// After chown, which clears setuid and setgid bits. A
		// directory's setgid only passes its group on, and is kept.
		if err := os.Chmod(p, hdr.FileInfo().Mode()); err != nil {
			return err
		}
		dirs = append(dirs, dirTimes{p, accessTime(hdr), hdr.ModTime})
	}
	if err := files.wait(); err != nil {
		return err
	}
	// Directory times last: creating their entries changed them.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chtimes(dirs[i].path, dirs[i].atime, dirs[i].mtime); err != nil {
			return err
		}
	}
	return nil
}

// smallFile is the largest file the fileWriters take: its contents are
// held in memory until a writer is free.
const smallFile = 1 << 20

// fileWriters creates small files on a few goroutines. A file whose
// parent the archive did not list gets it created, as create's caller
// does.
type fileWriters struct {
	opt  UnpackOptions
	jobs chan fileJob
	wg   sync.WaitGroup // one per job in flight
	mu   sync.Mutex
	err  error
	bufs chan []byte
}

type fileJob struct {
	path string
	hdr  tar.Header
	data []byte
}

func newFileWriters(opt UnpackOptions) *fileWriters {
	const workers = 4
	w := &fileWriters{opt: opt, jobs: make(chan fileJob), bufs: make(chan []byte, workers+1)}
	for range workers {
		go func() {
			for j := range w.jobs {
				w.run(j)
			}
		}()
	}
	return w
}

// write reads hdr's contents and hands the file to a writer.
func (w *fileWriters) write(p string, hdr *tar.Header, r io.Reader) error {
	if err := w.failed(); err != nil {
		return err
	}
	var data []byte
	select {
	case data = <-w.bufs:
	default:
		data = make([]byte, 0, smallFile)
	}
	data = data[:hdr.Size]
	if _, err := io.ReadFull(r, data); err != nil {
		return err
	}
	w.wg.Add(1)
	w.jobs <- fileJob{p, *hdr, data}
	return nil
}

func (w *fileWriters) run(j fileJob) {
	defer w.wg.Done()
	err := w.create(j)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(j.path), 0o755); err == nil {
			err = w.create(j)
		}
	}
	select {
	case w.bufs <- j.data[:0]:
	default:
	}
	if err != nil {
		w.mu.Lock()
		if w.err == nil {
			w.err = fmt.Errorf("%s: %w", j.hdr.Name, err)
		}
		w.mu.Unlock()
	}
}

func (w *fileWriters) create(j fileJob) error {
	f, err := os.OpenFile(j.path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = writeFile(f, &j.hdr, w.opt, func(f *os.File) error {
		_, err := f.Write(j.data)
		return err
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (w *fileWriters) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// wait returns once every file handed over is written, with the first
// error. More files may follow.
func (w *fileWriters) wait() error {
	w.wg.Wait()
	return w.failed()
}

// close waits and ends the writers.
func (w *fileWriters) close() error {
	err := w.wait()
	close(w.jobs)
	return err
}

func accessTime(hdr *tar.Header) time.Time {
	if hdr.AccessTime.IsZero() {
		return hdr.ModTime
	}
	return hdr.AccessTime
}

func create(p string, hdr *tar.Header, data io.Reader, linkTarget string, opt UnpackOptions, buf []byte) error {
	switch hdr.Typeflag {
	case tar.TypeDir:
		err := os.Mkdir(p, 0o700)
		if errors.Is(err, fs.ErrExist) {
			if fi, serr := os.Lstat(p); serr == nil && fi.IsDir() {
				return nil
			}
		}
		return err
	case tar.TypeReg:
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		err = writeFile(f, hdr, opt, func(f *os.File) error {
			_, err := io.CopyBuffer(struct{ io.Writer }{f}, data, buf)
			return err
		})
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	case tar.TypeSymlink:
		return os.Symlink(hdr.Linkname, p)
	default: // tar.TypeLink
		return os.Link(linkTarget, p)
	}
}

// writeFile fills a new file and sets its owner, mode and times through
// its descriptor: path-based calls resolve the path again each, which
// made a restore of many small files slower than tar's. A large file is
// copied in buf-sized pieces (os.File's own ReadFrom would copy 32 KiB at
// a time).
func writeFile(f *os.File, hdr *tar.Header, opt UnpackOptions, fill func(*os.File) error) error {
	if err := fill(f); err != nil {
		return err
	}
	if err := f.Chown(hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	// After chown, which clears setuid and setgid bits.
	mode := hdr.FileInfo().Mode()
	if !opt.KeepSetID {
		// A file's setuid or setgid runs the program with another
		// identity.
		mode &^= os.ModeSetuid | os.ModeSetgid
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	ts := []unix.Timespec{unix.NsecToTimespec(accessTime(hdr).UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	return futimens(f, ts)
}

// owner is a file's uid and gid.
func owner(info fs.FileInfo) (uid, gid uint32) {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Uid, st.Gid
	}
	return 0, 0
}

// lockDir holds an exclusive flock on the mount's directory until unlock.
// Builds on one builder can run helper builds on one shared cache mount
// at the same time; the lock keeps one restore from seeing, or clearing,
// another's half-done work. The directory is the same inode in every
// container that mounts the cache through a bind mount, so the lock holds
// across them. Where the filesystem cannot lock, the helper goes on
// without: the lock narrows a race, nothing depends on it.
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_EX)
	return func() { f.Close() }, nil
}
