// Package fusefs mounts a Tree — the tesserafs store, or any read-only key
// space — as a read-only FUSE file system (go-fuse v2, fs API). It is a
// thin adapter: every name, size and byte comes from the Tree, so a mount
// of the store serves exactly what materialize writes.
//
// What readers need from it (see the architecture's "Rules that follow
// from readers"): exact sizes on lookup and getattr (a shard's size is
// known once it is generated or read from the cache); listings that never
// generate (READDIRPLUS is disabled, names come from the index); absent
// shards answer ENOENT from the index at once; stable inode numbers (a
// hash of the key); kernel caching (FOPEN_KEEP_CACHE, explicit entry,
// attribute and negative timeouts, no direct I/O, so mmap works); and
// EROFS for every kind of write.
package fusefs

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Tree is the read-only key space a mount serves: what fusefs needs of a
// store, in the standard library's terms, so that any implementation can
// be mounted. Keys are slash paths from the root ("" is the root).
type Tree interface {
	// Stat describes key: a directory, or a file with its exact size. A
	// key that does not exist is a NotFound error (see IsNotFound); any
	// other error — a missing input file included — is EIO.
	Stat(ctx context.Context, key string) (fs.FileInfo, error)
	// ReadDir lists directory key. It should be cheap: a listing must not
	// cost the bytes of the files it lists.
	ReadDir(ctx context.Context, key string) ([]fs.DirEntry, error)
	// Get returns the whole bytes of file key.
	Get(ctx context.Context, key string) ([]byte, error)
	// ModTime is the modification time every node shows.
	ModTime() time.Time
}

// Generationer is a Tree whose contents can be replaced while it is
// mounted (a store that follows its tiles): Generation changes with every
// replacement. A file opened in one generation is read in that one: once
// the generation changed, a read that would need the tree again fails
// with ESTALE (the reader opens the file again), so no reader gets bytes
// and a size from different generations. Server.Invalidate tells the
// kernel to drop what it cached.
type Generationer interface {
	Generation() uint64
}

// IsNotFound reports whether err says that a key does not exist: some
// error in its chain has a method NotFound() bool that returns true. An
// error that merely wraps fs.ErrNotExist does not count: a tile file gone
// from under a key that exists is an I/O error of that key, not ENOENT.
func IsNotFound(err error) bool {
	var nf interface{ NotFound() bool }
	return errors.As(err, &nf) && nf.NotFound()
}

// Pinner is a Tree that can lend part of a file it holds in a cache
// without copying it: slices valid until release is called (exactly
// once); ok false when it does not hold the file. A read of a few bytes
// of a large cached file then costs those bytes alone.
type Pinner interface {
	PinCached(key string, off int64, n int) (slices [][]byte, release func(), ok bool)
}

// fsys is what every node of one mount shares.
type fsys struct {
	st       Tree
	pin      Pinner       // st, if it is one, else nil
	gens     Generationer // st, if it is one, else nil
	log      *slog.Logger
	mtime    time.Time
	uid, gid uint32
}

// toErrno maps a store error to the errno a reader sees: a key the store
// does not have is ENOENT, a cancelled request (the reader was
// interrupted) EINTR, and anything else EIO, logged with the key so that
// the cause is not lost. A source tile that vanished is EIO, not ENOENT:
// the key exists, its inputs failed.
func (f *fsys) toErrno(op, key string, err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case IsNotFound(err):
		return syscall.ENOENT
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return syscall.EINTR
	}
	// A remote tile that failed has been logged once, naming its URL, by
	// the source: each read it fails is then a debug line here.
	var rep interface{ Reported() bool }
	if errors.As(err, &rep) && rep.Reported() {
		f.log.Debug("fusefs: "+op+" failed", "key", key, "err", err)
	} else {
		f.log.Error("fusefs: "+op+" failed", "key", key, "err", err)
	}
	return syscall.EIO
}

// ino is a key's inode number: stable across mounts and processes. 1 is
// the root's.
func ino(key string) uint64 { return inoGen(key, 0) }

