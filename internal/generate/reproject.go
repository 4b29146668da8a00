package generate

import (
	"fmt"
	"math"

	"github.com/twpayne/go-proj/v11"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/zarr"
)

// Level 0 of global_rgb: zone rgb reprojected to EPSG:4326 with average
// resampling over the pixel footprint (spec §5).
//
// The footprint is GDAL's, as its warper computes it for "average"
// resampling (GWKAverageOrModeThread), since the reference builder warps
// with GDAL: the upper-left and lower-right corners of the output pixel are
// projected to the zone's source pixel coordinates (x = (E − origin_e)/10,
// y = (origin_n − N)/10), and the footprint is the box they span. Every
// source pixel the box overlaps counts, weighted by the overlap's length
// along x times its length along y, in source pixels (GDAL's COMPUTE_WEIGHT:
// pixels inside weigh 1, edge pixels their overlapped fraction; a box
// thinner than one pixel still takes the pixel it falls in). Only source
// pixels with alpha ≥ 128 count; the value is the weighted mean (GDAL's
// incremental form), rounded half up to a byte; alpha is 255 where any
// source pixel counted, else the pixel is left as it was.
//
// "Source pixels whose centres fall inside the footprint" would be simpler
// but leaves holes: a level-0 pixel is 0.0001° (11 m by 7 m at 52°N, 11 m
// by 1 m at 85°), often smaller than a 10 m source pixel, so many contain
// no source centre at all. GDAL's overlap footprint never has holes and
// reduces to a plain mean when output pixels are large.
//
// Differences from GDAL: every corner is projected exactly (gdalwarp
// interpolates with an error budget of 0.125 pixel), and GDAL's "margin"
// test that skips pixels whose corners fall more than two source pixels
// outside the source raster is not applied (it cannot select a source
// pixel here: such a footprint lies outside the zone grid, where there is
// no data). Zones are processed in ascending order and a later zone only
// overwrites the pixels it gives a value to.

// GlobalScratch holds the buffers, PROJ context and encoder of one global
// chunk generation at a time. It is not safe for concurrent use.
type GlobalScratch struct {
	proj *index.Projector
	enc  *zarr.ShardEncoder
	pts  []proj.Coord
	src  []byte
	// Out is the decoded chunk being built.
	Out []byte
	buf []byte
}

// NewGlobalScratch allocates a scratch with its own PROJ context.
func NewGlobalScratch() *GlobalScratch {
	return &GlobalScratch{
		proj: index.NewProjector(),
		enc:  zarr.NewShardEncoder(ZstdLevel),
		Out:  make([]byte, GlobalChunkBytes),
	}
}

// Encode returns a copy of the chunk raw (GlobalChunkBytes) encoded with
// the codecs bytes → zstd.
func (sc *GlobalScratch) Encode(raw []byte) []byte {
	sc.buf = sc.enc.EncodeZstd(sc.buf, raw)
	return append([]byte(nil), sc.buf...)
}

// RGBShardFunc returns the encoded rgb shard (i, j) of zone z, or nil when
// the shard does not exist.
type RGBShardFunc func(z *index.ZoneGrid, i, j int) ([]byte, error)

// maxSourceWindow bounds the source pixels one zone may contribute to one
// chunk: far more than a 512 × 512 chunk of 0.0001° pixels can cover in
// UTM (about 600 × 600 at the equator), so only a broken projection hits it.
const maxSourceWindow = 4096 * 4096

// Level0 fills sc.Out with level-0 chunk (ci, cj) from the zone rgb shards
// that rgb returns and reports whether any pixel got a value.
func (g *GlobalIndex) Level0(sc *GlobalScratch, ci, cj int, rgb RGBShardFunc) (bool, error) {
	out := sc.Out[:GlobalChunkBytes]
	clear(out)
	tiles := g.Tiles(GlobalChunkBox(0, ci, cj))
	found := false
	for k := 0; k < len(tiles); {
		z := tiles[k].Zone
		box := tiles[k].Box
		for k < len(tiles) && tiles[k].Zone == z {
			b := tiles[k].Box
			box = [4]float64{min(box[0], b[0]), min(box[1], b[1]), max(box[2], b[2]), max(box[3], b[3])}
			k++
		}
		got, err := sc.level0Zone(z, box, ci, cj, rgb)
		if err != nil {
			return false, fmt.Errorf("zone %d: %w", z.Zone, err)
		}
		found = found || got
	}
	return found, nil
}

// footprint is the source window of one output pixel (see the comment at
// the top of this file).
type footprint struct {
	xmin, xmax, ymin, ymax float64
	ix0, ix1, iy0, iy1     int
}

