package store

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
	"github.com/tesserafs/tesserafs/internal/keyspace"
	"github.com/tesserafs/tesserafs/zarr"
)

// globalYear is the global_rgb pyramid of one year. Its index (which
// chunks exist, which tiles feed each) is built on first use: it projects
// every tile's corners, cheap but not free for a global catalogue.
type globalYear struct {
	year   *index.Year
	levels int
	once   sync.Once
	idx    *generate.GlobalIndex
	err    error
}

func (g *globalYear) index() (*generate.GlobalIndex, error) {
	g.once.Do(func() {
		g.idx, g.err = generate.NewGlobalIndex(index.NewProjector(), g.year.Year, g.year.Zones, g.levels)
	})
	return g.idx, g.err
}

// GlobalIndex returns the index of year's global_rgb pyramid (for the
// preview command and tests), or nil if the store has no such year.
func (s *Store) GlobalIndex(year int) (*generate.GlobalIndex, error) {
	g := s.globals[year]
	if g == nil {
		return nil, notFound(fmt.Sprintf("%d.zarr/global_rgb", year))
	}
	return g.index()
}

// GlobalGrid is year's global_rgb chunk grid (the materializer plans
// from it).
func (s *Store) GlobalGrid(year int) (index.GlobalGrid, error) {
	g, err := s.GlobalIndex(year)
	if err != nil {
		return nil, err
	}
	return g, nil
}

// globalTree lays out <year>.zarr/global_rgb (spec §5): the multiscale
// group, and per level a group holding the band and rgb arrays.
func (s *Store) globalTree(y *index.Year) *dirNode {
	levels := s.opts.Build.GlobalLevelCount()
	g := &globalYear{year: y, levels: levels}
	s.globals[y.Year] = g
	d := newDir()
	d.group = &zarr.GroupMetadata{Attributes: generate.GlobalAttrs(levels)}
	d.add("zarr.json", jsonFile(*d.group))
	for l := range levels {
		ld := newDir()
		ld.group = &zarr.GroupMetadata{}
		ld.add("zarr.json", jsonFile(*ld.group))
		ld.add("band", newArray(generate.CoordMeta("int32", generate.RGBA, "band"),
			&coordSource{n: generate.RGBA, chunk: func(int) []byte { return generate.BandChunk(generate.RGBA) }}))
		ld.add("rgb", newArray(generate.GlobalRGBMeta(l), &globalSource{s: s, g: g, level: l}))
		d.add(strconv.Itoa(l), ld)
	}
	return d
}

// globalSource is the chunk space of global_rgb/<level>/rgb: the chunks
// the index lists, each with a trailing band chunk coordinate 0.
type globalSource struct {
	s     *Store
	g     *globalYear
	level int
}

func (gs *globalSource) Dims() int { return 3 }

func (gs *globalSource) idx() *generate.GlobalIndex {
	idx, err := gs.g.index()
	if err != nil {
		gs.s.log.Error("global_rgb index", "year", gs.g.year.Year, "err", err)
		return nil
	}
	return idx
}

func (gs *globalSource) List(prefix []int) []int {
	idx := gs.idx()
	if idx == nil {
		return nil
	}
	switch len(prefix) {
	case 0:
		return idx.Rows(gs.level)
	case 1:
		return idx.Cols(gs.level, prefix[0])
	default:
		if idx.Has(gs.level, prefix[0], prefix[1]) {
			return []int{0}
		}
		return nil
	}
}

func (gs *globalSource) Has(c []int) bool {
	idx := gs.idx()
	return idx != nil && len(c) == 3 && c[2] == 0 && idx.Has(gs.level, c[0], c[1])
}