// inoGen is the inode number of file key in generation gen of a tree that
// changes (Generationer): the same as ino in the first generation, another
// in each later one, so that a file looked up after a swap is a new inode
// (go-fuse keeps one node per inode number), while one opened before keeps
// its node, size and generation. Directories keep ino.
func inoGen(key string, gen uint64) uint64 {
	if key == "" {
		return 1
	}
	h := fnv.New64a()
	h.Write([]byte(key))
	if gen > 1 {
		fmt.Fprintf(h, "\x00%d", gen)
	}
	n := h.Sum64()
	if n <= 1 {
		n += 2
	}
	return n
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

func (f *fsys) fillAttr(a *fuse.Attr, key string, isDir bool, size int64, gen uint64) {
	a.Ino = ino(key)
	if !isDir {
		a.Ino = inoGen(key, gen)
	}
	if isDir {
		a.Mode = syscall.S_IFDIR | 0o555
		a.Nlink = 2
	} else {
		a.Mode = syscall.S_IFREG | 0o444
		a.Nlink = 1
		a.Size = uint64(size)
		a.Blocks = (uint64(size) + 511) / 512
	}
	a.Blksize = 1 << 20
	a.Owner = fuse.Owner{Uid: f.uid, Gid: f.gid}
	a.SetTimes(&f.mtime, &f.mtime, &f.mtime)
}

// generation is the tree's generation (0 for a tree that never changes).
func (f *fsys) generation() uint64 {
	if f.gens == nil {
		return 0
	}
	return f.gens.Generation()
}

// newNode makes the node of a key the store knows, in generation gen: a
// file's inode number depends on the generation (inoGen), so a file looked
// up after the tree changed is a new node with the new size.
func (f *fsys) newNode(ctx context.Context, parent *gofs.Inode, key string, info fs.FileInfo, gen uint64) *gofs.Inode {
	if info.IsDir() {
		return parent.NewInode(ctx, &dirNode{fsys: f, key: key}, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino(key)})
	}
	return parent.NewInode(ctx, &fileNode{fsys: f, key: key, size: info.Size(), gen: gen}, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: inoGen(key, gen)})
}

// dirNode is a directory of the store: a group, an array, a chunk-grid
// level, or a folder of the STAC catalog.
type dirNode struct {
	gofs.Inode
	readOnly
	*fsys
	key string
}

var (
	_ gofs.InodeEmbedder = (*dirNode)(nil)
	_ gofs.NodeLookuper  = (*dirNode)(nil)
	_ gofs.NodeReaddirer = (*dirNode)(nil)
	_ gofs.NodeGetattrer = (*dirNode)(nil)
	_ gofs.NodeStatfser  = (*dirNode)(nil)
)

// Lookup resolves a name. A name the index does not have is ENOENT at
// once; a chunk's exact size costs its generation (or a cache lookup).
func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	key := join(d.key, name)
	// The generation before the Stat: if the tree changes in between, the
	// node is of the older one, and opening it says ESTALE (the kernel
	// then looks the name up again).
	gen := d.generation()
	info, err := d.st.Stat(ctx, key)
	if err != nil {
		return nil, d.toErrno("lookup", key, err)
	}
	d.fillAttr(&out.Attr, key, info.IsDir(), info.Size(), gen)
	return d.newNode(ctx, &d.Inode, key, info, gen), 0
}

// Readdir lists names from the index; it never generates.
func (d *dirNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	gen := d.generation()
	entries, err := d.st.ReadDir(ctx, d.key)
	if err != nil {
		return nil, d.toErrno("readdir", d.key, err)
	}
	out := make([]fuse.DirEntry, len(entries))
	for i, e := range entries {
		mode, n := uint32(syscall.S_IFREG), inoGen(join(d.key, e.Name()), gen)
		if e.IsDir() {
			mode, n = syscall.S_IFDIR, ino(join(d.key, e.Name()))
		}
		out[i] = fuse.DirEntry{Name: e.Name(), Mode: mode, Ino: n}
	}
	return gofs.NewListDirStream(out), 0
}

func (d *dirNode) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.fillAttr(&out.Attr, d.key, true, 0, 0)
	return 0
}

func (d *dirNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	out.Bsize = 1 << 20
	out.Frsize = 1 << 20
	out.NameLen = 255
	return 0
}

