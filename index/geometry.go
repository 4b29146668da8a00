package index

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/twpayne/go-proj/v11"
)

// PixelSize is the ground size of one embedding pixel in metres.
const PixelSize = 10.0

// southOffset is the false northing of the southern UTM zones (EPSG:327NN).
// Subtracting it makes one zone a single grid across the equator.
const southOffset = 10_000_000.0

// TileCoord names a 0.1° source tile by its centre, in hundredths of a
// degree, so that it is exact and comparable: grid_-0.05_52.05 is {-5, 5205}.
type TileCoord struct {
	Lon100, Lat100 int
}

// Lon is the tile centre's longitude in degrees.
func (c TileCoord) Lon() float64 { return float64(c.Lon100) / 100 }

// Lat is the tile centre's latitude in degrees.
func (c TileCoord) Lat() float64 { return float64(c.Lat100) / 100 }

// Name is the tile's base name in the source layout, e.g. "grid_-0.05_52.05".
func (c TileCoord) Name() string {
	var buf [32]byte
	return string(c.appendName(buf[:0]))
}

func (c TileCoord) appendName(b []byte) []byte {
	b = append(b, "grid_"...)
	b = appendHundredths(b, c.Lon100)
	b = append(b, '_')
	return appendHundredths(b, c.Lat100)
}

func (c TileCoord) String() string { return c.Name() }

// hundredths prints v/100 with exactly two decimals, without going through
// floating point.
func hundredths(v int) string {
	return string(appendHundredths(make([]byte, 0, 8), v))
}

func appendHundredths(b []byte, v int) []byte {
	if v < 0 {
		b, v = append(b, '-'), -v
	}
	b = strconv.AppendInt(b, int64(v/100), 10)
	return append(b, '.', byte('0'+v%100/10), byte('0'+v%10))
}

// Less orders tiles by (lon, lat) ascending: the order in which overlapping
// tiles are written, a later tile overwriting an earlier one.
func (c TileCoord) Less(o TileCoord) bool {
	if c.Lon100 != o.Lon100 {
		return c.Lon100 < o.Lon100
	}
	return c.Lat100 < o.Lat100
}

// ParseTileName parses "grid_<lon>_<lat>" (two decimals each, centres on the
// 0.05 + k·0.1 grid) into a TileCoord.
func ParseTileName(name string) (TileCoord, error) {
	rest, ok := strings.CutPrefix(name, "grid_")
	if !ok {
		return TileCoord{}, fmt.Errorf("tile name %q: want grid_<lon>_<lat>", name)
	}
	lonS, latS, ok := strings.Cut(rest, "_")
	if !ok {
		return TileCoord{}, fmt.Errorf("tile name %q: want grid_<lon>_<lat>", name)
	}
	lon, err := parseHundredths(lonS)
	if err != nil {
		return TileCoord{}, fmt.Errorf("tile name %q: longitude: %w", name, err)
	}
	lat, err := parseHundredths(latS)
	if err != nil {
		return TileCoord{}, fmt.Errorf("tile name %q: latitude: %w", name, err)
	}
	c := TileCoord{lon, lat}
	if lon <= -18000 || lon >= 18000 || lat <= -9000 || lat >= 9000 {
		return TileCoord{}, fmt.Errorf("tile name %q: centre out of range", name)
	}
	if mod(lon, 10) != 5 || mod(lat, 10) != 5 {
		return TileCoord{}, fmt.Errorf("tile name %q: centre not on the 0.05 + k·0.1 grid", name)
	}
	var buf [32]byte
	if string(c.appendName(buf[:0])) != name { // compared without allocating
		return TileCoord{}, fmt.Errorf("tile name %q: not in canonical form %q", name, c.Name())
	}
	return c, nil
}

