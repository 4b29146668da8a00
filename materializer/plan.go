package materializer

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/bits"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
	"github.com/tesserafs/tesserafs/internal/keyspace"
)

// A run is split into phases, each depending on the ones before it, and
// each phase's data keys into partitions that separate workers (a Slurm
// array task, a Kubernetes Indexed Job pod) write independently:
//
//	zones    zone shards: embeddings, scales, rgb (rgb needs the zone's
//	         stretch, a small deterministic sample each worker recomputes)
//	global0  global_rgb level 0 (reprojects zone rgb, read back from the output)
//	global   global_rgb levels ≥ 1 (each from the level below)
//	finalize coordinates, group and array metadata, STAC; the root
//	         zarr.json of each year last, after checking every data key exists
//
// A partition is a pure function of the index and (i, N): every worker
// computes the same split. Running a phase before the one it depends on
// has finished is still correct, only slower: a chunk that another chunk
// needs and that is not in the output yet is computed in memory (never
// written by a partition that does not own it).
const (
	PhaseZones    = keyspace.PhaseZones
	PhaseGlobal0  = keyspace.PhaseGlobal0
	PhaseGlobal   = keyspace.PhaseGlobal
	PhaseFinalize = keyspace.PhaseFinalize
)

// DataPhases are the phases that write data keys, in order.
var DataPhases = []string{PhaseZones, PhaseGlobal0, PhaseGlobal}

// Phases are all phases in order.
var Phases = []string{PhaseZones, PhaseGlobal0, PhaseGlobal, PhaseFinalize}

// Partition is part I (0-based) of N. The zero value, and N = 1, is the
// whole run.
type Partition struct{ I, N int }

// Whole reports whether p is the whole run.
func (p Partition) Whole() bool { return p.N <= 1 }

func (p Partition) String() string {
	if p.Whole() {
		return "0/1"
	}
	return fmt.Sprintf("%d/%d", p.I, p.N)
}

// ParsePartition parses "I/N" with 0 ≤ I < N.
func ParsePartition(s string) (Partition, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return Partition{}, fmt.Errorf("partition %q: want I/N with 0 ≤ I < N", s)
	}
	return Partition{I: i, N: n}, nil
}

// PhaseOf returns the phase that writes key (keyspace.Key.Phase).
func PhaseOf(key string) string {
	k, _ := keyspace.Parse(key)
	return k.Phase()
}

// isRoot reports whether key is the root zarr.json of a year store.
func isRoot(key string) bool {
	k, ok := keyspace.Parse(key)
	return ok && k.Kind == keyspace.YearMeta
}

// Estimated uncompressed bytes of one chunk of each kind, for plans.
const (
	embeddingsShardBytes = 256 * 256 * 128
	scalesShardBytes     = 256 * 256 * 4
	rgbShardBytes        = 256 * 256 * 4
	globalChunkBytes     = 512 * 512 * 4
	// zoneUnitBytes is a zone shard's three arrays.
	zoneUnitBytes = embeddingsShardBytes + scalesShardBytes + rgbShardBytes
)

// Unit is what a partition is given to write: one zone shard (its
// embeddings, scales and rgb keys, which read the same tile windows) or one
// global_rgb chunk.
type Unit struct {
	Phase string
	Year  int
	Zone  int // zone units
	Level int // global_rgb units
	I, J  int // shard or chunk row and column
	// Weight is the estimated work, in KiB: the uncompressed size times
	// one plus the number of tiles the unit is computed from (for
	// global_rgb levels ≥ 1, the chunks of the level below).
	Weight uint64
	Owner  int
}

// Keys are the unit's keys, in writing order. A zone shard's scales and
// rgb keys exist only where the shard holds a finite scale (the store
// decides, reading the shard's scales): Keys lists them all.
func (u Unit) Keys() []string {
	if u.Phase != PhaseZones {
		return []string{keyspace.GlobalRGBChunk(u.Year, u.Level, u.I, u.J)}
	}
	return []string{
		keyspace.ZoneShard(u.Year, u.Zone, keyspace.Embeddings, u.I, u.J),
		keyspace.ZoneShard(u.Year, u.Zone, keyspace.Scales, u.I, u.J),
		keyspace.ZoneShard(u.Year, u.Zone, keyspace.RGB, u.I, u.J),
	}
}

// row is one row of units: the shards of one shard row of a zone, or the
// chunks of one chunk row of a global_rgb level.
type row struct {
	year  int
	z     *index.ZoneGrid  // zone rows
	g     index.GlobalGrid // global_rgb rows
	level int
	i     int
	units int
	// start is the phase's weight before the row, weight the row's.
	start, weight uint64
}

