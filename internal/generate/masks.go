package generate

import (
	"container/list"
	"fmt"
	"log/slog"
	"sync"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/landmask"
)

// Masks decodes tile landmasks and keeps the most recently used ones, up to
// a byte budget, because every tile is cut into some twenty shards and each
// of them needs the tile's whole mask. Safe for concurrent use.
//
// A missing or unreadable landmask means "all land" plus one warning per
// tile (spec §1): Mask then returns nil.
type Masks struct {
	budget int64
	warn   func(index.Problem)

	mu     sync.Mutex // guards everything below
	used   int64
	lru    *list.List // of *maskEntry, front = most recent
	byKey  map[string]*list.Element
	warned map[string]bool
}

type maskEntry struct {
	path  string
	pix   []uint8 // nil: all land
	ready chan struct{}
	err   error
}

// NewMasks returns a mask cache holding at most budget bytes of decoded
// masks. warn receives one Problem per unreadable landmask.
func NewMasks(budget int64, warn func(index.Problem)) *Masks {
	if warn == nil {
		warn = func(p index.Problem) { slog.Warn("landmask", "path", p.Path, "reason", p.Reason) }
	}
	return &Masks{budget: budget, warn: warn, lru: list.New(), byKey: map[string]*list.Element{}, warned: map[string]bool{}}
}

// Mask returns the tile's landmask as H·W bytes (0 = water), or nil when
// the tile has no usable landmask (all land).
func (m *Masks) Mask(t *index.Tile) []uint8 {
	if t.Landmask == "" {
		return nil
	}
	m.mu.Lock()
	if el, ok := m.byKey[t.Landmask]; ok {
		m.lru.MoveToFront(el)
		e := el.Value.(*maskEntry)
		m.mu.Unlock()
		<-e.ready
		return e.pix
	}
	e := &maskEntry{path: t.Landmask, ready: make(chan struct{})}
	m.byKey[t.Landmask] = m.lru.PushFront(e)
	m.mu.Unlock()

	pix, err := landmask.Read(t.Landmask, t.W, t.H)
	if err != nil {
		pix = nil
	}
	e.pix = pix
	close(e.ready)

	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil && !m.warned[t.Landmask] {
		m.warned[t.Landmask] = true
		m.warn(index.Problem{Path: t.Landmask, Reason: fmt.Sprintf("unreadable landmask, tile %s treated as all land: %v", t.Coord, err)})
	}
	m.used += int64(len(pix))
	for m.used > m.budget && m.lru.Len() > 1 {
		old := m.lru.Back()
		oe := old.Value.(*maskEntry)
		select {
		case <-oe.ready:
		default:
			return pix // still being decoded by another worker; leave it
		}
		m.lru.Remove(old)
		delete(m.byKey, oe.path)
		m.used -= int64(len(oe.pix))
	}
	return pix
}
