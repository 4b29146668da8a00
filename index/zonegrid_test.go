package index

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func tileAt(lon100, lat100 int, e, n float64, w, h int) *Tile {
	c := TileCoord{lon100, lat100}
	return &Tile{Coord: c, Zone: c.Zone(), Footprint: Footprint{OriginE: e, OriginN: n, W: w, H: h}}
}

// TestZoneGridArithmetic checks spec §2's zone grid on hand-made
// footprints, including the round-half-to-even cases of placement.
func TestZoneGridArithmetic(t *testing.T) {
	a := tileAt(-95, 5, 500003, 1000007, 100, 50) // the zone's upper-left
	b := tileAt(-85, 5, 500995, 1000005, 10, 10)  // col 99.5 → 100, row 0.5 → 0
	c := tileAt(-75, 5, 500015, 999995, 10, 10)   // col 1.5 → 2, row 1.5 → 2
	d := tileAt(-75, 15, 500025, 999975, 10, 10)  // col 2.5 → 2, row 3.5 → 4
	z := NewZoneGrid(2024, 30, []*Tile{d, c, b, a})
	if z.OriginE != 500000 || z.OriginN != 1000010 {
		t.Errorf("origin (%v, %v), want (500000, 1000010)", z.OriginE, z.OriginN)
	}
	// right = ceil(501095/10)·10 = 501100: 110 px; bottom = floor(999507/10)·10:
	// 51 px; both padded to 256.
	if z.W != 256 || z.H != 256 {
		t.Errorf("size %d × %d, want 256 × 256", z.W, z.H)
	}
	want := []struct {
		t        *Tile
		row, col int
	}{{a, 0, 0}, {b, 0, 100}, {c, 2, 2}, {d, 4, 2}} // (lon, lat) order
	if len(z.Placements) != len(want) {
		t.Fatalf("%d placements", len(z.Placements))
	}
	for i, w := range want {
		p := z.Placements[i]
		if p.Tile != w.t || p.Row != w.row || p.Col != w.col {
			t.Errorf("placement %d: %s at (%d, %d), want %s at (%d, %d)", i, p.Tile.Coord, p.Row, p.Col, w.t.Coord, w.row, w.col)
		}
	}
	if r, c := z.ShardGrid(256); r != 1 || c != 1 {
		t.Errorf("ShardGrid(256) = %d, %d", r, c)
	}
	if r, c := z.ShardGrid(100); r != 3 || c != 3 {
		t.Errorf("ShardGrid(100) = %d, %d", r, c)
	}
}

func TestPadUp(t *testing.T) {
	for n, want := range map[int]int{1: 256, 255: 256, 256: 256, 257: 512, 1113: 1280} {
		if got := padUp(n); got != want {
			t.Errorf("padUp(%d) = %d, want %d", n, got, want)
		}
	}
}

// TestZoneGridEquator places the tiles just north and south of the
// equator in zone 30: one continuous grid, the southern tile directly
// below the northern one.
func TestZoneGridEquator(t *testing.T) {
	p := NewProjector()
	var tiles []*Tile
	for _, c := range []TileCoord{{-5, 5}, {-5, -5}, {-15, -5}} {
		fp, err := p.Footprint(c)
		if err != nil {
			t.Fatal(err)
		}
		tiles = append(tiles, &Tile{Coord: c, Zone: c.Zone(), Footprint: fp})
	}
	z := NewZoneGrid(2024, 30, tiles)
	checkInside(t, z)
	if int(z.OriginE)%10 != 0 || int(z.OriginN)%10 != 0 {
		t.Errorf("origin (%v, %v) not on the 10 m grid", z.OriginE, z.OriginN)
	}
	var north, south Placement
	for _, pl := range z.Placements {
		switch pl.Tile.Coord {
		case TileCoord{-5, 5}:
			north = pl
		case TileCoord{-5, -5}:
			south = pl
		}
	}
	if north.Row != 0 {
		t.Errorf("northern tile at row %d, want 0", north.Row)
	}
	if d := south.Row - (north.Row + north.Tile.H); d < -1 || d > 1 {
		t.Errorf("southern tile at row %d, northern ends at %d: grid not continuous", south.Row, north.Row+north.Tile.H)
	}
	if d := south.Col - north.Col; d < -1 || d > 1 {
		t.Errorf("columns %d and %d differ", north.Col, south.Col)
	}
	if z.OriginN-10*float64(z.H) >= 0 {
		t.Errorf("grid bottom %v is not south of the equator", z.OriginN-10*float64(z.H))
	}
}

