package fusefs_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tesserafs/tesserafs/fusefs"
)

// mapTree is a fusefs.Tree that is not the store: an fstest.MapFS.
type mapTree struct{ m fstest.MapFS }

func name(key string) string {
	if key == "" {
		return "."
	}
	return key
}

// noKey reports a name the map does not have as fusefs.IsNotFound wants.
type noKey struct{ error }

func (noKey) NotFound() bool { return true }

func keyErr(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return noKey{err}
	}
	return err
}

func (t mapTree) Stat(_ context.Context, key string) (fs.FileInfo, error) {
	fi, err := fs.Stat(t.m, name(key))
	return fi, keyErr(err)
}
func (t mapTree) ReadDir(_ context.Context, key string) ([]fs.DirEntry, error) {
	es, err := fs.ReadDir(t.m, name(key))
	return es, keyErr(err)
}
func (t mapTree) Get(_ context.Context, key string) ([]byte, error) {
	b, err := fs.ReadFile(t.m, name(key))
	return b, keyErr(err)
}
func (t mapTree) ModTime() time.Time { return time.Unix(1700000000, 0) }

// TestMountAnyTree: Mount takes any Tree (here a map of two files, no
// store), serves its names, sizes and bytes, and answers ENOENT for a
// name it does not have.
func TestMountAnyTree(t *testing.T) {
	requireFUSE(t)
	tree := mapTree{fstest.MapFS{
		"a/b.txt":   {Data: []byte("hello, tree\n")},
		"zarr.json": {Data: []byte(`{"zarr_format":3}`)},
	}}
	mp := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mp, 0o755)
	srv, err := fusefs.Mount(context.Background(), tree, mp, fusefs.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Unmount()
	b, err := os.ReadFile(filepath.Join(mp, "a/b.txt"))
	if err != nil || string(b) != "hello, tree\n" {
		t.Fatalf("read a/b.txt: %q, %v", b, err)
	}
	es, err := os.ReadDir(mp)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"a", "zarr.json"}) {
		t.Errorf("root lists %v", names)
	}
	fi, err := os.Stat(filepath.Join(mp, "zarr.json"))
	if err != nil || fi.Size() != int64(len(`{"zarr_format":3}`)) || !fi.ModTime().Equal(tree.ModTime()) {
		t.Errorf("stat zarr.json: %v, %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(mp, "a/nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat a/nope: %v, want ENOENT", err)
	}
}
