package index

import (
	"math"
	"testing"

	"github.com/twpayne/go-proj/v11"
)

func TestParseTileName(t *testing.T) {
	tests := []struct {
		name    string
		want    TileCoord
		wantErr bool
	}{
		{"grid_-0.05_52.05", TileCoord{-5, 5205}, false},
		{"grid_0.05_-0.05", TileCoord{5, -5}, false},
		{"grid_179.95_-89.95", TileCoord{17995, -8995}, false},
		{"grid_-0.05_52.1", TileCoord{}, true},   // one decimal
		{"grid_-0.10_52.05", TileCoord{}, true},  // not a centre
		{"grid_-00.05_52.05", TileCoord{}, true}, // not canonical
		{"grid_180.05_0.05", TileCoord{}, true},  // out of range
		{"grid_a_b", TileCoord{}, true},
		{"tile_0.05_0.05", TileCoord{}, true},
		{"grid_0.05", TileCoord{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTileName(tc.name)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && (got != tc.want || got.Name() != tc.name) {
				t.Fatalf("got %+v (%s), want %+v", got, got.Name(), tc.want)
			}
		})
	}
}

func TestUTMZone(t *testing.T) {
	tests := []struct {
		lon  float64
		want int
	}{{-180, 1}, {-0.05, 30}, {0.05, 31}, {2.95, 31}, {3.05, 31}, {5.95, 31}, {6.05, 32}, {179.95, 60}, {180, 60}}
	for _, tc := range tests {
		if got := UTMZone(tc.lon); got != tc.want {
			t.Errorf("UTMZone(%v) = %d, want %d", tc.lon, got, tc.want)
		}
	}
}

// TestFootprintKnownPoint checks the projection against the value verified
// independently (dependencies.md): (−0.05, 52.05) → EPSG:32630
// E 702271.675, N 5770707.106.
func TestFootprintKnownPoint(t *testing.T) {
	p := NewProjector()
	cs := []proj.Coord{{-0.05, 52.05}}
	if err := p.Transform("OGC:CRS84", "EPSG:32630", cs); err != nil {
		t.Fatal(err)
	}
	if math.Abs(cs[0][0]-702271.675) > 0.001 || math.Abs(cs[0][1]-5770707.106) > 0.001 {
		t.Fatalf("got %v", cs[0])
	}
}

func TestFootprintSouthIsCanonical(t *testing.T) {
	p := NewProjector()
	north, err := p.Footprint(TileCoord{-5, 5})
	if err != nil {
		t.Fatal(err)
	}
	south, err := p.Footprint(TileCoord{-5, -5})
	if err != nil {
		t.Fatal(err)
	}
	// The southern tile's top edge is the equator: canonical northing ≈ 0,
	// and it continues the northern tile's grid downwards.
	if math.Abs(south.OriginN) > 1e-6 {
		t.Errorf("southern tile origin_n = %v, want ≈ 0", south.OriginN)
	}
	if math.Abs(north.OriginN-float64(north.H)*PixelSize) > PixelSize {
		t.Errorf("northern tile origin_n = %v, H = %d: bottom should be the equator", north.OriginN, north.H)
	}
	// 0.1° is about 11.1 km of latitude and 11.1 km of longitude at the equator.
	for _, f := range []Footprint{north, south} {
		if f.H < 1100 || f.H > 1120 || f.W < 1100 || f.W > 1120 {
			t.Errorf("footprint %+v: want about 1106 × 1113 px", f)
		}
	}
}
