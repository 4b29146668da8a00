package synth

import (
	"math"
	"slices"

	"github.com/tesserafs/tesserafs/index"
)

// PlacedTile is a tile placed on a zone grid: its spec, its footprint, and
// the zone row and column of its upper-left pixel.
type PlacedTile struct {
	TileSpec
	Footprint index.Footprint
	Row, Col  int
	// Sparse marks a tile written with Options.Sparse: embeddings 0 (band
	// 127 too), scales 0.0, all land.
	Sparse bool
}

// Place places a tile with footprint fp on the zone grid whose upper-left
// corner is (zoneE, zoneN), canonical UTM metres (spec §2):
// Col = round((originE − zoneE)/10), Row = round((zoneN − originN)/10),
// round half to even.
func Place(t TileSpec, fp index.Footprint, zoneE, zoneN float64) PlacedTile {
	return PlacedTile{
		TileSpec:  t,
		Footprint: fp,
		Col:       int(math.RoundToEven((fp.OriginE - zoneE) / index.PixelSize)),
		Row:       int(math.RoundToEven((zoneN - fp.OriginN) / index.PixelSize)),
	}
}

// Window is the oracle of a zone's arrays: the embeddings and scales a
// correct store holds at zone pixels [r0, r1) × [c0, c1), computed from the
// oracle functions alone. emb is (r1−r0, c1−c0, 128) and scale
// (r1−r0, c1−c0), both in C order.
//
// Tiles are painted in (lon, lat) ascending order (whatever the order of
// tiles), each over its whole rectangle, a later tile overwriting an
// earlier one. The tile that wins a pixel gives all of it, from its own
// pixel (i, j) = (r − Row, c − Col) and that pixel's global (gE, gN):
//
//   - embeddings: Embedding(gE, gN, b) for b < 127, the tile's Stamp in
//     band 127; 0 where no tile covers the pixel;
//   - scale: Scale(gE, gN), or for 3-D scales the NaN-aware max over bands
//     of Scale3D(gE, gN, b); NaN where it is ±Inf, where the tile's
//     landmask says water (a NoLandmask tile is all land), and where no tile
//     covers the pixel.
func Window(tiles []PlacedTile, r0, c0, r1, c1 int) (emb []int8, scale []float32) {
	h, w := max(r1-r0, 0), max(c1-c0, 0)
	emb = make([]int8, h*w*128)
	scale = make([]float32, h*w)
	nan := float32(math.NaN())
	for k := range scale {
		scale[k] = nan
	}
	ordered := slices.Clone(tiles)
	slices.SortStableFunc(ordered, func(a, b PlacedTile) int {
		switch {
		case a.Coord.Less(b.Coord):
			return -1
		case b.Coord.Less(a.Coord):
			return 1
		}
		return 0
	})
	for _, t := range ordered {
		ra, rb := max(r0, t.Row), min(r1, t.Row+t.Footprint.H)
		ca, cb := max(c0, t.Col), min(c1, t.Col+t.Footprint.W)
		for r := ra; r < rb; r++ {
			for c := ca; c < cb; c++ {
				k := (r-r0)*w + (c - c0)
				vec := emb[k*128 : (k+1)*128]
				if t.Sparse {
					clear(vec)
					scale[k] = 0
					continue
				}
				gE, gN := Global(t.Footprint, r-t.Row, c-t.Col)
				for b := range vec {
					vec[b] = TileEmbedding(t.Coord, gE, gN, b)
				}
				scale[k] = expectedScale(t.TileSpec, gE, gN)
			}
		}
	}
	return emb, scale
}

// expectedScale is what the store makes of a tile's scale at (gE, gN).
func expectedScale(t TileSpec, gE, gN int64) float32 {
	var s float32
	if t.Scales3D {
		s = float32(math.NaN())
		for b := range 128 {
			v := Scale3D(gE, gN, b)
			if !math.IsNaN(float64(v)) && (math.IsNaN(float64(s)) || v > s) {
				s = v
			}
		}
	} else {
		s = Scale(gE, gN)
	}
	if math.IsInf(float64(s), 0) || (!t.NoLandmask && Water(gE, gN)) {
		return float32(math.NaN())
	}
	return s
}
