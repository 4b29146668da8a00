package generate

import (
	"fmt"
	"math"
	"slices"

	"github.com/twpayne/go-proj/v11"

	"github.com/tesserafs/tesserafs/index"
)

// FootprintMargin is how far, in metres, a tile's zone rectangle is grown
// before it is projected to lon/lat to decide which global_rgb chunks it
// may reach. A level-0 pixel reads the source pixels its footprint (see
// Level0) overlaps, which reach at most one level-0 pixel (≤ 11.2 m) plus
// one source pixel (10 m) beyond the tile's rectangle; the rest absorbs the
// curvature of the rectangle's edges in lon/lat (centimetres over a tile).
const FootprintMargin = 30.0

// GlobalIndex says, from the tile catalogue alone, which global_rgb chunks
// of a year hold data and which tiles each chunk is made from. A chunk is
// listed when its lon/lat box meets the lon/lat quadrilateral of some
// tile's zone rectangle grown by FootprintMargin: every chunk with data is
// listed, and a listed chunk without any (all water, or only a sliver of
// margin) is stored as fill.
type GlobalIndex struct {
	Year   int
	Levels int
	Zones  []*index.ZoneGrid // ascending zone number
	tiles  []globalTile      // zone by zone, each zone's placements in write order
	cells  map[[2]int32][]int32
	sets   [][]uint64 // per level: chunk keys row<<32 | col, ascending
}

// globalTile is one placed tile as the global preview sees it.
type globalTile struct {
	zone  int // index into GlobalIndex.Zones
	place int // index into the zone's Placements
	quad  [4][2]float64
	box   [4]float64 // lonMin, latMin, lonMax, latMax of quad
}

// cellDeg is the size of the cells of the tile lookup grid, in degrees.
const cellDeg = 1.0

func cellOf(lon, lat float64) (int32, int32) {
	return int32(math.Floor(lat / cellDeg)), int32(math.Floor(lon / cellDeg))
}

