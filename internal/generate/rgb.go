package generate

import (
	"context"
	"math"
	"slices"

	"github.com/tesserafs/tesserafs/index"
)

// RGB preview of a zone (spec §4): bands 0, 1 and 2 of the dequantised
// embedding, each stretched linearly between its 2nd and 98th percentile
// over the zone, as uint8 with an alpha channel.

// RGBBands is the number of embedding bands shown by the preview (R, G, B
// are bands 0, 1, 2) and RGBA the number of channels of an rgb pixel.
const (
	RGBBands = 3
	RGBA     = 4
)

// The deterministic sample the stretch is estimated from (spec §4: "at
// most 32 shards per zone, chosen from geometry, at most 10,000 valid
// pixels from each"):
//
//   - the shards: of the n shards of the zone that some tile footprint
//     touches, in row-major order (as [index.ZoneGrid.Shards] lists them),
//     all of them if n ≤ SampleShardsMax, otherwise the ones at indices
//     ⌊k·n/SampleShardsMax⌋ for k = 0 … SampleShardsMax−1 (evenly spaced,
//     starting with the first). Geometry alone picks them: no tile byte is
//     read to choose, and the sample's size does not grow with the zone;
//   - the pixels of a shard: its valid pixels (finite scale) in row-major
//     order over the 256 × 256 shard; all of them if there are at most
//     SamplePixels, otherwise the n_valid pixels' indices ⌊k·n_valid/10000⌋
//     for k = 0 … 9999 (evenly strided);
//   - the values: float32(embedding[b]) × scale in float32, for b = 0, 1, 2.
//
// With a global stretch (Build.Stretch == "global"), the sample is every
// zone's own sample, zones in ascending order (ours: at most 32 shards per
// zone, so a year's global stretch reads at most 32 shards per zone too).
const (
	SampleShardsMax = 32
	SamplePixels    = 10_000
)

// Stretch is the linear stretch of the three preview bands: band b maps
// Lo[b] to 0 and Hi[b] to 255 (spec §4).
type Stretch struct {
	Lo, Hi [RGBBands]float32
}

// DefaultStretch is the stretch of a zone with no valid sample: [0, 1].
var DefaultStretch = Stretch{Hi: [RGBBands]float32{1, 1, 1}}

// SampleIndices returns the indices, ascending, of the stretch sample's
// shards among n candidate shards: all of them when n ≤ SampleShardsMax,
// else ⌊k·n/SampleShardsMax⌋ for k = 0 … SampleShardsMax−1.
func SampleIndices(n int) []int {
	take := min(n, SampleShardsMax)
	out := make([]int, take)
	for k := range out {
		out[k] = int(int64(k) * int64(n) / int64(take))
	}
	return out
}

// ZoneShard is one shard of one zone, for a sample that may span zones.
type ZoneShard struct {
	Zone  *index.ZoneGrid
	Shard index.ShardIndex
}

// StretchSample returns the shards a stretch is estimated from: of one
// zone (zones holds it alone) or of all the zones of a year (a global
// stretch), see SampleShardsMax.
func StretchSample(zones []*index.ZoneGrid) []ZoneShard {
	var out []ZoneShard
	for _, z := range zones {
		shards := z.Shards(ShardSize)
		for _, k := range SampleIndices(len(shards)) {
			out = append(out, ZoneShard{Zone: z, Shard: shards[k]})
		}
	}
	return out
}

// SampleInputs lists the source files a stretch sample is read from, for
// the fingerprint of everything computed with the stretch.
func SampleInputs(sample []ZoneShard) []index.FileStamp {
	var in []index.FileStamp
	seen := map[string]bool{}
	for _, s := range sample {
		for _, f := range Inputs(s.Zone, s.Shard.Row, s.Shard.Col) {
			if !seen[f.Path] {
				seen[f.Path] = true
				in = append(in, f)
			}
		}
	}
	return in
}

// fillPixels paints the embeddings and scales of shard (i, j) into w.emb and
// w.scales and reports whether any tile touches the shard.
func (w *Worker) fillPixels(ctx context.Context, z *index.ZoneGrid, i, j int, masks *Masks) (bool, error) {
	wins := w.shardWindows(z, i, j)
	if len(wins) == 0 {
		return false, nil
	}
	if err := w.fillEmbeddings(ctx, i, j, wins); err != nil {
		return false, err
	}
	if err := w.fillScales(ctx, z, i, j, wins, masks); err != nil {
		return false, err
	}
	return true, nil
}

// dequantised returns band b of pixel k of the filled shard: float32(emb)
// × scale, in float32.
func (w *Worker) dequantised(k, b int) float32 {
	return float32(int8(w.emb[k*Bands+b])) * w.scales[k]
}

