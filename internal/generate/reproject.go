package generate

import (
	"fmt"
	"math"

	"github.com/twpayne/go-proj/v11"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/zarr"
)

// Level 0 of global_rgb: each zone's rgb reprojected to EPSG:4326 exactly
// as GDAL's average resampling does it (spec §5), since the reference
// builder warps with rasterio.warp.reproject(..., Resampling.average):
//
//   - GDAL cuts the chunk into pieces, each with its own source window
//     (warpchunks.go); a chunk inside a zone grid is one piece.
//   - Per output row y of a piece, GDAL transforms the upper-left corners
//     (x, y), x over the piece's columns, and, in a second call, the
//     lower-right corners (x+1, y+1) from output pixel coordinates to
//     source pixel coordinates, each call through its approximate
//     transformer (approxRow).
//   - An output pixel's footprint is the box its two corners span, in the
//     coordinates of the piece's source window. It is skipped when a
//     corner lies beyond the kernel's margin of the window (kernelMargin)
//     or when the box does not overlap the window (1e-10 tolerance); else
//     it is clamped to the window, and a span left empty by the clamp
//     before the window's end reads the next pixel.
//   - Each source pixel in the footprint with alpha ≥ 128 counts with
//     GDAL's COMPUTE_WEIGHT weight (weightX, weightY: at the box's edges
//     the unclamped overlap, so a box reaching past the window's edge
//     weighs its edge pixel more than 1), in GDAL's weighted incremental
//     mean, in float64.
//   - The mean is stored as float32 (GDAL's working type for the float32
//     destination the reference warps into) and truncated to a byte; alpha
//     is 255 iff some band's float32 mean is non-zero.
//
// Zones are processed in ascending order and a later zone overwrites only
// the pixels it sets (alpha 255). GDAL's antimeridian test (a footprint
// spanning the whole source width) cannot fire on a UTM zone at 0.0001°
// and is not ported.
//
// Products are converted to float64 before they are added (float64(a*b)),
// which forbids fused multiply-add: the bytes do not depend on the CPU.

// approxMaxError is the error budget of GDAL's approximate transformer as
// rasterio sets it up (0.125 source pixel).
const approxMaxError = 0.125

// zoneProj maps output pixel coordinates of one level-0 chunk to source
// pixel coordinates of one zone, as GDAL's GenImgProj transformer does:
// the chunk's geotransform, PROJ, then the inverse of the zone's
// geotransform in GDAL's form for an unrotated one (x = −origin_e/10 +
// E·0.1, y = origin_n/10 + N·(−0.1)).
type zoneProj struct {
	p           *index.Projector
	epsg        string
	west, north float64
	inv         [6]float64
	xs          []float64
	pts         []proj.Coord
}

func (t *zoneProj) init(p *index.Projector, z *index.ZoneGrid, R0, C0 int) {
	t.p = p
	t.epsg = index.ZoneEPSG(z.Zone)
	t.west = -180 + float64(float64(C0)*GlobalRes0)
	t.north = 90 - float64(float64(R0)*GlobalRes0)
	const px = index.PixelSize
	t.inv = [6]float64{-z.OriginE / px, 1 / px, 0, -z.OriginN / -px, 0, 1 / -px}
}

// exact projects the output points (xs[i], y) to source pixel coordinates;
// points PROJ cannot project come out non-finite.
func (t *zoneProj) exact(xs []float64, y float64, out []proj.Coord) error {
	for i, x := range xs {
		// gt[0] + x·gt[1] + y·gt[2], gt[3] + x·gt[4] + y·gt[5]
		out[i] = proj.Coord{t.west + float64(x*GlobalRes0) + float64(y*0), t.north + float64(x*0) + float64(y*-GlobalRes0)}
	}
	if err := t.p.Transform("OGC:CRS84", t.epsg, out[:len(xs)]); err != nil && !anyNonFinite(out[:len(xs)]) {
		return err
	}
	inv := &t.inv
	for i := range xs {
		e, n := out[i][0], out[i][1]
		out[i] = proj.Coord{inv[0] + float64(e*inv[1]) + float64(n*inv[2]), inv[3] + float64(e*inv[4]) + float64(n*inv[5])}
	}
	return nil
}