func parseHundredths(s string) (int, error) {
	neg := strings.HasPrefix(s, "-")
	whole, frac, ok := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	if !ok || len(frac) != 2 || whole == "" {
		return 0, fmt.Errorf("%q: want exactly two decimals", s)
	}
	w, err := strconv.Atoi(whole)
	if err != nil || w < 0 {
		return 0, fmt.Errorf("%q: not a number", s)
	}
	f, err := strconv.Atoi(frac)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("%q: not a number", s)
	}
	v := w*100 + f
	if neg {
		v = -v
	}
	return v, nil
}

func mod(a, m int) int { return ((a % m) + m) % m }

// Zone is the tile's UTM zone, floor((lon+180)/6)+1 clamped to 1..60.
func (c TileCoord) Zone() int { return UTMZone(c.Lon()) }

// UTMZone returns floor((lon+180)/6)+1 clamped to 1..60.
func UTMZone(lon float64) int {
	z := int(math.Floor((lon+180)/6)) + 1
	return min(max(z, 1), 60)
}

// ZoneEPSG is the zone group's CRS code, always northern: "EPSG:326NN".
func ZoneEPSG(zone int) string { return fmt.Sprintf("EPSG:326%02d", zone) }

// TileEPSG is the tile's own CRS: EPSG:326NN north of the equator (centre
// latitude ≥ 0), EPSG:327NN south of it.
func (c TileCoord) TileEPSG() string {
	if c.Lat100 >= 0 {
		return fmt.Sprintf("EPSG:326%02d", c.Zone())
	}
	return fmt.Sprintf("EPSG:327%02d", c.Zone())
}

// Footprint is a tile's pixel grid in its zone's canonical UTM coordinates.
// OriginE/OriginN is the upper-left corner (not snapped to 10 m).
type Footprint struct {
	OriginE, OriginN float64
	W, H             int
}

// Projector projects between CRSs. It holds one PROJ context, which PROJ
// locks per call, so a Projector must not be shared between goroutines:
// give each worker its own.
type Projector struct {
	ctx *proj.Context
	pjs map[[2]string]*proj.PJ
}

// NewProjector returns a Projector with its own PROJ context. go-proj frees
// PROJ objects with finalizers, so there is nothing to close.
func NewProjector() *Projector {
	return &Projector{ctx: proj.NewContext(), pjs: map[[2]string]*proj.PJ{}}
}

func (p *Projector) pj(src, dst string) (*proj.PJ, error) {
	k := [2]string{src, dst}
	if pj, ok := p.pjs[k]; ok {
		return pj, nil
	}
	pj, err := p.ctx.NewCRSToCRS(src, dst, nil)
	if err != nil {
		return nil, fmt.Errorf("proj %s → %s: %w", src, dst, err)
	}
	p.pjs[k] = pj
	return pj, nil
}

// Transform transforms coords in place from src to dst CRS. Use "OGC:CRS84"
// for lon/lat input: EPSG:4326 is lat/lon order.
func (p *Projector) Transform(src, dst string, coords []proj.Coord) error {
	pj, err := p.pj(src, dst)
	if err != nil {
		return err
	}
	if err := pj.ForwardArray(coords); err != nil {
		return fmt.Errorf("proj %s → %s: %w", src, dst, err)
	}
	return nil
}

// Footprint computes a tile's grid (spec §2): its four corners projected to
// the tile's own UTM CRS, southern northings made canonical, then
// W = round((max_e − origin_e)/10), H = round((origin_n − min_n)/10) with
// round half to even.
func (p *Projector) Footprint(c TileCoord) (Footprint, error) {
	corners := tileCorners(c, nil)
	if err := p.toTileCRS(c, corners); err != nil {
		return Footprint{}, fmt.Errorf("tile %s: %w", c, err)
	}
	return footprintOf(c, corners)
}

