package synth

import (
	"math"
	"testing"

	"github.com/tesserafs/tesserafs/index"
)

// TestWindowRules checks Window on two hand-placed tiles, given in reverse
// write order: A (all water) at zone rows 0–7, cols 0–9; B (no landmask)
// at rows 2–9, cols 6–15, written after A.
func TestWindowRules(t *testing.T) {
	a := Place(TileSpec{Coord: index.TileCoord{Lon100: 5, Lat100: 8495}},
		index.Footprint{OriginE: 0, OriginN: 80, W: 10, H: 8}, 0, 80)
	b := Place(TileSpec{Coord: index.TileCoord{Lon100: 15, Lat100: 8495}, NoLandmask: true},
		index.Footprint{OriginE: 60, OriginN: 60, W: 10, H: 8}, 0, 80)
	if a.Row != 0 || a.Col != 0 || b.Row != 2 || b.Col != 6 {
		t.Fatalf("placed A at (%d,%d), B at (%d,%d)", a.Row, a.Col, b.Row, b.Col)
	}
	const r0, c0, r1, c1 = 1, 0, 12, 18
	emb, scale := Window([]PlacedTile{b, a}, r0, c0, r1, c1)
	if len(emb) != (r1-r0)*(c1-c0)*128 || len(scale) != (r1-r0)*(c1-c0) {
		t.Fatalf("sizes %d, %d", len(emb), len(scale))
	}
	stampA, stampB := Stamp(5, 8495), Stamp(15, 8495)
	tests := []struct {
		name      string
		r, c      int
		gE, gN    int64 // 0, 0 for no tile
		stamp     int8
		wantScale float32 // NaN: want NaN
	}{
		{"A alone, water", 1, 0, 0, 7, stampA, nan32},
		{"A alone, water, last col", 7, 5, 5, 1, stampA, nan32},
		{"B wins the overlap, no landmask", 3, 7, 7, 5, stampB, Scale(7, 5)},
		{"B's +Inf becomes NaN", 6, 7, 7, 2, stampB, nan32},
		{"B alone, below the equator", 9, 15, 15, -1, stampB, Scale(15, -1)},
		{"no tile", 11, 17, 0, 0, 0, nan32},
		{"no tile, right of A", 1, 12, 0, 0, 0, nan32},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := (tc.r-r0)*(c1-c0) + (tc.c - c0)
			vec := emb[k*128 : (k+1)*128]
			for bd := range StampBand {
				want := int8(0)
				if tc.stamp != 0 {
					want = Embedding(tc.gE, tc.gN, bd)
				}
				if vec[bd] != want {
					t.Fatalf("band %d = %d, want %d", bd, vec[bd], want)
				}
			}
			if vec[StampBand] != tc.stamp {
				t.Errorf("stamp %d, want %d", vec[StampBand], tc.stamp)
			}
			if !sameFloat(scale[k], tc.wantScale) {
				t.Errorf("scale %v, want %v", scale[k], tc.wantScale)
			}
		})
	}
	if !Water(7, 5) || !math.IsInf(float64(Scale(7, 2)), 1) {
		t.Fatal("test premise: (7,5) is water and (7,2) has a +Inf scale")
	}
}

var nan32 = float32(math.NaN())

