package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/testtiles"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestLazyTiles: a store over a Lazy discovery (the mount's) checks each
// tile when a shard first needs it. A bad tile fails exactly the shards it
// touches, naming its file, even though a good version of those shards is
// in the cache (the fingerprint comes from the check); every other shard is
// byte for byte what a store over an eager discovery served, under the same
// fingerprints: the lazy store finds them all in the cache the eager one
// filled, and generates nothing.
func TestLazyTiles(t *testing.T) {
	ctx := context.Background()
	root := testtiles.Copy(t, testTiles(t))
	mc := store.NewMemCache(1 << 30)
	open := func(lazy bool) *store.Store {
		cat, err := index.Discover(ctx, root, index.Options{Lazy: lazy, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.New(cat, store.Options{Cache: mc})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	// The reference: an eager store over the good tiles. Its Gets below
	// fill the cache before the tile goes bad (the bad tile stays in the
	// lazy store's zone grids, so the grids are the same).
	eager := open(false)
	bad := eager.Catalogue().Year(year).Zones[0].Placements[1].Tile
	ref := map[string][]byte{}
	var keys []string
	touching := map[string]bool{}
	for _, z := range eager.Catalogue().Year(year).Zones {
		rows, cols := z.ShardGrid(generate.ShardSize)
		for i := range rows {
			for j := range cols {
				touches := false
				for _, p := range z.Overlapping(i*generate.ShardSize, j*generate.ShardSize, (i+1)*generate.ShardSize, (j+1)*generate.ShardSize) {
					touches = touches || p.Tile.Coord == bad.Coord
				}
				for _, key := range []string{
					fmt.Sprintf("%d.zarr/utm%02d/embeddings/c/%d/%d/0", year, z.Zone, i, j),
					fmt.Sprintf("%d.zarr/utm%02d/scales/c/%d/%d", year, z.Zone, i, j),
				} {
					b, err := eager.Get(ctx, key)
					if errors.Is(err, store.ErrNotFound) {
						continue
					}
					if err != nil {
						t.Fatal(err)
					}
					keys = append(keys, key)
					ref[key], touching[key] = b, touches
				}
			}
		}
	}
	fi, err := os.Stat(bad.ScalesPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(bad.ScalesPath(), fi.Size()-4); err != nil {
		t.Fatal(err)
	}
	lazy := open(true)

	failed, served := 0, 0
	for _, key := range keys {
		got, err := lazy.Get(ctx, key)
		if touching[key] {
			var te *index.TileError
			if !errors.As(err, &te) || te.Path != bad.ScalesPath() || !strings.Contains(err.Error(), "truncated") {
				t.Errorf("%s: touches the bad tile, err = %v", key, err)
			}
			failed++
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if !bytes.Equal(got, ref[key]) {
			t.Errorf("%s: lazy store's bytes differ from the eager store's", key)
		}
		served++
	}
	if failed == 0 || served == 0 {
		t.Fatalf("%d shards failed, %d served: the test proves nothing", failed, served)
	}
	if g := lazy.Stats().Generated; g != 0 {
		t.Errorf("lazy store generated %d chunks the eager one had cached: fingerprints differ", g)
	}
	if late := lazy.Catalogue().LateProblems(); len(late) != 1 || late[0].Path != bad.ScalesPath() {
		t.Errorf("late problems: %v", late)
	}
}

// TestMetadataNeedsNoTileBytes proves spec §4's rule: with every tile's
// .npy files gone (discovery from the registry, as a mount does), every
// zarr.json — the root with its consolidated metadata, zones, arrays,
// global_rgb — has the same bytes as over the intact tiles, and no stretch
// is computed; a chunk read fails, naming the tile's file.
func TestMetadataNeedsNoTileBytes(t *testing.T) {
	ctx := context.Background()
	root := testtiles.Copy(t, testTiles(t))
	open := func() *store.Store {
		cat, err := index.Discover(ctx, root, index.Options{Lazy: true, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.New(cat, store.Options{Workers: 2, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	var metaKeys []string
	want := map[string][]byte{}
	good := open()
	if err := good.Walk(ctx, "", func(key string) error {
		if strings.HasSuffix(key, "zarr.json") {
			b, err := good.Get(ctx, key)
			if err != nil {
				return err
			}
			metaKeys = append(metaKeys, key)
			want[key] = b
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"2024.zarr/zarr.json", "2024.zarr/utm30/zarr.json", "2024.zarr/utm30/rgb/zarr.json", "2024.zarr/global_rgb/zarr.json", "2024.zarr/global_rgb/0/rgb/zarr.json"} {
		if want[k] == nil {
			t.Fatalf("%s not listed", k)
		}
	}

	var removed []string
	for _, z := range good.Catalogue().Year(year).Zones {
		for _, pl := range z.Placements {
			for _, p := range []string{pl.Tile.EmbeddingsPath(), pl.Tile.ScalesPath()} {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				removed = append(removed, p)
			}
		}
	}
	bad := open()
	for _, k := range metaKeys {
		b, err := bad.Get(ctx, k)
		if err != nil {
			t.Errorf("%s without the .npy files: %v", k, err)
			continue
		}
		if !bytes.Equal(b, want[k]) {
			t.Errorf("%s differs without the .npy files", k)
		}
	}
	if n := bad.StretchesComputed(); n != 0 {
		t.Errorf("reading every zarr.json computed %d stretches, want 0", n)
	}
	z := bad.Catalogue().Year(year).Zones[0]
	sh := z.Shards(generate.ShardSize)[0]
	key := fmt.Sprintf("%d.zarr/utm%02d/embeddings/c/%d/%d/0", year, z.Zone, sh.Row, sh.Col)
	_, err := bad.Get(ctx, key)
	var te *index.TileError
	if !errors.As(err, &te) {
		t.Fatalf("%s without the .npy files: err = %v, want a TileError", key, err)
	}
	named := false
	for _, p := range removed {
		named = named || strings.Contains(err.Error(), p)
	}
	if !named {
		t.Errorf("%s: error %q names no removed file", key, err)
	}
	t.Logf("%d zarr.json identical without the tiles' .npy files; %s: %v", len(metaKeys), key, err)
}

// TestLazyFingerprint: the fingerprint of a store over a Lazy discovery
// (serve's ETags are made from it) covers its tiles although none was
// checked: it differs when a tile is removed, is the same for the same
// tiles, and does not change when the tiles get checked by reads.
func TestLazyFingerprint(t *testing.T) {
	ctx := context.Background()
	root := testtiles.Copy(t, testTiles(t))
	open := func(registry string) *store.Store {
		cat, err := index.Discover(ctx, root, index.Options{Lazy: true, Logger: quiet, Registry: registry})
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.New(cat, store.Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	for _, registry := range []string{"", "none"} {
		a, b := open(registry), open(registry)
		if a.Fingerprint() != b.Fingerprint() {
			t.Fatalf("registry %q: two stores of the same tiles differ", registry)
		}
		fp := a.Fingerprint()
		z := a.Catalogue().Year(year).Zones[0]
		sh := z.Shards(generate.ShardSize)[0]
		if _, err := a.Get(ctx, fmt.Sprintf("%d.zarr/utm%02d/embeddings/c/%d/%d/0", year, z.Zone, sh.Row, sh.Col)); err != nil {
			t.Fatal(err)
		}
		if a.Fingerprint() != fp {
			t.Errorf("registry %q: the fingerprint changed when tiles were checked", registry)
		}
	}
	withAll := open("none").Fingerprint()
	tl := open("none").Catalogue().Year(year).Zones[0].Placements[0].Tile
	if err := os.RemoveAll(filepath.Dir(tl.EmbeddingsPath())); err != nil {
		t.Fatal(err)
	}
	if open("none").Fingerprint() == withAll {
		t.Error("removing a tile left the fingerprint of a listed lazy store unchanged")
	}
}