// prefixes are the key prefixes the row's keys are under (one per array):
// what a partition lists of the output.
func (r *row) prefixes() []string {
	row := func(key string) string {
		k, _ := keyspace.Parse(key)
		return k.ChunkRow()
	}
	if r.z == nil {
		return []string{row(keyspace.GlobalRGBChunk(r.year, r.level, r.i, 0))}
	}
	var out []string
	for _, a := range []string{keyspace.Embeddings, keyspace.RGB, keyspace.Scales} {
		out = append(out, row(keyspace.ZoneShard(r.year, r.z.Zone, a, r.i, 0)))
	}
	return out
}

// phasePlan is the rows of one data phase, in order.
type phasePlan struct {
	name  string
	rows  []row
	units int
	total uint64
}

// owner is the partition of n in which weight position mid falls.
func (pp *phasePlan) owner(mid uint64, n int) int {
	if n <= 1 || pp.total == 0 {
		return 0
	}
	hi, lo := bits.Mul64(mid, uint64(n))
	q, _ := bits.Div64(hi, lo, pp.total) // mid < total, so hi < total
	return min(int(q), n-1)
}

// Plan is the split of a store's data phases into N partitions. It holds
// one entry per row of units (a zone's shard row, a global_rgb chunk row),
// not one per key: a partition's units are derived from it on demand.
type Plan struct {
	N      int
	st     Store
	phases map[string]*phasePlan

	byRowOnce sync.Once
	byRow     map[rowID]*row
}

type rowID struct {
	phase             string
	year, zone, level int
	i                 int
}

// NewPlan splits st's data phases into n partitions, from the index alone:
// no tile is read and nothing is generated. Its cost is one pass over the
// tiles and the rows of units (and, for global_rgb, the chunks).
//
// The split lays each phase's units in a fixed order and cuts it into n
// runs of (nearly) equal weight: a unit goes to the partition in which the
// middle of its weight falls. Zone shards are ordered by (year, zone, shard
// row, column), so a partition covers few zones and few shard rows (which
// it lists of the output); global_rgb chunks by (year, level, row, column).
// Cutting by weight, not by zone, balances partitions however unequal the
// zones are.
func NewPlan(ctx context.Context, st Store, n int) (*Plan, error) {
	if n < 1 {
		n = 1
	}
	p := &Plan{N: n, st: st, phases: map[string]*phasePlan{}}
	for _, ph := range DataPhases {
		p.phases[ph] = &phasePlan{name: ph}
	}
	zones, g0, gl := p.phases[PhaseZones], p.phases[PhaseGlobal0], p.phases[PhaseGlobal]
	add := func(pp *phasePlan, r row, weights []uint64) {
		for _, w := range weights {
			r.weight += w
		}
		r.units = len(weights)
		r.start = pp.total
		pp.total += r.weight
		pp.units += r.units
		pp.rows = append(pp.rows, r)
	}
	var buf []uint64
	years := slices.Clone(st.Catalogue().Years)
	slices.SortFunc(years, func(a, b *index.Year) int { return a.Year - b.Year })
	for _, y := range years {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		zs := slices.Clone(y.Zones)
		slices.SortFunc(zs, func(a, b *index.ZoneGrid) int { return a.Zone - b.Zone })
		for _, z := range zs {
			for _, i := range z.ShardRows(generate.ShardSize) {
				r := row{year: y.Year, z: z, i: i}
				_, buf = r.weights(buf)
				add(zones, r, buf)
			}
		}
		g, err := st.GlobalGrid(y.Year)
		if err != nil {
			return nil, fmt.Errorf("plan: global_rgb of %d: %w", y.Year, err)
		}
		for l := range g.LevelCount() {
			pp := gl
			if l == 0 {
				pp = g0
			}
			for _, i := range g.Rows(l) {
				r := row{year: y.Year, g: g, level: l, i: i}
				_, buf = r.weights(buf)
				add(pp, r, buf)
			}
		}
	}
	return p, nil
}

// weights returns the columns of the row's units and their weights (in
// buf, reused). Every worker computes them alike.
func (r *row) weights(buf []uint64) ([]int, []uint64) {
	buf = buf[:0]
	if r.z == nil {
		cols := r.g.Cols(r.level, r.i)
		for _, j := range cols {
			buf = append(buf, uint64(1+r.g.Inputs(r.level, r.i, j))*(globalChunkBytes>>10))
		}
		return cols, buf
	}
	const s = generate.ShardSize
	z := r.z
	cols := z.ShardCols(s, r.i)
	if len(cols) == 0 {
		return cols, buf
	}
	// Tile overlaps per column of the row: each tile that meets the row
	// counts once for every shard column it spans.
	lo, hi := cols[0], cols[len(cols)-1]
	counts := make([]uint32, hi-lo+1)
	for _, pl := range z.Overlapping(r.i*s, lo*s, (r.i+1)*s, (hi+1)*s) {
		j0 := max(max(pl.Col, 0)/s, lo)
		j1 := min(min(pl.Col+pl.Tile.W-1, z.W-1)/s, hi)
		for j := j0; j <= j1; j++ {
			counts[j-lo]++
		}
	}
	for _, j := range cols {
		buf = append(buf, uint64(1+counts[j-lo])*(zoneUnitBytes>>10))
	}
	return cols, buf
}

