// Package preview renders quicklook images of a store's rgb previews: a
// year's global_rgb pyramid (spec §5) over a lon/lat box, or one UTM
// zone's rgb array (spec §4) halved a number of times. The chunks are read
// through the store (Get), so they are cached and generated exactly as a
// mount or a materialized tree serves them; this package only lays their
// pixels out, and chooses the finest level whose image fits a pixel budget.
package preview

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"

	"github.com/twpayne/go-proj/v11"
	"golang.org/x/sync/errgroup"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
	"github.com/tesserafs/tesserafs/internal/keyspace"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/zarr"
)

// MaxPixels bounds any image this package makes (256 MiB of RGBA): a
// quicklook of more calls for a higher level or a smaller box.
const MaxPixels = 64 << 20

// DefaultMaxPixels is the budget a level is chosen for when none is given.
const DefaultMaxPixels = 16 << 20

// MaxZoneLevel is the coarsest zone preview: a shard of 256 pixels reduces
// 8 times to one pixel.
const MaxZoneLevel = 8

// Options configure a rendering.
type Options struct {
	Workers   int   // chunks read at once; default 1
	MaxPixels int64 // refuse larger images; 0 or more than MaxPixels means MaxPixels
}

func (o Options) maxPixels() int64 {
	if o.MaxPixels <= 0 || o.MaxPixels > MaxPixels {
		return MaxPixels
	}
	return o.MaxPixels
}

// Window is the part of a level an image shows, in that level's pixels:
// rows [R0, R1) and columns [C0, C1).
type Window struct{ R0, C0, R1, C1 int }

// Size is the image size of the window, in pixels.
func (w Window) Size() (width, height int) { return w.C1 - w.C0, w.R1 - w.R0 }

// Pixels is width × height.
func (w Window) Pixels() int64 { return int64(w.C1-w.C0) * int64(w.R1-w.R0) }

// A Target is what to render: a year's global_rgb (Zone 0) or one zone's
// rgb, over a lon/lat box (nil: all the data, or the whole zone grid).
type Target struct {
	Year int
	Zone int
	BBox *[4]float64 // lonMin, latMin, lonMax, latMax
}

// Levels is the number of levels of t: global_rgb's level count, or
// MaxZoneLevel+1 for a zone.
func Levels(st *store.Store, t Target) (int, error) {
	if t.Zone != 0 {
		if _, err := zoneGrid(st, t); err != nil {
			return 0, err
		}
		return MaxZoneLevel + 1, nil
	}
	idx, err := st.GlobalIndex(t.Year)
	if err != nil {
		return 0, err
	}
	return idx.Levels, nil
}

// WindowAt is the window of level l that the image of t shows.
func WindowAt(st *store.Store, t Target, l int) (Window, error) {
	if t.Zone != 0 {
		return zoneWindowAt(st, t, l)
	}
	return globalWindowAt(st, t, l)
}

// Finest returns the finest level of t whose image holds at most
// maxPixels pixels (DefaultMaxPixels if 0), and its window.
func Finest(st *store.Store, t Target, maxPixels int64) (int, Window, error) {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	n, err := Levels(st, t)
	if err != nil {
		return 0, Window{}, err
	}
	var last Window
	for l := range n {
		w, err := WindowAt(st, t, l)
		if err != nil {
			return 0, Window{}, err
		}
		if w.Pixels() <= maxPixels {
			return l, w, nil
		}
		last = w
	}
	lw, lh := last.Size()
	return 0, Window{}, fmt.Errorf("even the coarsest level (%d) is %d × %d pixels, more than %d: choose a smaller box", n-1, lw, lh, maxPixels)
}

// Render renders level l of t: for global_rgb one image pixel per array
// pixel, for a zone its rgb halved l times by the global_rgb rule
// (generate.ReduceRGBA). Transparent where there is no data.
func Render(ctx context.Context, st *store.Store, t Target, l int, o Options) (*image.NRGBA, error) {
	w, err := WindowAt(st, t, l)
	if err != nil {
		return nil, err
	}
	if w.Pixels() > o.maxPixels() {
		ww, wh := w.Size()
		return nil, fmt.Errorf("a %d × %d preview is too large (at most %d pixels): choose a higher level or a smaller box", ww, wh, o.maxPixels())
	}
	if t.Zone != 0 {
		return renderZone(ctx, st, t, l, w, o)
	}
	return renderGlobal(ctx, st, t, l, w, o)
}

