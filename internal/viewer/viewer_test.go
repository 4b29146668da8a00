package viewer_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"image"
	"image/png"
	"io"
	"io/fs"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/twpayne/go-proj/v11"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/synth"
	"github.com/tesserafs/tesserafs/internal/testtiles"
	"github.com/tesserafs/tesserafs/internal/viewer"
)

var screenshot = flag.String("screenshot", "", "write a screenshot of the viewer (a pick shown) to this PNG file, e.g. ../../docs/viewer.png")

// bg is the viewer's background (BG in web/src/main.js): what a canvas
// pixel shows where no data pixel is drawn.
var bg = [3]uint8{24, 28, 36}

func TestFSPlaceholderOrBundle(t *testing.T) {
	b, err := fs.ReadFile(viewer.FS(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	_, errScript := fs.Stat(viewer.FS(), "app.js")
	if viewer.Built() {
		if errScript != nil || !bytes.Contains(b, []byte(`src="app.js"`)) {
			t.Fatalf("built viewer: index.html must load app.js (stat app.js: %v)", errScript)
		}
	} else if !bytes.Contains(b, []byte("make viewer")) || errScript == nil {
		t.Fatalf("placeholder must say how to build the viewer and hold no app.js")
	}
	if _, err := fs.Stat(viewer.FS(), "placeholder.html"); err == nil {
		t.Fatal("FS must not expose placeholder.html")
	}
}

// zoneOracle is what a correct store holds in one zone, from the synthetic
// tiles' known function.
type zoneOracle struct {
	grid  *index.ZoneGrid
	tiles []synth.PlacedTile
}

// valid counts the zone pixels of [r0, r1) × [c0, c1) whose scale is finite
// (those the zone's rgb draws, alpha 255) and the others.
func (z zoneOracle) valid(r0, c0, r1, c1 int) (valid, invalid int) {
	_, scale := synth.Window(z.tiles, r0, c0, r1, c1)
	for _, s := range scale {
		if s == s {
			valid++
		} else {
			invalid++
		}
	}
	return valid, invalid
}

// frac is a point's fractional zone pixel position (col, row) by go-proj.
func frac(t *testing.T, p *index.Projector, z *index.ZoneGrid, lon, lat float64) (c, r float64) {
	t.Helper()
	co := []proj.Coord{{lon, lat, 0, 0}}
	if err := p.Transform("OGC:CRS84", index.ZoneEPSG(z.Zone), co); err != nil {
		t.Fatal(err)
	}
	return (co[0][0] - z.OriginE) / index.PixelSize, (z.OriginN - co[0][1]) / index.PixelSize
}

type view struct {
	lon, lat, dpp float64
	w, h          int
}

// lonLat is the point at the centre of canvas pixel (x, y), by the
// viewer's documented screen convention.
func (v view) lonLat(x, y int) (lon, lat float64) {
	lon0 := v.lon - float64(v.w)/2*v.dpp
	lat0 := v.lat + float64(v.h)/2*v.dpp
	return lon0 + (float64(x)+0.5)*v.dpp, lat0 - (float64(y)+0.5)*v.dpp
}

// TestViewerInChromium runs what users run: `tesserafs serve`, built from
// this module (with the viewer embedded), over the synthetic "test" tiles,
// generating shards on demand. It opens the page in headless Chromium over
// CDP, checks the drawn canvas against the synthetic oracle in global_rgb
// and zone mode, pans and zooms, clicks pixels and checks the plotted
// embedding, and checks that every request the page made went to the
// server's loopback origin (nothing from the internet).
func TestViewerInChromium(t *testing.T) {
	if !viewer.Built() {
		if os.Getenv("TESSERAFS_REQUIRE_SERVERS") == "1" {
			t.Fatal("TESSERAFS_REQUIRE_SERVERS=1 but the viewer is not built: run make viewer before go test")
		}
		t.Skip("SKIPPING: the viewer bundle is not built (make viewer); the viewer is NOT tested here")
	}
	chromium := findChromium(t)
	ctx := context.Background()

	// The server: `tesserafs serve` on the "test" preset, a fresh cache.
	tilesRoot := testtiles.Root(t, "test")
	cat, err := index.Discover(ctx, tilesRoot, index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	base := startServe(t, buildTesserafs(t),
		"--tiles", tilesRoot, "--cache", filepath.Join(t.TempDir(), "cache"), "--cache-size", "1GiB", "--workers", "2")
	// The binary must serve the bundle this test was built with, not the
	// placeholder or an older build.
	for _, name := range []string{"index.html", "app.js"} {
		want, err := fs.ReadFile(viewer.FS(), name)
		if err != nil {
			t.Fatal(err)
		}
		path := "/" + name
		if name == "index.html" {
			path = "/"
		}
		if got := get(t, base+path); !bytes.Equal(got, want) {
			t.Fatalf("GET %s: %d bytes differ from the embedded viewer's %s (%d bytes)", path, len(got), name, len(want))
		}
	}

	specs, err := synth.Preset("test")
	if err != nil {
		t.Fatal(err)
	}
	byCoord := map[index.TileCoord]synth.TileSpec{}
	for _, s := range specs {
		byCoord[s.Coord] = s
	}
	var zones []zoneOracle
	for _, z := range cat.Year(testtiles.Year).Zones {
		zo := zoneOracle{grid: z}
		for _, p := range z.Placements {
			zo.tiles = append(zo.tiles, synth.Place(byCoord[p.Tile.Coord], p.Tile.Footprint, z.OriginE, z.OriginN))
		}
		zones = append(zones, zo)
	}
	pj := index.NewProjector()

	// The browser.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // as root Chromium refuses to start with its sandbox
		chromedp.WindowSize(1000, 700),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelA := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelA()
	// Every request of the page, recorded from the first event on
	// (WithListener), checked when the test ends however it ends.
	var requests []string
	var reqMu sync.Mutex
	bctx, cancelB := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		var u string
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			u = e.Request.URL
		case *network.EventWebSocketCreated:
			u = e.URL
		default:
			return
		}
		reqMu.Lock()
		requests = append(requests, u)
		reqMu.Unlock()
	}))
	defer cancelB()
	defer func() {
		reqMu.Lock()
		defer reqMu.Unlock()
		checkSameOrigin(t, base, requests)
	}()
	bctx, cancelT := context.WithTimeout(bctx, 4*time.Minute)
	defer cancelT()
	var exceptions []string // from the browser's goroutine, read after Run returns
	var exMu sync.Mutex
	defer func() {
		exMu.Lock()
		defer exMu.Unlock()
		for _, e := range exceptions {
			t.Errorf("browser exception: %s", e)
		}
	}()
	if err := chromedp.Listen(bctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			t.Logf("browser console %s: %s", e.Type, strings.Join(parts, " "))
		case *runtime.EventExceptionThrown:
			exMu.Lock()
			exceptions = append(exceptions, fmt.Sprintf("%s %s", e.ExceptionDetails.Text, exceptionDesc(e.ExceptionDetails)))
			exMu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	do(t, bctx, chromedp.Navigate(base))
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](`!!(window.__tfs && (window.__tfs.ready || window.__tfs.error !== null))`, chromedp.WithPollingTimeout(60*time.Second))); err != nil {
		t.Fatal(err)
	}
	ready := eval[bool](t, bctx, `window.__tfs.ready`)
	bootErr := eval[string](t, bctx, `window.__tfs.error || ""`)
	if !ready || bootErr != "" {
		t.Fatalf("viewer did not open the store: %s", bootErr)
	}

	show := func(v *view) *image.RGBA {
		t.Helper()
		js := fmt.Sprintf(`window.__tfs.setView(%v, %v, %v).then(() => [document.getElementById("map").width, document.getElementById("map").height])`, v.lon, v.lat, v.dpp)
		size := eval[[]int](t, bctx, js, chromedp.EvalAwaitPromise)
		dataURL := eval[string](t, bctx, `document.getElementById("map").toDataURL("image/png")`)
		v.w, v.h = size[0], size[1]
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(dataURL, "data:image/png;base64,"))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		rgba := image.NewRGBA(img.Bounds())
		for y := range img.Bounds().Dy() {
			for x := range img.Bounds().Dx() {
				rgba.Set(x, y, img.At(x, y))
			}
		}
		return rgba
	}
	drawn := func(img *image.RGBA, x, y int) bool {
		o := img.PixOffset(x, y)
		return img.Pix[o] != bg[0] || img.Pix[o+1] != bg[1] || img.Pix[o+2] != bg[2]
	}
	var mode string
	var level int
	state := func() {
		t.Helper()
		mode = eval[string](t, bctx, `window.__tfs.mode`)
		level = eval[int](t, bctx, `window.__tfs.level`)
	}

	// global_rgb, level 3 over the zone 30/31 block near 85° N. A canvas
	// pixel shows the level pixel that contains its centre: it must be
	// drawn where every zone pixel under that level pixel (one pixel of
	// margin) holds data in some zone, and background where none does in
	// any zone.
	t.Run("global", func(t *testing.T) {
		const lvl = 3
		res := 1e-4 * (1 << lvl)
		v := view{lon: 0, lat: 85, dpp: res * 1.2}
		img := show(&v)
		state()
		if mode != "global" || level != lvl {
			t.Fatalf("dpp %g: mode %q level %d, want global level %d", v.dpp, mode, level, lvl)
		}
		var mustDraw, mustNot, bad int
		for y := 2; y < v.h; y += 6 {
			for x := 2; x < v.w; x += 6 {
				lon, lat := v.lonLat(x, y)
				fc, fr := (lon+180)/res, (90-lat)/res
				if d := min(fc-math.Floor(fc), math.Ceil(fc)-fc, fr-math.Floor(fr), math.Ceil(fr)-fr); d < 0.02 {
					continue // on a level pixel's edge: either neighbour is right
				}
				west, north := math.Floor(fc)*res-180, 90-math.Floor(fr)*res
				anyAll, anySome := false, false
				for _, z := range zones {
					c0, r0, c1, r1 := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
					for _, p := range [][2]float64{{west, north}, {west + res, north}, {west, north - res}, {west + res, north - res}} {
						c, r := frac(t, pj, z.grid, p[0], p[1])
						c0, c1, r0, r1 = min(c0, c), max(c1, c), min(r0, r), max(r1, r)
					}
					ic0, ir0 := int(math.Floor(c0))-1, int(math.Floor(r0))-1
					ic1, ir1 := int(math.Ceil(c1))+1, int(math.Ceil(r1))+1
					if ic1 <= 0 || ir1 <= 0 || ic0 >= z.grid.W || ir0 >= z.grid.H {
						continue
					}
					nv, ni := z.valid(max(ir0, 0), max(ic0, 0), min(ir1, z.grid.H), min(ic1, z.grid.W))
					inside := ic0 >= 0 && ir0 >= 0 && ic1 <= z.grid.W && ir1 <= z.grid.H
					anyAll = anyAll || (inside && ni == 0 && nv > 0)
					anySome = anySome || nv > 0
				}
				switch got := drawn(img, x, y); {
				case anyAll:
					mustDraw++
					if !got {
						bad++
						if bad <= 5 {
							t.Errorf("pixel (%d, %d) at %.5f, %.5f: background, want data", x, y, lon, lat)
						}
					}
				case !anySome:
					mustNot++
					if got {
						bad++
						if bad <= 5 {
							t.Errorf("pixel (%d, %d) at %.5f, %.5f: drawn, want background (no data there)", x, y, lon, lat)
						}
					}
				}
			}
		}
		t.Logf("level %d: %d sampled pixels must be drawn, %d must be background; %d wrong", lvl, mustDraw, mustNot, bad)
		if mustDraw < 200 || mustNot < 200 {
			t.Fatalf("the view tests too little: %d data and %d background samples", mustDraw, mustNot)
		}
	})

	// Wheel, the zoom-out button and a drag change the view as documented:
	// the wheel keeps the point under the pointer, a zoom step goes up a
	// pyramid level, a drag moves the map with the pointer.
	t.Run("pan-zoom", func(t *testing.T) {
		type viewState struct {
			Lon, Lat, Dpp float64
			Level         int
			Mode          string
			Under         []float64
		}
		get := func() viewState {
			return eval[viewState](t, bctx, `window.__tfs.idle().then(() => ({
				Lon: window.__tfs.view.lon, Lat: window.__tfs.view.lat, Dpp: window.__tfs.view.dpp,
				Level: window.__tfs.level, Mode: window.__tfs.mode, Under: window.__tfs.toLonLat(300, 200)}))`, chromedp.EvalAwaitPromise)
		}
		near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*max(math.Abs(a), math.Abs(b), 1e-6) }
		v := view{lon: 0, lat: 85, dpp: 9.6e-4}
		show(&v)
		s0 := get()
		// Chromium wants deltaX too, and cdproto omits a zero: a negligible one.
		wheel := func(p *input.DispatchMouseEventParams) { p.DeltaX, p.DeltaY = 1e-6, 100 }
		do(t, bctx, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseWheel, 300, 200, wheel))
		s1 := get()
		if !near(s1.Dpp, s0.Dpp*1.25) || !near(s1.Under[0], s0.Under[0]) || !near(s1.Under[1], s0.Under[1]) {
			t.Errorf("wheel at (300, 200): view %+v → %+v, want dpp × 1.25 and the same point under the pointer", s0, s1)
		}
		do(t, bctx, chromedp.MouseClickXY(25, 59)) // the zoom-out button
		s2 := get()
		if !near(s2.Dpp, s1.Dpp*2) || s2.Mode != "global" || s2.Level != s1.Level+1 {
			t.Errorf("zoom out: view %+v → %+v, want dpp × 2, one level up", s1, s2)
		}
		do(t, bctx,
			chromedp.MouseEvent(input.DispatchMouseEventTypeMousePressed, 400, 300, chromedp.ButtonLeft),
			chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, 430, 310, chromedp.ButtonLeft),
			chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, 450, 320, chromedp.ButtonLeft),
			chromedp.MouseEvent(input.DispatchMouseEventTypeMouseReleased, 450, 320, chromedp.ButtonLeft),
		)
		s3 := get()
		if !near(s3.Lon, s2.Lon-50*s2.Dpp) || !near(s3.Lat, s2.Lat+20*s2.Dpp) || s3.Dpp != s2.Dpp {
			t.Errorf("drag by (50, 20): view %+v → %+v, want the centre moved by (−50, +20)·dpp", s2, s3)
		}
	})

	// Zone rgb at full resolution over zone 34's tiles near 85° S: a canvas
	// pixel is drawn iff the zone pixel containing its centre (by go-proj,
	// not the viewer's own projection) has a finite scale.
	z34 := zones[len(zones)-1]
	if z34.grid.Zone != 34 {
		t.Fatalf("last zone is %d, want 34", z34.grid.Zone)
	}
	zv := view{lon: 20.43, lat: -84.9, dpp: 1e-4}
	var pickData, pickWater [2]int // canvas pixels to click
	// clickable: not under the zoom buttons (top left), the panel (top
	// right, 420 × 330) or the status line (bottom left).
	clickable := func(x, y int) bool {
		return x > 60 && y > 60 && y < zv.h-60 && (x < zv.w-440 || y > 360)
	}
	// nearer: (x, y) is nearer the middle of the map's left half than p.
	nearer := func(x, y int, p [2]int) bool {
		d := func(x, y int) int { return (x-zv.w/3)*(x-zv.w/3) + (y-zv.h/2)*(y-zv.h/2) }
		return p == [2]int{} || d(x, y) < d(p[0], p[1])
	}
	t.Run("zone", func(t *testing.T) {
		img := show(&zv)
		state()
		if mode != "zone" {
			t.Fatalf("dpp %g: mode %q, want zone", zv.dpp, mode)
		}
		var nData, nWater, bad int
		for y := 1; y < zv.h; y += 3 {
			for x := 1; x < zv.w; x += 3 {
				lon, lat := zv.lonLat(x, y)
				fc, fr := frac(t, pj, z34.grid, lon, lat)
				if d := min(fc-math.Floor(fc), math.Ceil(fc)-fc, fr-math.Floor(fr), math.Ceil(fr)-fr); d < 0.01 {
					continue
				}
				r, c := int(math.Floor(fr)), int(math.Floor(fc))
				want := false
				if r >= 0 && c >= 0 && r < z34.grid.H && c < z34.grid.W {
					nv, _ := z34.valid(r, c, r+1, c+1)
					want = nv == 1
				}
				if want {
					nData++
					if d := min(fc-math.Floor(fc), math.Ceil(fc)-fc, fr-math.Floor(fr), math.Ceil(fr)-fr); d > 0.2 && clickable(x, y) && nearer(x, y, pickData) {
						pickData = [2]int{x, y}
					}
				} else {
					nWater++
					if r > 0 && c > 0 && r < z34.grid.H && c < z34.grid.W && clickable(x, y) && nearer(x, y, pickWater) {
						pickWater = [2]int{x, y}
					}
				}
				if got := drawn(img, x, y); got != want {
					bad++
					if bad <= 5 {
						t.Errorf("pixel (%d, %d) at %.6f, %.6f (zone pixel %d, %d): drawn %v, want %v", x, y, lon, lat, r, c, got, want)
					}
				}
			}
		}
		t.Logf("zone 34 at dpp %g: %d sampled pixels with data, %d without; %d wrong", zv.dpp, nData, nWater, bad)
		if nData < 500 || nWater < 500 {
			t.Fatalf("the view tests too little: %d data and %d no-data samples", nData, nWater)
		}
	})
	if t.Failed() {
		return
	}

	// Click a pixel with data: the plot holds its dequantised embedding.
	type pick struct {
		Zone, Row, Col int
		Values         []string
		Heights        []float64
		VMax, Half     float64
		Text           string
		N              int
	}
	click := func(t *testing.T, x, y int) pick {
		t.Helper()
		eval[chromedp.Void](t, bctx, `window.__tfs.lastPick = null`)
		do(t, bctx, chromedp.MouseClickXY(float64(x)+0.5, float64(y)+0.5))
		if _, err := chromedp.Run(bctx, chromedp.Poll[bool](`window.__tfs.lastPick !== null`, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
			t.Fatal(err)
		}
		return eval[pick](t, bctx, `(() => {
				const pl = document.getElementById("plot"), pk = document.getElementById("pick");
				const rects = [...pl.querySelectorAll("rect[data-band]")];
				return {
					Zone: Number(pk.dataset.zone || -1), Row: Number(pk.dataset.row || -1), Col: Number(pk.dataset.col || -1),
					Values: rects.map((r) => r.getAttribute("data-value")),
					Heights: rects.map((r) => Number(r.getAttribute("height"))),
					VMax: Number(pl.dataset.vmax || 0), Half: Number(pl.dataset.half || 0),
					Text: pk.textContent, N: Number(pl.dataset.n),
				};
			})()`)
	}
	t.Run("pick", func(t *testing.T) {
		if pickData == [2]int{} || pickWater == [2]int{} {
			t.Fatalf("no clickable pixel with data (%v) or without (%v) in the view", pickData, pickWater)
		}
		x, y := pickData[0], pickData[1]
		lon, lat := zv.lonLat(x, y)
		fc, fr := frac(t, pj, z34.grid, lon, lat)
		r, c := int(math.Floor(fr)), int(math.Floor(fc))
		p := click(t, x, y)
		if p.Zone != 34 || p.Row != r || p.Col != c {
			t.Fatalf("clicked (%d, %d) at %.6f, %.6f: picked zone %d pixel (%d, %d), want zone 34 pixel (%d, %d)", x, y, lon, lat, p.Zone, p.Row, p.Col, r, c)
		}
		emb, scale := synth.Window(z34.tiles, r, c, r+1, c+1)
		if len(p.Values) != 128 || p.N != 128 {
			t.Fatalf("plot has %d bars (data-n %d), want 128", len(p.Values), p.N)
		}
		vmax := 0.0
		for b := range 128 {
			want := float32(emb[b]) * scale[0]
			got, err := strconv.ParseFloat(p.Values[b], 64)
			if err != nil || float32(got) != want || float64(float32(got)) != got {
				t.Errorf("band %d: plotted %q, want %v = %d × %v", b, p.Values[b], want, emb[b], scale[0])
			}
			vmax = max(vmax, math.Abs(float64(want)))
		}
		if math.Abs(p.VMax-vmax) > 1e-9*vmax {
			t.Errorf("plot scale max |v| = %v, want %v", p.VMax, vmax)
		}
		for b := range 128 {
			want := math.Abs(float64(float32(emb[b])*scale[0])) / vmax * p.Half
			if math.Abs(p.Heights[b]-want) > 1e-3 {
				t.Errorf("band %d: bar height %v, want %v", b, p.Heights[b], want)
			}
		}
		for _, s := range []string{"utm34", fmt.Sprintf("row %d, col %d", r, c), fmt.Sprintf("%.6f, %.6f", lon, lat)} {
			if !strings.Contains(p.Text, s) {
				t.Errorf("pick text %q lacks %q", p.Text, s)
			}
		}
		t.Logf("clicked (%d, %d): zone 34 pixel (%d, %d), scale %v, 128 values match the oracle", x, y, r, c, scale[0])
	})
	t.Run("pick-no-data", func(t *testing.T) {
		x, y := pickWater[0], pickWater[1]
		p := click(t, x, y)
		if p.N != 0 || len(p.Values) != 0 || !strings.Contains(p.Text, "no data") {
			t.Errorf("clicked a pixel without data at (%d, %d): %d bars, text %q", x, y, len(p.Values), p.Text)
		}
	})

	if *screenshot != "" {
		if _, err := os.Stat(filepath.Dir(*screenshot)); err != nil {
			t.Fatal(err)
		}
		_ = click(t, pickData[0], pickData[1])
		shot, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(*screenshot, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", *screenshot)
	}
}

// eval evaluates js in the page and decodes its value.
func eval[T any](t *testing.T, ctx context.Context, js string, opts ...chromedp.EvaluateOption) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, opts...))
	if err != nil {
		t.Fatalf("evaluate %.80s: %v", js, err)
	}
	return v
}

