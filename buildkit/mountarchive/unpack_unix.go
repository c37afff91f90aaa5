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
func extract(ctx context.Context, tr *tar.Reader, dir string, opt UnpackOptions) error {
	type dirTimes struct {
		path         string
		atime, mtime time.Time
	}
	var dirs []dirTimes
	var written int64
	buf := make([]byte, 1<<20)
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
	// Directory times last: creating their entries changed them.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chtimes(dirs[i].path, dirs[i].atime, dirs[i].mtime); err != nil {
			return err
		}
	}
	return nil
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
		err = writeFile(f, hdr, data, opt, buf)
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
// made a restore of many small files slower than tar's. Writes go in
// buf-sized pieces (os.File's own ReadFrom would copy 32 KiB at a time).
func writeFile(f *os.File, hdr *tar.Header, data io.Reader, opt UnpackOptions, buf []byte) error {
	if _, err := io.CopyBuffer(struct{ io.Writer }{f}, data, buf); err != nil {
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