func globalWindowAt(st *store.Store, t Target, l int) (Window, error) {
	idx, err := st.GlobalIndex(t.Year)
	if err != nil {
		return Window{}, err
	}
	if l < 0 || l >= idx.Levels {
		return Window{}, fmt.Errorf("level %d: global_rgb has levels 0..%d", l, idx.Levels-1)
	}
	box, ok := idx.DataBox()
	if t.BBox != nil {
		box, ok = *t.BBox, true
	}
	if !ok {
		return Window{}, fmt.Errorf("%d.zarr has no tiles", t.Year)
	}
	res := generate.GlobalRes(l)
	h, w := generate.GlobalShape(l)
	win := Window{
		C0: max(int(math.Floor((box[0]+180)/res)), 0),
		C1: min(int(math.Ceil((box[2]+180)/res)), w),
		R0: max(int(math.Floor((90-box[3])/res)), 0),
		R1: min(int(math.Ceil((90-box[1])/res)), h),
	}
	if win.R0 >= win.R1 || win.C0 >= win.C1 {
		return Window{}, fmt.Errorf("the box holds no pixel at level %d", l)
	}
	return win, nil
}

func renderGlobal(ctx context.Context, st *store.Store, t Target, l int, win Window, o Options) (*image.NRGBA, error) {
	idx, err := st.GlobalIndex(t.Year)
	if err != nil {
		return nil, err
	}
	r0, c0, r1, c1 := win.R0, win.C0, win.R1, win.C1
	img := image.NewNRGBA(image.Rect(0, 0, c1-c0, r1-r0))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(o.Workers, 1))
	const n = generate.GlobalChunk
	for ci := r0 / n; ci <= (r1-1)/n; ci++ {
		for cj := c0 / n; cj <= (c1-1)/n; cj++ {
			if !idx.Has(l, ci, cj) {
				continue
			}
			g.Go(func() error {
				key := keyspace.GlobalRGBChunk(t.Year, l, ci, cj)
				b, err := st.Get(gctx, key)
				if errors.Is(err, store.ErrNotFound) {
					return nil // no finite scale: all transparent (spec §3)
				}
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

func zoneGrid(st *store.Store, t Target) (*index.ZoneGrid, error) {
	y := st.Catalogue().Year(t.Year)
	if y == nil {
		return nil, fmt.Errorf("%d.zarr: %w", t.Year, store.ErrNotFound)
	}
	z := y.Zone(t.Zone)
	if z == nil {
		return nil, fmt.Errorf("%d.zarr/%s: %w", t.Year, keyspace.ZoneGroup(t.Zone), store.ErrNotFound)
	}
	return z, nil
}

// zoneWindowAt is the window of zone level l (pixels of 10·2^l m): the
// zone pixels of the box, widened to multiples of 2^l so that each shard
// reduces on its own, exactly.
func zoneWindowAt(st *store.Store, t Target, l int) (Window, error) {
	z, err := zoneGrid(st, t)
	if err != nil {
		return Window{}, err
	}
	if l < 0 || l > MaxZoneLevel {
		return Window{}, fmt.Errorf("level %d: a zone preview has levels 0..%d", l, MaxZoneLevel)
	}
	r0, c0, r1, c1 := 0, 0, z.H, z.W
	if t.BBox != nil {
		if r0, c0, r1, c1, err = boxInZone(z, *t.BBox); err != nil {
			return Window{}, err
		}
	}
	f := 1 << l
	r0, c0 = r0/f*f, c0/f*f
	r1, c1 = min((r1+f-1)/f*f, z.H), min((c1+f-1)/f*f, z.W)
	win := Window{R0: r0 / f, C0: c0 / f, R1: r1 / f, C1: c1 / f}
	if win.R0 >= win.R1 || win.C0 >= win.C1 {
		return Window{}, fmt.Errorf("the box holds no pixel at level %d", l)
	}
	return win, nil
}

func renderZone(ctx context.Context, st *store.Store, t Target, l int, win Window, o Options) (*image.NRGBA, error) {
	z, err := zoneGrid(st, t)
	if err != nil {
		return nil, err
	}
	f := 1 << l
	// The window in zone pixels (level 0).
	r0, c0 := win.R0*f, win.C0*f
	r1, c1 := min(win.R1*f, z.H), min(win.C1*f, z.W)
	img := image.NewNRGBA(image.Rect(0, 0, win.C1-win.C0, win.R1-win.R0))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(o.Workers, 1))
	const n = generate.ShardSize
	for si := r0 / n; si <= (r1-1)/n; si++ {
		for sj := c0 / n; sj <= (c1-1)/n; sj++ {
			if !z.HasShard(n, si, sj) {
				continue
			}
			g.Go(func() error {
				key := keyspace.ZoneShard(z.Year, z.Zone, keyspace.RGB, si, sj)
				b, err := st.Get(gctx, key)
				if errors.Is(err, store.ErrNotFound) {
					return nil // no finite scale: all transparent (spec §3)
				}
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
					copy(img.Pix[(r-win.R0)*img.Stride+(ca-win.C0)*4:][:(cb-ca)*4],
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

// boxInZone is the zone-pixel window [r0, r1) × [c0, c1) covering a
// lon/lat box: its outline, densified, projected to the zone.
func boxInZone(z *index.ZoneGrid, b [4]float64) (r0, c0, r1, c1 int, err error) {
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
