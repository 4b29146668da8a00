package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tesserafs/tesserafs/fusefs"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/testfuse"
	"github.com/tesserafs/tesserafs/internal/testtiles"
)

// TestMain runs the real command line when TESSERAFS_TEST_MAIN is set, so
// that tests can start (and kill) a real tesserafs process.
func TestMain(m *testing.M) {
	if os.Getenv("TESSERAFS_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func requireFUSE(t *testing.T) { t.Helper(); testfuse.Require(t) }

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"20GiB", 20 << 30, true},
		{"20G", 20 << 30, true},
		{"20 GiB", 20 << 30, true},
		{"500MB", 500e6, true},
		{"1.5g", 3 << 29, true},
		{"100000000", 100000000, true},
		{"64mib", 64 << 20, true},
		{"1TB", 1e12, true},
		{"", 0, false},
		{"GiB", 0, false},
		{"20 parsecs", 0, false},
		{"-1G", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestSizeFlags: every size flag takes units, and its default is shown
// with one (--source-cache-size 512MiB used to fail in strconv.ParseInt).
func TestSizeFlags(t *testing.T) {
	for _, tc := range []struct {
		in, shown string
		want      int64
	}{
		{"512MiB", "512MiB", 512 << 20}, {"1G", "1GiB", 1 << 30}, {"1000", "1000", 1000}, {"1.5KiB", "1536", 1536}, {"0", "0", 0},
	} {
		var v sizeValue
		if err := v.Set(tc.in); err != nil || int64(v) != tc.want || v.String() != tc.shown {
			t.Errorf("Set(%q): %d shown %q, %v; want %d shown %q", tc.in, v, v.String(), err, tc.want, tc.shown)
		}
	}
	for _, args := range [][]string{
		{"materialize", "--source-cache-size", "512MiB", "--help"},
		{"mount", "--source-cache-size", "2GiB", "--help"},
		{"serve", "--source-cache-size", "64M", "--help"},
	} {
		if out, err := runCLI(t, args...); err != nil {
			t.Errorf("%v: %v\n%s", args, err, out)
		} else if !strings.Contains(out, "(default 512MiB)") {
			t.Errorf("%v: help does not show the default with a unit:\n%s", args, out)
		}
	}
	if _, err := runCLI(t, "materialize", "--source-cache-size", "5 parsecs", "--help"); err == nil {
		t.Error("--source-cache-size 5 parsecs was accepted")
	}
}

// TestMountRefuses checks the mistakes mount refuses before mounting.
func TestMountRefuses(t *testing.T) {
	tiles := testtiles.Root(t, "test")
	base := t.TempDir()
	cdir := filepath.Join(base, "cache")
	mp := filepath.Join(base, "mnt")
	os.MkdirAll(filepath.Join(cdir, "sub"), 0o755)
	os.Mkdir(mp, 0o755)
	inTiles := filepath.Join(tiles, "global_0.1_degree_representation")
	tests := []struct {
		name        string
		tiles, cdir string
		size        string
		mp          string
		want        string
	}{
		{"no cache", tiles, "", "", mp, "--cache is required"},
		{"no tiles", "", cdir, "", mp, "--tiles is required"},
		{"bad size", tiles, cdir, "lots", mp, "--cache-size"},
		{"tiny size", tiles, cdir, "1MiB", mp, "at least"},
		{"inside tiles", tiles, cdir, "", inTiles, "inside the tiles root"},
		{"inside cache", tiles, cdir, "", filepath.Join(cdir, "sub"), "inside the cache directory"},
		{"hides tiles", tiles, cdir, "", filepath.Dir(tiles), "tiles root"},
		{"hides cache", tiles, cdir, "", base, "cache directory"},
		{"missing mount point", tiles, cdir, "", filepath.Join(base, "nope"), "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := mountOptions{storeOptions: storeOptions{tileOptions: tileOptions{Tiles: tt.tiles, Workers: 1}, Stretch: "zone"},
				cacheOptions: cacheOptions{Cache: tt.cdir, CacheSize: tt.size}}
			err := runMount(context.Background(), o, tt.mp, io.Discard)
			var ue userError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want a user error mentioning %q", err, tt.want)
			}
		})
	}
}

// TestMountNeedsMountpoint: mount without its one argument is a usage
// error (exit 2) that names MOUNTPOINT.
func TestMountNeedsMountpoint(t *testing.T) {
	for _, args := range [][]string{{"mount", "--tiles", "x", "--cache", "y"}, {"mount", "a", "b"}} {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), "TESSERAFS_TEST_MAIN=1")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "MOUNTPOINT") {
			t.Errorf("%v: %v\n%s; want exit 2 naming MOUNTPOINT", args, err, out)
		}
	}
}

