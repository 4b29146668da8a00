package store

import (
	"context"
	"fmt"
	"sync"

	"github.com/tesserafs/tesserafs/internal/generate"
)

// Derived chunks (spec §4 rgb, §5 global_rgb) are computed from other
// chunks: a zone's rgb shards need the zone's stretch, a global_rgb level-0
// chunk needs zone rgb shards, a level-l chunk the four level-(l−1) chunks
// below it. Every derived chunk, whether a reader asked for it or another
// chunk needs it, is fetched by Store.derived, which
//
//   - looks in a bounded in-memory cache of derived chunks, then the
//     store's Cache, then Options.ReadThrough (the materializer's output),
//     so a zoomed-out view is cheap once the level below is computed, and a
//     store without a Cache does not recompute a pyramid recursively;
//   - generates what is missing once per key at a time, in the store's one
//     single-flight group, with the fingerprint the caller computed passed
//     along (never recomputed, never carried in a context value);
//   - takes a slot of the worker pool for a chunk a reader asked for, but
//     never for a dependency. A generation may wait for its dependencies,
//     and a dependency never waits for the pool, so the pool cannot
//     deadlock however many chunks wait on each other (the dependency graph
//     has no cycles). The slot is taken before joining the flight, so a
//     goroutine running a flight never waits for one.

// derivedBudget bounds the in-memory cache of derived chunks.
const derivedBudget = 64 << 20

// derivedSource marks the chunk sources whose chunks are derived from
// other chunks (rgbSource, globalSource).
type derivedSource interface {
	ChunkSource
	derived()
}

// derivedEngine is a Store's state for derived chunks.
type derivedEngine struct {
	mem     *MemCache
	workers sync.Pool // *generate.Worker for derived generations
	scratch sync.Pool // *generate.GlobalScratch
}

func newDerivedEngine() *derivedEngine {
	return &derivedEngine{mem: NewMemCache(derivedBudget)}
}

// derived returns the bytes of derived chunk r (key), whose fingerprint is
// fp. bounded is true for a chunk a reader asked for (it takes a pool
// slot, and a chunk listed without data is an error) and false for a
// dependency of another chunk (nil for a chunk without data: all fill).
func (s *Store) derived(ctx context.Context, key string, r resolved, fp []byte, bounded bool) ([]byte, error) {
	d := s.der
	if b, ok := d.mem.Get(key, fp); ok {
		return b, nil
	}
	if c := s.opts.Cache; c != nil {
		if b, ok := c.Get(key, fp); ok {
			s.hits.Add(1)
			d.mem.Put(key, fp, b)
			return b, nil
		}
	}
	if rt := s.opts.ReadThrough; rt != nil {
		if b, ok := rt.Get(key, fp); ok {
			d.mem.Put(key, fp, b)
			return b, nil
		}
	}
	if bounded {
		select {
		case w := <-s.workers:
			defer func() { s.workers <- w }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	ch := s.flight.DoChan(key, func() (any, error) {
		if b, ok := d.mem.Get(key, fp); ok { // made while we waited
			return b, nil
		}
		w, _ := d.workers.Get().(*generate.Worker)
		if w == nil {
			w = generate.NewWorkerFor(s.cat.Source)
		}
		defer d.workers.Put(w)
		if bounded {
			defer s.startGenerating()()
		}
		// The generation outlives a cancelled caller: others may wait on it.
		b, err := r.arr.chunks.Generate(context.WithoutCancel(ctx), w, r.coords)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		if b == nil {
			return []byte(nil), nil
		}
		s.generated.Add(1)
		s.bytes.Add(int64(len(b)))
		d.mem.Put(key, fp, b)
		if c := s.opts.Cache; c != nil {
			c.Put(key, fp, b)
		}
		return b, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		b := res.Val.([]byte)
		if b == nil && bounded {
			return nil, fmt.Errorf("%s: listed but has no data: %w", key, ErrNotFound)
		}
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// dep returns the bytes of a chunk another chunk is computed from, or nil
// for a key that does not exist (an absent shard or chunk is all fill).
func (s *Store) dep(ctx context.Context, key string) ([]byte, error) {
	r, ok := s.resolve(key)
	if !ok || r.arr == nil || len(r.coords) != r.arr.chunks.Dims() {
		return nil, nil
	}
	if _, ok := r.arr.chunks.(derivedSource); !ok {
		return nil, fmt.Errorf("%s: not a derived chunk", key)
	}
	return s.derived(ctx, key, r, fingerprint(key, r.arr.chunks.Inputs(r.coords)), false)
}
