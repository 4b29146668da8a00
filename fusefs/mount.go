package fusefs

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Options configure a mount. Zero values are sensible defaults.
type Options struct {
	// EntryTimeout, AttrTimeout and NegativeTimeout say how long the
	// kernel may keep names, attributes and "no such name" answers. The
	// tree of a mount never changes, so the default for each is one hour.
	EntryTimeout, AttrTimeout, NegativeTimeout time.Duration
	// MaxWrite is the largest read request, in bytes; default 1 MiB (the
	// kernel's maximum).
	MaxWrite int
	// ReadaheadKiB is the kernel readahead for the mount when root (the
	// bdi's read_ahead_kb); 0 means 1024, negative leaves the kernel's.
	ReadaheadKiB int
	// AllowOther lets other users read the mount (needs user_allow_other
	// in /etc/fuse.conf when not root).
	AllowOther bool
	// Debug logs every FUSE request.
	Debug  bool
	Logger *slog.Logger
}

// ErrStaleMount is returned when the mount point is a mount whose server
// has died ("transport endpoint is not connected").
var ErrStaleMount = errors.New("stale FUSE mount (its server has exited)")

// Server is a running mount.
type Server struct {
	srv        *fuse.Server
	mountpoint string
	log        *slog.Logger
	root       *gofs.Inode
	tree       Tree

	mu        sync.Mutex // guards unmounted
	unmounted bool
}

// Mount mounts st read-only at mountpoint, which must be an existing
// directory, and returns once the kernel is ready to send requests. As
// root it mounts directly (no helper binary); otherwise, or if that
// fails, through fusermount3. ctx bounds only the mounting.
func Mount(ctx context.Context, st Tree, mountpoint string, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.EntryTimeout == 0 {
		opts.EntryTimeout = time.Hour
	}
	if opts.AttrTimeout == 0 {
		opts.AttrTimeout = time.Hour
	}
	if opts.NegativeTimeout == 0 {
		opts.NegativeTimeout = time.Hour
	}
	if opts.MaxWrite == 0 {
		opts.MaxWrite = fuse.MAX_KERNEL_WRITE
	}
	abs, err := filepath.Abs(mountpoint)
	if err != nil {
		return nil, fmt.Errorf("mount point %s: %w", mountpoint, err)
	}
	if err := CheckMountpoint(abs); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fo := &gofs.Options{
		MountOptions: fuse.MountOptions{
			FsName: "tesserafs",
			Name:   "tesserafs",
			// "ro" makes the kernel refuse writes before they reach us;
			// the nodes answer EROFS as well.
			Options:            []string{"ro", "default_permissions"},
			AllowOther:         opts.AllowOther,
			DirectMount:        os.Geteuid() == 0,
			DisableReadDirPlus: true, // a listing must not stat (generate) every shard
			DisableXAttrs:      true,
			// Replies come from memory: splicing them would only add
			// syscalls (and fails for 1 MiB replies, over the pipe size).
			DisableSplice: true,
			MaxWrite:      opts.MaxWrite,
			MaxBackground: 64,
			Debug:         opts.Debug,
		},
		EntryTimeout:    &opts.EntryTimeout,
		AttrTimeout:     &opts.AttrTimeout,
		NegativeTimeout: &opts.NegativeTimeout,
		UID:             uint32(os.Getuid()),
		GID:             uint32(os.Getgid()),
	}
	if opts.Debug {
		fo.MountOptions.Logger = log.New(os.Stderr, "fuse: ", 0)
	}
	root := NewRoot(st, opts.Logger)
	srv, err := gofs.Mount(abs, root, fo)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", abs, err)
	}
	if opts.ReadaheadKiB >= 0 {
		kib := opts.ReadaheadKiB
		if kib == 0 {
			kib = fuse.MAX_KERNEL_WRITE >> 10
		}
		if err := SetReadahead(abs, kib); err != nil {
			opts.Logger.Debug("fusefs: readahead not raised", "mountpoint", abs, "err", err)
		}
	}
	return &Server{srv: srv, mountpoint: abs, log: opts.Logger, root: root.EmbeddedInode(), tree: st}, nil
}

