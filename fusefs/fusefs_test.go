package fusefs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/materializer"
)

// TestByteIdenticalToMaterialize walks a mount and a materialized tree of
// the same tiles and compares the list of files and every file's bytes;
// then runs fstest.TestFS over parts of the mount.
func TestByteIdenticalToMaterialize(t *testing.T) {
	requireFUSE(t)
	if testing.Short() {
		t.Skip("generates every key of the test preset")
	}
	ctx := context.Background()
	tiles := testTiles(t)
	out := t.TempDir()
	{
		st := openStore(t, tiles, store.Options{Workers: 2})
		if _, err := materializer.Run(ctx, st, out, materializer.Options{Workers: 2}); err != nil {
			t.Fatal(err)
		}
	}
	// The mount has its own store and cache: nothing is shared with the
	// materialized tree but the tiles.
	c := openCache(t, t.TempDir(), 2<<30)
	st := openStore(t, tiles, store.Options{Workers: 2, Cache: c})
	_, mp := mount(t, st)

	want := walkFiles(t, out)
	got := walkFiles(t, mp)
	if !slices.Equal(got, want) {
		t.Fatalf("file lists differ:\nonly in mount: %v\nonly materialized: %v", minus(got, want), minus(want, got))
	}
	var n int64
	for _, rel := range want {
		a, err := os.ReadFile(filepath.Join(mp, rel))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(out, rel))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: mount has %d bytes, materialized %d, contents differ", rel, len(a), len(b))
		}
		n += int64(len(a))
	}
	t.Logf("%d files, %.1f MiB, byte-identical", len(want), float64(n)/(1<<20))

	// fstest.TestFS reads every file several ways (Read, ReadAt, Seek,
	// ReadDir in pieces): run it on a zone's scales and on the STAC tree.
	for _, sub := range []string{"2024.zarr/utm31/scales", "2024.zarr/utm34/northing", "geotessera-2024"} {
		fsys, err := fs.Sub(os.DirFS(mp), sub)
		if err != nil {
			t.Fatal(err)
		}
		var expect []string
		for _, rel := range want {
			if r, ok := strings.CutPrefix(rel, sub+"/"); ok {
				expect = append(expect, r)
			}
		}
		if err := fstest.TestFS(fsys, expect...); err != nil {
			t.Errorf("fstest.TestFS(%s): %v", sub, err)
		}
	}
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// TestListingNeverGenerates lists every directory of the mount, stats
// names that do not exist, and checks that nothing was generated; then
// checks that lookup reports every shard's exact size.
func TestListingNeverGenerates(t *testing.T) {
	st := openStore(t, testTiles(t), store.Options{Workers: 2}, 30)
	_, mp := mount(t, st)

	var dirs, files int
	err := filepath.WalkDir(mp, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs++
		} else {
			files++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if g := st.Stats().Generated; g != 0 {
		t.Fatalf("listing %d directories and %d files generated %d chunks", dirs, files, g)
	}

	absent := []string{
		"2024.zarr/utm30/embeddings/c/99/0/0", // row past the grid
		"2024.zarr/utm30/embeddings/c/0/7/0",  // column with no tile
		"2024.zarr/utm30/embeddings/c/0/0/1",  // band chunk past the one
		"2024.zarr/utm30/embeddings/c/00/0/0", // not the canonical spelling
		"2024.zarr/utm30/embeddings/c/-1/0/0",
		"2024.zarr/utm30/scales/c/0/9",
		"2024.zarr/utm30/scales/c/x",
		"2024.zarr/utm31", // zone not discovered
		"2024.zarr/utm30/nope",
		"2023.zarr",
	}
	for _, rel := range absent {
		_, err := os.Stat(filepath.Join(mp, rel))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stat %s: %v, want ENOENT", rel, err)
		}
	}
	if g := st.Stats().Generated; g != 0 {
		t.Fatalf("stat of absent names generated %d chunks", g)
	}

	// Exact sizes: stat (lookup) of every scales shard, then compare with
	// the bytes the store makes.
	ctx := context.Background()
	keys := shardKeys(t, st, "2024.zarr/utm30/scales")
	for _, k := range keys {
		fi, err := os.Stat(filepath.Join(mp, k))
		if err != nil {
			t.Fatal(err)
		}
		b, err := st.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != int64(len(b)) || fi.Mode() != 0o444 {
			t.Errorf("%s: stat says %d bytes, mode %v; store has %d", k, fi.Size(), fi.Mode(), len(b))
		}
	}
}

