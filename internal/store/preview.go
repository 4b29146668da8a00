package store

import (
	"context"
	"fmt"
	"image"
	"math"

	"github.com/twpayne/go-proj/v11"
	"golang.org/x/sync/errgroup"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
	"github.com/tesserafs/tesserafs/zarr"
)

// MaxPreviewPixels bounds the images the Preview functions make (256 MiB of
// RGBA): a quicklook of more calls for a higher level or a smaller box.
const MaxPreviewPixels = 64 << 20

// PreviewGlobal renders level l of year's global_rgb over bbox (lonMin,
// latMin, lonMax, latMax; nil means the box of the year's tiles), one image
// pixel per array pixel, transparent where there is no data. The chunks
// are read through the store (so cached, and generated if needed) by up
// to workers at a time.
func (s *Store) PreviewGlobal(ctx context.Context, year, l int, bbox *[4]float64, workers int) (*image.NRGBA, error) {
	idx, err := s.GlobalIndex(year)
	if err != nil {
		return nil, err
	}
	if l < 0 || l >= idx.Levels {
		return nil, fmt.Errorf("level %d: global_rgb has levels 0..%d", l, idx.Levels-1)
	}
	box, ok := idx.DataBox()
	if bbox != nil {
		box, ok = *bbox, true
	}
	if !ok {
		return nil, fmt.Errorf("%d.zarr has no tiles", year)
	}
	res := generate.GlobalRes(l)
	h, w := generate.GlobalShape(l)
	c0 := max(int(math.Floor((box[0]+180)/res)), 0)
	c1 := min(int(math.Ceil((box[2]+180)/res)), w)
	r0 := max(int(math.Floor((90-box[3])/res)), 0)
	r1 := min(int(math.Ceil((90-box[1])/res)), h)
	if err := checkPreviewSize(r1-r0, c1-c0); err != nil {
		return nil, err
	}
	img := image.NewNRGBA(image.Rect(0, 0, c1-c0, r1-r0))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(workers, 1))
	const n = generate.GlobalChunk
	for ci := r0 / n; ci <= (r1-1)/n; ci++ {
		for cj := c0 / n; cj <= (c1-1)/n; cj++ {
			if !idx.Has(l, ci, cj) {
				continue
			}
			g.Go(func() error {
				key := globalChunkKey(year, l, ci, cj)
				b, err := s.Get(gctx, key)
				if err != nil {
					return err
				}
				raw, err := zarr.DecodeZstd(b)
				if err != nil || len(raw) != generate.GlobalChunkBytes {
					return fmt.Errorf("%s: bad chunk (%d bytes decoded): %v", key, len(raw), err)
				}
				// The part of the chunk inside the image, in level pixels.
				ra, rb := max(r0, ci*n), min(r1, (ci+1)*n)
				ca, cb := max(c0, cj*n), min(c1, (cj+1)*n)
				for r := ra; r < rb; r++ {
					copy(img.Pix[(r-r0)*img.Stride+(ca-c0)*4:][:(cb-ca)*4],
						raw[((r-ci*n)*n+(ca-cj*n))*generate.RGBA:][:(cb-ca)*generate.RGBA])
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return img, nil
}

// MaxZonePreviewLevel is the coarsest zone preview: a shard of 256 pixels
// reduces 8 times to one pixel.
const MaxZonePreviewLevel = 8

// PreviewZone renders zone's rgb array of year, halved l times by the
// global_rgb rule (generate.ReduceRGBA), over bbox (lon/lat, nil means the
// whole zone grid). Each shard is reduced on its own, which is exact since
// l ≤ 8 and the window is aligned to 2^l.
func (s *Store) PreviewZone(ctx context.Context, year, zone, l int, bbox *[4]float64, workers int) (*image.NRGBA, error) {
	y := s.cat.Year(year)
	if y == nil {
		return nil, notFound(fmt.Sprintf("%d.zarr", year))
	}
	z := y.Zone(zone)
	if z == nil {
		return nil, notFound(fmt.Sprintf("%d.zarr/%s", year, generate.ZoneGroupName(zone)))
	}
	if l < 0 || l > MaxZonePreviewLevel {
		return nil, fmt.Errorf("level %d: a zone preview has levels 0..%d", l, MaxZonePreviewLevel)
	}
	r0, c0, r1, c1 := 0, 0, z.H, z.W
	if bbox != nil {
		var err error
		if r0, c0, r1, c1, err = zoneWindow(z, *bbox); err != nil {
			return nil, err
		}
	}
	f := 1 << l
	r0, c0 = r0/f*f, c0/f*f
	r1, c1 = min((r1+f-1)/f*f, z.H), min((c1+f-1)/f*f, z.W)
	oh, ow := (r1-r0)/f, (c1-c0)/f
	if err := checkPreviewSize(oh, ow); err != nil {
		return nil, err
	}
	img := image.NewNRGBA(image.Rect(0, 0, ow, oh))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(workers, 1))
	const n = generate.ShardSize
	for si := r0 / n; si <= (r1-1)/n; si++ {
		for sj := c0 / n; sj <= (c1-1)/n; sj++ {
			if !z.HasShard(n, si, sj) {
				continue
			}
			g.Go(func() error {
				key := rgbShardKey(z, si, sj)
				b, err := s.Get(gctx, key)
				if err != nil {
					return err
				}
				chunks, err := zarr.DecodeShard(b, generate.InnerPerSide*generate.InnerPerSide)
				if err != nil {
					return fmt.Errorf("%s: %w", key, err)
				}
				px := shardPixels(chunks)
				side := n
				for range l {
					px = generate.ReduceRGBA(px, side, side)
					side /= 2
				}
				// The part of the shard inside the window, in output pixels.
				ra, rb := max(r0, si*n)/f, min(r1, (si+1)*n)/f
				ca, cb := max(c0, sj*n)/f, min(c1, (sj+1)*n)/f
				for r := ra; r < rb; r++ {
					copy(img.Pix[(r-r0/f)*img.Stride+(ca-c0/f)*4:][:(cb-ca)*4],
						px[((r-si*side)*side+(ca-sj*side))*generate.RGBA:][:(cb-ca)*generate.RGBA])
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return img, nil
}

// shardPixels lays out the decoded inner chunks of an rgb shard as a
// 256 × 256 RGBA image (absent chunks are fill 0).
func shardPixels(chunks [][]byte) []byte {
	const n, in = generate.ShardSize, generate.InnerSize
	px := make([]byte, n*n*generate.RGBA)
	for k, ch := range chunks {
		if len(ch) != in*in*generate.RGBA {
			continue
		}
		ci, cj := k/generate.InnerPerSide, k%generate.InnerPerSide
		for r := range in {
			copy(px[((ci*in+r)*n+cj*in)*generate.RGBA:][:in*generate.RGBA], ch[r*in*generate.RGBA:][:in*generate.RGBA])
		}
	}
	return px
}

// zoneWindow is the zone-pixel window [r0, r1) × [c0, c1) covering a
// lon/lat box: its outline, densified, projected to the zone.
func zoneWindow(z *index.ZoneGrid, b [4]float64) (r0, c0, r1, c1 int, err error) {
	const steps = 16
	var pts []proj.Coord
	for k := range steps + 1 {
		t := float64(k) / steps
		lon, lat := b[0]+t*(b[2]-b[0]), b[1]+t*(b[3]-b[1])
		pts = append(pts, proj.Coord{lon, b[1]}, proj.Coord{lon, b[3]}, proj.Coord{b[0], lat}, proj.Coord{b[2], lat})
	}
	if err := index.NewProjector().Transform("OGC:CRS84", index.ZoneEPSG(z.Zone), pts); err != nil {
		return 0, 0, 0, 0, fmt.Errorf("bbox: %w", err)
	}
	e0, n0, e1, n1 := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, p := range pts {
		e0, e1 = min(e0, p[0]), max(e1, p[0])
		n0, n1 = min(n0, p[1]), max(n1, p[1])
	}
	c0 = max(int(math.Floor((e0-z.OriginE)/index.PixelSize)), 0)
	c1 = min(int(math.Ceil((e1-z.OriginE)/index.PixelSize)), z.W)
	r0 = max(int(math.Floor((z.OriginN-n1)/index.PixelSize)), 0)
	r1 = min(int(math.Ceil((z.OriginN-n0)/index.PixelSize)), z.H)
	if r0 >= r1 || c0 >= c1 {
		return 0, 0, 0, 0, fmt.Errorf("bbox %v does not meet zone %d", b, z.Zone)
	}
	return r0, c0, r1, c1, nil
}

func checkPreviewSize(h, w int) error {
	if h <= 0 || w <= 0 {
		return fmt.Errorf("the box holds no pixel at this level")
	}
	if int64(h)*int64(w) > MaxPreviewPixels {
		return fmt.Errorf("a %d × %d preview is too large (at most %d pixels): choose a higher level or a smaller box", w, h, MaxPreviewPixels)
	}
	return nil
}
