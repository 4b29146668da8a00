package index

import (
	"math"
	"math/bits"
	"slices"
	"sort"
	"sync"
)

// GridMultiple is what a zone grid's width and height are padded up to:
// the shard size, so that every shard is whole.
const GridMultiple = 256

// ZoneGrid is the pixel grid of one UTM zone in one year (spec §2): the
// smallest 10 m-aligned rectangle holding every tile of the zone, padded
// at the right and bottom to multiples of GridMultiple, with each tile
// placed at its rounded offset.
type ZoneGrid struct {
	Year, Zone int
	// OriginE, OriginN is the upper-left corner in EPSG:326NN (canonical
	// northings: negative south of the equator); both multiples of 10.
	OriginE, OriginN float64
	// W and H are the padded size in pixels.
	W, H int
	// Placements are the zone's tiles sorted by (lon, lat) ascending: the
	// write order, a later tile overwriting an earlier one.
	Placements []Placement

	// Overlap index: placements bucketed by row into buckets of rowBucket
	// rows (the tallest tile), each bucket sorted by column.
	maxH      int
	rowBucket int
	bucketAt  []int32 // bucket b holds items[bucketAt[b]:bucketAt[b+1]]
	items     []int32 // indices into Placements
	bucketW   []int32 // widest tile of each bucket

	shardSets *shardSets
}

// Placement is a tile and the zone pixel of its upper-left corner.
type Placement struct {
	Tile     *Tile
	Row, Col int
}

// ShardIndex is a shard's position in the zone's grid of shards.
type ShardIndex struct{ Row, Col int }

// NewZoneGrid computes the grid of the given tiles, which must all be in
// zone, and places them. It does not keep the slice. A ZoneGrid must be
// made by NewZoneGrid: its queries rely on the index it builds.
func NewZoneGrid(year, zone int, tiles []*Tile) *ZoneGrid {
	z := &ZoneGrid{Year: year, Zone: zone, shardSets: &shardSets{}}
	if len(tiles) == 0 {
		return z
	}
	sorted := slices.Clone(tiles)
	slices.SortFunc(sorted, func(a, b *Tile) int {
		switch {
		case a.Coord.Less(b.Coord):
			return -1
		case b.Coord.Less(a.Coord):
			return 1
		}
		return 0
	})
	minE, maxE := math.Inf(1), math.Inf(-1)
	minN, maxN := math.Inf(1), math.Inf(-1)
	for _, t := range sorted {
		minE = math.Min(minE, t.OriginE)
		maxE = math.Max(maxE, t.OriginE+PixelSize*float64(t.W))
		maxN = math.Max(maxN, t.OriginN)
		minN = math.Min(minN, t.OriginN-PixelSize*float64(t.H))
	}
	z.OriginE = math.Floor(minE/PixelSize) * PixelSize
	z.OriginN = math.Ceil(maxN/PixelSize) * PixelSize
	right := math.Ceil(maxE/PixelSize) * PixelSize
	bottom := math.Floor(minN/PixelSize) * PixelSize
	z.W = padUp(int(math.RoundToEven((right - z.OriginE) / PixelSize)))
	z.H = padUp(int(math.RoundToEven((z.OriginN - bottom) / PixelSize)))

	z.Placements = make([]Placement, len(sorted))
	for i, t := range sorted {
		z.Placements[i] = Placement{
			Tile: t,
			Row:  int(math.RoundToEven((z.OriginN - t.OriginN) / PixelSize)),
			Col:  int(math.RoundToEven((t.OriginE - z.OriginE) / PixelSize)),
		}
		z.maxH = max(z.maxH, t.H)
	}
	z.buildIndex()
	return z
}

func padUp(n int) int { return (n + GridMultiple - 1) / GridMultiple * GridMultiple }

// buildIndex buckets the placements by row (bucket height = the tallest
// tile, so a window meets the buckets of its rows and of the one above),
// each bucket sorted by column then write order.
func (z *ZoneGrid) buildIndex() {
	z.rowBucket = max(z.maxH, 1)
	nb := z.H/z.rowBucket + 1
	for _, p := range z.Placements {
		nb = max(nb, p.Row/z.rowBucket+1) // rows are ≥ 0 by construction
	}
	z.bucketAt = make([]int32, nb+1)
	for _, p := range z.Placements {
		z.bucketAt[p.Row/z.rowBucket+1]++
	}
	for b := range nb {
		z.bucketAt[b+1] += z.bucketAt[b]
	}
	z.items = make([]int32, len(z.Placements))
	next := slices.Clone(z.bucketAt[:nb])
	z.bucketW = make([]int32, nb)
	for i, p := range z.Placements {
		b := p.Row / z.rowBucket
		z.items[next[b]] = int32(i)
		next[b]++
		z.bucketW[b] = max(z.bucketW[b], int32(p.Tile.W))
	}
	for b := range nb {
		s := z.items[z.bucketAt[b]:z.bucketAt[b+1]]
		slices.SortFunc(s, func(x, y int32) int {
			if cx, cy := z.Placements[x].Col, z.Placements[y].Col; cx != cy {
				return cx - cy
			}
			return int(x - y)
		})
	}
}

// ShardGrid is the number of shard rows and columns of a square shard size:
// ceil(H/shard), ceil(W/shard).
func (z *ZoneGrid) ShardGrid(shard int) (rows, cols int) {
	return (z.H + shard - 1) / shard, (z.W + shard - 1) / shard
}

