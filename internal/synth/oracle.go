// Package synth makes deterministic source tiles whose values are a known
// function of position, so tests can check what tesserafs builds against
// that function (an oracle) instead of against a snapshot of its own output.
//
// Positions are global pixel indices on a zone's 10 m grid: a tile whose
// upper-left corner is (originE, originN) in canonical UTM has, at tile
// pixel (row i, col j),
//
//	gE = RoundToEven(originE/10) + j
//	gN = RoundToEven(originN/10) − i
//
// and the zone pixel (r, c) of a zone grid with origin (zoneE, zoneN) — both
// multiples of 10 — is gE = zoneE/10 + c, gN = zoneN/10 − r. Every tile that
// covers a zone pixel therefore agrees on its values, except for the tile
// stamp in band 127 and the tile's own landmask, which make the "later tile
// wins" order observable.
package synth

import "math"

// StampBand is the band that carries the tile's stamp instead of the
// positional function.
const StampBand = 127

func mix(z uint64) uint64 {
	z ^= z >> 30
	z *= 0xBF58476D1CE4E5B9
	z ^= z >> 27
	z *= 0x94D049BB133111EB
	z ^= z >> 31
	return z
}

// Embedding is the int8 value of band b (0 ≤ b < 127) at global pixel
// (gE, gN): a hash with a triangular distribution over −63..63, which,
// like real embeddings, has no LZ matches but some entropy-coding gain
// (zstd compresses it about 1.12×, real embeddings 1.08–1.25×).
func Embedding(gE, gN int64, b int) int8 {
	h := mix(uint64(gE)*0x9E3779B97F4A7C15 ^ uint64(gN)*0xC2B2AE3D27D4EB4F ^ uint64(b)*0x165667B19E3779F9)
	return int8(int(h&0x3F) + int((h>>8)&0x3F) - 63)
}

// Stamp is the value of band 127 for every pixel of the tile with centre
// (lon100, lat100) in hundredths of a degree.
func Stamp(lon100, lat100 int) int8 {
	return int8(modInt(lon100*31+lat100*17, 251) - 125)
}

// Scale is the float32 dequantisation scale at (gE, gN), before the
// landmask is applied: +Inf on a sparse set of pixels (mod(gE,500) == 7 and
// mod(gN,500) < 3), which the store must turn into NaN; otherwise
// 0.01 + mod(gE + 2·gN, 997)·1e-4, computed in float64 and rounded to float32.
func Scale(gE, gN int64) float32 {
	if mod64(gE, 500) == 7 && mod64(gN, 500) < 3 {
		return float32(math.Inf(1))
	}
	return float32(0.01 + float64(mod64(gE+2*gN, 997))*1e-4)
}

// Water reports whether the landmask says water (0) at (gE, gN): squares
// of 200 × 200 pixels where mod(floor(gE/200) + floor(gN/200), 7) == 0.
func Water(gE, gN int64) bool {
	return mod64(floorDiv(gE, 200)+floorDiv(gN, 200), 7) == 0
}

// Scale3D is band b of a tile with 3-D scales at (gE, gN): the NaN-aware
// max over bands equals Scale(gE, gN). Band 5 holds Scale; bands where
// mod(b, 3) == 0 are NaN; the rest hold Scale·0.5.
func Scale3D(gE, gN int64, b int) float32 {
	s := Scale(gE, gN)
	switch {
	case b == 5:
		return s
	case b%3 == 0:
		return float32(math.NaN())
	default:
		return s * 0.5
	}
}

func modInt(a, m int) int { return ((a % m) + m) % m }

func mod64(a, m int64) int64 { return ((a % m) + m) % m }

func floorDiv(a, m int64) int64 {
	q := a / m
	if (a%m != 0) && ((a < 0) != (m < 0)) {
		q--
	}
	return q
}
