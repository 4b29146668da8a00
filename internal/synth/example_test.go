package synth_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/synth"
)

func ExampleWrite() {
	root, _ := os.MkdirTemp("", "synth-example-")
	defer os.RemoveAll(root)
	tiles := synth.Region(20.4, -85, 20.5, -84.9) // one small tile in zone 34 south
	sum, err := synth.Write(context.Background(), root, synth.Options{Year: 2024, Tiles: tiles})
	if err != nil {
		fmt.Println(err)
		return
	}
	rel, _ := filepath.Rel(root, synth.EmbeddingsPath(root, 2024, tiles[0].Coord))
	fmt.Println(sum.Tiles, "tile:", rel)

	// What a correct store holds at the tile's upper-left pixel, placed on
	// a zone grid whose origin is that pixel's corner snapped to 10 m.
	fp, _ := index.NewProjector().Footprint(tiles[0].Coord)
	zoneE, zoneN := 10*float64(int(fp.OriginE/10)), -10*float64(int(-fp.OriginN/10))
	placed := synth.Place(tiles[0], fp, zoneE, zoneN)
	emb, scale := synth.Window([]synth.PlacedTile{placed}, placed.Row, placed.Col, placed.Row+1, placed.Col+1)
	gE, gN := synth.Global(fp, 0, 0)
	fmt.Println(emb[0] == synth.Embedding(gE, gN, 0), emb[127] == synth.Stamp(2045, -8495), scale[0] == synth.Scale(gE, gN))
	// Output:
	// 1 tile: global_0.1_degree_representation/2024/grid_20.45_-84.95/grid_20.45_-84.95.npy
	// true true true
}