// TestMountServesAndUnmounts runs the mount command in-process, reads
// through it, cancels its context (what SIGINT does) and checks the mount
// is gone.
func TestMountServesAndUnmounts(t *testing.T) {
	requireFUSE(t)
	tiles := testtiles.Root(t, "test")
	mp := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mp, 0o755)
	t.Cleanup(func() {
		if fusefs.IsMounted(mp) {
			fusefs.LazyUnmount(mp)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *store.Store, 1)
	o := mountOptions{storeOptions: storeOptions{tileOptions: tileOptions{Tiles: tiles, Workers: 2, Zones: []int{30}}, Stretch: "zone"},
		cacheOptions: cacheOptions{Cache: filepath.Join(t.TempDir(), "cache"), CacheSize: "256MiB"},
		onReady:      func(_ *fusefs.Server, st *store.Store) { ready <- st }}
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- runMount(ctx, o, mp, &out) }()
	var st *store.Store
	select {
	case st = <-ready:
	case err := <-done:
		t.Fatalf("mount returned early: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not ready after 30 s")
	}
	b, err := os.ReadFile(filepath.Join(mp, "2024.zarr/utm30/scales/c/0/0"))
	if err != nil || len(b) == 0 {
		t.Fatalf("read through the mount: %d bytes, %v", len(b), err)
	}
	if _, err := os.Stat(filepath.Join(mp, "2024.zarr/utm31")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("zone 31 was not asked for, stat: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if fusefs.IsMounted(mp) {
		t.Fatal("still mounted after the context was cancelled")
	}
	for _, want := range []string{"mounted at " + mp, "fusermount3 -u " + mp, "unmounted " + mp} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if st.Stats().Generated != 1 {
		t.Errorf("generated %d chunks for one shard read", st.Stats().Generated)
	}
}

// mountProc is a real tesserafs mount process.
type mountProc struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
}

// startMount starts a real tesserafs mount process and waits until it
// serves. The process is killed when the test ends if still running.
func startMount(t *testing.T, args ...string) *mountProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"mount"}, args...)...)
	cmd.Env = append(os.Environ(), "TESSERAFS_TEST_MAIN=1")
	p := &mountProc{cmd: cmd, out: &syncBuffer{}, exited: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(p.out, pw)
	cmd.Stderr = p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); pw.Close(); close(p.exited) }()
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "mounted at") {
				select {
				case ready <- true:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
	})
	select {
	case <-ready:
	case <-p.exited:
		t.Fatalf("mount exited before it was ready:\n%s", p.out.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("mount not ready after 60 s:\n%s", p.out.String())
	}
	return p
}

// wait waits for the process to exit.
func (p *mountProc) wait(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("mount process did not exit:\n%s", p.out.String())
	}
}

// TestMountSIGTERM: a real mount process unmounts cleanly on SIGTERM and
// on SIGINT.
func TestMountSIGTERM(t *testing.T) {
	requireFUSE(t)
	tiles := testtiles.Root(t, "test")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			mp := filepath.Join(t.TempDir(), "mnt")
			os.Mkdir(mp, 0o755)
			t.Cleanup(func() {
				if fusefs.IsMounted(mp) {
					fusefs.LazyUnmount(mp)
				}
			})
			p := startMount(t, "--tiles", tiles, "--zones", "34", "--cache", filepath.Join(t.TempDir(), "c"), "--cache-size", "64MiB", mp)
			if _, err := os.ReadFile(filepath.Join(mp, "catalog.json")); err != nil {
				t.Fatal(err)
			}
			p.cmd.Process.Signal(sig)
			p.wait(t)
			if fusefs.IsMounted(mp) {
				t.Fatalf("still mounted after %v:\n%s", sig, p.out.String())
			}
			if !strings.Contains(p.out.String(), "unmounted "+mp) {
				t.Errorf("no unmount message after %v:\n%s", sig, p.out.String())
			}
			if code := p.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("exit status %d after %v", code, sig)
			}
		})
	}
}

