//go:build !unix

package mountarchive

import (
	"archive/tar"
	"context"
	"errors"
	"io/fs"
)

// extract runs only in a Linux builder; other systems never unpack.
func extract(context.Context, *tar.Reader, string, UnpackOptions) error {
	return errors.New("unpacking a cache mount needs a unix system")
}

func lockDir(string) (func(), error) { return func() {}, nil }

// owner is not read on systems that never unpack.
func owner(fs.FileInfo) (uid, gid uint32) { return 0, 0 }
