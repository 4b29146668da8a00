package generate

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"fmt"
	"io/fs"
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
	src    index.Source
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
	return NewMasksFor(nil, budget, warn)
}

// NewMasksFor is NewMasks for the landmasks of src (nil: local paths). A
// remote landmask is fetched whole (checked against its indexed size, and
// sha256 when known) and decoded from memory.
func NewMasksFor(src index.Source, budget int64, warn func(index.Problem)) *Masks {
	if src == nil {
		src = index.DirSource{}
	}
	if warn == nil {
		warn = func(p index.Problem) { slog.Warn("landmask", "path", p.Path, "reason", p.Reason) }
	}
	return &Masks{src: src, budget: budget, warn: warn, lru: list.New(), byKey: map[string]*list.Element{}, warned: map[string]bool{}}
}

// Mask returns the tile's landmask as H·W bytes (0 = water), or nil when
// the tile has no usable landmask (all land).
func (m *Masks) Mask(t *index.Tile) []uint8 {
	pix, _ := m.MaskErr(t)
	return pix
}

// fetchError is a remote landmask that could not be fetched (after
// retries) or failed its integrity checks: unlike a mask that is missing
// or undecodable, it must not be taken for "all land".
type fetchError struct{ err error }

func (e fetchError) Error() string { return e.err.Error() }
func (e fetchError) Unwrap() error { return e.err }

// MaskErr is Mask, but a remote landmask that could not be fetched is an
// error (the shards that need it fail, and a later read tries again)
// rather than "all land".
func (m *Masks) MaskErr(t *index.Tile) ([]uint8, error) {
	path := t.LandmaskPath()
	if path == "" {
		return nil, nil
	}
	m.mu.Lock()
	if el, ok := m.byKey[path]; ok {
		m.lru.MoveToFront(el)
		e := el.Value.(*maskEntry)
		m.mu.Unlock()
		<-e.ready
		return e.pix, e.err
	}
	e := &maskEntry{path: path, ready: make(chan struct{})}
	el := m.lru.PushFront(e)
	m.byKey[path] = el
	m.mu.Unlock()

	pix, err := m.read(t, path)
	if err != nil {
		pix = nil
	}
	var fe fetchError
	if errors.As(err, &fe) {
		e.err = &index.TileReadError{Coord: t.Coord, Err: err}
		close(e.ready)
		m.mu.Lock()
		m.lru.Remove(el)
		delete(m.byKey, path)
		m.mu.Unlock()
		return nil, e.err
	}
	e.pix = pix
	close(e.ready)

	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil && !m.warned[path] {
		m.warned[path] = true
		m.warn(index.Problem{Path: path, Reason: fmt.Sprintf("unreadable landmask, tile %s treated as all land: %v", t.Coord, err)})
	}
	m.used += int64(len(pix))
	for m.used > m.budget && m.lru.Len() > 1 {
		old := m.lru.Back()
		oe := old.Value.(*maskEntry)
		select {
		case <-oe.ready:
		default:
			return pix, nil // still being decoded by another worker; leave it
		}
		m.lru.Remove(old)
		delete(m.byKey, oe.path)
		m.used -= int64(len(oe.pix))
	}
	return pix, nil
}

// read decodes t's landmask from the source.
func (m *Masks) read(t *index.Tile, path string) ([]uint8, error) {
	if _, local := m.src.(index.DirSource); local {
		return landmask.Read(path, t.W, t.H)
	}
	ctx := context.Background()
	want := index.FileStamp{Path: path, Size: -1}
	for _, s := range t.Inputs {
		if s.Path == path {
			want = s
		}
	}
	var f index.SourceFile
	var err error
	if want.Size < 0 {
		f, err = m.src.Open(ctx, path)
	} else {
		f, err = index.OpenStamp(ctx, m.src, want)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("landmask: %w", err)
	}
	if err != nil {
		return nil, fetchError{fmt.Errorf("landmask: %w", err)}
	}
	defer f.Close()
	// One read of the whole file: one request, and the sha256 check.
	buf := make([]byte, f.Stamp().Size)
	if n, err := f.ReadAt(buf, 0); n < len(buf) {
		return nil, fetchError{fmt.Errorf("landmask %s: %w", path, err)}
	}
	pix, err := landmask.Decode(bytes.NewReader(buf), t.W, t.H)
	if err != nil {
		return nil, fmt.Errorf("landmask %s: %w", path, err)
	}
	return pix, nil
}
