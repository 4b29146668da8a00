package store

import (
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
// the index is and lists a zone only when someone looks.
type occupancy struct {
	shards  []index.ShardIndex // the zone's tile-touched shards, row-major
	state   []atomic.Uint32    // per shard: unknown, absent or present
	check   func(sh index.ShardIndex) (bool, error)
	workers int
}

const (
	occUnknown uint32 = iota
	occAbsent
	occPresent
)

func newOccupancy(shards []index.ShardIndex, workers int, check func(index.ShardIndex) (bool, error)) *occupancy {
	return &occupancy{shards: shards, state: make([]atomic.Uint32, len(shards)), check: check, workers: max(workers, 1)}
}

// has reports whether shard k (an index into shards) exists. A shard whose
// sources cannot be read counts as present, not remembered: reading it
// then reports the error instead of a listing silently hiding it.
func (o *occupancy) has(k int) bool {
	switch o.state[k].Load() {
	case occAbsent:
		return false
	case occPresent:
		return true
	}
	ok, err := o.check(o.shards[k])
	if err != nil {
		return true
	}
	if ok {
		o.state[k].Store(occPresent)
	} else {
		o.state[k].Store(occAbsent)
	}
	return ok
}

// ensure decides shards [lo, hi) not yet known, with up to o.workers
// goroutines: listing a zone's chunk directory reads the scales of every
// shard of the zone (or of one row).
func (o *occupancy) ensure(lo, hi int) {
	var next atomic.Int64
	next.Store(int64(lo))
	var wg sync.WaitGroup
	for range min(o.workers, hi-lo) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := int(next.Add(1) - 1); k < hi; k = int(next.Add(1) - 1) {
				o.has(k)
			}
		}()
	}
	wg.Wait()
}

// probe decides whether shard sh of zone z has a finite scale, with a
// probe worker of the store's pool.
func (s *Store) probe(z *index.ZoneGrid, sh index.ShardIndex) (bool, error) {
	w, _ := s.probes.Get().(*generate.Worker)
	if w == nil {
		w = generate.NewProbeFor(s.cat.Source)
	}
	defer s.probes.Put(w)
	ok, err := w.HasScales(z, sh.Row, sh.Col, s.masks)
	if err != nil {
		s.log.Warn("deciding whether a shard exists", "zone", z.Zone, "row", sh.Row, "col", sh.Col, "err", err)
	}
	return ok, err
}
