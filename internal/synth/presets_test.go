package synth

import (
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/tesserafs/tesserafs/index"
)

func names(tiles []TileSpec) string {
	var s []string
	for _, t := range tiles {
		s = append(s, t.Coord.Name())
	}
	return strings.Join(s, " ")
}

func TestRegion(t *testing.T) {
	tests := []struct {
		name                   string
		lon0, lat0, lon1, lat1 float64
		want                   string
	}{
		{"one", 0, 0, 0.1, 0.1, "grid_0.05_0.05"},
		{"edges inclusive", 0.05, 52.05, 0.15, 52.05, "grid_0.05_52.05 grid_0.15_52.05"},
		{"2x2 across lon 0", -0.1, 52.1, 0.1, 52.3, "grid_-0.05_52.15 grid_-0.05_52.25 grid_0.05_52.15 grid_0.05_52.25"},
		{"south", 20.0, -85.0, 20.1, -84.9, "grid_20.05_-84.95"},
		{"empty", 0.06, 0, 0.14, 1, ""},
		{"inverted", 1, 0, 0, 1, ""},
		{"clamped", 179.9, 89.9, 200, 100, "grid_179.95_89.95"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := names(Region(tc.lon0, tc.lat0, tc.lon1, tc.lat1)); got != tc.want {
				t.Errorf("Region = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestGrid(t *testing.T) {
	tests := []struct {
		name     string
		n        int
		lon, lat float64
		want     string
	}{
		{"one snaps to nearest centre", 1, 0.07, 52.04, "grid_0.05_52.05"},
		{"three", 3, -0.05, 52.05, "grid_-0.05_52.05 grid_-0.05_52.15 grid_0.05_52.05"},
		{"wraps at 180", 2, 179.95, 0.05, "grid_-179.95_0.05 grid_179.95_0.05"},
		{"shifted south at the pole", 4, 0.05, 89.95, "grid_0.05_89.85 grid_0.05_89.95 grid_0.15_89.85 grid_0.15_89.95"},
		{"none", 0, 0, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := names(Grid(tc.n, tc.lon, tc.lat)); got != tc.want {
				t.Errorf("Grid = %q, want %q", got, tc.want)
			}
		})
	}
	for _, n := range []int{100_000, 7_000_000} {
		tiles := Grid(n, 10.05, 60.05)
		seen := make([]bool, 3600*1800)
		for i, s := range tiles {
			c := s.Coord
			if i > 0 && !tiles[i-1].Coord.Less(c) {
				t.Fatalf("Grid(%d): %s before %s: not sorted", n, tiles[i-1].Coord, c)
			}
			if mod(c.Lon100, 10) != 5 || mod(c.Lat100, 10) != 5 || c.Lon100 < -17995 || c.Lon100 > 17995 || c.Lat100 < -8995 || c.Lat100 > 8995 {
				t.Fatalf("Grid(%d): bad tile %s", n, c)
			}
			k := (c.Lon100+17995)/10*1800 + (c.Lat100+8995)/10
			if seen[k] {
				t.Fatalf("Grid(%d): tile %s twice", n, c)
			}
			seen[k] = true
		}
		if want := min(n, 6_480_000); len(tiles) != want {
			t.Errorf("Grid(%d) gave %d tiles, want %d", n, len(tiles), want)
		}
	}
}

func mod(a, m int) int { return ((a % m) + m) % m }

func TestPreset(t *testing.T) {
	for _, name := range PresetNames() {
		t.Run(name, func(t *testing.T) {
			tiles, err := Preset(name)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tiles {
				if _, err := index.ParseTileName(s.Coord.Name()); err != nil {
					t.Error(err)
				}
				if i > 0 && !tiles[i-1].Coord.Less(s.Coord) {
					t.Errorf("not sorted by (lon, lat): %s before %s", tiles[i-1].Coord, s.Coord)
				}
			}
			if !strings.Contains(PresetHelp(), name+":\n") {
				t.Errorf("PresetHelp does not describe %q", name)
			}
		})
	}
	_, err := Preset("nope")
	if err == nil || !strings.Contains(err.Error(), "test, equator, demo") {
		t.Errorf("unknown preset: err = %v, want one listing the presets", err)
	}
	// Preset returns a copy: changing it does not change the preset.
	a, _ := Preset("test")
	a[0].Scales3D = true
	if b, _ := Preset("test"); b[0].Scales3D {
		t.Error("Preset returned the preset's own slice")
	}
}

// TestSourceHash: the hash covers this package's sources (so changing any
// of them changes the test-tile cache key) and is stable within a build.
func TestSourceHash(t *testing.T) {
	h := SourceHash()
	if len(h) != 64 || h != SourceHash() {
		t.Fatalf("SourceHash() = %q", h)
	}
	names, err := fs.Glob(sources, "*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"oracle.go", "write.go", "tile.go", "presets.go", "source.go"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s is not among the hashed sources %v", want, names)
		}
	}
}