// toTileCRS projects lon/lat coords to the UTM CRS of tile c, in place.
//
// It is Transform("OGC:CRS84", c.TileEPSG(), coords) made cheap to set up:
// PROJ resolves that CRS pair, by a search of its database taking about
// 4 ms per CRS, to the pipeline utmPipeline writes, which PROJ builds from
// its definition in about 0.1 ms. The same operation, so the same numbers
// (TestTileCRSPipelineIsCRSToCRS checks both, for all 120 CRSs).
func (p *Projector) toTileCRS(c TileCoord, coords []proj.Coord) error {
	k := [2]string{"tile", c.TileEPSG()}
	pj, ok := p.pjs[k]
	if !ok {
		var err error
		if pj, err = p.ctx.New(utmPipeline(c.Zone(), c.Lat100 < 0)); err != nil {
			return fmt.Errorf("proj OGC:CRS84 → %s: %w", c.TileEPSG(), err)
		}
		p.pjs[k] = pj
	}
	if err := pj.ForwardArray(coords); err != nil {
		return fmt.Errorf("proj OGC:CRS84 → %s: %w", c.TileEPSG(), err)
	}
	return nil
}

// utmPipeline is the PROJ pipeline from lon/lat degrees on WGS 84 to UTM
// zone (south: the southern false northing), as PROJ itself resolves
// OGC:CRS84 → EPSG:326NN / EPSG:327NN.
func utmPipeline(zone int, south bool) string {
	def := "proj=pipeline step proj=unitconvert xy_in=deg xy_out=rad step proj=utm zone=" + strconv.Itoa(zone)
	if south {
		def += " south"
	}
	return def + " ellps=WGS84"
}

// Footprints computes the footprints of many tiles, as Footprint does one
// by one, with one PROJ call per CRS: tiles are grouped by their own CRS.
func (p *Projector) Footprints(cs []TileCoord) ([]Footprint, error) {
	type crs struct {
		zone  int
		south bool
	}
	byCRS := map[crs][]int{}
	for i, c := range cs {
		k := crs{c.Zone(), c.Lat100 < 0}
		byCRS[k] = append(byCRS[k], i)
	}
	out := make([]Footprint, len(cs))
	var corners []proj.Coord
	for _, idx := range byCRS {
		corners = slices.Grow(corners[:0], 4*len(idx))
		for _, i := range idx {
			corners = tileCorners(cs[i], corners)
		}
		if err := p.toTileCRS(cs[idx[0]], corners); err != nil {
			return nil, fmt.Errorf("tile %s: %w", cs[idx[0]], err)
		}
		for k, i := range idx {
			f, err := footprintOf(cs[i], corners[4*k:4*k+4])
			if err != nil {
				return nil, err
			}
			out[i] = f
		}
	}
	return out, nil
}

// tileCorners appends a tile's corners (lon ± 0.05, lat ± 0.05) in the
// order ul, ur, ll, lr.
func tileCorners(c TileCoord, dst []proj.Coord) []proj.Coord {
	lon, lat := c.Lon(), c.Lat()
	const h = 0.05
	return append(dst,
		proj.Coord{lon - h, lat + h}, // ul
		proj.Coord{lon + h, lat + h}, // ur
		proj.Coord{lon - h, lat - h}, // ll
		proj.Coord{lon + h, lat - h}, // lr
	)
}

// footprintOf computes the footprint from the corners projected to the
// tile's own CRS (modifying them: southern northings become canonical).
func footprintOf(c TileCoord, corners []proj.Coord) (Footprint, error) {
	if c.Lat100 < 0 {
		for i := range corners {
			corners[i][1] -= southOffset
		}
	}
	ul, ur, ll, lr := corners[0], corners[1], corners[2], corners[3]
	originE := math.Min(ul[0], ll[0])
	originN := math.Max(ul[1], ur[1])
	maxE := math.Max(ur[0], lr[0])
	minN := math.Min(ll[1], lr[1])
	f := Footprint{
		OriginE: originE,
		OriginN: originN,
		W:       int(math.RoundToEven((maxE - originE) / PixelSize)),
		H:       int(math.RoundToEven((originN - minN) / PixelSize)),
	}
	for _, v := range []float64{originE, originN, maxE, minN} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Footprint{}, fmt.Errorf("tile %s: corner does not project to %s", c, c.TileEPSG())
		}
	}
	return f, nil
}
