package synth

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/tesserafs/tesserafs/index"
)

type preset struct {
	name, doc string
	tiles     []TileSpec
}

func tile(lon100, lat100 int) TileSpec {
	return TileSpec{Coord: index.TileCoord{Lon100: lon100, Lat100: lat100}}
}

// presets are the named tile sets of Preset, documented for `tesserafs
// synth --help` by their doc strings.
var presets = []preset{
	{
		// Tiles near lat ±85 are narrow (0.1° of longitude is ~1 km there;
		// with the UTM grid's convergence 105–155 px) and ~1118 px tall,
		// so tests stay small: 8 tiles, ~220 MB.
		name: "test",
		doc: "8 small high-latitude tiles (105-155 x ~1120 px, ~220 MB) for tests:\n" +
			"a 2x2 block at lon -0.05/0.05, lat 84.95/85.05 straddling UTM zones\n" +
			"30/31, grid_0.05_85.05 without landmask; a 2x2 block at lon 20.45/20.55,\n" +
			"lat -84.95/-84.85 in zone 34 south (EPSG:32734 tiles), three with +Inf\n" +
			"scales on land, grid_20.55_-84.85 with 3-D scales. Every tile has water.",
		tiles: []TileSpec{
			tile(-5, 8495), tile(-5, 8505), tile(5, 8495),
			{Coord: index.TileCoord{Lon100: 5, Lat100: 8505}, NoLandmask: true},
			tile(2045, -8495), tile(2045, -8485), tile(2055, -8495),
			{Coord: index.TileCoord{Lon100: 2055, Lat100: -8485}, Scales3D: true},
		},
	},
	{
		// The southern tile's canonical northings continue the northern
		// tile's grid: one zone-34 grid, continuous across the equator.
		name: "equator",
		doc: "2 tiles at lon 20.05, lat -0.05 and 0.05 (1113 x 1105 px, ~320 MB):\n" +
			"one zone-34 grid continuous across the equator.",
		tiles: []TileSpec{tile(2005, -5), tile(2005, 5)},
	},
	{
		name: "demo",
		doc: "4 mid-latitude tiles (~730 x 1140 px, ~430 MB) around Cambridge, UK:\n" +
			"lon -0.05/0.05, lat 52.15/52.25, straddling UTM zones 30/31.",
		tiles: []TileSpec{tile(-5, 5215), tile(-5, 5225), tile(5, 5215), tile(5, 5225)},
	},
}

// Preset returns the tiles of a named preset, sorted by (lon, lat):
//
//   - "test": 8 small high-latitude tiles for tests (~220 MB). A 2×2 block
//     grid_±0.05_84.95/85.05 straddling zones 30/31 (north), with
//     grid_0.05_85.05 written without a landmask; a 2×2 block
//     grid_20.45/20.55_-84.95/-84.85 in zone 34 south (EPSG:32734 tiles),
//     three of them holding +Inf scales on land, grid_20.55_-84.85 with 3-D
//     scales. Every tile has water, neighbours in a zone overlap.
//   - "equator": grid_20.05_-0.05 and grid_20.05_0.05 (~160 MB each), one
//     zone grid across the equator.
//   - "demo": grid_±0.05_52.15/52.25 around Cambridge, UK, straddling
//     zones 30/31, for the README demo.
func Preset(name string) ([]TileSpec, error) {
	for _, p := range presets {
		if p.name == name {
			return slices.Clone(p.tiles), nil
		}
	}
	return nil, fmt.Errorf("synth: unknown preset %q (presets: %s)", name, strings.Join(PresetNames(), ", "))
}

// PresetNames lists the presets.
func PresetNames() []string {
	names := make([]string, len(presets))
	for i, p := range presets {
		names[i] = p.name
	}
	return names
}

// PresetHelp describes every preset: "name:" then its description
// indented, wrapped for a terminal.
func PresetHelp() string {
	var b strings.Builder
	for _, p := range presets {
		fmt.Fprintf(&b, "%s:\n", p.name)
		for _, line := range strings.Split(p.doc, "\n") {
			fmt.Fprintf(&b, "    %s\n", line)
		}
	}
	return b.String()
}

// Tile centres in hundredths of a degree lie on 5 + 10k, within these.
const (
	maxLon100 = 17995
	maxLat100 = 8995
)

// Region returns every tile whose centre lies in the box lon0 ≤ lon ≤
// lon1, lat0 ≤ lat ≤ lat1 (degrees; centres within 1e-6° of an edge count
// as inside), sorted by (lon, lat). An empty or inverted box gives none.
func Region(lon0, lat0, lon1, lat1 float64) []TileSpec {
	loLon, hiLon := centresIn(lon0, lon1, maxLon100)
	loLat, hiLat := centresIn(lat0, lat1, maxLat100)
	var tiles []TileSpec
	for lon := loLon; lon <= hiLon; lon += 10 {
		for lat := loLat; lat <= hiLat; lat += 10 {
			tiles = append(tiles, tile(lon, lat))
		}
	}
	return tiles
}

// centresIn returns the first and last centre (hundredths, 5 + 10k) in
// [a, b] degrees, clamped to ±limit; lo > hi when there is none.
func centresIn(a, b float64, limit int) (lo, hi int) {
	if math.IsNaN(a) || math.IsNaN(b) {
		return 1, 0
	}
	a = math.Max(a*100-1e-4, float64(-limit))
	b = math.Min(b*100+1e-4, float64(limit))
	lo = 5 + 10*int(math.Ceil((a-5)/10))
	hi = 5 + 10*int(math.Floor((b-5)/10))
	return lo, hi
}

// nearestCentre snaps v degrees to the nearest tile centre, in hundredths,
// clamped to ±limit.
func nearestCentre(v float64, limit int) int {
	c := 5 + 10*int(math.Round((v*100-5)/10))
	return min(max(c, -limit), limit)
}

// Grid returns n tiles in a compact block for benchmarks: ceil(√n) columns
// eastwards from the tile centre nearest (lon, lat), filling rows
// northwards, sorted by (lon, lat). Longitudes wrap at ±180°; a block that
// would pass 89.95° N starts further south instead. n is capped at the
// 6,480,000 tiles of the globe.
func Grid(n int, lon, lat float64) []TileSpec {
	const allCols, allRows = 3600, 1800
	n = min(n, allCols*allRows)
	if n <= 0 {
		return nil
	}
	cols := max(int(math.Ceil(math.Sqrt(float64(n)))), (n+allRows-1)/allRows)
	cols = min(cols, allCols)
	rows := (n + cols - 1) / cols // ≤ allRows
	lon0 := nearestCentre(lon, maxLon100)
	lat0 := nearestCentre(lat, maxLat100)
	lat0 = min(lat0, maxLat100-10*(rows-1))
	// Tile k of the block is at column k%cols, row k/cols. Emit the columns
	// in longitude order (a block that wraps at 180° starts with its
	// western, wrapped part) and each column south to north.
	colLon := make([]int, cols)
	for c := range colLon {
		colLon[c] = (lon0+10*c+18000)%36000 - 18000 // centres never sit on ±180
	}
	order := make([]int, cols)
	for c := range order {
		order[c] = c
	}
	slices.SortFunc(order, func(a, b int) int { return colLon[a] - colLon[b] })
	tiles := make([]TileSpec, 0, n)
	for _, c := range order {
		for r := 0; r*cols+c < n; r++ {
			tiles = append(tiles, tile(colLon[c], lat0+10*r))
		}
	}
	return tiles
}
