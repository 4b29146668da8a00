package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
)

// This file is the fetch path of the chunks made from source files alone
// (embeddings, scales, coordinates), and the fingerprint every cached
// chunk is keyed by.

// cached says whether chunk r (key) goes through the cache, and under
// which fingerprint: only with a cache, and only chunks made from source
// files (the others are cheap to compute: not worth a cache entry).
func (s *Store) cached(key string, r resolved) (fp []byte, ok bool) {
	if s.opts.Cache == nil {
		return nil, false
	}
	if fp, ok := s.fps.get(key); ok {
		return fp, fp != nil
	}
	in := r.arr.chunks.Inputs(r.coords)
	if in == nil {
		s.fps.put(key, nil)
		return nil, false
	}
	for _, f := range in {
		if f.Size < 0 {
			// A tile that failed its check (generate.TileInputs): no
			// fingerprint, and none remembered, since a source that was
			// unavailable may be back at the next read.
			return nil, false
		}
	}
	fp = fingerprint(key, in)
	s.fps.put(key, fp)
	return fp, true
}

// fpMemo remembers the fingerprints of chunks, which are asked for on
// every read of a cached chunk (hashing the inputs of every tile the chunk
// touches, and checking them). A fingerprint is fixed for the store's
// lifetime: the inputs are the catalogue's, and only a tile that passed
// its check gives them (one that failed, perhaps transiently, gives no
// fingerprint and none is remembered). Bounded: when full, an arbitrary
// entry goes.
type fpMemo struct {
	mu sync.Mutex
	m  map[string][]byte // key → fingerprint; nil: not cached
}

// fpMemoMax bounds the memo: about 150 bytes an entry.
const fpMemoMax = 1 << 16

func (f *fpMemo) get(key string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fp, ok := f.m[key]
	return fp, ok
}

func (f *fpMemo) put(key string, fp []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string][]byte{}
	}
	if len(f.m) >= fpMemoMax {
		for k := range f.m {
			delete(f.m, k)
			break
		}
	}
	f.m[key] = fp
}

// fingerprint identifies a chunk's content: the format version, its key,
// and the path, size and modification time of every input file.
func fingerprint(key string, inputs []index.FileStamp) []byte {
	h := sha256.New()
	var n [8]byte
	put := func(s string) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	put(FormatVersion)
	put(key)
	for _, in := range inputs {
		put(in.Path)
		binary.LittleEndian.PutUint64(n[:], uint64(in.Size))
		h.Write(n[:])
		binary.LittleEndian.PutUint64(n[:], uint64(in.ModTime.UnixNano()))
		h.Write(n[:])
		// A remote input's ETag and known sha256: a replaced remote tile
		// is regenerated even when its size and time look the same.
		put(in.ETag)
		put(in.SHA256)
	}
	return h.Sum(nil)
}

// chunk returns a chunk's bytes: from the cache, or generated once however
// many callers ask for it at the same time, on a worker of the pool.
// Derived chunks take the derived path (derived.go).
func (s *Store) chunk(ctx context.Context, key string, r resolved) ([]byte, error) {
	src := r.arr.chunks
	if _, ok := src.(derivedSource); ok {
		return s.derived(ctx, key, r, fingerprint(key, src.Inputs(r.coords)), true)
	}
	var cache Cache
	fp, useCache := s.cached(key, r)
	if useCache {
		cache = s.opts.Cache
	}
	if cache != nil {
		if b, ok := cache.Get(key, fp); ok {
			s.hits.Add(1)
			return b, nil
		}
	}
	ch := s.flight.DoChan(key, func() (any, error) {
		if cache != nil {
			if b, ok := cache.Get(key, fp); ok { // made while we waited
				s.hits.Add(1)
				return b, nil
			}
		}
		// The generation outlives a cancelled caller: others may wait on it.
		gctx := context.WithoutCancel(ctx)
		w := <-s.workers
		defer func() { s.workers <- w }()
		if w == nil {
			w = generate.NewWorkerFor(s.cat.Source)
		}
		done := s.startGenerating()
		b, err := src.Generate(gctx, w, r.coords)
		done()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		if b == nil {
			return nil, fmt.Errorf("%s: listed but has no data: %w", key, ErrNotFound)
		}
		s.generated.Add(1)
		s.bytes.Add(int64(len(b)))
		if cache != nil {
			cache.Put(key, fp, b)
		}
		return b, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.([]byte), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// startGenerating counts a generation running on the pool, and returns
// the function that ends it.
func (s *Store) startGenerating() (done func()) {
	n := s.generating.Add(1)
	for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
	}
	return func() { s.generating.Add(-1) }
}