// makeFootprint computes the footprint of the output pixel whose
// upper-left and lower-right corners are (x1, y1) and (x2, y2) in source
// pixel coordinates, on a source of w × h pixels. ok is false when it
// misses the source.
func makeFootprint(x1, y1, x2, y2 float64, w, h int) (f footprint, ok bool) {
	const eps = 1e-10
	if x1 > x2 {
		x1, x2 = x2, x1
	}
	if y1 > y2 {
		y1, y2 = y2, y1
	}
	// NaN (an unprojectable corner) fails these tests too.
	if !(x2 > -eps && x1 < float64(w)+eps && y2 > -eps && y1 < float64(h)+eps) {
		return f, false
	}
	f = footprint{xmin: x1, xmax: x2, ymin: y1, ymax: y2}
	f.ix0 = max(int(math.Floor(x1+eps)), 0)
	f.ix1 = min(int(math.Ceil(x2-eps)), w)
	if f.ix0 == f.ix1 && f.ix1 < w {
		f.ix1++
	}
	f.iy0 = max(int(math.Floor(y1+eps)), 0)
	f.iy1 = min(int(math.Ceil(y2-eps)), h)
	if f.iy0 == f.iy1 && f.iy1 < h {
		f.iy1++
	}
	return f, f.ix0 < f.ix1 && f.iy0 < f.iy1
}

// weightY is GDAL's COMPUTE_WEIGHT_Y: the length of source row iy inside
// the footprint, in rows.
func (f *footprint) weightY(iy int) float64 {
	switch {
	case iy == f.iy0:
		if f.iy0+1 == f.iy1 {
			return 1
		}
		return 1 - (f.ymin - float64(f.iy0))
	case iy+1 == f.iy1:
		return 1 - (float64(f.iy1) - f.ymax)
	}
	return 1
}

// weightX is GDAL's COMPUTE_WEIGHT for column ix, given the row's weight.
func (f *footprint) weightX(ix int, wy float64) float64 {
	switch {
	case ix == f.ix0:
		if f.ix0+1 == f.ix1 {
			return wy
		}
		return wy * (1 - (f.xmin - float64(f.ix0)))
	case ix+1 == f.ix1:
		return wy * (1 - (float64(f.ix1) - f.xmax))
	}
	return wy
}

// level0Zone paints into sc.Out the pixels of level-0 chunk (ci, cj) that
// zone z gives a value to; box is the lon/lat box of z's tiles that meet
// the chunk.
func (sc *GlobalScratch) level0Zone(z *index.ZoneGrid, box [4]float64, ci, cj int, rgb RGBShardFunc) (bool, error) {
	const res = GlobalRes0
	h0, w0 := GlobalShape(0)
	R0, C0 := ci*GlobalChunk, cj*GlobalChunk
	ny, nx := min(GlobalChunk, h0-R0), min(GlobalChunk, w0-C0)
	// The chunk's pixels the tiles can reach, one pixel of slack each side.
	x0 := max(int(math.Floor((box[0]+180)/res))-C0-1, 0)
	x1 := min(int(math.Ceil((box[2]+180)/res))-C0+1, nx)
	y0 := max(int(math.Floor((90-box[3])/res))-R0-1, 0)
	y1 := min(int(math.Ceil((90-box[1])/res))-R0+1, ny)
	if x0 >= x1 || y0 >= y1 {
		return false, nil
	}
	// Pixel corners, (y1−y0+1) rows of (x1−x0+1), projected to the zone.
	stride := x1 - x0 + 1
	n := stride * (y1 - y0 + 1)
	if cap(sc.pts) < n {
		sc.pts = make([]proj.Coord, n)
	}
	pts := sc.pts[:n]
	for y := range y1 - y0 + 1 {
		lat := 90 - float64(float64(R0+y0+y)*res)
		for x := range stride {
			pts[y*stride+x] = proj.Coord{-180 + float64(float64(C0+x0+x)*res), lat}
		}
	}
	if err := sc.proj.Transform("OGC:CRS84", index.ZoneEPSG(z.Zone), pts); err != nil {
		// PROJ marks the points it cannot project (HUGE_VAL) and reports
		// the last failure: those corners just miss the source.
		if !anyNonFinite(pts) {
			return false, err
		}
	}
	for k := range pts {
		pts[k][0] = (pts[k][0] - z.OriginE) / index.PixelSize
		pts[k][1] = (z.OriginN - pts[k][1]) / index.PixelSize
	}
	// The source window all footprints read.
	sx0, sy0, sx1, sy1 := z.W, z.H, 0, 0
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			ul, lr := pts[(y-y0)*stride+x-x0], pts[(y-y0+1)*stride+x-x0+1]
			f, ok := makeFootprint(ul[0], ul[1], lr[0], lr[1], z.W, z.H)
			if !ok {
				continue
			}
			sx0, sx1 = min(sx0, f.ix0), max(sx1, f.ix1)
			sy0, sy1 = min(sy0, f.iy0), max(sy1, f.iy1)
		}
	}
	if sx0 >= sx1 || sy0 >= sy1 {
		return false, nil
	}
	sw, sh := sx1-sx0, sy1-sy0
	if sw*sh > maxSourceWindow {
		return false, fmt.Errorf("chunk %d/%d: source window of %d × %d pixels: projection out of range", ci, cj, sh, sw)
	}
	if err := sc.readSource(z, sx0, sy0, sw, sh, rgb); err != nil {
		return false, err
	}
	src := sc.src
	got := false
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			ul, lr := pts[(y-y0)*stride+x-x0], pts[(y-y0+1)*stride+x-x0+1]
			f, ok := makeFootprint(ul[0], ul[1], lr[0], lr[1], z.W, z.H)
			if !ok {
				continue
			}
			var val [RGBBands]float64
			total := 0.0
			for iy := f.iy0; iy < f.iy1; iy++ {
				wy := f.weightY(iy)
				row := src[(iy-sy0)*sw*RGBA:][:sw*RGBA]
				for ix := f.ix0; ix < f.ix1; ix++ {
					p := row[(ix-sx0)*RGBA:][:RGBA]
					if p[3] < 128 {
						continue
					}
					wt := f.weightX(ix, wy)
					if wt <= 0 {
						continue
					}
					// GDAL's weighted incremental mean; the conversions
					// keep every product rounded on its own (no fused
					// multiply-add), so the bytes do not depend on the CPU.
					total += wt
					ratio := wt / total
					for b := range RGBBands {
						val[b] += float64(ratio * (float64(p[b]) - val[b]))
					}
				}
			}
			if total <= 0 {
				continue
			}
			o := sc.Out[(y*GlobalChunk+x)*RGBA:][:RGBA]
			for b := range RGBBands {
				o[b] = roundByte(val[b])
			}
			o[3] = 255
			got = true
		}
	}
	return got, nil
}

