package generate

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/tesserafs/tesserafs/index"
)

// gdalZone is one synthetic zone grid of a fixture case.
type gdalZone struct {
	Zone    int     `json:"zone"`
	OriginE float64 `json:"origin_e"`
	OriginN float64 `json:"origin_n"`
	W       int     `json:"w"`
	H       int     `json:"h"`
	Pattern string  `json:"pattern"`
	Seed    uint64  `json:"seed"`
	Hole    [4]int  `json:"hole"` // r0, r1, c0, c1: transparent
	// Pieces is GDAL's chunk list for this zone's warp, from its debug
	// log: destination x, y, w, h then source x, y, w, h, the pieces
	// with source pixels only, in the order GDAL warped them.
	Pieces [][8]int `json:"pieces"`
}

// gdalCase is one level-0 chunk warped by GDAL from one or more zones.
type gdalCase struct {
	Name  string     `json:"name"`
	CI    int        `json:"ci"`
	CJ    int        `json:"cj"`
	Zones []gdalZone `json:"zones"`
	Rows  []int      `json:"rows"`
	// Whole is true when the zone grids cover the whole chunk, so GDAL
	// warps it in one piece; otherwise a zone grid ends inside the chunk
	// and GDAL may cut it into pieces (its chunk list, by fill ratio).
	Whole bool   `json:"whole"`
	File  string `json:"file"`
}

// mix32 is make_fixtures.py's 32-bit hash.
func mix32(x uint32) uint32 {
	x ^= x >> 16
	x *= 0x7feb352d
	x ^= x >> 15
	x *= 0x846ca68b
	x ^= x >> 16
	return x
}

// pixel is make_fixtures.py's pattern(): zone pixel (r, c), RGBA.
func (z *gdalZone) pixel(r, c int) [4]byte {
	var px [4]byte
	opaque := true
	if z.Pattern == "noise" {
		base := uint32(r)*73856093 ^ uint32(c)*19349663 ^ uint32(z.Seed)
		for b := range 3 {
			px[b] = byte(mix32(base ^ uint32(b+1)*83492791))
		}
		opaque = mix32(base^4*83492791)%23 != 0
	} else {
		for b := range 3 {
			t := (2*uint64(r) + 3*uint64(c) + uint64(85*b) + z.Seed) % 510
			if t >= 256 {
				t = 509 - t
			}
			px[b] = byte(t)
		}
	}
	if r >= z.Hole[0] && r < z.Hole[1] && c >= z.Hole[2] && c < z.Hole[3] {
		opaque = false
	}
	if !opaque {
		return [4]byte{}
	}
	px[3] = 255
	return px
}

func (z *gdalZone) read(sx0, sy0, sw, sh int) ([]byte, error) {
	if sx0 < 0 || sy0 < 0 || sx0+sw > z.W || sy0+sh > z.H {
		return nil, fmt.Errorf("window %d+%d × %d+%d outside the %d × %d grid", sy0, sh, sx0, sw, z.H, z.W)
	}
	out := make([]byte, 0, sw*sh*RGBA)
	for r := sy0; r < sy0+sh; r++ {
		for c := sx0; c < sx0+sw; c++ {
			px := z.pixel(r, c)
			out = append(out, px[:]...)
		}
	}
	return out, nil
}

