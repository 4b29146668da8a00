package fusefs_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tesserafs/tesserafs/fusefs"
	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/cache"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/testfuse"
	"github.com/tesserafs/tesserafs/internal/testtiles"
)

const year = testtiles.Year

// requireFUSE skips, loudly, when this machine cannot mount.
func requireFUSE(t testing.TB) { t.Helper(); testfuse.Require(t) }

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// testLogger logs warnings and errors through t.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// quietLogger drops everything below errors.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

// testTiles is the shared "test" preset.
func testTiles(t testing.TB) string { return testtiles.Root(t, "test") }

func openStore(t testing.TB, root string, opts store.Options, zones ...int) *store.Store {
	t.Helper()
	// Discovery warns about the preset's tile without a landmask: expected.
	quiet := slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelError}))
	cat, err := index.Discover(context.Background(), root, index.Options{Zones: zones, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	st, err := store.New(cat, opts)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// openCache opens a cache that is closed when the test ends (after the
// mounts made later, which are unmounted first).
func openCache(t testing.TB, dir string, budget int64) *cache.Cache {
	t.Helper()
	c, err := cache.Open(dir, cache.Options{Budget: budget, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// mount mounts st on a new directory and unmounts it when the test ends;
// a mount that will not go is detached lazily, so that no test leaves one
// behind.
func mount(t testing.TB, st *store.Store) (*fusefs.Server, string) {
	t.Helper()
	requireFUSE(t)
	mp := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	srv, err := fusefs.Mount(context.Background(), st, mp, fusefs.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unmount(t, srv, mp) })
	return srv, mp
}

func unmount(t testing.TB, srv *fusefs.Server, mp string) {
	if err := srv.Unmount(); err != nil {
		t.Errorf("unmount: %v", err)
	}
	if fusefs.IsMounted(mp) {
		t.Errorf("%s still mounted after Unmount: detaching", mp)
		fusefs.LazyUnmount(mp)
	}
}

// shardKeys lists the embeddings and scales shards under prefix (the
// cached chunks; coordinate chunks are cheap and not cached).
func shardKeys(t testing.TB, st *store.Store, prefix string) []string {
	t.Helper()
	var keys []string
	err := st.Walk(context.Background(), prefix, func(k string) error {
		if strings.Contains(k, "/embeddings/c/") || strings.Contains(k, "/scales/c/") {
			keys = append(keys, k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatalf("no chunks under %q", prefix)
	}
	return keys
}

// walkFiles lists the regular files under dir, as slash paths relative to
// it, skipping names that start with ".tesserafs" (the materializer's own
// state).
func walkFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".tesserafs") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		} else if !d.IsDir() {
			return errors.New(p + ": neither file nor directory")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
