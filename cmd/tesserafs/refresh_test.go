package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/keyspace"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/synth"
	"github.com/tesserafs/tesserafs/internal/testtiles"
)

// mountCopy mounts a copy of the test preset that the test may change,
// following its tiles on SIGHUP only; it returns the copy, the mountpoint
// and the mount process.
func mountCopy(t *testing.T) (tiles, mp string, p *mountProc) {
	t.Helper()
	tiles = testtiles.Copy(t, testtiles.Root(t, "test"))
	mp = filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mp, 0o755)
	return tiles, mp, startMount(t, "--tiles", tiles, "--cache", filepath.Join(t.TempDir(), "cache"), "--refresh", "0", mp)
}

// TestRefreshFollowsTiles: a running serve and a running mount see tiles
// added after they started, on SIGHUP: a new zone appears in the root
// zarr.json (its consolidated metadata) and in the listing, the root's
// ETag changes, and every zarr.json and the new zone's chunks equal those
// of a store opened fresh over the new tile set.
func TestRefreshFollowsTiles(t *testing.T) {
	requireFUSE(t)
	ctx := context.Background()
	tiles, mp, mproc := mountCopy(t)
	base, sproc := startServe(t, "--tiles", tiles, "--cache", filepath.Join(t.TempDir(), "cache"), "--refresh", "0")
	defer func() {
		for _, p := range []*mountProc{mproc, sproc} {
			p.cmd.Process.Signal(syscall.SIGTERM)
			p.wait(t)
		}
	}()
	httpGet := func(key string) ([]byte, string) {
		resp, err := http.Get(base + "/" + key)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", key, resp.StatusCode, b)
		}
		return b, resp.Header.Get("ETag")
	}
	const newZone = "utm33"
	root := "2024.zarr/zarr.json"
	before, etag := httpGet(root)
	if mb, err := os.ReadFile(filepath.Join(mp, root)); err != nil || !bytes.Equal(mb, before) || bytes.Contains(before, []byte(newZone)) {
		t.Fatalf("before: mount %v, same as serve %v, has %s: %v", err, bytes.Equal(mb, before), newZone, bytes.Contains(before, []byte(newZone)))
	}
	if _, err := os.Stat(filepath.Join(mp, "2024.zarr", newZone)); err == nil {
		t.Fatalf("%s exists before its tile", newZone)
	}

	// A tile in zone 33 arrives (synth merges it into the registry).
	if _, err := synth.Write(ctx, tiles, synth.Options{Year: 2024, Tiles: []synth.TileSpec{{Coord: index.TileCoord{Lon100: 1505, Lat100: 5005}}}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*mountProc{mproc, sproc} {
		p.cmd.Process.Signal(syscall.SIGHUP)
	}
	deadline := time.Now().Add(30 * time.Second)
	var after []byte
	for time.Now().Before(deadline) {
		b, _ := httpGet(root)
		mb, _ := os.ReadFile(filepath.Join(mp, root))
		if bytes.Contains(b, []byte(newZone)) && bytes.Contains(mb, []byte(newZone)) {
			after = b
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if after == nil {
		t.Fatalf("no %s in the root zarr.json 30 s after SIGHUP:\nserve: %s\nmount: %s", newZone, sproc.out.String(), mproc.out.String())
	}
	if _, e2 := httpGet(root); e2 == etag {
		t.Errorf("the root's ETag did not change with the tiles: %s", etag)
	}
	if _, err := os.Stat(filepath.Join(mp, "2024.zarr", newZone, "zarr.json")); err != nil {
		t.Errorf("mount: %s after the refresh: %v", newZone, err)
	}

	// Everything equals a store opened fresh over the new tiles.
	cat, err := index.Discover(ctx, tiles, index.Options{Lazy: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := store.New(cat, store.Options{Build: (&storeOptions{}).build(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	fresh.Walk(ctx, "", func(k string) error {
		kk, ok := keyspace.Parse(k)
		if strings.HasSuffix(k, "zarr.json") || (ok && kk.Zone == 33 && kk.Kind == keyspace.Chunk && kk.Array == keyspace.Embeddings) {
			keys = append(keys, k)
		}
		return nil
	})
	if len(keys) < 10 {
		t.Fatalf("only %d keys to compare", len(keys))
	}
	for _, k := range keys {
		want, err := fresh.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := httpGet(k)
		mgot, err := os.ReadFile(filepath.Join(mp, k))
		if !bytes.Equal(got, want) || err != nil || !bytes.Equal(mgot, want) {
			t.Errorf("%s after the refresh: serve equal %v, mount equal %v (%v)", k, bytes.Equal(got, want), bytes.Equal(mgot, want), err)
		}
	}
	for _, p := range []*mountProc{mproc, sproc} {
		if !strings.Contains(p.out.String(), "1 tile(s) added") {
			t.Errorf("no refresh line naming the added tile:\n%s", p.out.String())
		}
	}
	t.Logf("%d keys equal a fresh store after the refresh, through serve and the mount", len(keys))
}

// TestRefreshReplacedTile: a tile's .npy is replaced (other bytes, same
// size; the registry says so) under a running mount. A reader that had
// read part of a shard the tile feeds before the refresh reads the rest
// in the same generation or gets ESTALE (never mixed bytes); one that had
// opened it without reading gets ESTALE; opening it again gives the new
// bytes, equal to a fresh store over the new tiles.
func TestRefreshReplacedTile(t *testing.T) {
	requireFUSE(t)
	ctx := context.Background()
	tiles, mp, mproc := mountCopy(t)
	defer func() { mproc.cmd.Process.Signal(syscall.SIGTERM); mproc.wait(t) }()
	quietLog := slog.New(slog.NewTextHandler(io.Discard, nil))
	cat, err := index.Discover(ctx, tiles, index.Options{Lazy: true, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	z := cat.Years[0].Zones[0]
	pl := z.Placements[0]
	key := keyspace.ZoneShard(2024, z.Zone, keyspace.Embeddings, max(pl.Row, 0)/keyspace.ShardSize, max(pl.Col, 0)/keyspace.ShardSize)
	old, err := os.ReadFile(filepath.Join(mp, key))
	if err != nil {
		t.Fatal(err)
	}
	partial, err := os.Open(filepath.Join(mp, key))
	if err != nil {
		t.Fatal(err)
	}
	defer partial.Close()
	head := make([]byte, 4096)
	if _, err := io.ReadFull(partial, head); err != nil {
		t.Fatal(err)
	}
	unread, err := os.Open(filepath.Join(mp, key))
	if err != nil {
		t.Fatal(err)
	}
	defer unread.Close()

	// Replace the tile: flip every byte of its embeddings after the header.
	f, err := os.OpenFile(pl.Tile.EmbeddingsPath(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	for i := 256; i < len(b); i++ {
		b[i] ^= 0x5a
	}
	if _, err := f.WriteAt(b[256:], 256); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := synth.WriteRegistries(ctx, tiles); err != nil {
		t.Fatal(err)
	}
	mproc.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(mproc.out.String(), "1 replaced") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(mproc.out.String(), "1 replaced") {
		t.Fatalf("no refresh naming the replaced tile:\n%s", mproc.out.String())
	}

	// Never mixed: the rest of the old bytes, or ESTALE.
	rest, err := io.ReadAll(partial)
	if !errors.Is(err, syscall.ESTALE) && (err != nil || !bytes.Equal(append(head, rest...), old)) {
		t.Errorf("a reader that had started before the refresh: %v, same bytes as before %v; want those or ESTALE", err, bytes.Equal(append(head, rest...), old))
	}
	if _, err := io.ReadAll(unread); !errors.Is(err, syscall.ESTALE) {
		t.Errorf("a file opened before the refresh and read after it: %v, want ESTALE", err)
	}
	cat2, err := index.Discover(ctx, tiles, index.Options{Lazy: true, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := store.New(cat2, store.Options{Build: (&storeOptions{}).build(), Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	want, err := fresh.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(mp, key))
	if err != nil || !bytes.Equal(got, want) || bytes.Equal(want, old) {
		t.Errorf("%s opened again: %v, equal to a fresh store %v, changed %v\n%s", key, err, bytes.Equal(got, want), !bytes.Equal(want, old), mproc.out.String())
	}
}
