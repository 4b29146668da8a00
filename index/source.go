package index

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Source is where a tiles root's files are read from: a local directory
// here, an HTTP server or an S3 bucket in internal/source. Discovery and
// the shard generators read every tile file through it, so a remote root
// behaves like a local one, file for file.
//
// Names are what Path returns: an OS path for a directory, a URL for a
// remote root. A Tile's Embeddings, Scales and Landmask are such names.
type Source interface {
	// String is the root as the user gave it, for messages.
	String() string
	// Path turns rel, a slash-separated path under the root, into a name.
	Path(rel string) string
	// Open opens a file for ranged reads. A missing file's error wraps
	// fs.ErrNotExist.
	Open(ctx context.Context, name string) (SourceFile, error)
	// ReadDir lists a directory; ErrNoListing where the source cannot
	// list (HTTP), so discovery must come from a registry.
	ReadDir(ctx context.Context, name string) ([]DirEntry, error)
}

// SourceFile is an open tile file.
type SourceFile interface {
	io.ReaderAt
	// Stamp identifies this version of the file: name, size, modification
	// time, and for remote files the server's ETag.
	Stamp() FileStamp
	Close() error
}

// DirEntry is one name in a listed directory.
type DirEntry struct {
	Name  string
	IsDir bool
}

// ErrNoListing is returned by ReadDir of a source that cannot list.
var ErrNoListing = errors.New("this tiles root cannot be listed (HTTP): discovery needs its registry.parquet")

// DirSource is a tiles root on a local (or network-mounted) file system.
type DirSource struct{ Root string }

var _ Source = DirSource{}

func (d DirSource) String() string { return d.Root }

func (d DirSource) Path(rel string) string {
	return filepath.Join(d.Root, filepath.FromSlash(strings.TrimPrefix(rel, "/")))
}

func (d DirSource) Open(ctx context.Context, name string) (SourceFile, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &os.PathError{Op: "open", Path: name, Err: errors.New("not a regular file")}
	}
	return &dirFile{File: f, stamp: FileStamp{Path: name, Size: fi.Size(), ModTime: fi.ModTime()}}, nil
}

func (d DirSource) ReadDir(ctx context.Context, name string) ([]DirEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	es, err := readDirUnsorted(name)
	if err != nil {
		return nil, err
	}
	out := make([]DirEntry, len(es))
	for i, e := range es {
		out[i] = DirEntry{Name: e.Name(), IsDir: isDir(e, filepath.Join(name, e.Name()))}
	}
	return out, nil
}

type dirFile struct {
	*os.File
	stamp FileStamp
}

func (f *dirFile) Stamp() FileStamp { return f.stamp }

// readDirUnsorted is os.ReadDir without the sort: a year directory can
// hold 100,000 tiles, and the tiles are sorted by coordinates later.
func readDirUnsorted(dir string) ([]fs.DirEntry, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}

// isDir reports whether e is a directory, following a symlink.
func isDir(e fs.DirEntry, path string) bool {
	if e.IsDir() {
		return true
	}
	if e.Type()&fs.ModeSymlink != 0 {
		fi, err := os.Stat(path)
		return err == nil && fi.IsDir()
	}
	return false
}

// StampOpener is a Source that opens a file against the stamp it was
// indexed with and checks it itself: a remote root does so on the first
// read, at no extra round trip.
type StampOpener interface {
	OpenStamp(ctx context.Context, want FileStamp) (SourceFile, error)
}

// OpenStamp opens want.Path from src and checks that it is still the file
// described by want: same size, and same ETag (remote) or modification
// time (local). A tile replaced since discovery must not be served under
// its old geometry and fingerprint.
func OpenStamp(ctx context.Context, src Source, want FileStamp) (SourceFile, error) {
	if so, ok := src.(StampOpener); ok {
		return so.OpenStamp(ctx, want)
	}
	f, err := src.Open(ctx, want.Path)
	if err != nil {
		return nil, err
	}
	if got := f.Stamp(); got.Size != want.Size || !got.ModTime.Equal(want.ModTime) {
		f.Close()
		return nil, fmt.Errorf("%s changed since the tiles were indexed (restart to re-index)", want.Path)
	}
	return f, nil
}
