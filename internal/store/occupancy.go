package store

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
)

// occupancy knows which of a zone's shards that tiles touch hold a finite
// scale: the scales and rgb shards that exist (spec §3: a shard whose inner
// chunks are all the fill value is absent, and listing agrees with
// lookup). Deciding reads the scales and landmasks of the shard's tiles,
// never their embeddings, and nothing is generated; each answer is
// computed once per store, on first asking, so a mount is ready as soon as
// the index is and lists a zone only when someone looks. Only the shards
// asked about are remembered (the zone's shards themselves are its bitset,
// index.ZoneGrid.HasShard).
type occupancy struct {
	check   func(sh index.ShardIndex) (bool, error)
	workers int

	mu    sync.Mutex
	known map[index.ShardIndex]bool // decided: exists or not
}

// listBatch bounds the shards decided at once while listing a zone's rows.
const listBatch = 1024

func newOccupancy(workers int, check func(index.ShardIndex) (bool, error)) *occupancy {
	return &occupancy{check: check, workers: max(workers, 1), known: map[index.ShardIndex]bool{}}
}

// has reports whether tile-touched shard sh exists. A shard whose sources
// cannot be read counts as present, not remembered: reading it then
// reports the error instead of a listing silently hiding it.
func (o *occupancy) has(sh index.ShardIndex) bool {
	o.mu.Lock()
	ok, known := o.known[sh]
	o.mu.Unlock()
	if known {
		return ok
	}
	ok, err := o.check(sh)
	if err != nil {
		return true
	}
	o.mu.Lock()
	o.known[sh] = ok
	o.mu.Unlock()
	return ok
}

// ensure decides the shards of shs not yet known, with up to o.workers
// goroutines: listing a zone's chunk directory reads the scales of every
// shard of the zone (or of one row).
func (o *occupancy) ensure(shs []index.ShardIndex) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(o.workers, len(shs)) {
		wg.Go(func() {
			for k := int(next.Add(1) - 1); k < len(shs); k = int(next.Add(1) - 1) {
				o.has(shs[k])
			}
		})
	}
	wg.Wait()
}

// row returns the columns of cols (the tile-touched shards of row i) whose
// shard exists.
func (o *occupancy) row(i int, cols []int) []int {
	shs := make([]index.ShardIndex, len(cols))
	for k, j := range cols {
		shs[k] = index.ShardIndex{Row: i, Col: j}
	}
	o.ensure(shs)
	var out []int
	for _, sh := range shs {
		if o.has(sh) {
			out = append(out, sh.Col)
		}
	}
	return out
}

// anyInRow reports whether some shard of row i (whose tile-touched
// columns cols lists) exists, deciding o.workers shards at a time and
// stopping at the first batch that holds one.
func (o *occupancy) anyInRow(i int, cols []int) bool {
	for start := 0; start < len(cols); start += o.workers {
		batch := make([]index.ShardIndex, 0, o.workers)
		for _, j := range cols[start:min(start+o.workers, len(cols))] {
			batch = append(batch, index.ShardIndex{Row: i, Col: j})
		}
		o.ensure(batch)
		for _, sh := range batch {
			if o.has(sh) {
				return true
			}
		}
	}
	return false
}

// rows returns the rows of rows (those holding a tile-touched shard, whose
// columns cols lists) that hold a shard that exists, deciding up to
// listBatch shards at a time.
func (o *occupancy) rows(rows []int, cols func(i int) []int) []int {
	var out []int
	var batch []index.ShardIndex
	flush := func() {
		o.ensure(batch)
		for _, sh := range batch { // row-major
			if (len(out) == 0 || out[len(out)-1] != sh.Row) && o.has(sh) {
				out = append(out, sh.Row)
			}
		}
		batch = batch[:0]
	}
	for _, i := range rows {
		for _, j := range cols(i) {
			batch = append(batch, index.ShardIndex{Row: i, Col: j})
		}
		if len(batch) >= listBatch {
			flush()
		}
	}
	flush()
	return out
}

// probe decides whether shard sh of zone z has a finite scale, with a
// probe worker of the store's pool.
func (s *Store) probe(z *index.ZoneGrid, sh index.ShardIndex) (bool, error) {
	w, _ := s.probes.Get().(*generate.Worker)
	if w == nil {
		w = generate.NewProbeFor(s.cat.Source)
	}
	defer s.probes.Put(w)
	s.probed.Add(1)
	// Existence is asked by lookups and listings, which have no context
	// of their own here (resolve); a probe's few reads are bounded by the
	// source's timeouts.
	ok, err := w.HasScales(context.Background(), z, sh.Row, sh.Col, s.masks)
	if err != nil {
		s.log.Warn("deciding whether a shard exists", "zone", z.Zone, "row", sh.Row, "col", sh.Col, "err", err)
	}
	return ok, err
}
