package npy

import (
	"io"
	"io/fs"
	"syscall"
	"time"
)

// stat is Stat with raw system calls: os.Open would also set the
// descriptor non-blocking and try to register it with the poller, two
// more system calls per file, which matter when discovery checks 200,000.
func stat(path string) (Info, error) {
	var fd int
	var err error
	for {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return Info{}, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return Info{}, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if err := checkMode(fileMode(st.Mode)); err != nil {
		return Info{}, &fs.PathError{Op: "npy", Path: path, Err: err}
	}
	info := Info{Size: st.Size, ModTime: time.Unix(st.Mtim.Unix())}
	if info.Header, _, err = checkFile(fdReader(fd), info.Size); err != nil {
		return Info{}, &fs.PathError{Op: "npy", Path: path, Err: err}
	}
	return info, nil
}

// fdReader reads a file descriptor with pread.
type fdReader int

func (fd fdReader) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		m, err := syscall.Pread(int(fd), p[n:], off+int64(n))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, io.EOF
		}
		n += m
	}
	return n, nil
}

// fileMode converts st_mode's file type as os.Stat does.
func fileMode(m uint32) fs.FileMode {
	switch m & syscall.S_IFMT {
	case syscall.S_IFREG:
		return 0
	case syscall.S_IFDIR:
		return fs.ModeDir
	case syscall.S_IFLNK:
		return fs.ModeSymlink
	case syscall.S_IFIFO:
		return fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		return fs.ModeSocket
	case syscall.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFBLK:
		return fs.ModeDevice
	}
	return fs.ModeIrregular
}
