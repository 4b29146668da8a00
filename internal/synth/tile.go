package synth

import (
	"encoding/binary"
	"math"

	"github.com/tesserafs/tesserafs/index"
)

// TileSpec is one synthetic source tile: where it is, and which of the
// source format's variations it exercises.
type TileSpec struct {
	Coord index.TileCoord
	// Scales3D writes the scales as (H, W, 128), band b = Scale3D, instead
	// of (H, W) = Scale.
	Scales3D bool
	// NoLandmask omits the tile's landmask TIFF (and removes one left by an
	// earlier call), so the tile is all land.
	NoLandmask bool
}

// Global returns the global pixel (gE, gN) of tile pixel (row i, col j) of
// a tile with footprint fp: gE = RoundToEven(originE/10) + j,
// gN = RoundToEven(originN/10) − i.
func Global(fp index.Footprint, i, j int) (gE, gN int64) {
	e0, n0 := tileOrigin(fp)
	return e0 + int64(j), n0 - int64(i)
}

func tileOrigin(fp index.Footprint) (e0, n0 int64) {
	return int64(math.RoundToEven(fp.OriginE / index.PixelSize)), int64(math.RoundToEven(fp.OriginN / index.PixelSize))
}

// TileEmbedding is band b of the tile c's embedding at global pixel
// (gE, gN): Embedding for b < 127, the tile's Stamp for band 127.
func TileEmbedding(c index.TileCoord, gE, gN int64, b int) int8 {
	if b == StampBand {
		return Stamp(c.Lon100, c.Lat100)
	}
	return Embedding(gE, gN, b)
}

// The multipliers of Embedding's hash input, split so that a row can
// precompute the column and band parts once (rowGen). They must stay equal
// to the constants in Embedding; TestRowsMatchOracle checks that.
const (
	kE = 0x9E3779B97F4A7C15
	kN = 0xC2B2AE3D27D4EB4F
	kB = 0x165667B19E3779F9
)

// rowGen produces a tile's file contents one row at a time, bit for bit
// what the oracle functions give, with the per-column and per-band parts of
// the embedding hash precomputed.
type rowGen struct {
	c      index.TileCoord
	fp     index.Footprint
	e0, n0 int64
	stamp  int8
	colK   []uint64          // uint64(gE)·kE per column
	bandK  [StampBand]uint64 // uint64(b)·kB per band
}

func newRowGen(c index.TileCoord, fp index.Footprint) *rowGen {
	g := &rowGen{c: c, fp: fp, stamp: Stamp(c.Lon100, c.Lat100), colK: make([]uint64, fp.W)}
	g.e0, g.n0 = tileOrigin(fp)
	for j := range g.colK {
		g.colK[j] = uint64(g.e0+int64(j)) * kE
	}
	for b := range g.bandK {
		g.bandK[b] = uint64(b) * kB
	}
	return g
}

// embeddings fills dst (W·128 bytes) with row i of the int8 (H, W, 128)
// embeddings.
func (g *rowGen) embeddings(dst []byte, i int) {
	nk := uint64(g.n0-int64(i)) * kN
	bandK := &g.bandK
	for j, ek := range g.colK {
		x := ek ^ nk
		px := dst[j*128 : j*128+128 : j*128+128]
		for b := range bandK {
			h := mix(x ^ bandK[b])
			px[b] = byte(int(h&0x3F) + int((h>>8)&0x3F) - 63)
		}
		px[StampBand] = byte(g.stamp)
	}
}

// scales fills dst with row i of the float32 scales, little endian: W
// values of Scale, or W·128 of Scale3D when threeD.
func (g *rowGen) scales(dst []byte, i int, threeD bool) {
	gN := g.n0 - int64(i)
	if !threeD {
		for j := range g.fp.W {
			binary.LittleEndian.PutUint32(dst[4*j:], math.Float32bits(Scale(g.e0+int64(j), gN)))
		}
		return
	}
	for j := range g.fp.W {
		px := dst[j*512 : j*512+512]
		for b := range 128 {
			binary.LittleEndian.PutUint32(px[4*b:], math.Float32bits(Scale3D(g.e0+int64(j), gN, b)))
		}
	}
}

// mask returns the whole landmask, row-major: 0 where Water, else 1.
func (g *rowGen) mask() []uint8 {
	pix := make([]uint8, g.fp.W*g.fp.H)
	for i := range g.fp.H {
		gN := g.n0 - int64(i)
		row := pix[i*g.fp.W : (i+1)*g.fp.W]
		for j := range row {
			if !Water(g.e0+int64(j), gN) {
				row[j] = 1
			}
		}
	}
	return pix
}