// TestSingleFlight has 32 readers open and read one cold shard at once
// through the mount: exactly one generation.
func TestSingleFlight(t *testing.T) {
	c := openCache(t, t.TempDir(), 1<<30)
	st := openStore(t, testTiles(t), store.Options{Workers: 2, Cache: c}, 34)
	_, mp := mount(t, st)
	key := "2024.zarr/utm34/embeddings/c/2/0/0"
	want, err := openStore(t, testTiles(t), store.Options{Workers: 1}, 34).Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	const readers = 32
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, readers)
	for range readers {
		wg.Go(func() {
			<-start
			b, err := os.ReadFile(filepath.Join(mp, key))
			if err == nil && !bytes.Equal(b, want) {
				err = errors.New("wrong bytes")
			}
			if err != nil {
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s := st.Stats()
	t.Logf("%d concurrent cold readers: %d generation(s), %d cache hit(s)", readers, s.Generated, s.CacheHits)
	if s.Generated != 1 {
		t.Errorf("%d generations, want exactly 1", s.Generated)
	}
}

// TestGenerationBounded reads many cold shards at once through the mount
// and checks that no more than Workers generations ran at a time.
func TestGenerationBounded(t *testing.T) {
	const workers = 2
	c := openCache(t, t.TempDir(), 1<<30)
	st := openStore(t, testTiles(t), store.Options{Workers: workers, Cache: c}, 30, 31)
	_, mp := mount(t, st)
	var keys []string
	for _, k := range shardKeys(t, st, "2024.zarr") {
		if strings.Contains(k, "/scales/") {
			keys = append(keys, k)
		}
	}
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Go(func() {
			if _, err := os.ReadFile(filepath.Join(mp, k)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	s := st.Stats()
	t.Logf("%d shards read concurrently: %d generations, at most %d at once (workers %d)", len(keys), s.Generated, s.PeakGenerating, workers)
	if s.PeakGenerating > workers || s.PeakGenerating < 1 {
		t.Errorf("peak concurrent generations %d, want 1..%d", s.PeakGenerating, workers)
	}
}

// TestReadSemantics: reads clip at EOF, mmap works, inode numbers are
// stable and directories list in the store's order.
func TestReadSemantics(t *testing.T) {
	c := openCache(t, t.TempDir(), 1<<30)
	st := openStore(t, testTiles(t), store.Options{Workers: 2, Cache: c}, 30)
	_, mp := mount(t, st)
	key := "2024.zarr/utm30/scales/c/1/0"
	want, err := st.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(mp, key))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := int64(len(want))
	for _, tc := range []struct {
		name    string
		off     int64
		len     int
		wantLen int
	}{
		{"start", 0, 100, 100},
		{"straddles EOF", n - 10, 100, 10},
		{"at EOF", n, 100, 0},
		{"past EOF", n + 4096, 100, 0},
		{"last byte", n - 1, 1, 1},
	} {
		buf := make([]byte, tc.len)
		got, err := f.ReadAt(buf, tc.off)
		if got != tc.wantLen || (got < tc.len && err == nil) {
			t.Errorf("%s: ReadAt(%d, %d) = %d, %v; want %d bytes", tc.name, tc.off, tc.len, got, err, tc.wantLen)
		}
		if !bytes.Equal(buf[:got], want[min(tc.off, n):min(tc.off+int64(got), n)]) {
			t.Errorf("%s: wrong bytes", tc.name)
		}
	}

	// Mapped in another process: a page fault on the mount in the process
	// that serves it can deadlock with the Go runtime stopping the world
	// (the faulting thread cannot stop; the server cannot run).
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envMmapChild+"="+filepath.Join(mp, key))
	cmd.Stderr = os.Stderr
	m, err := cmd.Output()
	if err != nil {
		t.Fatalf("mmap in a child process: %v", err)
	}
	if !bytes.Equal(m, want) {
		t.Error("mmap shows other bytes")
	}

	var st1 syscall.Stat_t
	if err := syscall.Stat(filepath.Join(mp, key), &st1); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(mp, "2024.zarr/utm30/scales/c/1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "0" {
			if info, _ := e.Info(); info.Sys().(*syscall.Stat_t).Ino != st1.Ino {
				t.Errorf("readdir and stat disagree on the inode")
			}
		}
	}

	// Same inode in another mount of another store of the same tiles.
	_, mp2 := mount(t, openStore(t, testTiles(t), store.Options{Workers: 1, Cache: nil}, 30))
	var st2 syscall.Stat_t
	if err := syscall.Stat(filepath.Join(mp2, "2024.zarr/utm30/scales/zarr.json"), &st2); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(filepath.Join(mp, "2024.zarr/utm30/scales/zarr.json"), &st1); err != nil {
		t.Fatal(err)
	}
	if st1.Ino != st2.Ino {
		t.Errorf("inode of the same key differs between mounts: %d, %d", st1.Ino, st2.Ino)
	}
}

// TestWritesAreEROFS tries every kind of write through the mount.
func TestWritesAreEROFS(t *testing.T) {
	st := openStore(t, testTiles(t), store.Options{Workers: 1}, 30)
	_, mp := mount(t, st)
	file := filepath.Join(mp, "catalog.json")
	dir := filepath.Join(mp, "2024.zarr")
	tests := []struct {
		name string
		op   func() error
	}{
		{"create", func() error { f, err := os.Create(filepath.Join(dir, "new")); f.Close(); return err }},
		{"open O_WRONLY", func() error { f, err := os.OpenFile(file, os.O_WRONLY, 0); f.Close(); return err }},
		{"open O_RDWR", func() error { f, err := os.OpenFile(file, os.O_RDWR, 0); f.Close(); return err }},
		{"open O_TRUNC", func() error { f, err := os.OpenFile(file, os.O_RDONLY|os.O_TRUNC, 0); f.Close(); return err }},
		{"open O_APPEND", func() error { f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0); f.Close(); return err }},
		{"truncate", func() error { return os.Truncate(file, 0) }},
		{"mkdir", func() error { return os.Mkdir(filepath.Join(dir, "d"), 0o755) }},
		{"remove file", func() error { return os.Remove(file) }},
		{"remove dir", func() error { return syscall.Rmdir(filepath.Join(mp, "geotessera-2024")) }},
		{"rename", func() error { return os.Rename(file, filepath.Join(mp, "x.json")) }},
		{"chmod", func() error { return os.Chmod(file, 0o644) }},
		{"chown", func() error { return os.Chown(file, 1, 1) }},
		{"utimes", func() error { return os.Chtimes(file, st.ModTime(), st.ModTime()) }},
		{"symlink", func() error { return os.Symlink("catalog.json", filepath.Join(mp, "l")) }},
		{"link", func() error { return os.Link(file, filepath.Join(mp, "h")) }},
		{"mknod", func() error { return syscall.Mknod(filepath.Join(mp, "n"), syscall.S_IFIFO|0o644, 0) }},
		{"setxattr", func() error { return syscall.Setxattr(file, "user.x", []byte("v"), 0) }},
		{"removexattr", func() error { return syscall.Removexattr(file, "user.x") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); !errors.Is(err, syscall.EROFS) {
				t.Errorf("got %v, want EROFS", err)
			}
		})
	}
	if b, err := os.ReadFile(file); err != nil || len(b) == 0 {
		t.Errorf("catalog.json after the writes: %d bytes, %v", len(b), err)
	}
}

// envMmapChild makes the test binary map the file it names, read-only and
// shared, and copy the mapping to stdout (see TestReadSemantics).
const envMmapChild = "TESSERAFS_FUSEFS_MMAP"

func mmapChild(path string) int {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, int(fi.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mmap:", err)
		return 1
	}
	defer syscall.Munmap(m)
	if _, err := os.Stdout.Write(m); err != nil {
		return 1
	}
	return 0
}
