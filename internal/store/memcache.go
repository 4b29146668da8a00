package store

import (
	"bytes"
	"sync"

	"github.com/tesserafs/tesserafs/internal/lru"
)

// MemCache is an in-memory Cache of recently used chunks up to a byte
// budget: enough for the Stat-then-read pattern of a single process.
type MemCache struct {
	budget int64

	mu  sync.Mutex // guards lru
	lru *lru.LRU[string, memEntry]
}

type memEntry struct {
	fp   []byte
	data []byte
}

// NewMemCache returns a cache holding at most budget bytes.
func NewMemCache(budget int64) *MemCache {
	return &MemCache{budget: budget, lru: lru.New[string, memEntry]()}
}

func (m *MemCache) lookup(key string, fp []byte) (memEntry, bool) {
	e, ok := m.lru.Get(key)
	return e, ok && bytes.Equal(e.fp, fp)
}

// Get implements Cache.
func (m *MemCache) Get(key string, fp []byte) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.lookup(key, fp)
	return e.data, ok
}

// Size implements Cache.
func (m *MemCache) Size(key string, fp []byte) (int64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.lookup(key, fp)
	return int64(len(e.data)), ok
}

// Put implements Cache.
func (m *MemCache) Put(key string, fp []byte, data []byte) {
	if int64(len(data)) > m.budget {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lru.Add(key, memEntry{fp: fp, data: data}, int64(len(data)))
	m.lru.Trim(m.budget, 0, nil, nil)
}