// fileNode is a file of the store in the tree's generation gen; its size
// was fixed at lookup.
type fileNode struct {
	gofs.Inode
	readOnly
	*fsys
	key  string
	size int64
	gen  uint64
}

var (
	_ gofs.InodeEmbedder = (*fileNode)(nil)
	_ gofs.NodeGetattrer = (*fileNode)(nil)
	_ gofs.NodeOpener    = (*fileNode)(nil)
	_ gofs.NodeReader    = (*fileNode)(nil)
	_ gofs.NodeFlusher   = (*fileNode)(nil)
)

// Flush answers ENOSYS: there is nothing to flush, and the kernel stops
// sending FLUSH on every close once told so.
func (n *fileNode) Flush(ctx context.Context, fh gofs.FileHandle) syscall.Errno {
	return syscall.ENOSYS
}

func (n *fileNode) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fillAttr(&out.Attr, n.key, false, n.size, n.gen)
	return 0
}

// Open refuses writing and returns a handle that fetches the bytes on its
// first read: a file whose pages the kernel still holds (FOPEN_KEEP_CACHE)
// is opened and read without asking the store at all. FOPEN_NOFLUSH spares
// a FLUSH round trip on every close.
func (n *fileNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND|syscall.O_CREAT) != 0 {
		return nil, 0, syscall.EROFS
	}
	if n.gen != n.generation() {
		return nil, 0, syscall.ESTALE // looked up in an older tree: look up again
	}
	return &handle{node: n, size: n.size, gen: n.gen}, fuse.FOPEN_KEEP_CACHE | fuse.FOPEN_NOFLUSH, 0
}

// Read returns the bytes at off, clipped at the end of the file. A chunk
// the cache holds is answered with just the range asked for, lent from the
// cache without a copy (Store.PinCached): readers that open a shard for
// each inner chunk or its index (zarr-python does) then cost a few KiB
// each, not the whole shard. Anything else is fetched whole, once per open
// handle.
func (n *fileNode) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h, ok := fh.(*handle)
	if !ok { // no handle (should not happen): one of our own
		h = &handle{node: n, size: n.size, gen: n.gen}
	}
	if off >= h.size {
		return fuse.ReadResultData(nil), 0
	}
	want := int(min(int64(len(dest)), h.size-off))
	if h.cached() {
		// fetched whole before: the bytes of the handle's generation
	} else if h.gen != n.generation() {
		return nil, syscall.ESTALE
	} else if n.pin == nil {
		// fall through to the whole file
	} else if slices, release, ok := n.pin.PinCached(n.key, off, want); ok {
		r := &pinned{slices: slices, release: release}
		if r.Size() != want {
			// The size was fixed at lookup; the cached bytes must match it.
			r.Done()
			n.log.Error("fusefs: cached chunk shorter than its size at lookup", "key", n.key, "size", h.size, "off", off, "got", r.Size())
			return nil, syscall.EIO
		}
		return r, 0
	}
	data, errno := h.bytes(ctx)
	if errno != 0 {
		return nil, errno
	}
	if off >= int64(len(data)) {
		return fuse.ReadResultData(nil), 0
	}
	end := min(off+int64(len(dest)), int64(len(data)))
	return fuse.ReadResultData(data[off:end]), 0
}

// pinned is a read reply made of the cache's own bytes (Store.PinCached),
// written to the kernel with writev and released after (go-fuse calls Done
// once the reply is written, or when the request fails). Slices makes
// go-fuse write them in place; Bytes, for any other path, copies.
type pinned struct {
	slices  [][]byte
	release func()
}

var _ fuse.ReadResult = (*pinned)(nil)

// Slices implements go-fuse's vectored read result.
func (p *pinned) Slices() ([][]byte, fuse.Status) { return p.slices, fuse.OK }

func (p *pinned) Bytes(buf []byte) ([]byte, fuse.Status) {
	n := 0
	for _, s := range p.slices {
		n += copy(buf[n:], s)
	}
	return buf[:n], fuse.OK
}

func (p *pinned) Size() int {
	n := 0
	for _, s := range p.slices {
		n += len(s)
	}
	return n
}

func (p *pinned) Done() { p.release() }

