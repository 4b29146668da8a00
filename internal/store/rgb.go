package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/singleflight"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
)

// The previews (spec §4 rgb, §5 global_rgb) are chunks computed from other
// chunks: a zone's rgb shards need the zone's stretch, a global_rgb level-0
// chunk needs zone rgb shards, a level-l chunk the four level-(l−1) chunks
// below it. Such inputs are fetched with Store.dep, which
//
//   - looks in a bounded in-memory cache of intermediates, then the store's
//     Cache, then the read-through source (the materializer's output), so a
//     zoomed-out view is cheap once the level below is computed, and a
//     store without a Cache does not recompute a pyramid recursively;
//   - generates what is missing in the caller's goroutine, single-flight
//     per key, with a worker of its own rather than one of the pool. A
//     generation holding a pool worker may wait for its dependencies, and
//     dependencies never wait for the pool, so the pool cannot deadlock
//     however many chunks wait on each other (the dependency graph has no
//     cycles).

// derivedBudget bounds the in-memory cache of intermediate chunks.
const derivedBudget = 64 << 20

// rgbState is a Store's state for the previews.
//
// Lock order: mu is never held while taking another lock.
type rgbState struct {
	derived     *MemCache
	flight      singleflight.Group // dependency generations, by key
	workers     sync.Pool          // *generate.Worker for dependency generations
	scratch     sync.Pool          // *generate.GlobalScratch
	readThrough atomic.Pointer[cacheRef]

	mu        sync.Mutex // guards stretches
	stretches map[stretchKey]*stretchEntry

	stretchesComputed atomic.Int64 // from the sample, not from a cache
}

type cacheRef struct{ c Cache }

func newRGBState() *rgbState {
	return &rgbState{
		derived:   NewMemCache(derivedBudget),
		stretches: map[stretchKey]*stretchEntry{},
	}
}

// SetReadThrough makes c a source, after the store's own caches, of the
// chunks that other chunks are computed from (zone rgb shards for
// global_rgb level 0, level l−1 chunks for level l), and returns a
// function that removes it. c.Put is never called. The materializer passes
// its output directory, whose complete files are exactly the store's keys:
// a level is then built from the level written just before it instead of
// being recomputed.
func (s *Store) SetReadThrough(c Cache) (remove func()) {
	ref := &cacheRef{c}
	s.rgb.readThrough.Store(ref)
	return func() { s.rgb.readThrough.CompareAndSwap(ref, nil) }
}

