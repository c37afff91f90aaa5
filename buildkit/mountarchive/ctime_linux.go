package mountarchive

import (
	"io/fs"
	"syscall"
	"time"
)

// changeTime is a file's ctime: when its inode last changed.
func changeTime(info fs.FileInfo) time.Time {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
	}
	return info.ModTime()
}
