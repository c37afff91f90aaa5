//go:build !linux

package mountarchive

import (
	"io/fs"
	"time"
)

// changeTime is a file's modification time where the helper never runs
// (builders run Linux), for the tests.
func changeTime(info fs.FileInfo) time.Time { return info.ModTime() }