// dep returns the bytes of a chunk another chunk is computed from, or nil
// for a key that does not exist (an absent shard or chunk is all fill).
func (s *Store) dep(ctx context.Context, key string) ([]byte, error) {
	r, ok := s.resolve(key)
	if !ok || r.arr == nil || len(r.coords) != r.arr.chunks.Dims() {
		return nil, nil
	}
	src := r.arr.chunks
	fp := fingerprint(key, src.Inputs(r.coords))
	st := s.rgb
	if b, ok := st.derived.Get(key, fp); ok {
		return b, nil
	}
	if c := s.opts.Cache; c != nil {
		if b, ok := c.Get(key, fp); ok {
			s.hits.Add(1)
			st.derived.Put(key, fp, b)
			return b, nil
		}
	}
	if ref := st.readThrough.Load(); ref != nil {
		if b, ok := ref.c.Get(key, fp); ok {
			st.derived.Put(key, fp, b)
			return b, nil
		}
	}
	v, err, _ := st.flight.Do(key, func() (any, error) {
		if b, ok := st.derived.Get(key, fp); ok { // made while we waited
			return b, nil
		}
		w, _ := st.workers.Get().(*generate.Worker)
		if w == nil {
			w = generate.NewWorker()
		}
		defer st.workers.Put(w)
		gctx := context.WithValue(context.WithoutCancel(ctx), fpKey{}, fp)
		b, err := src.Generate(gctx, w, r.coords)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		if b == nil {
			return []byte(nil), nil
		}
		s.generated.Add(1)
		s.bytes.Add(int64(len(b)))
		if c := s.opts.Cache; c != nil {
			c.Put(key, fp, b)
		}
		return b, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

// fpKey carries, in the context of a dependency generation, the
// fingerprint dep has already computed.
type fpKey struct{}

// derivedChunk returns the intermediate chunk key from the in-memory cache
// or generates it with gen and keeps it there, whichever path asked for
// it: a chunk the materializer or a reader asked for directly is then at
// hand when the level above needs it.
func (s *Store) derivedChunk(ctx context.Context, key string, inputs func() []index.FileStamp, gen func() ([]byte, error)) ([]byte, error) {
	fp, _ := ctx.Value(fpKey{}).([]byte)
	if fp == nil {
		fp = fingerprint(key, inputs())
	}
	if b, ok := s.rgb.derived.Get(key, fp); ok {
		return b, nil
	}
	b, err := gen()
	if err == nil && b != nil {
		s.rgb.derived.Put(key, fp, b)
	}
	return b, err
}

// stretchKey names a stretch: of one zone, or (zone 0) of a whole year.
type stretchKey struct{ year, zone int }

type stretchEntry struct {
	done chan struct{}
	st   generate.Stretch
	err  error
}

// stretchZones returns the zones z's stretch is estimated from, and its key.
func (s *Store) stretchZones(z *index.ZoneGrid) ([]*index.ZoneGrid, stretchKey) {
	if s.opts.Build.Stretch == "global" {
		if y := s.cat.Year(z.Year); y != nil {
			return y.Zones, stretchKey{z.Year, 0}
		}
	}
	return []*index.ZoneGrid{z}, stretchKey{z.Year, z.Zone}
}

// stretchCacheKey is the Cache key of a stretch: not a key of the tree.
func stretchCacheKey(k stretchKey) string {
	if k.zone == 0 {
		return fmt.Sprintf("%d.zarr/.stretch", k.year)
	}
	return fmt.Sprintf("%d.zarr/%s/rgb/.stretch", k.year, generate.ZoneGroupName(k.zone))
}

// stretchInputs lists what z's stretch is computed from.
func (s *Store) stretchInputs(z *index.ZoneGrid) []index.FileStamp {
	zones, _ := s.stretchZones(z)
	return generate.SampleInputs(generate.StretchSample(zones))
}

// stretch returns the stretch of zone z's rgb, computed once per store
// (and kept in the Cache across stores) with w's buffers; concurrent
// callers wait for the first.
func (s *Store) stretch(w *generate.Worker, z *index.ZoneGrid) (generate.Stretch, error) {
	zones, key := s.stretchZones(z)
	st := s.rgb
	st.mu.Lock()
	if e, ok := st.stretches[key]; ok {
		st.mu.Unlock()
		<-e.done
		return e.st, e.err
	}
	e := &stretchEntry{done: make(chan struct{})}
	st.stretches[key] = e
	st.mu.Unlock()

	e.st, e.err = s.computeStretch(w, zones, key)
	if e.err != nil { // not kept: a later call tries again
		st.mu.Lock()
		delete(st.stretches, key)
		st.mu.Unlock()
	}
	close(e.done)
	return e.st, e.err
}

func (s *Store) computeStretch(w *generate.Worker, zones []*index.ZoneGrid, key stretchKey) (generate.Stretch, error) {
	sample := generate.StretchSample(zones)
	ckey := stretchCacheKey(key)
	fp := fingerprint(ckey, generate.SampleInputs(sample))
	if c := s.opts.Cache; c != nil {
		if b, ok := c.Get(ckey, fp); ok {
			if st, ok := decodeStretch(b); ok {
				return st, nil
			}
		}
	}
	s.rgb.stretchesComputed.Add(1)
	st, err := generate.StretchFrom(len(sample), func(k int, vals []float32) ([]float32, error) {
		zs := sample[k]
		return w.SampleValues(zs.Zone, zs.Shard.Row, zs.Shard.Col, s.masks, vals)
	}, generate.MaxStretchValues)
	if err != nil {
		return st, fmt.Errorf("rgb stretch of %s: %w", ckey, err)
	}
	s.log.Debug("rgb stretch", "key", ckey, "sample_shards", len(sample), "lo", st.Lo, "hi", st.Hi)
	if c := s.opts.Cache; c != nil {
		c.Put(ckey, fp, encodeStretch(st))
	}
	return st, nil
}

func encodeStretch(st generate.Stretch) []byte {
	b := make([]byte, 0, 2*generate.RGBBands*4)
	for _, v := range append(st.Lo[:], st.Hi[:]...) {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

func decodeStretch(b []byte) (generate.Stretch, bool) {
	var st generate.Stretch
	if len(b) != 2*generate.RGBBands*4 {
		return st, false
	}
	for k := range generate.RGBBands {
		st.Lo[k] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*k:]))
		st.Hi[k] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*(k+generate.RGBBands):]))
	}
	return st, true
}

// rgbSource is the chunk space of a zone's rgb array: the shards of the
// embeddings, whose content also depends on the zone's stretch sample.
type rgbSource struct {
	*shardSource
	sampleInputs func() []index.FileStamp
}

// Inputs are the shard's tiles and the stretch sample's: a changed sample
// tile changes every rgb shard of the zone.
func (r *rgbSource) Inputs(c []int) []index.FileStamp {
	return append(r.shardSource.Inputs(c), r.sampleInputs()...)
}

// rgbArray is the rgb array of zone z.
func (s *Store) rgbArray(z *index.ZoneGrid, shards []index.ShardIndex) *arrayNode {
	var src *rgbSource
	src = &rgbSource{
		shardSource: &shardSource{zone: z, shards: shards, trailing: true,
			gen: func(ctx context.Context, w *generate.Worker, i, j int) ([]byte, error) {
				inputs := func() []index.FileStamp { return src.Inputs([]int{i, j, 0}) }
				return s.derivedChunk(ctx, rgbShardKey(z, i, j), inputs, func() ([]byte, error) {
					st, err := s.stretch(w, z)
					if err != nil {
						return nil, err
					}
					return w.RGBShard(z, i, j, s.masks, st)
				})
			}},
		sampleInputs: sync.OnceValue(func() []index.FileStamp { return s.stretchInputs(z) }),
	}
	return newArray(generate.RGBMeta(z), src)
}

// rgbShardKey is the key of rgb shard (i, j) of zone z.
func rgbShardKey(z *index.ZoneGrid, i, j int) string {
	return fmt.Sprintf("%d.zarr/%s/rgb/c/%d/%d/0", z.Year, generate.ZoneGroupName(z.Zone), i, j)
}
