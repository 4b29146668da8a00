package generate

import (
	"fmt"
	"math"

	"github.com/twpayne/go-proj/v11"
)

// GDAL does not warp a level-0 chunk in one piece when a zone grid ends
// inside it: its warp operation first cuts the destination window into a
// list of pieces (GDALWarpOperation::CollectChunkList), each warped on its
// own with its own source window. The pieces matter to the bytes, because
//
//   - each piece transforms its rows of corners through the approximate
//     transformer separately, over the piece's columns only;
//   - each footprint is tested against and clamped to the piece's source
//     window, not the zone grid (see makeFootprint), and its edge weights
//     are taken in the window's coordinates.
//
// The cutting, as GDAL 3.10 does it for this warp (one alpha band, four
// float32 working bands, a 64 MB warp memory limit, no options):
//
//  1. The source window of a destination window (dx, dy, dw, dh): the 84
//     points (dx + r·dw, dy), (dx + r·dw, dy + dh), (dx, dy + r·dh),
//     (dx + dw, dy + r·dh), r = 0, 0.05, … (r summed 20 times), projected
//     exactly to source pixel coordinates; their bounding box, each bound
//     rounded to an integer when within 1e-6 of it. A box wholly off the
//     source gives an empty window. Else, with radius 0 (average
//     resampling) the window is [trunc(max(0, minX)), min(ceil(maxX), W))
//     across, likewise down; an axis whose clamped span covers more than
//     90 % of the grid takes the whole grid.
//  2. Its fill ratio: the window's area over the box's area (the latter
//     taken as at least 1).
//  3. The window is cut in two when its source and destination pixels
//     (20 and 16 bytes each) exceed 64 MB, or when 0 < fill ratio < 0.5
//     and dw or dh exceeds 100: across (dw/2 columns first) when dw > dh,
//     else down (dh/2 rows first); each half is treated the same way.
//  4. Pieces are warped as listed; they are disjoint, so their order does
//     not matter.

// warpPiece is one piece of GDAL's chunk list: a destination window of the
// chunk and the source window GDAL reads for it.
type warpPiece struct {
	dx, dy, dw, dh int     // destination window, chunk pixel coordinates
	sx, sy, sw, sh int     // source window, zone pixel coordinates
	rawW, rawH     float64 // the source box's clamped size, unpadded
}

// Chunk list constants of GDAL 3.10 for this warp.
const (
	// warpMemoryLimit is GDAL's default warp memory limit, which rasterio
	// keeps (warp_mem_limit=0).
	warpMemoryLimit = 64 << 20
	// srcPixelBits: four float32 working bands plus the float32 density
	// mask that the source alpha band needs.
	srcPixelBits = 4*32 + 32
	// dstPixelBits: four float32 working bands, no destination mask.
	dstPixelBits = 4 * 32
	// sampleSteps is GDAL's default count of sample points along each
	// edge of a destination window.
	sampleSteps = 21
)

