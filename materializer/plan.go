package materializer

import (
	"context"
	"fmt"
	"hash/fnv"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/store"
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
	PhaseZones    = "zones"
	PhaseGlobal0  = "global0"
	PhaseGlobal   = "global"
	PhaseFinalize = "finalize"
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

// PhaseOf returns the phase that writes key.
func PhaseOf(key string) string {
	before, _, isChunk := strings.Cut(key, "/c/")
	if !isChunk {
		return PhaseFinalize
	}
	parts := strings.Split(before, "/")
	// <year>.zarr/utmNN/{embeddings,scales,rgb}
	if len(parts) == 3 && strings.HasPrefix(parts[1], "utm") {
		switch parts[2] {
		case "embeddings", "scales", "rgb":
			return PhaseZones
		}
		return PhaseFinalize // coordinates
	}
	// <year>.zarr/global_rgb/<level>/rgb
	if len(parts) == 4 && parts[1] == "global_rgb" && parts[3] == "rgb" {
		if parts[2] == "0" {
			return PhaseGlobal0
		}
		return PhaseGlobal
	}
	return PhaseFinalize
}

// isRoot reports whether key is the root zarr.json of a year store.
func isRoot(key string) bool {
	d, f := path.Split(key)
	return f == "zarr.json" && strings.Count(d, "/") == 1 && strings.HasSuffix(d, ".zarr/")
}

// Estimated uncompressed bytes of one chunk of each kind, for plans.
const (
	embeddingsShardBytes = 256 * 256 * 128
	scalesShardBytes     = 256 * 256 * 4
	rgbShardBytes        = 256 * 256 * 4
	globalChunkBytes     = 512 * 512 * 4
)

// estimate is the uncompressed size of a data key.
func estimate(key string) int64 {
	switch {
	case strings.Contains(key, "/embeddings/c/"):
		return embeddingsShardBytes
	case strings.Contains(key, "/scales/c/"):
		return scalesShardBytes
	case strings.Contains(key, "/global_rgb/"):
		return globalChunkBytes
	default:
		return rgbShardBytes
	}
}

// Key is one key of a plan.
type Key struct {
	Key   string
	Phase string
	Bytes int64 // estimated uncompressed size (data keys)
	// Weight is the estimated work: the uncompressed size times the
	// number of source files the chunk is computed from.
	Weight int64
	Owner  int // partition, for data keys
}

// Plan is every key of a store, by phase, and the split of each data
// phase into N partitions.
type Plan struct {
	N      int
	Phases map[string][]Key // in writing order within each phase
}

// NewPlan lists st's keys from the index alone (nothing is generated) and
// splits each data phase into n partitions.
//
// The split lays the phase's keys in a fixed order and cuts it into n
// runs of (nearly) equal weight: a key goes to the partition in which the
// middle of its weight falls. Zone keys are ordered by (year, zone, shard
// row, column, array), so one shard's three arrays go together (they read
// the same tile windows) and a partition needs the stretch of few zones;
// global_rgb chunks by (year, level, row, column). Cutting by weight, not
// by zone, balances partitions however unequal the zones are.
func NewPlan(ctx context.Context, st *store.Store, n int) (*Plan, error) {
	if n < 1 {
		n = 1
	}
	p := &Plan{N: n, Phases: map[string][]Key{}}
	err := st.Walk(ctx, "", func(k string) error {
		ph := PhaseOf(k)
		key := Key{Key: k, Phase: ph}
		if ph != PhaseFinalize {
			key.Bytes = estimate(k)
			in, _ := st.ChunkInputs(k)
			key.Weight = key.Bytes * int64(1+in)
		}
		p.Phases[ph] = append(p.Phases[ph], key)
		return nil
	})
	if err != nil {
		return nil, err
	}
	zones := p.Phases[PhaseZones]
	slices.SortStableFunc(zones, func(a, b Key) int { return slices.Compare(zoneOrder(a.Key), zoneOrder(b.Key)) })
	for _, ph := range DataPhases {
		split(p.Phases[ph], n)
	}
	return p, nil
}

// zoneOrder is the sort key of a zone shard key
// <year>.zarr/utmNN/<array>/c/<i>/<j>[/0]: year, zone, i, j, array.
func zoneOrder(k string) []int {
	parts := strings.Split(k, "/")
	atoi := func(s string) int { v, _ := strconv.Atoi(s); return v }
	arr := map[string]int{"embeddings": 0, "scales": 1, "rgb": 2}[parts[2]]
	return []int{atoi(strings.TrimSuffix(parts[0], ".zarr")), atoi(strings.TrimPrefix(parts[1], "utm")),
		atoi(parts[4]), atoi(parts[5]), arr}
}

// split assigns keys, in order, to n contiguous runs of equal weight.
func split(keys []Key, n int) {
	var total int64
	for _, k := range keys {
		total += k.Weight
	}
	var cum int64
	for i := range keys {
		mid := cum + keys[i].Weight/2
		cum += keys[i].Weight
		if total == 0 {
			keys[i].Owner = i * n / max(len(keys), 1)
			continue
		}
		keys[i].Owner = min(int(mid*int64(n)/total), n-1)
	}
}

// Keys returns the keys of phase owned by partition part.
func (p *Plan) Keys(phase string, part Partition) []Key {
	var out []Key
	for _, k := range p.Phases[phase] {
		if phase == PhaseFinalize || part.Whole() || k.Owner == part.I {
			out = append(out, k)
		}
	}
	return out
}

// PartitionSummary is what one partition of one phase writes.
type PartitionSummary struct {
	Partition int   `json:"partition"`
	Keys      int   `json:"keys"`
	Bytes     int64 `json:"bytes"`
	Weight    int64 `json:"weight"`
}

// PhaseSummary is one phase of a plan.
type PhaseSummary struct {
	Name       string             `json:"name"`
	Keys       int                `json:"keys"`
	Bytes      int64              `json:"bytes"`
	Partitions []PartitionSummary `json:"partitions,omitempty"`
}

// Summary counts keys and estimated bytes per phase and partition. The
// finalize phase has no partitions (one worker writes it) and its bytes
// are left 0 (metadata is small).
func (p *Plan) Summary() []PhaseSummary {
	var out []PhaseSummary
	for _, ph := range Phases {
		s := PhaseSummary{Name: ph, Keys: len(p.Phases[ph])}
		if ph != PhaseFinalize {
			s.Partitions = make([]PartitionSummary, p.N)
			for i := range s.Partitions {
				s.Partitions[i].Partition = i
			}
		}
		for _, k := range p.Phases[ph] {
			s.Bytes += k.Bytes
			if ph != PhaseFinalize {
				ps := &s.Partitions[k.Owner]
				ps.Keys++
				ps.Bytes += k.Bytes
				ps.Weight += k.Weight
			}
		}
		out = append(out, s)
	}
	return out
}

// OwnerOfTile is the partition that reports a tile skipped at discovery
// (path names its grid_<lon>_<lat>): the owner of the embeddings shard
// under the tile's centre, if there is one, else a stable hash of the
// path. So one partition, not all, fails with that tile named.
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
	want := fmt.Sprintf("%d.zarr/utm%02d/embeddings/c/%d/%d/0", year, z.Zone, row, col)
	for _, k := range p.Phases[PhaseZones] {
		if k.Key == want {
			return k.Owner, true
		}
	}
	return 0, false
}
