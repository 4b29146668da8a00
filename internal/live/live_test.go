package live

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/keyspace"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/synth"
	"github.com/tesserafs/tesserafs/internal/testtiles"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestRefresh: Refresh swaps only when the tiles changed, counts what
// changed (a tile added, a tile removed), bumps the generation, calls
// OnSwap with the old and new store, and keeps the counters of the store
// it swapped out; a failed discovery keeps the current store.
func TestRefresh(t *testing.T) {
	ctx := context.Background()
	root := testtiles.Copy(t, testtiles.Root(t, "test"))
	fail := false
	open := func(ctx context.Context) (*store.Store, error) {
		if fail {
			return nil, os.ErrDeadlineExceeded
		}
		cat, err := index.Discover(ctx, root, index.Options{Lazy: true, Registry: "none", Logger: quiet})
		if err != nil {
			return nil, err
		}
		return store.New(cat, store.Options{Logger: quiet})
	}
	first, err := open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l := New(first, open, quiet)
	var swaps int
	l.OnSwap(func(old, now *store.Store) {
		swaps++
		if old == now || now != l.Current() {
			t.Error("OnSwap: old and new store wrong")
		}
	})
	if ch, err := l.Refresh(ctx); err != nil || ch.Changed() || l.Generation() != 1 || l.Current() != first || swaps != 0 {
		t.Fatalf("unchanged tiles: %v %v, generation %d, swaps %d", ch, err, l.Generation(), swaps)
	}
	z := first.Catalogue().Years[0].Zones[0]
	sh := z.Shards(256)[0]
	if _, err := l.Get(ctx, keyspace.ZoneShard(2024, z.Zone, keyspace.Scales, sh.Row, sh.Col)); err != nil {
		t.Fatal(err)
	}

	if _, err := synth.Write(ctx, root, synth.Options{Year: 2024, Tiles: []synth.TileSpec{{Coord: index.TileCoord{Lon100: 1505, Lat100: 5005}}}}); err != nil {
		t.Fatal(err)
	}
	gone := first.Catalogue().Years[0].Zones[0].Placements[0].Tile
	if err := os.RemoveAll(filepath.Dir(gone.EmbeddingsPath())); err != nil {
		t.Fatal(err)
	}
	ch, err := l.Refresh(ctx)
	if err != nil || ch != (Change{Added: 1, Removed: 1}) || l.Generation() != 2 || swaps != 1 || l.Current() == first {
		t.Fatalf("a tile added and one removed: %v %v, generation %d, swaps %d", ch, err, l.Generation(), swaps)
	}
	if l.Stats().Generated != 1 {
		t.Errorf("the swapped-out store's generation was not kept: %+v", l.Stats())
	}
	fail = true
	cur := l.Current()
	if _, err := l.Refresh(ctx); err == nil || l.Current() != cur || l.Generation() != 2 {
		t.Errorf("a failed discovery: %v, store kept %v, generation %d", err, l.Current() == cur, l.Generation())
	}
}