// handle is one open file: its size and the tree's generation when it was
// opened, and its bytes, fetched once on the first read.
type handle struct {
	node *fileNode
	size int64
	gen  uint64
	mu   sync.Mutex // guards data
	data []byte
}

// cached reports whether the handle holds its bytes.
func (h *handle) cached() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.data != nil
}

var _ gofs.FileHandle = (*handle)(nil)

func (h *handle) bytes(ctx context.Context) ([]byte, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.data != nil {
		return h.data, 0
	}
	n := h.node
	if h.gen != n.generation() {
		return nil, syscall.ESTALE
	}
	data, err := n.st.Get(ctx, n.key)
	if err != nil { // not remembered: an interrupted read may be retried
		return nil, n.toErrno("read", n.key, err)
	}
	if int64(len(data)) != h.size {
		// The size was fixed at lookup; the bytes must match it, or
		// readers would see a truncated or padded file.
		n.log.Error("fusefs: size changed since lookup", "key", n.key, "size", h.size, "now", len(data))
		return nil, syscall.EIO
	}
	h.data = data
	if h.data == nil {
		h.data = []byte{}
	}
	return h.data, 0
}

// readOnly answers EROFS to every operation that would change the tree,
// in case a request gets past the read-only mount flag.
type readOnly struct{}

var (
	_ gofs.NodeSetattrer      = readOnly{}
	_ gofs.NodeCreater        = readOnly{}
	_ gofs.NodeMkdirer        = readOnly{}
	_ gofs.NodeMknoder        = readOnly{}
	_ gofs.NodeUnlinker       = readOnly{}
	_ gofs.NodeRmdirer        = readOnly{}
	_ gofs.NodeRenamer        = readOnly{}
	_ gofs.NodeLinker         = readOnly{}
	_ gofs.NodeSymlinker      = readOnly{}
	_ gofs.NodeSetxattrer     = readOnly{}
	_ gofs.NodeRemovexattrer  = readOnly{}
	_ gofs.NodeWriter         = readOnly{}
	_ gofs.NodeAllocater      = readOnly{}
	_ gofs.NodeCopyFileRanger = readOnly{}
	_ gofs.NodeTmpfiler       = readOnly{}
)

func (readOnly) Setattr(context.Context, gofs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}
func (readOnly) Create(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}
func (readOnly) Mkdir(context.Context, string, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (readOnly) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (readOnly) Unlink(context.Context, string) syscall.Errno { return syscall.EROFS }
func (readOnly) Rmdir(context.Context, string) syscall.Errno  { return syscall.EROFS }
func (readOnly) Rename(context.Context, string, gofs.InodeEmbedder, string, uint32) syscall.Errno {
	return syscall.EROFS
}
func (readOnly) Link(context.Context, gofs.InodeEmbedder, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (readOnly) Symlink(context.Context, string, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (readOnly) Setxattr(context.Context, string, []byte, uint32) syscall.Errno { return syscall.EROFS }
func (readOnly) Removexattr(context.Context, string) syscall.Errno              { return syscall.EROFS }
func (readOnly) Write(context.Context, gofs.FileHandle, []byte, int64) (uint32, syscall.Errno) {
	return 0, syscall.EROFS
}
func (readOnly) Allocate(context.Context, gofs.FileHandle, uint64, uint64, uint32) syscall.Errno {
	return syscall.EROFS
}
func (readOnly) CopyFileRange(context.Context, gofs.FileHandle, uint64, *gofs.Inode, gofs.FileHandle, uint64, uint64, uint64) (uint32, syscall.Errno) {
	return 0, syscall.EROFS
}
func (readOnly) Tmpfile(context.Context, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}

// NewRoot returns the root node of a file system serving st, for Mount
// or for a caller that runs its own go-fuse server.
func NewRoot(st Tree, log *slog.Logger) gofs.InodeEmbedder {
	if log == nil {
		log = slog.Default()
	}
	pin, _ := st.(Pinner)
	gens, _ := st.(Generationer)
	return &dirNode{fsys: &fsys{
		st:    st,
		pin:   pin,
		gens:  gens,
		log:   log,
		mtime: st.ModTime(),
		uid:   uint32(os.Getuid()),
		gid:   uint32(os.Getgid()),
	}}
}