// exactXY projects the output points (xs[i], ys[i]) like exact.
func (t *zoneProj) exactXY(xs, ys []float64, out []proj.Coord) error {
	for i, x := range xs {
		y := ys[i]
		out[i] = proj.Coord{t.west + float64(x*GlobalRes0) + float64(y*0), t.north + float64(x*0) + float64(y*-GlobalRes0)}
	}
	if err := t.p.Transform("OGC:CRS84", t.epsg, out[:len(xs)]); err != nil && !anyNonFinite(out[:len(xs)]) {
		return err
	}
	inv := &t.inv
	for i := range xs {
		e, n := out[i][0], out[i][1]
		out[i] = proj.Coord{inv[0] + float64(e*inv[1]) + float64(n*inv[2]), inv[3] + float64(e*inv[4]) + float64(n*inv[5])}
	}
	return nil
}

func finite(c proj.Coord) bool {
	return !math.IsNaN(c[0]) && !math.IsInf(c[0], 0) && !math.IsNaN(c[1]) && !math.IsInf(c[1], 0)
}

// approxRow is GDAL's approximate transformer (GDALApproxTransform) over
// the output points (xs[i], y): the first, middle and last points are
// projected exactly; if the middle one's linear interpolation is within
// approxMaxError (|Δx| + |Δy|), every point is interpolated linearly,
// else the run is split in two halves that are treated the same way.
// Runs of at most 5 points are projected exactly.
func (t *zoneProj) approxRow(xs []float64, y float64, out []proj.Coord) error {
	n := len(xs)
	mid := (n - 1) / 2
	if n <= 5 || xs[0] == xs[n-1] || xs[0] == xs[mid] {
		return t.exact(xs, y, out)
	}
	var sme [3]proj.Coord
	if err := t.exact([]float64{xs[0], xs[mid], xs[n-1]}, y, sme[:]); err != nil {
		return err
	}
	if !finite(sme[0]) || !finite(sme[1]) || !finite(sme[2]) {
		return t.exact(xs, y, out)
	}
	return t.approxSplit(xs, y, out, sme)
}

// approxSplit is GDALApproxTransformInternal: sme holds the exact
// projections of the run's first, middle and last points.
func (t *zoneProj) approxSplit(xs []float64, y float64, out []proj.Coord, sme [3]proj.Coord) error {
	n := len(xs)
	mid := (n - 1) / 2
	span := xs[n-1] - xs[0]
	dx := (sme[2][0] - sme[0][0]) / span
	dy := (sme[2][1] - sme[0][1]) / span
	md := xs[mid] - xs[0]
	e := math.Abs(sme[0][0]+float64(dx*md)-sme[1][0]) + math.Abs(sme[0][1]+float64(dy*md)-sme[1][1])
	if !(e > approxMaxError) {
		for i := n - 1; i >= 0; i-- {
			d := xs[i] - xs[0]
			out[i] = proj.Coord{sme[0][0] + float64(dx*d), sme[0][1] + float64(dy*d)}
		}
		return nil
	}
	left, right := mid, n-mid
	lmid, rmid := (mid-1)/2, mid+(right-1)/2
	baseLeft := left <= 5 || xs[0] == xs[left-1] || xs[0] == xs[lmid]
	baseRight := right <= 5 || xs[mid] == xs[n-1] || xs[mid] == xs[rmid]
	// The exact projection of a point does not depend on the batch it is
	// in, so GDAL's fallbacks (exact interiors, known ends) are plain exact
	// projections here.
	var m [3]proj.Coord
	if !baseLeft || !baseRight {
		if err := t.exact([]float64{xs[lmid], xs[left-1], xs[rmid]}, y, m[:]); err != nil {
			return err
		}
		ok := true
		if !baseLeft {
			ok = finite(m[0]) && finite(m[1])
		}
		if !baseRight {
			ok = ok && finite(m[2])
		}
		if !ok {
			return t.exact(xs, y, out)
		}
	}
	var err error
	if baseLeft {
		err = t.exact(xs[:left], y, out[:left])
	} else {
		err = t.approxSplit(xs[:left], y, out[:left], [3]proj.Coord{sme[0], m[0], m[1]})
	}
	if err != nil {
		return err
	}
	if baseRight {
		return t.exact(xs[mid:], y, out[mid:])
	}
	return t.approxSplit(xs[mid:], y, out[mid:], [3]proj.Coord{sme[1], m[2], sme[2]})
}