// SampleValues appends to vals the stretch sample of shard (i, j) of zone
// z (see SampleShardsMax): up to SamplePixels valid pixels, RGBBands values
// each, pixel after pixel.
func (w *Worker) SampleValues(ctx context.Context, z *index.ZoneGrid, i, j int, masks *Masks, vals []float32) ([]float32, error) {
	ok, err := w.fillPixels(ctx, z, i, j, masks)
	if err != nil || !ok {
		return vals, err
	}
	valid := make([]int32, 0, len(w.scales))
	for k, s := range w.scales {
		if !math.IsNaN(float64(s)) {
			valid = append(valid, int32(k))
		}
	}
	n := len(valid)
	take := min(n, SamplePixels)
	for t := range take {
		k := t
		if n > SamplePixels {
			k = int(int64(t) * int64(n) / SamplePixels)
		}
		px := int(valid[k])
		for b := range RGBBands {
			vals = append(vals, w.dequantised(px, b))
		}
	}
	return vals, nil
}

// StretchOf computes the stretch from sample values (RGBBands per pixel):
// per band the 2nd and 98th percentiles with linear interpolation, as
// numpy.percentile computes them on float32 data; if p98 ≤ p2 then
// p98 = p2 + 1; no values → [0, 1].
func StretchOf(vals []float32) Stretch {
	n := len(vals) / RGBBands
	if n == 0 {
		return DefaultStretch
	}
	var lo, hi [RGBBands]float32
	band := make([]float32, n)
	for b := range RGBBands {
		for k := range n {
			band[k] = vals[k*RGBBands+b]
		}
		slices.Sort(band)
		at := func(rank int) float32 { return band[rank] }
		lo[b], hi[b] = Percentile(n, 2, at), Percentile(n, 98, at)
	}
	return makeStretch(lo, hi)
}

func makeStretch(lo, hi [RGBBands]float32) Stretch {
	st := Stretch{Lo: lo, Hi: hi}
	for b := range RGBBands {
		if st.Hi[b] <= st.Lo[b] {
			st.Hi[b] = st.Lo[b] + 1
		}
	}
	return st
}

// percentileRanks are the ranks (0-based, ascending order) that the q-th
// percentile of n values interpolates between.
func percentileRanks(n int, q float64) (i, j int) {
	v := float64(n-1) * (q / 100)
	i = int(math.Floor(v))
	return i, min(i+1, n-1)
}

// Percentile returns the q-th percentile of n values, at(rank) giving the
// value of each rank in ascending order (no NaN), by NumPy's default
// "linear" method, step for step as numpy.percentile (NumPy ≥ 2) does on
// float32 data: the virtual index (n−1)·(q/100) in float64, its fraction g
// rounded to float32, then in float32 a + (b−a)·g, or b − (b−a)·(1−g)
// when g ≥ 0.5.
func Percentile(n int, q float64, at func(rank int) float32) float32 {
	if n == 0 {
		return float32(math.NaN())
	}
	v := float64(n-1) * (q / 100)
	lo := math.Floor(v)
	i, j := percentileRanks(n, q)
	if i >= n-1 {
		return at(n - 1)
	}
	g := float32(v - lo)
	a, b := at(i), at(j)
	d := b - a
	// The conversions keep each product rounded on its own (no fused
	// multiply-add), as NumPy computes it.
	if g >= 0.5 {
		return b - float32(d*(1-g))
	}
	return a + float32(d*g)
}

// StretchByte is one preview channel: trunc(clip((x − lo)/(hi − lo), 0, 1)
// · 255), in float32 (spec §4).
func StretchByte(x, lo, hi float32) uint8 {
	t := (x - lo) / (hi - lo)
	switch {
	case t > 1:
		t = 1
	case t >= 0:
	default: // negative or NaN
		t = 0
	}
	return uint8(float32(t * 255))
}

// RGBShard returns the encoded rgb shard (i, j) of zone z with stretch st,
// or nil if it has no finite scale (see HasScales). A pixel is (R, G, B,
// 255) where the scale is finite (0 included) and (0, 0, 0, 0) elsewhere;
// an inner chunk of transparent pixels alone (the fill value) is left out,
// so its inner chunks are those of the scales shard.
func (w *Worker) RGBShard(ctx context.Context, z *index.ZoneGrid, i, j int, masks *Masks, st Stretch) ([]byte, error) {
	ok, err := w.fillPixels(ctx, z, i, j, masks)
	if err != nil || !ok {
		return nil, err
	}
	out, stored, err := w.encode(InnerSize*InnerSize*RGBA, func(ci, cj int, dst []byte) bool {
		opaque := false
		for r := range InnerSize {
			for c := range InnerSize {
				k := (ci*InnerSize+r)*ShardSize + cj*InnerSize + c
				px := dst[(r*InnerSize+c)*RGBA:][:RGBA]
				if math.IsNaN(float64(w.scales[k])) {
					clear(px)
					continue
				}
				for b := range RGBBands {
					px[b] = StretchByte(w.dequantised(k, b), st.Lo[b], st.Hi[b])
				}
				px[3] = 255
				opaque = true
			}
		}
		return opaque
	})
	if stored == 0 {
		return nil, err
	}
	return out, err
}