// sourceWindow is GDALWarpOperation::ComputeSourceWindow for the
// destination window (dx, dy, dw, dh) on a w × h zone grid: the piece and
// its fill ratio.
func (t *zoneProj) sourceWindow(dx, dy, dw, dh, w, h int) (warpPiece, float64, error) {
	p := warpPiece{dx: dx, dy: dy, dw: dw, dh: dh}
	const n = 4 * sampleSteps
	var xs, ys [n]float64
	k := 0
	step := 1.0 / (sampleSteps - 1)
	for r := 0.0; r <= 1.0+step*0.5; r += step {
		xs[k], ys[k] = float64(r*float64(dw))+float64(dx), float64(dy)
		xs[k+1], ys[k+1] = float64(r*float64(dw))+float64(dx), float64(dy+dh)
		xs[k+2], ys[k+2] = float64(dx), float64(r*float64(dh))+float64(dy)
		xs[k+3], ys[k+3] = float64(dx+dw), float64(r*float64(dh))+float64(dy)
		k += 4
	}
	var pts [n]proj.Coord
	minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	if err := t.exactXY(xs[:], ys[:], pts[:]); err != nil {
		return p, 0, err
	}
	for i, c := range pts {
		if !finite(c) {
			// GDAL would fall back to sampling a grid; a UTM zone near its
			// own grid projects everywhere, so this is a broken input.
			return p, 0, fmt.Errorf("destination window %d,%d %d×%d: corner (%g, %g) does not project", dx, dy, dw, dh, xs[i], ys[i])
		}
		minX, maxX = min(minX, c[0]), max(maxX, c[0])
		minY, maxY = min(minY, c[1]), max(maxY, c[1])
	}
	if minX > float64(w) || maxX < 0 || minY > float64(h) || maxY < 0 {
		return p, 0, nil
	}
	minX, minY, maxX, maxY = roundNear(minX), roundNear(minY), roundNear(maxX), roundNear(maxY)
	// Average resampling has no filter radius, and the scale never brings
	// one in: the padding (GDAL's nSrcXExtraSize) is 0.
	p.sx, p.sw, p.rawW = windowAxis(minX, maxX, w)
	p.sy, p.sh, p.rawH = windowAxis(minY, maxY, h)
	fill := float64(p.sw) * float64(p.sh) / max(1, (maxX-minX)*(maxY-minY))
	return p, fill, nil
}

// windowAxis is one axis of ComputeSourceWindow with radius 0: offset,
// size and unpadded size of the window over [lo, hi] on a grid of n pixels.
func windowAxis(lo, hi float64, n int) (off, size int, raw float64) {
	lo0 := int(max(0, lo))
	hi0 := int(min(math.Ceil(hi), float64(n)))
	raw = max(0, min(float64(n-lo0), hi-lo))
	if float64(hi0-lo0) > 0.9*float64(n) {
		return 0, n, raw
	}
	off = max(0, min(lo0, n))
	size = max(0, min(n-off, hi0-off))
	return off, size, raw
}

// roundNear is ComputeSourceWindow's rounding of a bound within 1e-6 of
// an integer to that integer.
func roundNear(v float64) float64 {
	if r := math.Round(v); math.Abs(r-v) < 1e-6 {
		return r
	}
	return v
}

// chunkList is GDALWarpOperation::CollectChunkListInternal: it appends to
// out the pieces GDAL warps the destination window (dx, dy, dw, dh) in.
func (t *zoneProj) chunkList(out []warpPiece, dx, dy, dw, dh, w, h int) ([]warpPiece, error) {
	p, fill, err := t.sourceWindow(dx, dy, dw, dh, w, h)
	if err != nil {
		return out, err
	}
	mem := (float64(srcPixelBits)*float64(p.sw)*float64(p.sh) + float64(dstPixelBits)*float64(dw)*float64(dh)) / 8
	if (mem > warpMemoryLimit && (dw > 2 || dh > 2)) || (fill > 0 && fill < 0.5 && (dw > 100 || dh > 100)) {
		if dw > dh {
			a := dw / 2
			if out, err = t.chunkList(out, dx, dy, a, dh, w, h); err != nil {
				return out, err
			}
			return t.chunkList(out, dx+a, dy, dw-a, dh, w, h)
		}
		a := dh / 2
		if out, err = t.chunkList(out, dx, dy, dw, a, w, h); err != nil {
			return out, err
		}
		return t.chunkList(out, dx, dy+a, dw, dh-a, w, h)
	}
	return append(out, p), nil
}

// kernelMargin is how far, in source pixels, a footprint's corners may lie
// outside a piece's source window along one axis before GDAL's average
// kernel skips the pixel: 2·max(1, ⌈1/scale⌉), with the kernel's scale
// (destination over unpadded source size, snapped to 1/n near it).
func kernelMargin(d, s int, raw float64) float64 {
	scale := float64(d) / raw
	if s >= d && float64(s) <= float64(d)+(float64(s)-raw) {
		scale = 1
	}
	if scale < 1 {
		r := 1 / scale
		if n := int(r + 0.5); math.Abs(r-float64(n)) < 0.05 {
			scale = 1 / float64(n)
		}
	}
	return float64(2 * max(1, int(math.Ceil(1/scale))))
}