// units calls fn for every unit of the row, with its owner of n.
func (pp *phasePlan) rowUnits(r *row, n int, buf []uint64, fn func(u Unit) error) ([]uint64, error) {
	cols, ws := r.weights(buf)
	cum := r.start
	for k, j := range cols {
		u := Unit{Phase: pp.name, Year: r.year, Level: r.level, I: r.i, J: j, Weight: ws[k]}
		if r.z != nil {
			u.Zone = r.z.Zone
		}
		u.Owner = pp.owner(cum+ws[k]/2, n)
		cum += ws[k]
		if err := fn(u); err != nil {
			return ws, err
		}
	}
	return ws, nil
}

// Rows calls fn for every row of phase that holds a unit of part, in
// order, and then for each of the row's units of part; prefixes are the
// key prefixes of the row. Only the rows part owns some of are visited.
func (p *Plan) Rows(ctx context.Context, phase string, part Partition, row func(prefixes []string) error, unit func(u Unit) error) error {
	pp := p.phases[phase]
	if pp == nil {
		return nil
	}
	n := max(part.N, 1)
	// The rows whose weight range meets part's: owners are monotonic.
	first := sort.Search(len(pp.rows), func(k int) bool {
		r := &pp.rows[k]
		return pp.owner(r.start+r.weight-1, n) >= part.I
	})
	var buf []uint64
	for k := first; k < len(pp.rows); k++ {
		r := &pp.rows[k]
		if pp.owner(r.start, n) > part.I {
			break
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := row(r.prefixes()); err != nil {
			return err
		}
		var err error
		buf, err = pp.rowUnits(r, n, buf, func(u Unit) error {
			if u.Owner != part.I && !part.Whole() {
				return nil
			}
			return unit(u)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Units returns the units of phase owned by part (for tests and small
// stores: a partition's run streams them with Rows).
func (p *Plan) Units(ctx context.Context, phase string, part Partition) ([]Unit, error) {
	var out []Unit
	err := p.Rows(ctx, phase, part, func([]string) error { return nil }, func(u Unit) error {
		out = append(out, u)
		return nil
	})
	return out, err
}

// OwnerOf returns the phase and the partition that own data key, or ok
// false for a key that is not a data key of the plan.
func (p *Plan) OwnerOf(key string) (phase string, owner int, ok bool) {
	k, ok := keyspace.Parse(key)
	phase = k.Phase()
	pp := p.phases[phase]
	if !ok || pp == nil || k.Kind != keyspace.Chunk {
		return phase, 0, false
	}
	i, j := k.Coords[0], k.Coords[1]
	id := rowID{phase: phase, year: k.Year, i: i}
	if phase == PhaseZones {
		id.zone = k.Zone
	} else {
		id.level = k.Level
	}
	p.byRowOnce.Do(func() {
		p.byRow = map[rowID]*row{}
		for name, pp := range p.phases {
			for k := range pp.rows {
				r := &pp.rows[k]
				id := rowID{phase: name, year: r.year, level: r.level, i: r.i}
				if r.z != nil {
					id.zone = r.z.Zone
				}
				p.byRow[id] = r
			}
		}
	})
	r := p.byRow[id]
	if r == nil {
		return phase, 0, false
	}
	found := false
	pp.rowUnits(r, p.N, nil, func(u Unit) error {
		if u.J == j {
			owner, found = u.Owner, true
			return errStop
		}
		return nil
	})
	return phase, owner, found
}

var errStop = errors.New("stop")

// PartitionSummary is what one partition of one phase writes.
type PartitionSummary struct {
	Partition int    `json:"partition"`
	Keys      int    `json:"keys"`
	Bytes     int64  `json:"bytes"`
	Weight    uint64 `json:"weight"`
}

// PhaseSummary is one phase of a plan.
type PhaseSummary struct {
	Name       string             `json:"name"`
	Keys       int                `json:"keys"`
	Bytes      int64              `json:"bytes"`
	Partitions []PartitionSummary `json:"partitions,omitempty"`
}

// Summary counts keys and estimated bytes per phase and partition. Zone
// keys are counted three per shard touched by a tile: an upper bound, as
// the scales and rgb shards of a shard without a finite scale (open sea
// in every tile) are absent, which only reading the scales tells. The
// finalize phase (finalizeKeys, its keys) has no partitions (one worker
// writes it) and its bytes are left 0 (metadata is small).
func (p *Plan) Summary(finalizeKeys int) []PhaseSummary {
	var out []PhaseSummary
	var buf []uint64
	for _, ph := range DataPhases {
		pp := p.phases[ph]
		perUnit, unitBytes := 1, int64(globalChunkBytes)
		if ph == PhaseZones {
			perUnit, unitBytes = 3, zoneUnitBytes
		}
		s := PhaseSummary{Name: ph, Keys: perUnit * pp.units, Bytes: unitBytes * int64(pp.units),
			Partitions: make([]PartitionSummary, p.N)}
		for i := range s.Partitions {
			s.Partitions[i].Partition = i
		}
		for k := range pp.rows {
			r := &pp.rows[k]
			if o := pp.owner(r.start, p.N); o == pp.owner(r.start+r.weight-1, p.N) {
				ps := &s.Partitions[o]
				ps.Keys += perUnit * r.units
				ps.Bytes += unitBytes * int64(r.units)
				ps.Weight += r.weight
				continue
			}
			buf, _ = pp.rowUnits(r, p.N, buf, func(u Unit) error {
				ps := &s.Partitions[u.Owner]
				ps.Keys += perUnit
				ps.Bytes += unitBytes
				ps.Weight += u.Weight
				return nil
			})
		}
		out = append(out, s)
	}
	return append(out, PhaseSummary{Name: PhaseFinalize, Keys: finalizeKeys})
}

// FinalizeKeys calls fn for every key of st that the finalize phase
// writes (metadata, coordinates, STAC), in listing order, from the index
// alone: the chunk directories of the data arrays are not walked.
func FinalizeKeys(ctx context.Context, st Store, fn func(key string) error) error {
	return walkSorted(ctx, st, "", true, fn)
}

// walkSorted calls fn for every file key of st under dir in lexicographic
// order of the whole key (the order of an S3 listing): the entries of
// each directory sorted by name, with a "/" after a directory's. With
// skipData it does not enter the chunk directories of data arrays.
func walkSorted(ctx context.Context, st Store, dir string, skipData bool, fn func(key string) error) error {
	entries, err := st.ReadDir(ctx, dir)
	if err != nil {
		return err
	}
	type ent struct {
		name, sortKey string
		isDir         bool
	}
	es := make([]ent, len(entries))
	for k, e := range entries {
		key := e.Name()
		if dir != "" {
			key = dir + "/" + e.Name()
		}
		es[k] = ent{name: key, sortKey: e.Name(), isDir: e.IsDir()}
		if e.IsDir() {
			es[k].sortKey += "/"
		}
	}
	slices.SortFunc(es, func(a, b ent) int { return strings.Compare(a.sortKey, b.sortKey) })
	for _, e := range es {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !e.isDir {
			if err := fn(e.name); err != nil {
				return err
			}
			continue
		}
		if skipData && path.Base(e.name) == "c" && keyspace.ChunksPhase(path.Dir(e.name)) != PhaseFinalize {
			continue
		}
		if err := walkSorted(ctx, st, e.name, skipData, fn); err != nil {
			return err
		}
	}
	return nil
}

// OwnerOfTile is the partition that reports a tile skipped at discovery
// (path names its grid_<lon>_<lat>): the owner of the zone shard under
// the tile's centre, if there is one, else a stable hash of the path. So
// one partition, not all, fails with that tile named.
func (p *Plan) OwnerOfTile(cat *index.Catalogue, pr *index.Projector, tilePath string) int {
	if p.N <= 1 {
		return 0
	}
	if owner, ok := p.ownerByPlace(cat, pr, tilePath); ok {
		return owner
	}
	h := fnv.New32a()
	h.Write([]byte(tilePath))
	return int(h.Sum32() % uint32(p.N))
}

func (p *Plan) ownerByPlace(cat *index.Catalogue, pr *index.Projector, tilePath string) (int, bool) {
	var coord index.TileCoord
	var year int
	found := false
	for _, seg := range strings.Split(tilePath, "/") {
		if y, err := strconv.Atoi(seg); err == nil && y >= 1900 && y <= 2999 {
			year = y
		}
		if c, err := index.ParseTileName(seg); err == nil {
			coord, found = c, true
			break
		}
	}
	if !found {
		return 0, false
	}
	y := cat.Year(year)
	if y == nil {
		return 0, false
	}
	z := y.Zone(coord.Zone())
	if z == nil {
		return 0, false
	}
	fp, err := pr.Footprint(coord)
	if err != nil {
		return 0, false
	}
	row := int((z.OriginN-fp.OriginN)/10+float64(fp.H)/2) / 256
	col := int((fp.OriginE-z.OriginE)/10+float64(fp.W)/2) / 256
	_, owner, ok := p.OwnerOf(keyspace.ZoneShard(year, z.Zone, keyspace.Embeddings, row, col))
	return owner, ok
}