// Inputs are the files of every tile whose footprint meets the chunk, and
// the stretch samples of their zones: what the chunk's pixels depend on, at
// any level.
func (gs *globalSource) Inputs(c []int) []index.FileStamp {
	idx := gs.idx()
	in := []index.FileStamp{}
	if idx == nil {
		return in
	}
	var zones []*index.ZoneGrid
	var placed []index.Placement
	for _, t := range idx.Tiles(generate.GlobalChunkBox(gs.level, c[0], c[1])) {
		placed = append(placed, t.Placement)
		if len(zones) == 0 || zones[len(zones)-1] != t.Zone {
			zones = append(zones, t.Zone)
		}
	}
	in = append(in, generate.TileInputs(placed)...) // checks tiles of a Lazy discovery
	if gs.s.opts.Build.Stretch == "global" && len(zones) > 0 {
		zones = zones[:1] // one sample for the whole year
	}
	for _, z := range zones {
		in = append(in, gs.s.stretchInputs(z)...)
	}
	return in
}

func (gs *globalSource) Generate(ctx context.Context, _ *generate.Worker, c []int) ([]byte, error) {
	idx, err := gs.g.index()
	if err != nil {
		return nil, err
	}
	if gs.level == 0 {
		return gs.level0(ctx, idx, c[0], c[1])
	}
	return gs.reduce(ctx, idx, c[0], c[1])
}

func (*globalSource) derived() {}

func (gs *globalSource) getScratch() *generate.GlobalScratch {
	sc, _ := gs.s.der.scratch.Get().(*generate.GlobalScratch)
	if sc == nil {
		sc = generate.NewGlobalScratch()
	}
	return sc
}

// level0 reprojects the zone rgb shards under chunk (i, j), fetched as
// dependencies (so cached, and generated at most once at a time).
func (gs *globalSource) level0(ctx context.Context, idx *generate.GlobalIndex, i, j int) ([]byte, error) {
	sc := gs.getScratch()
	defer gs.s.der.scratch.Put(sc)
	found, err := idx.Level0(sc, i, j, func(z *index.ZoneGrid, si, sj int) ([]byte, error) {
		return gs.s.dep(ctx, keyspace.ZoneShard(z.Year, z.Zone, keyspace.RGB, si, sj))
	})
	if err != nil {
		return nil, err
	}
	if !found {
		// Listed from the tiles' footprints, but all water here: the
		// chunk is stored as fill rather than being a name that fails.
		gs.s.log.Debug("global_rgb chunk without data", "key", keyspace.GlobalRGBChunk(idx.Year, 0, i, j))
	}
	return sc.Encode(sc.Out), nil
}

// reduce builds chunk (i, j) of a level ≥ 1 from the four chunks below it.
// The children are fetched (encoded, small) before a scratch is taken, so
// a cold pyramid holds one scratch per goroutine, not one per level.
func (gs *globalSource) reduce(ctx context.Context, idx *generate.GlobalIndex, i, j int) ([]byte, error) {
	l := gs.level
	var kids [2][2][]byte
	for qi := range 2 {
		for qj := range 2 {
			ci, cj := 2*i+qi, 2*j+qj
			if !idx.Has(l-1, ci, cj) {
				continue
			}
			key := keyspace.GlobalRGBChunk(idx.Year, l-1, ci, cj)
			b, err := gs.s.dep(ctx, key)
			if err != nil {
				return nil, err
			}
			kids[qi][qj] = b
		}
	}
	sc := gs.getScratch()
	defer gs.s.der.scratch.Put(sc)
	for qi := range 2 {
		for qj := range 2 {
			var child []byte
			if b := kids[qi][qj]; b != nil {
				raw, err := zarr.DecodeZstd(b)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", keyspace.GlobalRGBChunk(idx.Year, l-1, 2*i+qi, 2*j+qj), err)
				}
				if len(raw) != generate.GlobalChunkBytes {
					return nil, fmt.Errorf("%s: decodes to %d bytes, want %d", keyspace.GlobalRGBChunk(idx.Year, l-1, 2*i+qi, 2*j+qj), len(raw), generate.GlobalChunkBytes)
				}
				child = raw
			}
			generate.ReduceQuadrant(sc.Out, child, qi, qj)
		}
	}
	generate.ClipChunk(sc.Out, l, i, j)
	return sc.Encode(sc.Out), nil
}