// Invalidate tells the kernel to forget what it cached of the tree — for
// a tree whose contents were replaced (see Generationer): the contents of
// every file and directory it knows, and, in every directory it knows,
// the entries of the names it knows and of the names the tree now lists
// there (a name the kernel had cached as absent may exist now). Chunk
// directories (c/ and below) are not listed again, which would cost their
// shards' existence decisions: a chunk name cached as absent shows up
// when the mount's NegativeTimeout passes. It returns how many entries
// were invalidated.
func (s *Server) Invalidate(ctx context.Context) int {
	n := 0
	var walk func(in *gofs.Inode, key string, inChunks bool)
	walk = func(in *gofs.Inode, key string, inChunks bool) {
		in.NotifyContent(0, 0)
		if !in.IsDir() {
			return
		}
		children := in.Children()
		names := map[string]bool{}
		for name := range children {
			names[name] = true
		}
		if !inChunks {
			if entries, err := s.tree.ReadDir(ctx, key); err == nil {
				for _, e := range entries {
					names[e.Name()] = true
				}
			}
		}
		for name := range names {
			if ctx.Err() != nil {
				return
			}
			in.NotifyEntry(name)
			n++
		}
		for name, child := range children {
			walk(child, join(key, name), inChunks || name == "c")
		}
	}
	walk(s.root, "", false)
	return n
}

// SetReadahead sets the kernel's readahead for the file system mounted at
// dir (its bdi's read_ahead_kb) to kib. FUSE starts at 128 KiB, so a
// sequential read of a shard costs eight times the requests it needs at
// the 1 MiB a request can carry. Only root may write it.
func SetReadahead(dir string, kib int) error {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return err
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	return os.WriteFile(p, []byte(strconv.Itoa(kib)), 0o644)
}

// CheckMountpoint checks that dir is a directory that can be mounted on:
// it exists, and is not a stale FUSE mount (ErrStaleMount).
//
// A stale mount's root may still stat from the kernel's attribute cache,
// so it is also asked for statfs, which always reaches the server (or
// fails with ENOTCONN).
func CheckMountpoint(dir string) error {
	stale := func(err error) error {
		if errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED) {
			return fmt.Errorf("mount point %s: %w", dir, ErrStaleMount)
		}
		return fmt.Errorf("mount point %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return stale(err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("mount point %s: not a directory", dir)
	}
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(dir, &sfs); err != nil {
		return stale(&os.PathError{Op: "statfs", Path: dir, Err: err})
	}
	return nil
}

// Mountpoint is the absolute path of the mount.
func (s *Server) Mountpoint() string { return s.mountpoint }

// Wait blocks until the file system is unmounted (by Unmount, or from
// outside with umount or fusermount3 -u).
func (s *Server) Wait() { s.srv.Wait() }

// Unmount unmounts and waits for the server to stop. A mount still in use
// (a process has a file open or its working directory inside) is detached
// lazily instead: it disappears from the tree at once and the kernel lets
// it go when the last user leaves.
func (s *Server) Unmount() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unmounted {
		return nil
	}
	err := s.srv.Unmount()
	if err != nil {
		s.log.Warn("fusefs: unmount failed, detaching lazily", "mountpoint", s.mountpoint, "err", err)
		if lerr := LazyUnmount(s.mountpoint); lerr != nil {
			return fmt.Errorf("unmount %s: %w (lazy unmount: %v)", s.mountpoint, err, lerr)
		}
	}
	s.unmounted = true
	done := make(chan struct{})
	go func() { s.srv.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.log.Warn("fusefs: server still running 10 s after unmount", "mountpoint", s.mountpoint)
	}
	return nil
}

// LazyUnmount detaches the mount at dir (umount -l): the way out of a
// stale mount left by a server that was killed, and of a busy one.
func LazyUnmount(dir string) error {
	err := syscall.Unmount(dir, syscall.MNT_DETACH)
	if err == nil {
		return nil
	}
	for _, bin := range []string{"fusermount3", "fusermount"} {
		path, lerr := exec.LookPath(bin)
		if lerr != nil {
			continue
		}
		out, cerr := exec.Command(path, "-u", "-z", dir).CombinedOutput()
		if cerr == nil {
			return nil
		}
		err = fmt.Errorf("%w; %s -u -z: %v: %s", err, bin, cerr, strings.TrimSpace(string(out)))
	}
	return fmt.Errorf("unmount %s: %w", dir, err)
}

// IsMounted reports whether dir is a mount point (per /proc/self/mountinfo).
func IsMounted(dir string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMount(f[4]) == dir {
			return true
		}
	}
	return false
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
