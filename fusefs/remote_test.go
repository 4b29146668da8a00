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

	"github.com/tesserafs/tesserafs/fusefs"
	"github.com/tesserafs/tesserafs/index"
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
	src, err := source.OpenWith(ctx, testservers.StartFaultProxy(t, p), source.Options{Backoff: 2e6, MaxBackoff: 2e7, Logger: log})
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

	// Fault gone: the whole mount equals the local materialize.
	broken.Store(false)
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
