package fusefs_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tesserafs/tesserafs/fusefs"
	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/keyspace"
	"github.com/tesserafs/tesserafs/internal/source"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/testservers"
	"github.com/tesserafs/tesserafs/materializer"
)

// logLines collects log records for a test to count.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, string(p))
	return len(p), nil
}

func (l *logLines) containing(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, x := range l.lines {
		if strings.Contains(x, s) {
			out = append(out, x)
		}
	}
	return out
}

// TestRemoteMount mounts zone 30 of the test tiles read from nginx over
// HTTP, through a fault proxy that first fails every request for one
// tile's embeddings. While it fails, the shards that need the tile give
// EIO, every other shard reads byte-identical to a local materialize, and
// the failure is logged once, naming the URL, however many reads it
// fails. Once the fault is gone every file of the mount equals the local
// materialize.
func TestRemoteMount(t *testing.T) {
	requireFUSE(t)
	if testing.Short() {
		t.Skip("generates every key of a zone twice")
	}
	ctx := context.Background()
	tiles := testTiles(t)
	out := t.TempDir()
	if _, err := materializer.Run(ctx, openStore(t, tiles, store.Options{Workers: 2}, 30), out, materializer.Options{Workers: 2}); err != nil {
		t.Fatal(err)
	}

	cat, err := index.Discover(ctx, tiles, index.Options{Zones: []int{30}, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	bad := cat.Years[0].Zones[0].Placements[0].Tile
	rel, _ := filepath.Rel(tiles, bad.EmbeddingsPath())
	badPath := "/" + filepath.ToSlash(rel)
	var broken atomic.Bool
	broken.Store(true)
	p := &testservers.FaultProxy{Upstream: testservers.Nginx(t, tiles), Plan: func(_ int64, r *http.Request) testservers.Fault {
		if broken.Load() && r.URL.Path == badPath {
			return testservers.Status503
		}
		return testservers.Pass
	}}
	logs := &logLines{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	const downFor = 200 * time.Millisecond
	src, err := source.OpenWith(ctx, testservers.StartFaultProxy(t, p), source.Options{Backoff: 2e6, MaxBackoff: 2e7, DownFor: downFor, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	url := src.Path(filepath.ToSlash(rel))
	if err := source.Rebase(cat, src); err != nil {
		t.Fatal(err)
	}
	st, err := store.New(cat, store.Options{Workers: 2, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	mp := mountWithLogger(t, st, log)

	want := walkFiles(t, out)
	check := func(rel string) error {
		got, err := os.ReadFile(filepath.Join(mp, rel))
		if err != nil {
			return err
		}
		w, _ := os.ReadFile(filepath.Join(out, rel))
		if !bytes.Equal(got, w) {
			t.Errorf("%s: mount and local materialize differ", rel)
		}
		return nil
	}

	// Broken: every embeddings shard twice.
	var failed, served []string
	for range 2 {
		failed, served = nil, nil
		for _, rel := range want {
			if !strings.Contains(rel, "utm30/embeddings/c/") {
				continue
			}
			switch err := check(rel); {
			case err == nil:
				served = append(served, rel)
			case errors.Is(err, syscall.EIO):
				failed = append(failed, rel)
			default:
				t.Errorf("%s: %v, want EIO or the bytes", rel, err)
			}
		}
	}
	if len(failed) == 0 || len(served) == 0 {
		t.Fatalf("with %s failing: %d shards EIO, %d served; want some of each", url, len(failed), len(served))
	}
	if n := len(logs.containing(url)); n != 1 {
		t.Errorf("%d log lines name %s, want 1:\n%s", n, url, strings.Join(logs.containing(url), ""))
	}
	if p.Count(testservers.Status503) == 0 {
		t.Fatal("no fault injected")
	}
	t.Logf("%s failing: %d shards EIO (read twice), %d served identical; log: %s", url, len(failed), len(served), logs.containing(url))

	// Fault gone, and the source's DownFor passed: the whole mount equals
	// the local materialize.
	broken.Store(false)
	time.Sleep(downFor + 50*time.Millisecond)
	for _, rel := range want {
		if err := check(rel); err != nil {
			t.Errorf("%s after the fault cleared: %v", rel, err)
		}
	}
	ss, _ := source.StatsOf(src)
	t.Logf("%d files identical after the fault cleared; source: %+v", len(want), ss)
}

// mountWithLogger is mount with the mount's own logger; it returns the
// mountpoint.
func mountWithLogger(t *testing.T, st *store.Store, log *slog.Logger) string {
	t.Helper()
	mp := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	srv, err := fusefs.Mount(context.Background(), st, mp, fusefs.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unmount(t, srv, mp) })
	return mp
}

// TestLazyMountRecovers is the long-running mount's outage: a mount whose
// tiles are checked on first use (as `tesserafs mount` runs) over HTTP
// tiles, one tile's files answering 503. A shard that needs the tile is
// EIO, and while the source is marked down a second read is EIO at once
// (no retry schedule); once the server answers again and DownFor has
// passed, the same shard is served with the bytes of a local materialize:
// the outage was not remembered as a bad tile.
func TestLazyMountRecovers(t *testing.T) {
	requireFUSE(t)
	ctx := context.Background()
	tiles := testTiles(t)
	out := t.TempDir()
	if _, err := materializer.Run(ctx, openStore(t, tiles, store.Options{Workers: 2}, 30), out, materializer.Options{Workers: 2}); err != nil {
		t.Fatal(err)
	}
	outage := testservers.StartTileOutage(t, tiles)
	logs := &logLines{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	const downFor = 500 * time.Millisecond
	src, err := source.OpenWith(ctx, outage.URL, source.Options{Backoff: 2e6, MaxBackoff: 2e7, DownFor: downFor, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := index.DiscoverSource(ctx, src, index.Options{Lazy: true, Zones: []int{30}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	z := cat.Years[0].Zones[0]
	pl := z.Placements[0]
	outage.Fail(t, pl.Tile.EmbeddingsPath())
	st, err := store.New(cat, store.Options{Workers: 2, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	mp := mountWithLogger(t, st, log)
	rel := keyspace.ZoneShard(cat.Years[0].Year, z.Zone, keyspace.Embeddings, max(pl.Row, 0)/keyspace.ShardSize, max(pl.Col, 0)/keyspace.ShardSize)

	if _, err := os.ReadFile(filepath.Join(mp, rel)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("%s with its tile's server failing: %v, want EIO", rel, err)
	}
	start := time.Now()
	if _, err := os.ReadFile(filepath.Join(mp, rel)); !errors.Is(err, syscall.EIO) || time.Since(start) > downFor/2 {
		t.Errorf("%s again while the source is down: %v after %v, want EIO at once", rel, err, time.Since(start))
	}
	outage.Recover()
	time.Sleep(downFor + 100*time.Millisecond)
	got, err := os.ReadFile(filepath.Join(mp, rel))
	want, _ := os.ReadFile(filepath.Join(out, rel))
	if err != nil || !bytes.Equal(got, want) || len(want) == 0 {
		t.Fatalf("%s after the server is back: %d bytes, %v; want the %d bytes of a local materialize", rel, len(got), err, len(want))
	}
	t.Logf("%s: EIO while its tile answered 503, EIO at once while marked down, identical once back", rel)
}
