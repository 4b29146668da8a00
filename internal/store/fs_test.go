package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"slices"
	"strings"
)

// FS returns the store as an io/fs.FS (tests only), so that the same conformance and
// value tests run on the store in-process, on a mount, and on a
// materialized directory (os.DirFS). ctx bounds every call made through it.
func (s *Store) FS(ctx context.Context) fs.FS { return storeFS{s, ctx} }

type storeFS struct {
	s   *Store
	ctx context.Context
}

var (
	_ fs.StatFS     = storeFS{}
	_ fs.ReadDirFS  = storeFS{}
	_ fs.ReadFileFS = storeFS{}
)

func (f storeFS) key(op, name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return "", nil
	}
	return name, nil
}

func pathErr(op, name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		err = fs.ErrNotExist
	}
	return &fs.PathError{Op: op, Path: name, Err: err}
}

func (f storeFS) Stat(name string) (fs.FileInfo, error) {
	key, err := f.key("stat", name)
	if err != nil {
		return nil, err
	}
	info, err := f.s.Stat(f.ctx, key)
	if err != nil {
		return nil, pathErr("stat", name, err)
	}
	return info, nil
}

func (f storeFS) ReadFile(name string) ([]byte, error) {
	key, err := f.key("readfile", name)
	if err != nil {
		return nil, err
	}
	b, err := f.s.Get(f.ctx, key)
	if err != nil {
		return nil, pathErr("readfile", name, err)
	}
	return bytes.Clone(b), nil
}

func (f storeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	key, err := f.key("readdir", name)
	if err != nil {
		return nil, err
	}
	entries, err := f.s.ReadDir(f.ctx, key)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	// fs.ReadDirFS wants entries sorted by name.
	sortEntries(entries)
	return entries, nil
}

func (f storeFS) Open(name string) (fs.File, error) {
	key, err := f.key("open", name)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat(name)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	if info.IsDir() {
		entries, err := f.ReadDir(name)
		if err != nil {
			return nil, err
		}
		return &dirFile{info: info, entries: entries}, nil
	}
	b, err := f.s.Get(f.ctx, key)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	return &file{info: info, r: bytes.NewReader(b)}, nil
}

type file struct {
	info fs.FileInfo
	r    *bytes.Reader
}

func (f *file) Stat() (fs.FileInfo, error)              { return f.info, nil }
func (f *file) Read(p []byte) (int, error)              { return f.r.Read(p) }
func (f *file) ReadAt(p []byte, off int64) (int, error) { return f.r.ReadAt(p, off) }
func (f *file) Seek(off int64, whence int) (int64, error) {
	return f.r.Seek(off, whence)
}
func (f *file) Close() error { return nil }

type dirFile struct {
	info    fs.FileInfo
	entries []fs.DirEntry
	off     int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.Name(), Err: errors.New("is a directory")}
}
func (d *dirFile) Close() error { return nil }

func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(rest))
	d.off += n
	return rest[:n], nil
}

func sortEntries(es []fs.DirEntry) {
	slices.SortFunc(es, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
}