// checkInside checks every placement lies inside the (padded) grid.
func checkInside(t *testing.T, z *ZoneGrid) {
	t.Helper()
	for _, p := range z.Placements {
		if p.Row < 0 || p.Col < 0 || p.Row+p.Tile.H > z.H || p.Col+p.Tile.W > z.W {
			t.Errorf("%s at (%d, %d) size %d × %d outside the %d × %d grid", p.Tile.Coord, p.Row, p.Col, p.Tile.H, p.Tile.W, z.H, z.W)
		}
	}
}

// randomZone makes a zone of n tiles on a jittered lattice, with the
// sizes tiles have between the equator and high latitudes, plus a few
// odd ones that overlap many others.
func randomZone(rng *rand.Rand, n int) *ZoneGrid {
	var tiles []*Tile
	cols := 40
	for k := range n {
		i, j := k/cols, k%cols
		w := 1100 + rng.IntN(20)
		if i%3 == 2 {
			w = 90 + rng.IntN(60) // a narrow high-latitude row
		}
		h := 1100 + rng.IntN(20)
		e := 200000 + float64(j)*11100 + rng.Float64()*60 - 30
		nn := 9000000 - float64(i)*11100 + rng.Float64()*60 - 30
		if k%97 == 0 { // an outlier: big, off the lattice
			w, h = 2000+rng.IntN(500), 1500+rng.IntN(500)
		}
		tiles = append(tiles, tileAt(-17995+10*j, 8995-10*i, e, nn, w, h))
	}
	return NewZoneGrid(2024, 1, tiles)
}

func bruteOverlapping(z *ZoneGrid, r0, c0, r1, c1 int) []Placement {
	var out []Placement
	if r1 <= r0 || c1 <= c0 {
		return nil
	}
	for _, p := range z.Placements {
		if p.Row < r1 && p.Row+p.Tile.H > r0 && p.Col < c1 && p.Col+p.Tile.W > c0 {
			out = append(out, p)
		}
	}
	return out
}

// TestOverlappingMatchesBruteForce compares Overlapping with a scan of
// every placement on random windows of every size, including windows
// partly or wholly outside the grid and empty ones.
func TestOverlappingMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	z := randomZone(rng, 1200)
	checkInside(t, z)
	for range 20000 {
		r0 := rng.IntN(z.H+2000) - 1000
		c0 := rng.IntN(z.W+2000) - 1000
		r1 := r0 + rng.IntN(1500) - 10
		c1 := c0 + rng.IntN(1500) - 10
		got := z.Overlapping(r0, c0, r1, c1)
		want := bruteOverlapping(z, r0, c0, r1, c1)
		if !slices.Equal(got, want) {
			t.Fatalf("window [%d,%d)×[%d,%d): got %d placements, want %d", r0, r1, c0, c1, len(got), len(want))
		}
	}
	// Every shard-aligned window too.
	rows, cols := z.ShardGrid(256)
	for i := range rows {
		for j := range cols {
			got := z.Overlapping(i*256, j*256, (i+1)*256, (j+1)*256)
			if want := bruteOverlapping(z, i*256, j*256, (i+1)*256, (j+1)*256); !slices.Equal(got, want) {
				t.Fatalf("shard (%d, %d): got %d placements, want %d", i, j, len(got), len(want))
			}
		}
	}
}

// TestOverlappingIsIndexed checks that a shard query looks at a handful of
// candidates, not at the zone's tiles.
func TestOverlappingIsIndexed(t *testing.T) {
	z := randomZone(rand.New(rand.NewPCG(3, 4)), 4000)
	rows, cols := z.ShardGrid(256)
	allocs := testing.AllocsPerRun(200, func() {
		z.Overlapping(rows/2*256, cols/2*256, rows/2*256+256, cols/2*256+256)
	})
	if allocs > 3 {
		t.Errorf("%v allocations per query", allocs)
	}
	// Count candidates examined by re-running the bucket walk.
	examined := 0
	r0, c0 := rows/2*256, cols/2*256
	lo := max(r0-z.maxH+1, 0)
	for b := lo / z.rowBucket; b <= min((r0+255)/z.rowBucket, len(z.bucketW)-1); b++ {
		for _, k := range z.items[z.bucketAt[b]:z.bucketAt[b+1]] {
			if c := z.Placements[k].Col; c >= c0-int(z.bucketW[b])+1 && c < c0+256 {
				examined++
			}
		}
	}
	if examined > 40 {
		t.Errorf("a shard query examines %d of %d tiles", examined, len(z.Placements))
	}
}