// loadGDALFixtures reads testdata/gdal/fixtures.json.
func loadGDALFixtures(t *testing.T) (dir, version string, cases []gdalCase) {
	t.Helper()
	dir = filepath.Join("..", "..", "testdata", "gdal")
	raw, err := os.ReadFile(filepath.Join(dir, "fixtures.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		GDAL  string     `json:"gdal"`
		Cases []gdalCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatalf("fixtures.json: %v", err)
	}
	if len(fx.Cases) == 0 {
		t.Fatal("fixtures.json: no case")
	}
	return dir, fx.GDAL, fx.Cases
}

// TestWarpPiecesMatchGDAL cuts each fixture chunk into pieces per zone as
// GDAL's warp operation does (warpchunks.go) and requires the pieces with
// source pixels, destination and source windows, that GDAL's own debug log
// reported for the same warp (make_fixtures.py), in the same order. The
// zone-edge cases cut down to 64 × 64 pieces, some with one-pixel-wide
// source windows.
func TestWarpPiecesMatchGDAL(t *testing.T) {
	_, version, cases := loadGDALFixtures(t)
	sc := NewGlobalScratch()
	cut := false
	for _, c := range cases {
		for _, z := range c.Zones {
			t.Run(fmt.Sprintf("%s/zone%d", c.Name, z.Zone), func(t *testing.T) {
				if len(z.Pieces) == 0 {
					t.Fatal("fixtures.json: no GDAL piece recorded (regenerate with make_fixtures.py)")
				}
				zg := &index.ZoneGrid{Zone: z.Zone, OriginE: z.OriginE, OriginN: z.OriginN, W: z.W, H: z.H}
				var tp zoneProj
				tp.init(sc.proj, zg, c.CI*GlobalChunk, c.CJ*GlobalChunk)
				all, err := tp.chunkList(nil, 0, 0, GlobalChunk, GlobalChunk, z.W, z.H)
				if err != nil {
					t.Fatal(err)
				}
				var got [][8]int
				for _, p := range all {
					if p.sw > 0 && p.sh > 0 {
						got = append(got, [8]int{p.dx, p.dy, p.dw, p.dh, p.sx, p.sy, p.sw, p.sh})
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(z.Pieces) {
					t.Errorf("pieces (dst x y w h, src x y w h):\n got %v\nGDAL %s %v", got, version, z.Pieces)
				}
				cut = cut || len(all) > 1
			})
		}
	}
	if !cut {
		t.Error("no fixture case is cut into pieces: the cutting is not tested")
	}
}

// TestLevel0MatchesGDAL warps the synthetic zones of testdata/gdal (noise
// and smooth images near 0° (across the equator), 52° N, 70° N and 33° S,
// and zone edges at 52° N, 70° N and 33° S, where GDAL cuts the chunk into
// pieces) and requires, byte for byte, what GDAL itself produced for the
// stored rows. The pattern is recomputed here from its definition in
// make_fixtures.py; the expected bytes come from
// rasterio.warp.reproject(..., Resampling.average).
func TestLevel0MatchesGDAL(t *testing.T) {
	dir, version, cases := loadGDALFixtures(t)
	sc := NewGlobalScratch()
	total, same := 0, 0
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			want := readGz(t, filepath.Join(dir, c.File))
			if len(want) != len(c.Rows)*GlobalChunk*RGBA {
				t.Fatalf("%s: %d bytes for %d rows", c.File, len(want), len(c.Rows))
			}
			clear(sc.Out)
			for _, z := range c.Zones { // ascending in the fixtures
				zg := &index.ZoneGrid{Zone: z.Zone, OriginE: z.OriginE, OriginN: z.OriginN, W: z.W, H: z.H}
				if _, err := sc.WarpZone(zg, c.CI, c.CJ, [4]int{0, 0, GlobalChunk, GlobalChunk}, z.read); err != nil {
					t.Fatal(err)
				}
			}
			n, eq, opaque, bad := 0, 0, 0, 0
			for k, r := range c.Rows {
				got := sc.Out[r*GlobalChunk*RGBA:][:GlobalChunk*RGBA]
				exp := want[k*GlobalChunk*RGBA:][:GlobalChunk*RGBA]
				for i := range got {
					n++
					if got[i] == exp[i] {
						eq++
					} else if bad++; bad <= 5 {
						x := i / RGBA
						t.Errorf("row %d column %d band %d: %d, GDAL %d (pixel %v, GDAL %v)", r, x, i%RGBA, got[i], exp[i],
							got[x*RGBA:][:RGBA], exp[x*RGBA:][:RGBA])
					}
					if i%RGBA == 3 && exp[i] != 0 {
						opaque++
					}
				}
			}
			t.Logf("%s: %d of %d bytes identical to GDAL %s (%.4f %%), %d opaque pixels", c.Name, eq, n, version, 100*float64(eq)/float64(n), opaque)
			if opaque < n/RGBA/3 {
				t.Errorf("only %d of %d pixels opaque: the comparison is mostly of empty pixels", opaque, n/RGBA)
			}
			if bad > 0 {
				t.Errorf("%d bytes differ from GDAL", bad)
			}
			total += n
			same += eq
		})
	}
	t.Logf("all cases: %d of %d bytes identical (%.4f %%)", same, total, 100*float64(same)/float64(total))
}

func readGz(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}

// BenchmarkWarpZone warps level-0 chunks from synthetic zone grids: one
// whole chunk at 52° N (the fixture's n52_noise, one piece) and the
// smaller grid of the fixture's n52_edge, which GDAL cuts into pieces down
// to 64 × 64: the chunk list, the approximate transformer's projections
// and the weighted means. It prints output megapixels per second.
func BenchmarkWarpZone(b *testing.B) {
	for _, bc := range []struct {
		name   string
		z      gdalZone
		ci, cj int
	}{
		{"whole", gdalZone{Zone: 32, OriginE: 504000, OriginN: 5764000, W: 600, H: 700, Pattern: "noise", Seed: 9}, 742, 3693},
		{"edge", gdalZone{Zone: 32, OriginE: 293710, OriginN: 5766080, W: 141, H: 518, Pattern: "noise", Seed: 42}, 742, 3632},
	} {
		b.Run(bc.name, func(b *testing.B) {
			z := bc.z
			src, err := z.read(0, 0, z.W, z.H)
			if err != nil {
				b.Fatal(err)
			}
			read := func(sx0, sy0, sw, sh int) ([]byte, error) {
				out := make([]byte, 0, sw*sh*RGBA)
				for r := sy0; r < sy0+sh; r++ {
					out = append(out, src[(r*z.W+sx0)*RGBA:][:sw*RGBA]...)
				}
				return out, nil
			}
			zg := &index.ZoneGrid{Zone: z.Zone, OriginE: z.OriginE, OriginN: z.OriginN, W: z.W, H: z.H}
			sc := NewGlobalScratch()
			b.SetBytes(GlobalChunk * GlobalChunk)
			b.ResetTimer()
			for range b.N {
				if _, err := sc.WarpZone(zg, bc.ci, bc.cj, [4]int{0, 0, GlobalChunk, GlobalChunk}, read); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
