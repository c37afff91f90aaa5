package mountarchive

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// futimens sets an open file's times with nanoseconds: utimensat with a
// NULL path, as the C library's futimens (x/sys/unix has no wrapper), so
// the path is not resolved again.
func futimens(f *os.File, ts []unix.Timespec) error {
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, f.Fd(), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