// Overlapping returns, in write order, the placements whose rectangle
// intersects the zone-pixel window [r0,r1)×[c0,c1), or nil. It looks only
// at the row buckets the window can reach and, in each, the column range
// that can reach it: O(log n + hits) for windows up to a tile in size.
func (z *ZoneGrid) Overlapping(r0, c0, r1, c1 int) []Placement {
	if r1 <= r0 || c1 <= c0 || len(z.Placements) == 0 {
		return nil
	}
	if z.bucketAt == nil {
		return z.scan(r0, c0, r1, c1) // not made by NewZoneGrid
	}
	// A tile that starts above r0−maxH+1 ends at or above r0.
	lo := max(r0-z.maxH+1, 0)
	if r1-1 < lo {
		return nil
	}
	b0, b1 := lo/z.rowBucket, min((r1-1)/z.rowBucket, len(z.bucketW)-1)
	var hits []int32
	for b := b0; b <= b1; b++ {
		items := z.items[z.bucketAt[b]:z.bucketAt[b+1]]
		// A tile that starts left of c0−w+1 (w the bucket's widest) ends
		// at or left of c0.
		cmin := c0 - int(z.bucketW[b]) + 1
		k := sort.Search(len(items), func(k int) bool { return z.Placements[items[k]].Col >= cmin })
		for ; k < len(items); k++ {
			p := &z.Placements[items[k]]
			if p.Col >= c1 {
				break
			}
			if p.Row < r1 && p.Row+p.Tile.H > r0 && p.Col+p.Tile.W > c0 {
				hits = append(hits, items[k])
			}
		}
	}
	if len(hits) == 0 {
		return nil
	}
	slices.Sort(hits)
	out := make([]Placement, len(hits))
	for i, h := range hits {
		out[i] = z.Placements[h]
	}
	return out
}

// scan is Overlapping without the index.
func (z *ZoneGrid) scan(r0, c0, r1, c1 int) []Placement {
	var out []Placement
	for _, p := range z.Placements {
		if p.Row < r1 && p.Row+p.Tile.H > r0 && p.Col < c1 && p.Col+p.Tile.W > c0 {
			out = append(out, p)
		}
	}
	return out
}

// shardSets caches, per shard size, the set of shards some tile touches.
// A zone has at most a few hundred thousand shards: one bit each.
type shardSets struct {
	mu   sync.Mutex
	sets []*shardSet
}

type shardSet struct {
	shard, rows, cols int
	bits              []uint64 // row-major over the shard grid
	n                 int
}

func (z *ZoneGrid) shardSet(shard int) *shardSet {
	if shard <= 0 {
		return &shardSet{shard: shard}
	}
	c := z.shardSets
	if c == nil { // not made by NewZoneGrid: nowhere to cache
		return z.newShardSet(shard)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.sets {
		if s.shard == shard {
			return s
		}
	}
	s := z.newShardSet(shard)
	c.sets = append(c.sets, s)
	return s
}

func (z *ZoneGrid) newShardSet(shard int) *shardSet {
	s := &shardSet{shard: shard}
	s.rows, s.cols = z.ShardGrid(shard)
	s.bits = make([]uint64, (s.rows*s.cols+63)/64)
	for _, p := range z.Placements {
		i0, i1 := max(p.Row, 0)/shard, min(p.Row+p.Tile.H-1, z.H-1)/shard
		j0, j1 := max(p.Col, 0)/shard, min(p.Col+p.Tile.W-1, z.W-1)/shard
		for i := i0; i <= i1; i++ {
			for j := j0; j <= j1; j++ {
				k := i*s.cols + j
				s.bits[k/64] |= 1 << (k % 64)
			}
		}
	}
	for _, w := range s.bits {
		s.n += bits.OnesCount64(w)
	}
	return s
}

// Shards lists the shards (of shard × shard pixels) that at least one tile
// touches, sorted row-major. The slice is the caller's.
func (z *ZoneGrid) Shards(shard int) []ShardIndex {
	s := z.shardSet(shard)
	out := make([]ShardIndex, 0, s.n)
	for wi, w := range s.bits {
		for w != 0 {
			k := wi*64 + bits.TrailingZeros64(w)
			out = append(out, ShardIndex{k / s.cols, k % s.cols})
			w &= w - 1
		}
	}
	return out
}

// HasShard reports whether shard (i, j) of the given size is touched by a
// tile, in constant time.
func (z *ZoneGrid) HasShard(shard, i, j int) bool {
	s := z.shardSet(shard)
	if i < 0 || j < 0 || i >= s.rows || j >= s.cols {
		return false
	}
	k := i*s.cols + j
	return s.bits[k/64]&(1<<(k%64)) != 0
}

// ShardRows lists the rows of the shard grid (of shard × shard pixels)
// that hold at least one shard a tile touches, ascending. Like HasShard it
// reads the zone's shard bitset: a million tiles' twelve million shards
// need no list.
func (z *ZoneGrid) ShardRows(shard int) []int {
	s := z.shardSet(shard)
	var rows []int
	for i := range s.rows {
		if len(s.rowCols(i, true)) > 0 {
			rows = append(rows, i)
		}
	}
	return rows
}

// ShardCols lists the columns of row i of the shard grid that hold a shard
// a tile touches, ascending.
func (z *ZoneGrid) ShardCols(shard, i int) []int {
	s := z.shardSet(shard)
	if i < 0 || i >= s.rows {
		return nil
	}
	return s.rowCols(i, false)
}

// rowCols lists the set columns of row i; first stops at the first.
func (s *shardSet) rowCols(i int, first bool) []int {
	var cols []int
	for j := 0; j < s.cols; {
		k := i*s.cols + j
		w := s.bits[k/64] >> (k % 64)
		if w == 0 {
			j += 64 - k%64
			continue
		}
		j += bits.TrailingZeros64(w)
		if j >= s.cols {
			break
		}
		cols = append(cols, j)
		if first {
			break
		}
		j++
	}
	return cols
}
