package materializer

import (
	"context"
	"slices"
	"testing"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/synth"
	"github.com/tesserafs/tesserafs/internal/testtiles"
)

// TestPlanIndexOnly checks the two things the plan computes its own way
// against the store's: a zone row's tile overlaps per shard (one pass
// over the tiles meeting the row) against the zone's Overlapping query of
// each shard's window; and walkSorted's order against a byte-order sort
// of the store's walk (the order of an S3 listing, which finalize merges
// with it).
func TestPlanIndexOnly(t *testing.T) {
	tiles := testtiles.Tiles(t, "grid16", synth.Grid(16, 10.05, 84.05))
	ctx := context.Background()
	cat, err := index.Discover(ctx, tiles, index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.New(cat, store.Options{Workers: 1, Build: generate.Build{BuildVersion: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	const s = generate.ShardSize
	shards := 0
	for _, y := range cat.Years {
		for _, z := range y.Zones {
			for _, i := range z.ShardRows(s) {
				r := row{year: y.Year, z: z, i: i}
				cols, ws := r.weights(nil)
				if !slices.Equal(cols, z.ShardCols(s, i)) {
					t.Fatalf("zone %d row %d: columns %v, want %v", z.Zone, i, cols, z.ShardCols(s, i))
				}
				for k, j := range cols {
					shards++
					n := len(z.Overlapping(i*s, j*s, (i+1)*s, (j+1)*s))
					if want := uint64(1+n) * (zoneUnitBytes >> 10); ws[k] != want {
						t.Errorf("zone %d shard %d/%d: weight %d, want %d (%d tiles)", z.Zone, i, j, ws[k], want, n)
					}
				}
			}
		}
	}
	if shards == 0 {
		t.Fatal("no shards")
	}
	var walked, sorted []string
	if err := st.Walk(ctx, "", func(k string) error { walked = append(walked, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := walkSorted(ctx, st, "", false, func(k string) error { sorted = append(sorted, k); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(walked)
	if !slices.Equal(sorted, walked) {
		t.Errorf("walkSorted gives %d keys not in byte order (or not the store's %d)", len(sorted), len(walked))
	}
}
