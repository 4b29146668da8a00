package generate

import (
	"fmt"

	"github.com/tesserafs/tesserafs/zarr"
)

// The global RGB preview (spec §5): a multiscale EPSG:4326 pyramid over
// (−180, −90, 180, 90). Level 0 reprojects every zone's rgb array to a
// 0.0001° grid; level l ≥ 1 halves level l−1 by a 2 × 2 reduction. Arrays
// are unsharded, in chunks of GlobalChunk × GlobalChunk × 4.
const (
	GlobalChunk         = 512
	GlobalRes0          = 0.0001 // degrees per level-0 pixel
	GlobalW0            = 3_600_000
	GlobalH0            = 1_800_000
	DefaultGlobalLevels = 10
	// MaxGlobalLevels is where a level would be narrower than one chunk
	// column many times over; more levels make no sense.
	MaxGlobalLevels = 20
)

// GlobalLevels is the number of levels of the global preview.
func (b Build) GlobalLevelCount() int {
	if b.GlobalLevels <= 0 {
		return DefaultGlobalLevels
	}
	return min(b.GlobalLevels, MaxGlobalLevels)
}

// GlobalShape returns the height and width of level l: level 0's halved l
// times with floor.
func GlobalShape(l int) (h, w int) {
	h, w = GlobalH0, GlobalW0
	for range l {
		h, w = h/2, w/2
	}
	return h, w
}

// GlobalRes is the pixel size of level l in degrees: 0.0001·2^l.
func GlobalRes(l int) float64 { return GlobalRes0 * float64(int64(1)<<l) }

// GlobalChunkGrid is the number of chunk rows and columns of level l.
func GlobalChunkGrid(l int) (rows, cols int) {
	h, w := GlobalShape(l)
	return (h + GlobalChunk - 1) / GlobalChunk, (w + GlobalChunk - 1) / GlobalChunk
}

// GlobalChunkBox is the lon/lat box [lonMin, latMin, lonMax, latMax] of
// chunk (ci, cj) of level l, not clipped to the grid. Level l's pixel
// (r, c) covers level 0's pixels [r·2^l, (r+1)·2^l) × [c·2^l, (c+1)·2^l).
func GlobalChunkBox(l, ci, cj int) [4]float64 {
	span := float64(GlobalChunk) * GlobalRes(l)
	return [4]float64{
		-180 + float64(float64(cj)*span), 90 - float64(float64(ci+1)*span),
		-180 + float64(float64(cj+1)*span), 90 - float64(float64(ci)*span),
	}
}

// GlobalAttrs are the attributes of the global_rgb group (spec §5), in
// the order given there.
func GlobalAttrs(levels int) zarr.Attrs {
	layout := make([]zarr.Attrs, levels)
	for l := range levels {
		scale := zarr.Float(float64(int64(1) << l))
		tr := zarr.Float(0)
		if l > 0 {
			tr = 0.5
		}
		e := zarr.Attrs{
			{Key: "asset", Value: fmt.Sprint(l)},
			{Key: "transform", Value: zarr.Attrs{
				{Key: "scale", Value: []zarr.Float{scale, scale}},
				{Key: "translation", Value: []zarr.Float{tr, tr}},
			}},
		}
		if l > 0 {
			e = append(e,
				zarr.KV{Key: "derived_from", Value: fmt.Sprint(l - 1)},
				zarr.KV{Key: "resampling_method", Value: "mean"})
		}
		h, w := GlobalShape(l)
		res := zarr.Float(GlobalRes(l))
		e = append(e,
			zarr.KV{Key: "spatial:shape", Value: []int{h, w}},
			zarr.KV{Key: "spatial:transform", Value: []zarr.Float{res, 0, -180, 0, -res, 90}})
		layout[l] = e
	}
	return zarr.Attrs{
		{Key: "zarr_conventions", Value: []zarr.Attrs{ConventionMultiscales, ConventionProj, ConventionSpatial}},
		{Key: "multiscales", Value: zarr.Attrs{
			{Key: "layout", Value: layout},
			{Key: "resampling_method", Value: "mean"},
		}},
		{Key: "proj:code", Value: "EPSG:4326"},
		{Key: "spatial:dimensions", Value: []string{"lat", "lon"}},
		{Key: "spatial:bbox", Value: []zarr.Float{-180, -90, 180, 90}},
	}
}