// do runs browser actions.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// findChromium finds Debian's chromium (or skips/fails like testservers).
func findChromium(t *testing.T) string {
	t.Helper()
	for _, c := range []string{os.Getenv("TESSERAFS_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if c == "" {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	if os.Getenv("TESSERAFS_REQUIRE_SERVERS") == "1" {
		t.Fatal("TESSERAFS_REQUIRE_SERVERS=1 but chromium is not installed (make deps installs it)")
	}
	t.Skip("SKIPPING: chromium is not installed (make deps installs it); the viewer is NOT tested here")
	return ""
}

func exceptionDesc(d *runtime.ExceptionDetails) string {
	if d.Exception != nil {
		return d.Exception.Description
	}
	return ""
}

// buildTesserafs builds cmd/tesserafs of this module, as `make build` does,
// into a temporary directory: the binary embeds the same viewer bundle as
// this test (go test puts its own go first on PATH). No VCS stamp: the
// checkout may belong to another user, which git refuses to read.
func buildTesserafs(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("building tesserafs: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "tesserafs")
	start := time.Now()
	cmd := exec.Command(goBin, "build", "-buildvcs=false", "-o", bin, "github.com/tesserafs/tesserafs/cmd/tesserafs")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/tesserafs: %v\n%s", err, out)
	}
	t.Logf("built tesserafs in %.1fs", time.Since(start).Seconds())
	return bin
}

// lockedBuffer collects a child process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServe starts `bin serve` on a free loopback port and returns its
// base URL (http://127.0.0.1:PORT) once it prints that it is serving. At the
// end of the test it gets SIGTERM and must exit 0 with its summary, as it
// does for a user's Ctrl-C.
func startServe(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	out := &lockedBuffer{}
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(out, pw)
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s serve: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { err := cmd.Wait(); pw.Close(); exited <- err }()
	ready := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`^tesserafs: serving (http://127\.0\.0\.1:\d+)/`)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil && len(ready) == 0 {
				ready <- m[1]
			}
		}
		io.Copy(io.Discard, pr) // a line too long for the scanner: keep draining
	}()
	t.Cleanup(func() {
		select {
		case err := <-exited:
			t.Errorf("serve exited during the test (%v):\n%s", err, out.String())
			return
		default:
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("SIGTERM to serve: %v", err)
		}
		select {
		case err := <-exited:
			if err != nil || !strings.Contains(out.String(), "tesserafs: stopped serving") {
				t.Errorf("serve after SIGTERM: %v\n%s", err, out.String())
			}
		case <-time.After(40 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("serve still running 40 s after SIGTERM, killed:\n%s", out.String())
		}
		for _, line := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(line, "tesserafs: stopped serving") {
				t.Log(line)
			}
		}
	})
	select {
	case u := <-ready:
		return u
	case err := <-exited:
		exited <- err // for the cleanup
		t.Fatalf("serve exited before it was ready (%v):\n%s", err, out.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("serve not ready after 60 s:\n%s", out.String())
	}
	return ""
}

