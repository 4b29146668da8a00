package store

import (
	"bytes"
	"container/list"
	"sync"
)

// MemCache is an in-memory Cache of recently used chunks up to a byte
// budget: enough for the Stat-then-read pattern of a single process.
type MemCache struct {
	budget int64

	mu    sync.Mutex // guards the fields below
	used  int64
	lru   *list.List // of *memEntry, front = most recent
	byKey map[string]*list.Element
}

type memEntry struct {
	key  string
	fp   []byte
	data []byte
}

// NewMemCache returns a cache holding at most budget bytes.
func NewMemCache(budget int64) *MemCache {
	return &MemCache{budget: budget, lru: list.New(), byKey: map[string]*list.Element{}}
}

func (m *MemCache) lookup(key string, fp []byte) *memEntry {
	el, ok := m.byKey[key]
	if !ok {
		return nil
	}
	e := el.Value.(*memEntry)
	if !bytes.Equal(e.fp, fp) {
		return nil
	}
	m.lru.MoveToFront(el)
	return e
}

// Get implements Cache.
func (m *MemCache) Get(key string, fp []byte) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.lookup(key, fp); e != nil {
		return e.data, true
	}
	return nil, false
}

// Size implements Cache.
func (m *MemCache) Size(key string, fp []byte) (int64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.lookup(key, fp); e != nil {
		return int64(len(e.data)), true
	}
	return 0, false
}

// Put implements Cache.
func (m *MemCache) Put(key string, fp []byte, data []byte) {
	if int64(len(data)) > m.budget {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.byKey[key]; ok {
		old := el.Value.(*memEntry)
		m.used -= int64(len(old.data))
		m.lru.Remove(el)
	}
	m.byKey[key] = m.lru.PushFront(&memEntry{key: key, fp: fp, data: data})
	m.used += int64(len(data))
	for m.used > m.budget {
		el := m.lru.Back()
		e := el.Value.(*memEntry)
		m.lru.Remove(el)
		delete(m.byKey, e.key)
		m.used -= int64(len(e.data))
	}
}
