package fusefs_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tesserafs/tesserafs/fusefs"
	"github.com/tesserafs/tesserafs/internal/cache"
	"github.com/tesserafs/tesserafs/internal/npy"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/synth"
	"github.com/tesserafs/tesserafs/internal/testtiles"
)

// TestMain doubles as the mount process that TestCacheSurvivesKill9
// kills, and as the process that maps a file of the mount for
// TestReadSemantics.
func TestMain(m *testing.M) {
	if dir := os.Getenv("TESSERAFS_FUSEFS_CHILD"); dir != "" {
		os.Exit(mountChild(dir))
	}
	if path := os.Getenv(envMmapChild); path != "" {
		os.Exit(mmapChild(path))
	}
	if spec := os.Getenv(envReadyChild); spec != "" {
		os.Exit(readyChild(spec))
	}
	code := m.Run()
	runTeardown() // the benchmarks' mounts
	os.Exit(code)
}

// readAll reads keys through the mount at mp.
func readAll(t testing.TB, mp string, keys []string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, k := range keys {
		b, err := os.ReadFile(filepath.Join(mp, k))
		if err != nil {
			t.Fatal(err)
		}
		out[k] = b
	}
	return out
}

// TestCacheRestart: a second mount with the same cache serves the shards
// the first one generated without generating anything.
func TestCacheRestart(t *testing.T) {
	tiles := testTiles(t)
	cdir := t.TempDir()
	var keys []string
	var first map[string][]byte
	{
		c, err := cache.Open(cdir, cache.Options{Budget: 1 << 30, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		st := openStore(t, tiles, store.Options{Workers: 2, Cache: c}, 31)
		srv, mp := mount(t, st)
		keys = shardKeys(t, st, "2024.zarr/utm31")[:8]
		first = readAll(t, mp, keys)
		if g := st.Stats().Generated; g != int64(len(keys)) {
			t.Errorf("first mount: %d generations for %d cold shards", g, len(keys))
		}
		unmount(t, srv, mp)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	c := openCache(t, cdir, 1<<30)
	st := openStore(t, tiles, store.Options{Workers: 2, Cache: c}, 31)
	_, mp := mount(t, st)
	second := readAll(t, mp, keys)
	for _, k := range keys {
		if !bytes.Equal(first[k], second[k]) {
			t.Errorf("%s differs after restart", k)
		}
	}
	s := st.Stats()
	t.Logf("after restart: %d shards read, %d generations, %d cache hits", len(keys), s.Generated, s.CacheHits)
	if s.Generated != 0 {
		t.Errorf("second mount generated %d chunks, want 0", s.Generated)
	}
}

// TestCacheNeverStale changes the tiles a shard is made from between two
// mounts sharing a cache: the second mount regenerates it and serves the
// new bytes, never the cached old ones.
func TestCacheNeverStale(t *testing.T) {
	const key = "2024.zarr/utm30/embeddings/c/1/0/0"
	changes := []struct {
		name   string
		change func(t *testing.T, path string)
	}{
		{"modified in place", func(t *testing.T, path string) {
			b := flipData(t, path)
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			later := time.Now().Add(time.Hour) // whatever the clock's granularity
			if err := os.Chtimes(path, later, later); err != nil {
				t.Fatal(err)
			}
		}},
		{"replaced by rename", func(t *testing.T, path string) {
			b := flipData(t, path)
			tmp := path + ".new"
			if err := os.WriteFile(tmp, b, 0o644); err != nil {
				t.Fatal(err)
			}
			later := time.Now().Add(2 * time.Hour)
			os.Chtimes(tmp, later, later)
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range changes {
		t.Run(tc.name, func(t *testing.T) {
			tiles := copyZone(t, 30)
			cdir := t.TempDir()
			var before []byte
			{
				c, err := cache.Open(cdir, cache.Options{Budget: 1 << 30, Logger: testLogger(t)})
				if err != nil {
					t.Fatal(err)
				}
				st := openStore(t, tiles, store.Options{Workers: 2, Cache: c})
				srv, mp := mount(t, st)
				before = readAll(t, mp, []string{key})[key]
				unmount(t, srv, mp)
				c.Close()
			}
			for _, p := range embeddingFiles(t, tiles) {
				tc.change(t, p)
			}
			c := openCache(t, cdir, 1<<30)
			st := openStore(t, tiles, store.Options{Workers: 2, Cache: c})
			_, mp := mount(t, st)
			after := readAll(t, mp, []string{key})[key]
			fresh, err := openStore(t, tiles, store.Options{Workers: 1}).Get(context.Background(), key)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(after, before) {
				t.Fatal("the mount served the shard of the old tiles")
			}
			if !bytes.Equal(after, fresh) {
				t.Fatal("the mount's shard differs from one generated afresh")
			}
			// Reads of cached chunks are counted per read request.
			if s := st.Stats(); s.Generated != 1 || s.CacheHits < 1 {
				t.Errorf("stats %+v: want the shard generated once (lookup), then read from the cache", s)
			}
		})
	}
}

// copyZone copies the tiles of one zone of the test preset (and their
// landmasks) to a directory the test may change.
func copyZone(t *testing.T, zone int) string {
	t.Helper()
	src := testTiles(t)
	specs, err := synth.Preset("test")
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	for _, s := range specs {
		if s.Coord.Zone() != zone {
			continue
		}
		for _, p := range []string{
			synth.EmbeddingsPath(src, testtiles.Year, s.Coord),
			synth.ScalesPath(src, testtiles.Year, s.Coord),
			synth.LandmaskPath(src, s.Coord),
		} {
			b, err := os.ReadFile(p)
			if errors.Is(err, os.ErrNotExist) {
				continue // a tile without a landmask
			}
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(src, p)
			out := filepath.Join(dst, rel)
			os.MkdirAll(filepath.Dir(out), 0o755)
			if err := os.WriteFile(out, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dst
}

func embeddingFiles(t *testing.T, root string) []string {
	m, err := filepath.Glob(filepath.Join(root, synth.RepresentationDir, "*", "grid_*", "grid_*[0-9].npy"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no embeddings under %s: %v", root, err)
	}
	return m
}

// flipData returns a .npy file's bytes with every data byte inverted.
func flipData(t *testing.T, path string) []byte {
	info, err := npy.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := info.Header.DataOffset; i < int64(len(b)); i++ {
		b[i] = ^b[i]
	}
	return b
}

// TestCacheBudget reads about four times the cache budget of shards
// through a mount and measures the cache directory after every file.
func TestCacheBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("generates every shard of the test preset")
	}
	const budget = 40 << 20
	cdir := t.TempDir()
	c := openCache(t, cdir, budget)
	st := openStore(t, testTiles(t), store.Options{Workers: 2, Cache: c})
	_, mp := mount(t, st)
	var read, maxDisk int64
	keys := shardKeys(t, st, "2024.zarr")
	for _, k := range keys {
		b, err := os.ReadFile(filepath.Join(mp, k))
		if err != nil {
			t.Fatal(err)
		}
		read += int64(len(b))
		d, err := cache.DiskUsage(cdir)
		if err != nil {
			t.Fatal(err)
		}
		maxDisk = max(maxDisk, d)
	}
	c.Maintain()
	cs := c.Stats()
	maxDisk = max(maxDisk, cs.Disk)
	t.Logf("budget %d MiB: read %.1f MiB (%.1f× budget) in %d shards; cache disk max %.1f MiB (%.3f× budget), %d entries, %d evictions",
		budget>>20, float64(read)/(1<<20), float64(read)/budget, len(keys), float64(maxDisk)/(1<<20), float64(maxDisk)/budget, cs.Entries, cs.Evictions)
	if read < 3*budget {
		t.Fatalf("read only %d bytes: the test needs 3× the budget", read)
	}
	if limit := int64(budget + budget/10); maxDisk > limit {
		t.Errorf("cache directory reached %d bytes > budget + 10%% (%d)", maxDisk, limit)
	}
}

// TestCacheSurvivesKill9 runs a mount in a child process, reads shards
// through it, kills it with SIGKILL, checks that the stale mount is
// recognised and cleared, and that a new mount serves those shards from
// the cache the killed process wrote.
func TestCacheSurvivesKill9(t *testing.T) {
	requireFUSE(t)
	tiles := testTiles(t)
	cdir := t.TempDir()
	mp := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if fusefs.IsMounted(mp) {
			fusefs.LazyUnmount(mp)
		}
	})
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "TESSERAFS_FUSEFS_CHILD="+cdir, "TESSERAFS_FUSEFS_TILES="+tiles, "TESSERAFS_FUSEFS_MNT="+mp)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "READY" {
				ready <- true
			}
		}
		close(ready)
	}()
	select {
	case ok := <-ready:
		if !ok {
			cmd.Wait()
			t.Fatal("mount child exited before it was ready")
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("mount child not ready after 60 s")
	}

	keys := []string{
		"2024.zarr/utm34/embeddings/c/0/0/0",
		"2024.zarr/utm34/embeddings/c/1/0/0",
		"2024.zarr/utm34/scales/c/1/0",
	}
	first := readAll(t, mp, keys)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	// The mount is stale now: stat fails with ENOTCONN.
	err = fusefs.CheckMountpoint(mp)
	if !errors.Is(err, fusefs.ErrStaleMount) {
		t.Fatalf("CheckMountpoint after kill -9: %v, want ErrStaleMount", err)
	}
	if err := fusefs.LazyUnmount(mp); err != nil {
		t.Fatal(err)
	}
	if err := fusefs.CheckMountpoint(mp); err != nil {
		t.Fatalf("after umount -l: %v", err)
	}

	c := openCache(t, cdir, 1<<30)
	cs := c.Stats()
	t.Logf("cache reopened after kill -9: %d entries, %.1f MiB", cs.Entries, float64(cs.Bytes)/(1<<20))
	if cs.Entries < int64(len(keys)) {
		t.Fatalf("%d cache entries after kill -9, want at least %d", cs.Entries, len(keys))
	}
	st := openStore(t, tiles, store.Options{Workers: 2, Cache: c})
	srv, err := fusefs.Mount(context.Background(), st, mp, fusefs.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer unmount(t, srv, mp)
	second := readAll(t, mp, keys)
	for _, k := range keys {
		if !bytes.Equal(first[k], second[k]) {
			t.Errorf("%s differs after kill -9", k)
		}
	}
	s := st.Stats()
	t.Logf("new mount after kill -9: %d shards read, %d generations, %d cache hits", len(keys), s.Generated, s.CacheHits)
	if s.Generated != 0 {
		t.Errorf("%d generations after kill -9, want 0 (served from the cache)", s.Generated)
	}
}

// mountChild is the mount process of TestCacheSurvivesKill9: it mounts,
// prints READY and serves until killed.
func mountChild(cdir string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "mount child:", err); return 1 }
	c, err := cache.Open(cdir, cache.Options{Budget: 1 << 30})
	if err != nil {
		return fail(err)
	}
	st := openStore(childTB{}, os.Getenv("TESSERAFS_FUSEFS_TILES"), store.Options{Workers: 2, Cache: c})
	if _, err := fusefs.Mount(context.Background(), st, os.Getenv("TESSERAFS_FUSEFS_MNT"), fusefs.Options{}); err != nil {
		return fail(err)
	}
	fmt.Println("READY")
	time.Sleep(5 * time.Minute)
	return fail(errors.New("not killed"))
}

// childTB lets mountChild use the test helpers outside a test.
type childTB struct{ testing.TB }

func (childTB) Helper()           {}
func (childTB) Fatal(args ...any) { fmt.Fprintln(os.Stderr, args...); os.Exit(1) }
func (childTB) Log(args ...any)   { fmt.Fprintln(os.Stderr, strings.TrimSpace(fmt.Sprint(args...))) }
func (childTB) Errorf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, f+"\n", a...)
}