// TestZoneGridLiteral checks that a ZoneGrid not made by NewZoneGrid
// still answers correctly, if slowly.
func TestZoneGridLiteral(t *testing.T) {
	z := randomZone(rand.New(rand.NewPCG(9, 9)), 300)
	lit := &ZoneGrid{Year: z.Year, Zone: z.Zone, OriginE: z.OriginE, OriginN: z.OriginN, W: z.W, H: z.H, Placements: z.Placements}
	if got, want := lit.Overlapping(1000, 1000, 3000, 3000), z.Overlapping(1000, 1000, 3000, 3000); !slices.Equal(got, want) || len(want) == 0 {
		t.Errorf("Overlapping: %d placements, want %d", len(got), len(want))
	}
	if !slices.Equal(lit.Shards(256), z.Shards(256)) {
		t.Error("Shards differ")
	}
}

func TestOverlappingEmpty(t *testing.T) {
	z := NewZoneGrid(2024, 30, nil)
	if got := z.Overlapping(0, 0, 256, 256); got != nil {
		t.Errorf("empty zone: %v", got)
	}
	if got := z.Shards(256); len(got) != 0 {
		t.Errorf("empty zone shards: %v", got)
	}
	if z.HasShard(256, 0, 0) {
		t.Error("empty zone has a shard")
	}
}

// TestShardsMatchBruteForce compares Shards and HasShard with the shards
// whose window some placement overlaps.
func TestShardsMatchBruteForce(t *testing.T) {
	z := randomZone(rand.New(rand.NewPCG(5, 6)), 600)
	for _, shard := range []int{256, 100, 4096} {
		rows, cols := z.ShardGrid(shard)
		var want []ShardIndex
		for i := range rows {
			for j := range cols {
				touched := len(bruteOverlapping(z, i*shard, j*shard, (i+1)*shard, (j+1)*shard)) > 0
				if touched {
					want = append(want, ShardIndex{i, j})
				}
				if z.HasShard(shard, i, j) != touched {
					t.Fatalf("shard %d: HasShard(%d, %d) = %v", shard, i, j, !touched)
				}
			}
		}
		if got := z.Shards(shard); !slices.Equal(got, want) {
			t.Fatalf("shard %d: Shards has %d, want %d", shard, len(got), len(want))
		}
		if len(want) == 0 || shard == 256 && len(want) == rows*cols {
			t.Fatalf("shard %d: degenerate test, %d of %d shards touched", shard, len(want), rows*cols)
		}
		for _, out := range [][2]int{{-1, 0}, {0, -1}, {rows, 0}, {0, cols}} {
			if z.HasShard(shard, out[0], out[1]) {
				t.Errorf("HasShard(%d, %v) outside the grid", shard, out)
			}
		}
	}
}

func BenchmarkOverlapping(b *testing.B) {
	z := randomZone(rand.New(rand.NewPCG(7, 8)), 4000)
	shards := z.Shards(256)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		s := shards[i%len(shards)]
		z.Overlapping(s.Row*256, s.Col*256, s.Row*256+256, s.Col*256+256)
	}
}

func BenchmarkHasShard(b *testing.B) {
	z := randomZone(rand.New(rand.NewPCG(7, 8)), 4000)
	rows, cols := z.ShardGrid(256)
	z.HasShard(256, 0, 0)
	for i := 0; b.Loop(); i++ {
		z.HasShard(256, i%rows, (i/rows)%cols)
	}
}

// TestShardRowsCols: the bitset walk of ShardRows/ShardCols lists exactly
// the shards of Shards and HasShard, over a grid wider than a 64-bit word
// of shards, with rows and words left empty.
func TestShardRowsCols(t *testing.T) {
	var tiles []*Tile
	// Tiles scattered over 150 shard columns and 9 shard rows, 256 px
	// shards: some rows empty, some runs crossing word boundaries.
	for k, pos := range [][2]int{{0, 0}, {63, 0}, {64, 0}, {127, 2}, {128, 2}, {149, 2}, {10, 5}, {70, 8}, {3, 8}} {
		e := 500000 + float64(pos[0])*2560
		n := 1000000 - float64(pos[1])*2560
		tiles = append(tiles, tileAt(5+10*k, 5, e+10, n-10, 300, 100))
	}
	z := NewZoneGrid(2024, 31, tiles)
	var got []ShardIndex
	for _, i := range z.ShardRows(256) {
		cols := z.ShardCols(256, i)
		if len(cols) == 0 {
			t.Errorf("row %d listed without columns", i)
		}
		for _, j := range cols {
			if !z.HasShard(256, i, j) {
				t.Errorf("(%d, %d) listed, HasShard says no", i, j)
			}
			got = append(got, ShardIndex{i, j})
		}
	}
	want := z.Shards(256)
	if len(want) < 10 || !slices.Equal(got, want) {
		t.Errorf("rows/cols give %v,\nShards gives %v", got, want)
	}
	if z.ShardCols(256, -1) != nil || z.ShardCols(256, 1000) != nil {
		t.Error("out-of-range rows have columns")
	}
}