func TestExpectedScale(t *testing.T) {
	land, water, inf := [2]int64{1000, 0}, [2]int64{0, 0}, [2]int64{1007, 1001}
	if Water(land[0], land[1]) || !Water(water[0], water[1]) || Water(inf[0], inf[1]) || !math.IsInf(float64(Scale(inf[0], inf[1])), 1) {
		t.Fatal("test premises do not hold")
	}
	tests := []struct {
		name string
		spec TileSpec
		at   [2]int64
		want float32
	}{
		{"land", TileSpec{}, land, Scale(land[0], land[1])},
		{"water", TileSpec{}, water, nan32},
		{"water, no landmask", TileSpec{NoLandmask: true}, water, Scale(water[0], water[1])},
		{"inf", TileSpec{}, inf, nan32},
		{"3-D land is the max", TileSpec{Scales3D: true}, land, Scale(land[0], land[1])},
		{"3-D water", TileSpec{Scales3D: true}, water, nan32},
		{"3-D inf", TileSpec{Scales3D: true, NoLandmask: true}, inf, nan32},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := expectedScale(tc.spec, tc.at[0], tc.at[1]); !sameFloat(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestWindowMatchesFiles rebuilds zone 34 of the test preset (four
// overlapping southern tiles, one with 3-D scales) from the files Write
// wrote, applying the store's rules by hand, and compares with Window.
func TestWindowMatchesFiles(t *testing.T) {
	root := presetRoot(t)
	all, _ := Preset("test")
	p := index.NewProjector()
	type tileData struct {
		PlacedTile
		emb, sc npyFile
		mask    []uint8
	}
	var tiles []tileData
	var placed []PlacedTile
	minE, maxN := math.Inf(1), math.Inf(-1)
	maxE, minN := math.Inf(-1), math.Inf(1)
	for _, s := range all {
		if s.Coord.Zone() != 34 {
			continue
		}
		fp, err := p.Footprint(s.Coord)
		if err != nil {
			t.Fatal(err)
		}
		minE, maxN = math.Min(minE, fp.OriginE), math.Max(maxN, fp.OriginN)
		maxE, minN = math.Max(maxE, fp.OriginE+10*float64(fp.W)), math.Min(minN, fp.OriginN-10*float64(fp.H))
		td := tileData{
			PlacedTile: PlacedTile{TileSpec: s, Footprint: fp},
			emb:        readNpy(t, EmbeddingsPath(root, 2024, s.Coord)),
			sc:         readNpy(t, ScalesPath(root, 2024, s.Coord)),
		}
		if !s.NoLandmask {
			td.mask = readMask(t, LandmaskPath(root, s.Coord)).Pix
		}
		tiles = append(tiles, td)
	}
	zoneE, zoneN := math.Floor(minE/10)*10, math.Ceil(maxN/10)*10
	h := int(math.RoundToEven((zoneN - math.Floor(minN/10)*10) / 10))
	w := int(math.RoundToEven((math.Ceil(maxE/10)*10 - zoneE) / 10))
	for i := range tiles {
		tiles[i].PlacedTile = Place(tiles[i].TileSpec, tiles[i].Footprint, zoneE, zoneN)
		placed = append(placed, tiles[i].PlacedTile)
	}
	emb, scale := Window(placed, 0, 0, h, w)
	var overlap, covered, nanScales int
	for r := range h {
		for c := range w {
			// The winner is the last tile, in (lon, lat) order, covering (r, c);
			// the preset lists its tiles in that order.
			win, n := -1, 0
			for i, td := range tiles {
				if r >= td.Row && r < td.Row+td.Footprint.H && c >= td.Col && c < td.Col+td.Footprint.W {
					win, n = i, n+1
				}
			}
			k := r*w + c
			got := emb[k*128 : (k+1)*128]
			if win < 0 {
				for _, v := range got {
					if v != 0 {
						t.Fatalf("(%d,%d): no tile but embeddings %v", r, c, got[:4])
					}
				}
				if !math.IsNaN(float64(scale[k])) {
					t.Fatalf("(%d,%d): no tile but scale %v", r, c, scale[k])
				}
				continue
			}
			covered++
			if n > 1 {
				overlap++
			}
			td := tiles[win]
			i, j := r-td.Row, c-td.Col
			px := i*td.Footprint.W + j
			for b := range 128 {
				if got[b] != int8(td.emb.data[px*128+b]) {
					t.Fatalf("(%d,%d) band %d = %d, file of %s has %d", r, c, b, got[b], td.Coord, int8(td.emb.data[px*128+b]))
				}
			}
			var want float32
			if td.Scales3D {
				want = nan32
				for b := range 128 {
					if v := f32(td.sc.data[(px*128+b)*4:]); !math.IsNaN(float64(v)) && (math.IsNaN(float64(want)) || v > want) {
						want = v
					}
				}
			} else {
				want = f32(td.sc.data[px*4:])
			}
			if math.IsInf(float64(want), 0) || (td.mask != nil && td.mask[px] == 0) {
				want = nan32
			}
			if !sameFloat(scale[k], want) {
				t.Fatalf("(%d,%d) scale %v, files give %v", r, c, scale[k], want)
			}
			if math.IsNaN(float64(want)) {
				nanScales++
			}
		}
	}
	if overlap == 0 || nanScales == 0 || covered == 0 {
		t.Errorf("zone 34: %d covered, %d in overlaps, %d NaN scales: want all > 0", covered, overlap, nanScales)
	}
	t.Logf("zone 34: %d × %d, %d covered, %d in overlaps, %d NaN scales", h, w, covered, overlap, nanScales)
}