// get fetches url and fails the test unless it answers 200.
func get(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", u, resp.Status, err)
	}
	return b
}

// checkSameOrigin checks that every request the page made went to base, a
// loopback origin, and that the record is not empty: the page, its script,
// the catalog and chunks of each kind the test views must be among them.
func checkSameOrigin(t *testing.T, base string, requests []string) {
	t.Helper()
	bu, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(bu.Hostname()); ip == nil || !ip.IsLoopback() {
		t.Fatalf("served origin %s is not a loopback address", base)
	}
	paths := map[string]int{}
	var outside []string
	for _, r := range requests {
		u, err := url.Parse(r)
		if err != nil || u.Scheme != bu.Scheme || u.Host != bu.Host {
			outside = append(outside, r)
			continue
		}
		paths[u.Path]++
	}
	for i, r := range outside {
		if i == 10 {
			t.Errorf("… and %d more requests outside %s", len(outside)-i, base)
			break
		}
		t.Errorf("the page requested %.200s, outside the served origin %s", r, base)
	}
	// The chunk requests by kind: one year, global_rgb levels and zones.
	kind := regexp.MustCompile(`^/\d{4}\.zarr/(global_rgb|utm\d\d/(?:rgb|embeddings|scales))/.*?\bc/`)
	counts := map[string]int{}
	for p, n := range paths {
		if m := kind.FindStringSubmatch(p); m != nil {
			k := m[1]
			if i := strings.IndexByte(k, '/'); i >= 0 {
				k = k[i+1:] // a zone's array
			}
			counts[k] += n
		}
	}
	t.Logf("%d requests by the page, %d distinct paths, %d outside %s; chunk requests %v", len(requests), len(paths), len(outside), base, counts)
	for _, p := range []string{"/", "/app.js", "/catalog.json", fmt.Sprintf("/%d.zarr/zarr.json", testtiles.Year)} {
		if paths[p] == 0 {
			t.Errorf("no request for %s recorded: the record misses requests", p)
		}
	}
	for _, k := range []string{"global_rgb", "rgb", "embeddings", "scales"} {
		if counts[k] == 0 && !t.Failed() {
			t.Errorf("no %s chunk request recorded: the record misses requests", k)
		}
	}
}