// GlobalScratch holds the buffers, PROJ context and encoder of one global
// chunk generation at a time. It is not safe for concurrent use.
type GlobalScratch struct {
	proj   *index.Projector
	enc    *zarr.ShardEncoder
	pts    []proj.Coord
	xs     []float64
	pieces []warpPiece
	src    []byte
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
// the top of this file), in the coordinates of a piece's source window.
type footprint struct {
	xmin, xmax, ymin, ymax float64
	ix0, ix1, iy0, iy1     int
}

// makeFootprint computes the footprint of the output pixel whose
// upper-left and lower-right corners are (x1, y1) and (x2, y2) in the
// pixel coordinates of a source window of w × h pixels, as GDAL's average
// kernel does: corners more than mx (my) pixels outside the window skip
// the pixel; the box is clamped to the window, and an empty clamped span
// before the window's end reads the next pixel, so a box just before the
// window's first column or row reads that column or row. ok is false when
// the pixel reads nothing.
func makeFootprint(x1, y1, x2, y2 float64, w, h int, mx, my float64) (f footprint, ok bool) {
	const eps = 1e-10
	fw, fh := float64(w), float64(h)
	// NaN (an unprojectable corner) fails these tests too.
	if !(x1 >= -mx && x2 >= -mx && y1 >= -my && y2 >= -my &&
		x1-fw <= mx && x2-fw <= mx && y1-fh <= my && y2-fh <= my) {
		return f, false
	}
	if x1 > x2 {
		x1, x2 = x2, x1
	}
	if y1 > y2 {
		y1, y2 = y2, y1
	}
	if !(x2 > -eps && x1 < fw+eps && y2 > -eps && y1 < fh+eps) {
		return f, false
	}
	f = footprint{xmin: x1, xmax: x2, ymin: y1, ymax: y2}
	f.ix0 = int(max(math.Floor(x1+eps), 0))
	f.ix1 = int(min(math.Ceil(x2-eps), fw))
	if f.ix0 == f.ix1 && f.ix1 < w {
		f.ix1++
	}
	f.iy0 = int(max(math.Floor(y1+eps), 0))
	f.iy1 = int(min(math.Ceil(y2-eps), fh))
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
	return sc.WarpZone(z, ci, cj, [4]int{x0, y0, x1, y1}, func(sx0, sy0, sw, sh int) ([]byte, error) {
		if err := sc.readSource(z, sx0, sy0, sw, sh, rgb); err != nil {
			return nil, err
		}
		return sc.src, nil
	})
}

// SourceFunc returns zone pixels [sy0, sy0+sh) × [sx0, sx0+sw), RGBA, row
// by row; pixels outside the zone grid are never asked for.
type SourceFunc func(sx0, sy0, sw, sh int) ([]byte, error)

// WarpZone paints into sc.Out the pixels of level-0 chunk (ci, cj) in
// win (x0, y0, x1, y1, chunk pixel coordinates, end exclusive) that zone z
// sets, reading the zone's rgb through src, and reports whether it set
// any. The chunk is warped in GDAL's pieces (see warpchunks.go), each
// piece as the comment at the top of this file describes.
func (sc *GlobalScratch) WarpZone(z *index.ZoneGrid, ci, cj int, win [4]int, src SourceFunc) (bool, error) {
	h0, w0 := GlobalShape(0)
	R0, C0 := ci*GlobalChunk, cj*GlobalChunk
	ny, nx := min(GlobalChunk, h0-R0), min(GlobalChunk, w0-C0)
	x0, y0 := max(win[0], 0), max(win[1], 0)
	x1, y1 := min(win[2], nx), min(win[3], ny)
	if x0 >= x1 || y0 >= y1 {
		return false, nil
	}
	var t zoneProj
	t.init(sc.proj, z, R0, C0)
	// GDAL cuts the whole chunk, whatever part of it we need.
	pieces, err := t.chunkList(sc.pieces[:0], 0, 0, nx, ny, z.W, z.H)
	sc.pieces = pieces
	if err != nil {
		return false, fmt.Errorf("chunk %d/%d: %w", ci, cj, err)
	}
	// One read for all the pieces: the union of their source windows.
	ux0, uy0, ux1, uy1 := z.W, z.H, 0, 0
	n := 0
	for i := range pieces {
		p := &pieces[i]
		if p.sw == 0 || p.sh == 0 || p.dx >= x1 || p.dx+p.dw <= x0 || p.dy >= y1 || p.dy+p.dh <= y0 {
			continue
		}
		pieces[n] = *p
		n++
		ux0, uy0 = min(ux0, p.sx), min(uy0, p.sy)
		ux1, uy1 = max(ux1, p.sx+p.sw), max(uy1, p.sy+p.sh)
	}
	if n == 0 {
		return false, nil
	}
	uw, uh := ux1-ux0, uy1-uy0
	if uw*uh > maxSourceWindow {
		return false, fmt.Errorf("chunk %d/%d: source window of %d × %d pixels: projection out of range", ci, cj, uh, uw)
	}
	pix, err := src(ux0, uy0, uw, uh)
	if err != nil {
		return false, err
	}
	if len(pix) < uw*uh*RGBA {
		return false, fmt.Errorf("chunk %d/%d: source window of %d × %d pixels read as %d bytes", ci, cj, uh, uw, len(pix))
	}
	got := false
	for i := range pieces[:n] {
		p := &pieces[i]
		// The piece's source window inside the union.
		view := pix[((p.sy-uy0)*uw+p.sx-ux0)*RGBA:]
		set, err := sc.warpPiece(&t, p, [4]int{max(x0, p.dx), max(y0, p.dy), min(x1, p.dx+p.dw), min(y1, p.dy+p.dh)}, view, uw)
		if err != nil {
			return false, fmt.Errorf("chunk %d/%d: %w", ci, cj, err)
		}
		got = got || set
	}
	return got, nil
}

// warpPiece paints the pixels of piece p in win (chunk pixel coordinates,
// inside the piece) that get a value and reports whether there were any;
// pix holds the piece's source window from its first pixel on, RGBA, rows
// stride pixels apart.
func (sc *GlobalScratch) warpPiece(t *zoneProj, p *warpPiece, win [4]int, pix []byte, stride int) (bool, error) {
	x0, y0, x1, y1 := win[0], win[1], win[2], win[3]
	sx0, sy0, sw, sh := p.sx, p.sy, p.sw, p.sh
	mx, my := kernelMargin(p.dw, sw, p.rawW), kernelMargin(p.dh, sh, p.rawH)
	// Per row: the upper-left corners (x, y) then, in a call of their own,
	// the lower-right corners (x+1, y+1), x over the piece's columns, as
	// GDAL transforms them; the piece's whole row each time, since the
	// approximation depends on it.
	nx := p.dw
	if cap(sc.pts) < 2*nx {
		sc.pts = make([]proj.Coord, 2*nx)
	}
	ul, lr := sc.pts[:nx], sc.pts[nx:2*nx]
	if cap(sc.xs) < 2*nx {
		sc.xs = make([]float64, 2*nx)
	}
	ulx, lrx := sc.xs[:nx], sc.xs[nx:2*nx]
	for x := range nx {
		ulx[x], lrx[x] = float64(p.dx+x), float64(p.dx+x)+1
	}
	offX, offY := float64(sx0), float64(sy0)
	got := false
	for y := y0; y < y1; y++ {
		if err := t.approxRow(ulx, float64(y), ul); err != nil {
			return false, err
		}
		if err := t.approxRow(lrx, float64(y)+1, lr); err != nil {
			return false, err
		}
		for x := x0; x < x1; x++ {
			a, b := ul[x-p.dx], lr[x-p.dx]
			f, ok := makeFootprint(a[0]-offX, a[1]-offY, b[0]-offX, b[1]-offY, sw, sh, mx, my)
			if !ok {
				continue
			}
			var val [RGBBands]float64
			total := 0.0
			for iy := f.iy0; iy < f.iy1; iy++ {
				wy := f.weightY(iy)
				row := pix[iy*stride*RGBA:][:sw*RGBA]
				for ix := f.ix0; ix < f.ix1; ix++ {
					q := row[ix*RGBA:][:RGBA]
					if q[3] < 128 {
						continue
					}
					wt := f.weightX(ix, wy)
					if !(wt > 0) {
						continue
					}
					// GDAL's weighted incremental mean.
					total += wt
					ratio := wt / total
					for b := range RGBBands {
						val[b] += float64(ratio * (float64(q[b]) - val[b]))
					}
				}
			}
			if !(total > 0) {
				continue
			}
			var px [RGBA]byte
			for b := range RGBBands {
				v := float32(val[b])
				if v != 0 {
					px[3] = 255
				}
				px[b] = truncByte(v)
			}
			if px[3] == 0 {
				// A pure-black mean is transparent and does not overwrite.
				continue
			}
			copy(sc.Out[(y*GlobalChunk+x)*RGBA:][:RGBA], px[:])
			got = true
		}
	}
	return got, nil
}

// truncByte is trunc(clip(v, 0, 255)).
func truncByte(v float32) byte {
	switch {
	case !(v > 0):
		return 0
	case v >= 255:
		return 255
	}
	return byte(v)
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
