package index

import (
	"io/fs"
	"syscall"
	"time"
)

// statFile returns the size and modification time of path (following
// symlinks) as os.Stat does, without allocating a FileInfo: discovery
// stats every landmask.
func statFile(path string) (int64, time.Time, error) {
	var st syscall.Stat_t
	for {
		err := syscall.Stat(path, &st)
		if err == nil {
			return st.Size, time.Unix(st.Mtim.Unix()), nil
		}
		if err != syscall.EINTR {
			return 0, time.Time{}, &fs.PathError{Op: "stat", Path: path, Err: err}
		}
	}
}
