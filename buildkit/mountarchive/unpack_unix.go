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
		err = create(p, hdr, tr, linkTarget)
		if errors.Is(err, fs.ErrNotExist) {
			// A parent the archive did not list.
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			err = create(p, hdr, tr, linkTarget)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
		switch hdr.Typeflag {
		case tar.TypeSymlink:
			symlinks[name] = true
		case tar.TypeLink:
			continue // shares the target's inode and metadata
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
		// After chown, which clears setuid and setgid bits.
		mode := hdr.FileInfo().Mode()
		if hdr.Typeflag == tar.TypeReg && !opt.KeepSetID {
			// A directory's setgid only passes its group on; a file's
			// runs the program with another identity.
			mode &^= os.ModeSetuid | os.ModeSetgid
		}
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
		atime := hdr.AccessTime
		if atime.IsZero() {
			atime = hdr.ModTime
		}
		if hdr.Typeflag == tar.TypeDir {
			dirs = append(dirs, dirTimes{p, atime, hdr.ModTime})
			continue
		}
		if err := os.Chtimes(p, atime, hdr.ModTime); err != nil {
			return err
		}
	}
	// Directory times last: creating their entries changed them.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chtimes(dirs[i].path, dirs[i].atime, dirs[i].mtime); err != nil {
			return err
		}
	}
	return nil
}

func create(p string, hdr *tar.Header, data io.Reader, linkTarget string) error {
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
		_, err = io.Copy(f, data)
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