// GlobalRGBMeta is the metadata of global_rgb/<l>/rgb.
func GlobalRGBMeta(l int) zarr.ArrayMetadata {
	h, w := GlobalShape(l)
	return zarr.ArrayMetadata{
		Shape:          []int{h, w, RGBA},
		DataType:       "uint8",
		ChunkShape:     []int{GlobalChunk, GlobalChunk, RGBA},
		FillValue:      0,
		Codecs:         []zarr.Codec{zarr.BytesCodec("uint8"), zarr.ZstdCodec(ZstdLevel)},
		DimensionNames: []string{"lat", "lon", "band"},
	}
}

// GlobalChunkBytes is the size of a decoded global_rgb chunk.
const GlobalChunkBytes = GlobalChunk * GlobalChunk * RGBA

// ReduceQuadrant writes into out, a decoded chunk of level l, the quadrant
// (qi, qj) ∈ {0,1}² computed from child, the decoded chunk (2ci+qi,
// 2cj+qj) of level l−1, by the 2 × 2 rule of ReduceRGBA. A nil child is
// all fill (0).
func ReduceQuadrant(out, child []byte, qi, qj int) {
	const half = GlobalChunk / 2
	const stride = GlobalChunk * RGBA
	dst := out[(qi*half*GlobalChunk+qj*half)*RGBA:]
	if child == nil {
		for r := range half {
			clear(dst[r*stride:][:half*RGBA])
		}
		return
	}
	reduceRGBA(dst, stride, child, stride, half, half)
}

// ReduceRGBA halves an h × w RGBA image (spec §5, levels ≥ 1): output
// pixel (r, c) is made from the 2 × 2 block of pixels (2r..2r+1,
// 2c..2c+1): alpha = (a0+a1+a2+a3) // 4, and R, G, B are the mean of the
// block's pixels with alpha > 0, rounded down (0 if there is none). A
// trailing odd row or column is dropped.
//
// The mean is rounded down (integer division) as the reference's float
// mean cast to uint8 is; it keeps the pyramid exact integers.
func ReduceRGBA(src []byte, h, w int) []byte {
	dst := make([]byte, (h/2)*(w/2)*RGBA)
	reduceRGBA(dst, (w/2)*RGBA, src, w*RGBA, h/2, w/2)
	return dst
}

// reduceRGBA writes outH × outW pixels into dst (rows dstStride bytes
// apart) from src (rows srcStride bytes apart).
func reduceRGBA(dst []byte, dstStride int, src []byte, srcStride int, outH, outW int) {
	for r := range outH {
		top := src[2*r*srcStride:]
		bot := src[(2*r+1)*srcStride:]
		o := dst[r*dstStride:]
		for c := range outW {
			p := [4][]byte{top[2*c*RGBA:], top[(2*c+1)*RGBA:], bot[2*c*RGBA:], bot[(2*c+1)*RGBA:]}
			var sum [RGBBands]int
			n, alpha := 0, 0
			for _, q := range p {
				alpha += int(q[3])
				if q[3] > 0 {
					n++
					for b := range RGBBands {
						sum[b] += int(q[b])
					}
				}
			}
			px := o[c*RGBA:][:RGBA]
			for b := range RGBBands {
				px[b] = 0
				if n > 0 {
					px[b] = uint8(sum[b] / n)
				}
			}
			px[3] = uint8(alpha / 4)
		}
	}
}

// ClipChunk sets to the fill value the pixels of decoded chunk (ci, cj) of
// level l that lie beyond the level's shape (edge chunks are stored whole).
func ClipChunk(out []byte, l, ci, cj int) {
	h, w := GlobalShape(l)
	rows := min(GlobalChunk, h-ci*GlobalChunk)
	cols := min(GlobalChunk, w-cj*GlobalChunk)
	for r := range GlobalChunk {
		row := out[r*GlobalChunk*RGBA:][:GlobalChunk*RGBA]
		if r >= rows {
			clear(row)
		} else if cols < GlobalChunk {
			clear(row[max(cols, 0)*RGBA:])
		}
	}
}
