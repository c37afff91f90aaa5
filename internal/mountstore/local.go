package mountstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Local keeps archives as files in a directory.
type Local struct{ dir string }

// NewLocal keeps archives in dir, created on the first Put.
func NewLocal(dir string) *Local { return &Local{dir: dir} }

func (l *Local) String() string { return "local " + l.dir }

func (l *Local) Get(_ context.Context, key string) (io.ReadCloser, int64, error) {
	f, err := os.Open(filepath.Join(l.dir, ArchiveName(key)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, info.Size(), nil
}

// Put writes a temporary file and renames it over the old archive, so a
// failed save never leaves a partial one.
func (l *Local) Put(_ context.Context, key string, r io.ReaderAt, size int64) error {
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(l.dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, section(r, size)); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(l.dir, ArchiveName(key)))
}
