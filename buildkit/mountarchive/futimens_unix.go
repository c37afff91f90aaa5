//go:build unix && !linux

package mountarchive

import (
	"os"

	"golang.org/x/sys/unix"
)

// futimens sets an open file's times by its path: builders run Linux,
// and this is for the tests on other systems.
func futimens(f *os.File, ts []unix.Timespec) error {
	return unix.UtimesNanoAt(unix.AT_FDCWD, f.Name(), ts, 0)
}