// NewGlobalIndex indexes the zones of one year for a pyramid of levels
// levels. p projects the tiles' corners; it is used only during the call.
func NewGlobalIndex(p *index.Projector, year int, zones []*index.ZoneGrid, levels int) (*GlobalIndex, error) {
	g := &GlobalIndex{Year: year, Levels: levels, Zones: zones, cells: map[[2]int32][]int32{}}
	for zi, z := range zones {
		if len(z.Placements) == 0 {
			continue
		}
		pts := make([]proj.Coord, 0, 4*len(z.Placements))
		for _, pl := range z.Placements {
			e0 := z.OriginE + float64(pl.Col)*index.PixelSize - FootprintMargin
			e1 := z.OriginE + float64(pl.Col+pl.Tile.W)*index.PixelSize + FootprintMargin
			n1 := z.OriginN - float64(pl.Row)*index.PixelSize + FootprintMargin
			n0 := z.OriginN - float64(pl.Row+pl.Tile.H)*index.PixelSize - FootprintMargin
			// Clockwise from the upper left: a convex quadrilateral.
			pts = append(pts, proj.Coord{e0, n1}, proj.Coord{e1, n1}, proj.Coord{e1, n0}, proj.Coord{e0, n0})
		}
		if err := p.Transform(index.ZoneEPSG(z.Zone), "OGC:CRS84", pts); err != nil {
			return nil, fmt.Errorf("global_rgb: zone %d: %w", z.Zone, err)
		}
		for k := range z.Placements {
			t := globalTile{zone: zi, place: k}
			t.box = [4]float64{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
			for c := range 4 {
				lon, lat := pts[4*k+c][0], pts[4*k+c][1]
				if math.IsNaN(lon) || math.IsInf(lon, 0) || math.IsNaN(lat) || math.IsInf(lat, 0) {
					return nil, fmt.Errorf("global_rgb: tile %s does not project to lon/lat", z.Placements[k].Tile.Coord)
				}
				t.quad[c] = [2]float64{lon, lat}
				t.box = [4]float64{min(t.box[0], lon), min(t.box[1], lat), max(t.box[2], lon), max(t.box[3], lat)}
			}
			id := int32(len(g.tiles))
			g.tiles = append(g.tiles, t)
			r0, c0 := cellOf(t.box[0], t.box[1])
			r1, c1 := cellOf(t.box[2], t.box[3])
			for r := r0; r <= r1; r++ {
				for c := c0; c <= c1; c++ {
					g.cells[[2]int32{r, c}] = append(g.cells[[2]int32{r, c}], id)
				}
			}
		}
	}
	g.sets = make([][]uint64, levels)
	var keys []uint64
	rows0, cols0 := GlobalChunkGrid(0)
	span := GlobalChunk * GlobalRes0
	for id := range g.tiles {
		t := &g.tiles[id]
		i0 := max(int(math.Floor((90-t.box[3])/span)), 0)
		i1 := min(int(math.Floor((90-t.box[1])/span)), rows0-1)
		j0 := max(int(math.Floor((t.box[0]+180)/span)), 0)
		j1 := min(int(math.Floor((t.box[2]+180)/span)), cols0-1)
		for i := i0; i <= i1; i++ {
			for j := j0; j <= j1; j++ {
				if quadMeetsBox(&t.quad, GlobalChunkBox(0, i, j)) {
					keys = append(keys, chunkKey(i, j))
				}
			}
		}
	}
	slices.Sort(keys)
	g.sets[0] = slices.Compact(keys)
	for l := 1; l < levels; l++ {
		rows, cols := GlobalChunkGrid(l)
		var up []uint64
		for _, k := range g.sets[l-1] {
			i, j := int(k>>32)/2, int(uint32(k))/2
			if i < rows && j < cols {
				up = append(up, chunkKey(i, j))
			}
		}
		slices.Sort(up)
		g.sets[l] = slices.Compact(up)
	}
	return g, nil
}

func chunkKey(i, j int) uint64 { return uint64(i)<<32 | uint64(uint32(j)) }

// quadMeetsBox reports whether the convex quadrilateral q meets the box
// b = [xmin, ymin, xmax, ymax] (closed sets), by separating axes: the
// box's two and the normals of q's four edges.
func quadMeetsBox(q *[4][2]float64, b [4]float64) bool {
	qx0, qy0, qx1, qy1 := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, p := range q {
		qx0, qx1 = min(qx0, p[0]), max(qx1, p[0])
		qy0, qy1 = min(qy0, p[1]), max(qy1, p[1])
	}
	if qx1 < b[0] || qx0 > b[2] || qy1 < b[1] || qy0 > b[3] {
		return false
	}
	corners := [4][2]float64{{b[0], b[1]}, {b[2], b[1]}, {b[2], b[3]}, {b[0], b[3]}}
	for k := range 4 {
		a, c := q[k], q[(k+1)%4]
		nx, ny := c[1]-a[1], a[0]-c[0] // a normal of edge a→c
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, p := range q {
			d := p[0]*nx + p[1]*ny
			lo, hi = min(lo, d), max(hi, d)
		}
		blo, bhi := math.Inf(1), math.Inf(-1)
		for _, p := range corners {
			d := p[0]*nx + p[1]*ny
			blo, bhi = min(blo, d), max(bhi, d)
		}
		if bhi < lo || blo > hi {
			return false
		}
	}
	return true
}

// Has reports whether chunk (i, j) of level l is listed.
func (g *GlobalIndex) Has(l, i, j int) bool {
	if l < 0 || l >= len(g.sets) || i < 0 || j < 0 {
		return false
	}
	_, ok := slices.BinarySearch(g.sets[l], chunkKey(i, j))
	return ok
}

// Rows lists, ascending, the chunk rows of level l with a listed chunk.
func (g *GlobalIndex) Rows(l int) []int {
	var rows []int
	for _, k := range g.sets[l] {
		if i := int(k >> 32); len(rows) == 0 || rows[len(rows)-1] != i {
			rows = append(rows, i)
		}
	}
	return rows
}

// Cols lists, ascending, the listed chunk columns of row i of level l.
func (g *GlobalIndex) Cols(l, i int) []int {
	set := g.sets[l]
	lo, _ := slices.BinarySearch(set, chunkKey(i, 0))
	var cols []int
	for _, k := range set[lo:] {
		if int(k>>32) != i {
			break
		}
		cols = append(cols, int(uint32(k)))
	}
	return cols
}

// LevelCount is the number of levels (index.GlobalGrid).
func (g *GlobalIndex) LevelCount() int { return g.Levels }

// Inputs is how many tiles (level 0) or listed chunks of the level below
// (level ≥ 1) chunk (i, j) of level l is made from (index.GlobalGrid).
func (g *GlobalIndex) Inputs(l, i, j int) int {
	if l == 0 {
		return len(g.Tiles(GlobalChunkBox(0, i, j)))
	}
	n := 0
	for d := range 4 {
		if g.Has(l-1, 2*i+d/2, 2*j+d%2) {
			n++
		}
	}
	return n
}

var _ index.GlobalGrid = (*GlobalIndex)(nil)

// Count is the number of listed chunks of level l.
func (g *GlobalIndex) Count(l int) int { return len(g.sets[l]) }

// Chunks lists the listed chunks of level l, row-major.
func (g *GlobalIndex) Chunks(l int) [][2]int {
	out := make([][2]int, len(g.sets[l]))
	for k, key := range g.sets[l] {
		out[k] = [2]int{int(key >> 32), int(uint32(key))}
	}
	return out
}

// GlobalTile is a placed tile whose footprint meets a chunk.
type GlobalTile struct {
	Zone      *index.ZoneGrid
	Placement index.Placement
	// Box is the lon/lat box of the tile's grown rectangle.
	Box [4]float64
}

// Tiles returns the tiles whose grown footprint meets the lon/lat box b,
// zone by zone (ascending), each zone's in write order.
func (g *GlobalIndex) Tiles(b [4]float64) []GlobalTile {
	r0, c0 := cellOf(b[0], b[1])
	r1, c1 := cellOf(b[2], b[3])
	var ids []int32
	for r := r0; r <= r1; r++ {
		for c := c0; c <= c1; c++ {
			ids = append(ids, g.cells[[2]int32{r, c}]...)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var out []GlobalTile
	for _, id := range ids {
		t := &g.tiles[id]
		if quadMeetsBox(&t.quad, b) {
			z := g.Zones[t.zone]
			out = append(out, GlobalTile{Zone: z, Placement: z.Placements[t.place], Box: t.box})
		}
	}
	return out
}

// DataBox is the lon/lat box of all the year's tiles (grown footprints),
// or ok false when there are none.
func (g *GlobalIndex) DataBox() (b [4]float64, ok bool) {
	if len(g.tiles) == 0 {
		return b, false
	}
	b = [4]float64{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
	for _, t := range g.tiles {
		b = [4]float64{min(b[0], t.box[0]), min(b[1], t.box[1]), max(b[2], t.box[2]), max(b[3], t.box[3])}
	}
	return b, true
}
