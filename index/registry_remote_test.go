package index_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/source"
	"github.com/tesserafs/tesserafs/internal/synth"
	"github.com/tesserafs/tesserafs/internal/testservers"
)

// TestRegistryOverHTTP: a synthetic root served by nginx is discovered
// from its registry.parquet (HTTP cannot list), eagerly (every header read
// with ranged GETs) and lazily, giving the tiles and grids of the local
// discovery under URL names; a tile whose file no longer matches the
// registry is named by its URL.
func TestRegistryOverHTTP(t *testing.T) {
	root, specs := synthRoot(t, 6)
	short := synth.ScalesPath(root, 2024, specs[2].Coord)
	fi, err := os.Stat(short)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(short, fi.Size()-8); err != nil {
		t.Fatal(err)
	}
	base := testservers.Nginx(t, root)
	ctx := context.Background()
	src, err := source.Open(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	local, err := index.Discover(ctx, root, index.Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	want := tilesOf(local)
	if len(want) != len(specs)-1 {
		t.Fatalf("local discovery kept %d tiles, want %d", len(want), len(specs)-1)
	}
	for _, lazy := range []bool{false, true} {
		cat, err := index.DiscoverSource(ctx, src, index.Options{Lazy: lazy, Logger: quietLog})
		if err != nil {
			t.Fatal(err)
		}
		got := tilesOf(cat)
		if lazy {
			// Kept until first use; then it fails, naming its URL.
			if len(got) != len(specs) {
				t.Fatalf("lazy: %d tiles, want %d", len(got), len(specs))
			}
			err := got[2].Check(ctx)
			if err == nil || !strings.Contains(err.Error(), src.Path(strings.TrimPrefix(short, root+"/"))) {
				t.Errorf("lazy check of the short tile: %v", err)
			}
			got = append(got[:2:2], got[3:]...)
			if err := index.CheckTiles(ctx, got); err != nil {
				t.Fatal(err)
			}
		} else if ps := cat.Year(2024).Problems; len(ps) != 1 || !strings.HasPrefix(ps[0].Path, "http") {
			t.Errorf("eager problems %v, want the short tile by URL", ps)
		}
		if len(got) != len(want) {
			t.Fatalf("lazy=%v: %d tiles, want %d", lazy, len(got), len(want))
		}
		for k := range got {
			g, w := got[k], want[k]
			if g.Coord != w.Coord || g.Footprint != w.Footprint || g.ScalesBands != w.ScalesBands {
				t.Errorf("lazy=%v: tile %v %+v, local %v %+v", lazy, g.Coord, g.Footprint, w.Coord, w.Footprint)
			}
			if err := g.Check(ctx); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(g.EmbeddingsPath(), base) || len(g.Inputs) != 3 {
				t.Fatalf("tile %v: names %s, inputs %v", g.Coord, g.EmbeddingsPath(), g.Inputs)
			}
			for i, in := range g.Inputs {
				if in.Size != w.Inputs[i].Size {
					t.Errorf("%s: size %d over HTTP, %d on disk", in.Path, in.Size, w.Inputs[i].Size)
				}
			}
		}
	}
}