func anyNonFinite(pts []proj.Coord) bool {
	for _, p := range pts {
		if math.IsNaN(p[0]) || math.IsInf(p[0], 0) || math.IsNaN(p[1]) || math.IsInf(p[1], 0) {
			return true
		}
	}
	return false
}

// readSource fills sc.src with zone z's rgb pixels [sy0, sy0+sh) ×
// [sx0, sx0+sw), RGBA, fill 0 where no shard or inner chunk exists.
func (sc *GlobalScratch) readSource(z *index.ZoneGrid, sx0, sy0, sw, sh int, rgb RGBShardFunc) error {
	n := sw * sh * RGBA
	if cap(sc.src) < n {
		sc.src = make([]byte, n)
	}
	sc.src = sc.src[:n]
	clear(sc.src)
	const chunkPx = InnerSize * InnerSize * RGBA
	for si := sy0 / ShardSize; si <= (sy0+sh-1)/ShardSize; si++ {
		for sj := sx0 / ShardSize; sj <= (sx0+sw-1)/ShardSize; sj++ {
			if !z.HasShard(ShardSize, si, sj) {
				continue
			}
			b, err := rgb(z, si, sj)
			if err != nil {
				return err
			}
			if b == nil {
				continue
			}
			chunks, err := zarr.DecodeShard(b, InnerPerSide*InnerPerSide)
			if err != nil {
				return fmt.Errorf("rgb shard %d/%d: %w", si, sj, err)
			}
			// The part of the window in this shard, in zone pixels.
			r0, r1 := max(sy0, si*ShardSize), min(sy0+sh, (si+1)*ShardSize)
			c0, c1 := max(sx0, sj*ShardSize), min(sx0+sw, (sj+1)*ShardSize)
			for r := r0; r < r1; r++ {
				ir := r - si*ShardSize
				for c := c0; c < c1; {
					ic := c - sj*ShardSize
					ch := chunks[(ir/InnerSize)*InnerPerSide+ic/InnerSize]
					// Pixels up to the end of this inner chunk's row.
					m := min(InnerSize-ic%InnerSize, c1-c)
					if len(ch) == chunkPx {
						copy(sc.src[((r-sy0)*sw+c-sx0)*RGBA:][:m*RGBA],
							ch[((ir%InnerSize)*InnerSize+ic%InnerSize)*RGBA:][:m*RGBA])
					}
					c += m
				}
			}
		}
	}
	return nil
}
