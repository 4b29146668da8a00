package generate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/landmask"
	"github.com/tesserafs/tesserafs/internal/lru"
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

	mu      sync.Mutex                // guards everything below
	decoded *lru.LRU[string, []uint8] // by path; nil pixels: all land
	pending map[string]*maskEntry     // masks being read, by path
	warned  map[string]bool
}

// maskEntry is a mask being read; its waiters take pix and err once ready
// is closed.
type maskEntry struct {
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
	return &Masks{src: src, budget: budget, warn: warn, decoded: lru.New[string, []uint8](), pending: map[string]*maskEntry{}, warned: map[string]bool{}}
}

// fetchError is a remote landmask that could not be fetched (after
// retries) or failed its integrity checks: unlike a mask that is missing
// or undecodable, it must not be taken for "all land".
type fetchError struct{ err error }

func (e fetchError) Error() string { return e.err.Error() }
func (e fetchError) Unwrap() error { return e.err }

// MaskErr returns the tile's landmask as H·W bytes (0 = water), or nil
// when the tile has no usable landmask (all land); a remote landmask that
// could not be fetched is an error (the shards that need it fail, and a
// later read tries again) rather than "all land".
func (m *Masks) MaskErr(ctx context.Context, t *index.Tile) ([]uint8, error) {
	path := t.LandmaskPath()
	if path == "" {
		return nil, nil
	}
	m.mu.Lock()
	if pix, ok := m.decoded.Get(path); ok {
		m.mu.Unlock()
		return pix, nil
	}
	if e, ok := m.pending[path]; ok {
		m.mu.Unlock()
		<-e.ready
		return e.pix, e.err
	}
	e := &maskEntry{ready: make(chan struct{})}
	m.pending[path] = e
	m.mu.Unlock()

	pix, err := m.read(ctx, t, path)
	if err != nil {
		pix = nil
	}
	var fe fetchError
	if errors.As(err, &fe) {
		e.err = &index.TileReadError{Coord: t.Coord, Err: err}
		m.mu.Lock()
		delete(m.pending, path) // not kept: a later read tries again
		m.mu.Unlock()
		close(e.ready)
		return nil, e.err
	}
	e.pix = pix

	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.pending, path)
	close(e.ready)
	if err != nil && !m.warned[path] {
		m.warned[path] = true
		m.warn(index.Problem{Path: path, Reason: fmt.Sprintf("unreadable landmask, tile %s treated as all land: %v", t.Coord, err)})
	}
	m.decoded.Add(path, pix, int64(len(pix)))
	m.decoded.Trim(m.budget, 1, nil, nil)
	return pix, nil
}

// read decodes t's landmask from the source.
func (m *Masks) read(ctx context.Context, t *index.Tile, path string) ([]uint8, error) {
	if _, local := m.src.(index.DirSource); local {
		return landmask.Read(path, t.W, t.H)
	}
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