// TestMountKill9: a real mount process is killed with SIGKILL after
// serving shards; mounting again on the same point explains the stale
// mount; --force-unmount clears it, and the new mount serves the shards
// from the cache the killed process wrote, generating nothing.
func TestMountKill9(t *testing.T) {
	requireFUSE(t)
	tiles := testtiles.Root(t, "test")
	mp := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mp, 0o755)
	t.Cleanup(func() {
		if fusefs.IsMounted(mp) {
			fusefs.LazyUnmount(mp)
		}
	})
	cdir := filepath.Join(t.TempDir(), "cache")
	p := startMount(t, "--tiles", tiles, "--cache", cdir, "--cache-size", "512MiB", "--workers", "2", mp)
	keys := []string{"2024.zarr/utm30/embeddings/c/3/0/0", "2024.zarr/utm31/scales/c/2/0"}
	first := map[string][]byte{}
	for _, k := range keys {
		b, err := os.ReadFile(filepath.Join(mp, k))
		if err != nil {
			t.Fatal(err)
		}
		first[k] = b
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait(t)

	o := mountOptions{storeOptions: storeOptions{tileOptions: tileOptions{Tiles: tiles, Workers: 2}, Stretch: "zone"},
		cacheOptions: cacheOptions{Cache: cdir}}
	err := runMount(context.Background(), o, mp, io.Discard)
	var ue userError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "stale mount") || !strings.Contains(err.Error(), "fusermount3 -u "+mp) ||
		!strings.Contains(err.Error(), "--force-unmount") {
		t.Fatalf("mount on the stale mount point: %v; want a user error explaining the way out", err)
	}
	t.Logf("stale mount message: %v", err)

	o.ForceUnmount = true
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan *store.Store, 1)
	o.onReady = func(_ *fusefs.Server, st *store.Store) { ready <- st }
	done := make(chan error, 1)
	go func() { done <- runMount(ctx, o, mp, io.Discard) }()
	var st *store.Store
	select {
	case st = <-ready:
	case err := <-done:
		t.Fatalf("--force-unmount: %v", err)
	}
	for _, k := range keys {
		b, err := os.ReadFile(filepath.Join(mp, k))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, first[k]) {
			t.Errorf("%s differs after kill -9", k)
		}
	}
	s := st.Stats()
	t.Logf("after kill -9 and --force-unmount: %d shards read, %d generated, %d from the cache", len(keys), s.Generated, s.CacheHits)
	if s.Generated != 0 {
		t.Errorf("%d generations: the cache written by the killed mount was not used", s.Generated)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestCacheCommands: warm by zone and by box, stats (also while a mount
// holds the cache), clear.
func TestCacheCommands(t *testing.T) {
	tiles := testtiles.Root(t, "test")
	cdir := filepath.Join(t.TempDir(), "cache")
	ctx := context.Background()
	warm := func(zones []int, bbox string) string {
		t.Helper()
		var out bytes.Buffer
		o := cacheWarmOptions{storeOptions: storeOptions{tileOptions: tileOptions{Tiles: tiles, Workers: 2, Zones: zones}, Stretch: "zone"},
			cacheOptions: cacheOptions{Cache: cdir, CacheSize: "512MiB"}, BBox: bbox}
		if err := runCacheWarm(ctx, o, &out); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	stats := func() string {
		t.Helper()
		var out bytes.Buffer
		if err := runCacheStats(cacheOptions{Cache: cdir}, &out); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}

	// A box inside one tile of zone 34 (grid_20.55_-84.85: lon 20.5..20.6,
	// lat -84.9..-84.8) warms only the shards that tile overlaps.
	out := warm(nil, "20.52,-84.83,20.53,-84.82")
	t.Log(out)
	byBox := warmed(t, out)
	if !strings.Contains(out, " 0 already cached") {
		t.Errorf("first warm: %s", out)
	}
	out = warm([]int{34}, "")
	t.Log(out)
	all34 := warmed(t, out)
	if byBox == 0 || all34 <= byBox {
		t.Errorf("the box warmed %d shards, the whole zone %d", byBox, all34)
	}
	if !strings.Contains(out, " "+strconv.Itoa(byBox)+" already cached") {
		t.Errorf("warming the zone did not find the box's %d shards cached: %s", byBox, out)
	}
	if n := countEntries(t, stats()); n < all34 {
		t.Errorf("%d cache entries after warming %d shards", n, all34)
	}
	if s := stats(); !strings.Contains(s, "hit rate") {
		t.Errorf("stats: %s", s)
	}

	var clearOut bytes.Buffer
	if err := runCacheClear(cacheOptions{Cache: cdir}, &clearOut); err != nil {
		t.Fatal(err)
	}
	if n := countEntries(t, stats()); n != 0 {
		t.Errorf("%d entries after clear", n)
	}

	if err := runCacheWarm(ctx, cacheWarmOptions{storeOptions: storeOptions{tileOptions: tileOptions{Tiles: tiles, Workers: 1}, Stretch: "zone"},
		cacheOptions: cacheOptions{Cache: cdir}}, io.Discard); err == nil || !strings.Contains(err.Error(), "--zones or --bbox") {
		t.Errorf("warm with nothing to warm: %v", err)
	}

	// While a mount holds the cache, stats come from its stats file and
	// clear refuses.
	if _, err := os.Stat("/dev/fuse"); err == nil {
		mp := filepath.Join(t.TempDir(), "mnt")
		os.Mkdir(mp, 0o755)
		t.Cleanup(func() {
			if fusefs.IsMounted(mp) {
				fusefs.LazyUnmount(mp)
			}
		})
		p := startMount(t, "--tiles", tiles, "--zones", "34", "--cache", cdir, mp)
		defer func() { p.cmd.Process.Signal(syscall.SIGTERM); p.wait(t) }()
		if s := stats(); !strings.Contains(s, "in use by process ") || !strings.Contains(s, " mount ") {
			t.Errorf("stats of a mounted cache: %s", s)
		}
		err := runCacheClear(cacheOptions{Cache: cdir}, io.Discard)
		var ue userError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "in use") {
			t.Errorf("clear of a mounted cache: %v", err)
		}
	}
}

// warmed is N of warm's "warmed N shards".
func warmed(t *testing.T, out string) int {
	t.Helper()
	f := strings.Fields(out)
	if len(f) < 2 || f[0] != "warmed" {
		t.Fatalf("warm output: %q", out)
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func countEntries(t *testing.T, stats string) int {
	t.Helper()
	for _, line := range strings.Split(stats, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "entries" {
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no entries line in:\n%s", stats)
	return 0
}
