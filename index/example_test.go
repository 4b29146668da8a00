package index_test

import (
	"fmt"

	"github.com/tesserafs/tesserafs/index"
)

// A zone grid places its tiles on a 10 m grid whose origin is a multiple
// of 10 m, and finds the tiles under a window without scanning them all.
func ExampleZoneGrid_Overlapping() {
	tile := func(lon100 int, e, n float64) *index.Tile {
		c := index.TileCoord{Lon100: lon100, Lat100: 8505}
		return &index.Tile{Coord: c, Zone: c.Zone(), Footprint: index.Footprint{OriginE: e, OriginN: n, W: 150, H: 1120}}
	}
	z := index.NewZoneGrid(2024, 30, []*index.Tile{
		tile(-5, 527644.23, 9451642.92),
		tile(-15, 526691.74, 9451594.02),
	})
	fmt.Printf("origin (%.0f, %.0f), %d × %d px\n", z.OriginE, z.OriginN, z.H, z.W)
	for _, p := range z.Overlapping(0, 0, 256, 256) {
		fmt.Printf("%s at row %d, col %d\n", p.Tile.Coord, p.Row, p.Col)
	}
	fmt.Println(z.Shards(256))
	// Output:
	// origin (526690, 9451650), 1280 × 256 px
	// grid_-0.15_85.05 at row 6, col 0
	// grid_-0.05_85.05 at row 1, col 95
	// [{0 0} {1 0} {2 0} {3 0} {4 0}]
}
