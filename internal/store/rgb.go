package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
	"github.com/tesserafs/tesserafs/internal/keyspace"
)

// stretchState is a Store's rgb stretches, each computed once.
//
// Lock order: mu is never held while taking another lock.
type stretchState struct {
	mu       sync.Mutex // guards byKey
	byKey    map[stretchKey]*stretchEntry
	computed atomic.Int64 // from the sample, not from a cache
}

func newStretchState() *stretchState {
	return &stretchState{byKey: map[stretchKey]*stretchEntry{}}
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
	return fmt.Sprintf("%d.zarr/%s/rgb/.stretch", k.year, keyspace.ZoneGroup(k.zone))
}

// stretchRecordKey is the ReadThrough key of a stretch's record
// (keyspace.StretchRecord).
func stretchRecordKey(k stretchKey) string { return keyspace.StretchRecord(k.year, k.zone) }

// StretchRecords lists the ReadThrough keys under which the store's
// stretches may be recorded: a run that computes a stretch records it
// there (ReadThrough.Put), so that the other partitions of a partitioned
// run read it (ReadThrough.Get) instead of reading the zone's sample
// again. The materializer removes them when the output is finished.
func (s *Store) StretchRecords() []string {
	seen := map[stretchKey]bool{}
	var keys []string
	for _, y := range s.cat.Years {
		for _, z := range y.Zones {
			if _, k := s.stretchZones(z); !seen[k] {
				seen[k] = true
				keys = append(keys, stretchRecordKey(k))
			}
		}
	}
	return keys
}

// stretchInputs lists what z's stretch is computed from.
func (s *Store) stretchInputs(z *index.ZoneGrid) []index.FileStamp {
	zones, _ := s.stretchZones(z)
	return generate.SampleInputs(generate.StretchSample(zones))
}

// stretch returns the stretch of zone z's rgb, computed once per store
// (and kept in the Cache across stores) with w's buffers; concurrent
// callers wait for the first.
func (s *Store) stretch(ctx context.Context, w *generate.Worker, z *index.ZoneGrid) (generate.Stretch, error) {
	zones, key := s.stretchZones(z)
	st := s.stretches
	st.mu.Lock()
	if e, ok := st.byKey[key]; ok {
		st.mu.Unlock()
		<-e.done
		return e.st, e.err
	}
	e := &stretchEntry{done: make(chan struct{})}
	st.byKey[key] = e
	st.mu.Unlock()

	e.st, e.err = s.computeStretch(context.WithoutCancel(ctx), w, zones, key)
	if e.err != nil { // not kept: a later call tries again
		st.mu.Lock()
		delete(st.byKey, key)
		st.mu.Unlock()
	}
	close(e.done)
	return e.st, e.err
}

func (s *Store) computeStretch(ctx context.Context, w *generate.Worker, zones []*index.ZoneGrid, key stretchKey) (generate.Stretch, error) {
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
	// A record in the output, from another partition of the run: the
	// ReadThrough serves only an output claimed for the store's inputs.
	rkey := stretchRecordKey(key)
	rt := s.opts.ReadThrough
	if rt != nil {
		if b, ok := rt.Get(rkey, fp); ok {
			if st, err := decodeStretchRecord(b); err == nil {
				return st, nil
			} else {
				s.log.Warn("rgb stretch record unreadable; computing the stretch", "key", rkey, "err", err)
			}
		}
	}
	s.stretches.computed.Add(1)
	st, err := generate.StretchFrom(len(sample), func(k int, vals []float32) ([]float32, error) {
		zs := sample[k]
		return w.SampleValues(ctx, zs.Zone, zs.Shard.Row, zs.Shard.Col, s.masks, vals)
	}, generate.MaxStretchValues)
	if err != nil {
		return st, fmt.Errorf("rgb stretch of %s: %w", ckey, err)
	}
	s.log.Debug("rgb stretch", "key", ckey, "sample_shards", len(sample), "lo", st.Lo, "hi", st.Hi)
	if c := s.opts.Cache; c != nil {
		c.Put(ckey, fp, encodeStretch(st))
	}
	if rt != nil {
		rt.Put(rkey, fp, encodeStretchRecord(st))
	}
	return st, nil
}

// stretchRecord is a stretch's record in the output: JSON, whose float32
// numbers (shortest form that reads back to the same float32) round-trip
// exactly.
type stretchRecord struct {
	Lo []float32 `json:"lo"`
	Hi []float32 `json:"hi"`
}

func encodeStretchRecord(st generate.Stretch) []byte {
	b, _ := json.Marshal(stretchRecord{Lo: st.Lo[:], Hi: st.Hi[:]})
	return b
}

func decodeStretchRecord(b []byte) (generate.Stretch, error) {
	var st generate.Stretch
	var r stretchRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return st, err
	}
	if len(r.Lo) != generate.RGBBands || len(r.Hi) != generate.RGBBands {
		return st, fmt.Errorf("want %d bands, have lo %d, hi %d", generate.RGBBands, len(r.Lo), len(r.Hi))
	}
	for k := range generate.RGBBands {
		lo, hi := r.Lo[k], r.Hi[k]
		if math.IsNaN(float64(lo)) || math.IsNaN(float64(hi)) || math.IsInf(float64(lo), 0) || math.IsInf(float64(hi), 0) || lo > hi {
			return st, fmt.Errorf("band %d: bad range [%v, %v]", k, lo, hi)
		}
		st.Lo[k], st.Hi[k] = lo, hi
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

func (*rgbSource) derived() {}

// rgbArray is the rgb array of zone z.
func (s *Store) rgbArray(z *index.ZoneGrid, occ *occupancy) *arrayNode {
	src := &rgbSource{
		shardSource: &shardSource{zone: z, occ: occ, trailing: true,
			gen: func(ctx context.Context, w *generate.Worker, i, j int) ([]byte, error) {
				st, err := s.stretch(ctx, w, z)
				if err != nil {
					return nil, err
				}
				return w.RGBShard(ctx, z, i, j, s.masks, st)
			}},
		sampleInputs: sync.OnceValue(func() []index.FileStamp { return s.stretchInputs(z) }),
	}
	return newArray(generate.RGBMeta(z), src)
}

// RGBStretch returns the stretch of zone's rgb preview in year, and its
// mode ("zone" or "global"), computing it (from a sample of the zone's
// scales and embeddings) on first use.
func (s *Store) RGBStretch(ctx context.Context, year, zone int) (generate.Stretch, string, error) {
	y := s.cat.Year(year)
	if y == nil {
		return generate.Stretch{}, "", fmt.Errorf("year %d: %w", year, ErrNotFound)
	}
	var z *index.ZoneGrid
	for _, c := range y.Zones {
		if c.Zone == zone {
			z = c
		}
	}
	if z == nil {
		return generate.Stretch{}, "", fmt.Errorf("%d.zarr/%s: %w", year, keyspace.ZoneGroup(zone), ErrNotFound)
	}
	mode := "zone"
	if s.opts.Build.Stretch == "global" {
		mode = "global"
	}
	w, _ := s.der.workers.Get().(*generate.Worker)
	if w == nil {
		w = generate.NewWorkerFor(s.cat.Source)
	}
	defer s.der.workers.Put(w)
	st, err := s.stretch(ctx, w, z)
	return st, mode, err
}
