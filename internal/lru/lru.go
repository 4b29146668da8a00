// Package lru is the one least-recently-used index of the project: a map
// whose entries carry a size and keep their order of use, so that a cache
// can drop its oldest entries when over a budget. The chunk cache, the
// in-memory chunk cache, the landmask cache and the remote block cache all
// keep their entries in one; each decides its own budget and what an
// eviction means (Trim, or RemoveOldest in a loop).
//
// An LRU is not safe for concurrent use: its users keep more state beside
// it (entries being filled, bytes reserved) under their own lock.
package lru

import (
	"container/list"
	"iter"
)

// LRU is a size-weighted least-recently-used map. The zero value is not
// usable; call New.
type LRU[K comparable, V any] struct {
	ll   list.List // of *item[K, V], most recently used first
	m    map[K]*list.Element
	size int64
}

type item[K comparable, V any] struct {
	key  K
	val  V
	size int64
}

// New returns an empty LRU.
func New[K comparable, V any]() *LRU[K, V] {
	return &LRU[K, V]{m: map[K]*list.Element{}}
}

// Get returns k's value and marks it as the most recently used.
func (l *LRU[K, V]) Get(k K) (V, bool) {
	el, ok := l.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	l.ll.MoveToFront(el)
	return el.Value.(*item[K, V]).val, true
}

// Peek returns k's value without changing the order.
func (l *LRU[K, V]) Peek(k K) (V, bool) {
	el, ok := l.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	return el.Value.(*item[K, V]).val, true
}

// Add sets k to v, of the given size, as the most recently used entry,
// replacing an entry k had.
func (l *LRU[K, V]) Add(k K, v V, size int64) {
	if el, ok := l.m[k]; ok {
		it := el.Value.(*item[K, V])
		l.size += size - it.size
		it.val, it.size = v, size
		l.ll.MoveToFront(el)
		return
	}
	l.m[k] = l.ll.PushFront(&item[K, V]{key: k, val: v, size: size})
	l.size += size
}

// Remove deletes k, returning the value it had.
func (l *LRU[K, V]) Remove(k K) (V, bool) {
	el, ok := l.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	return l.remove(el).val, true
}

func (l *LRU[K, V]) remove(el *list.Element) *item[K, V] {
	it := l.ll.Remove(el).(*item[K, V])
	delete(l.m, it.key)
	l.size -= it.size
	return it
}

// Oldest returns the least recently used entry.
func (l *LRU[K, V]) Oldest() (K, V, bool) {
	el := l.ll.Back()
	if el == nil {
		var k K
		var v V
		return k, v, false
	}
	it := el.Value.(*item[K, V])
	return it.key, it.val, true
}

// RemoveOldest deletes and returns the least recently used entry.
func (l *LRU[K, V]) RemoveOldest() (K, V, bool) {
	el := l.ll.Back()
	if el == nil {
		var k K
		var v V
		return k, v, false
	}
	it := l.remove(el)
	return it.key, it.val, true
}

// Trim removes least recently used entries while the total size is over
// budget and more than keep entries are left, calling evicted (if not
// nil) with each. An entry that canEvict (if not nil) refuses stops the
// trim: it and the newer ones stay.
func (l *LRU[K, V]) Trim(budget int64, keep int, canEvict func(K, V) bool, evicted func(K, V)) {
	for l.size > budget && l.ll.Len() > keep {
		it := l.ll.Back().Value.(*item[K, V])
		if canEvict != nil && !canEvict(it.key, it.val) {
			return
		}
		l.remove(l.ll.Back())
		if evicted != nil {
			evicted(it.key, it.val)
		}
	}
}

// Len is the number of entries.
func (l *LRU[K, V]) Len() int { return l.ll.Len() }

// Size is the sum of the entries' sizes.
func (l *LRU[K, V]) Size() int64 { return l.size }

// Clear removes every entry.
func (l *LRU[K, V]) Clear() {
	l.ll.Init()
	clear(l.m)
	l.size = 0
}

// All yields the entries, most recently used first. The LRU must not be
// changed during the iteration.
func (l *LRU[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		for el := l.ll.Front(); el != nil; el = el.Next() {
			it := el.Value.(*item[K, V])
			if !yield(it.key, it.val) {
				return
			}
		}
	}
}
