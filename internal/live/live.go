// Package live keeps the store of a long-running front end (mount, serve)
// current with its tiles: Refresh discovers them again and, when the tile
// set changed (tiles added, removed, or replaced as discovery sees them),
// swaps in a new store over the same cache. Readers see one store or the
// other, never a mix: every method asks the current store, and a front end
// that must answer from one store for a whole request takes a Snapshot.
package live

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/httpserve"
	"github.com/tesserafs/tesserafs/internal/store"
)

// Store is a store that can be replaced by a newer one of the same tiles
// root. Safe for concurrent use.
type Store struct {
	open func(ctx context.Context) (*store.Store, error)
	log  *slog.Logger

	mu     sync.Mutex  // one refresh at a time; guards onSwap and past
	past   store.Stats // of the stores swapped out
	cur    atomic.Pointer[store.Store]
	gen    atomic.Uint64
	onSwap []func(old, now *store.Store)
}

// New returns a live store serving st; open discovers the tiles again and
// opens a store over them (as st was opened).
func New(st *store.Store, open func(ctx context.Context) (*store.Store, error), log *slog.Logger) *Store {
	if log == nil {
		log = slog.Default()
	}
	l := &Store{open: open, log: log}
	l.cur.Store(st)
	l.gen.Store(1)
	return l
}

// Current is the store in use now.
func (l *Store) Current() *store.Store { return l.cur.Load() }

// Generation counts the stores served: 1, then one more per swap.
func (l *Store) Generation() uint64 { return l.gen.Load() }

// OnSwap registers fn, called after each swap (before Refresh returns).
func (l *Store) OnSwap(fn func(old, now *store.Store)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onSwap = append(l.onSwap, fn)
}

// Stats are the counters of every store served so far.
func (l *Store) Stats() store.Stats {
	l.mu.Lock()
	s := l.past
	l.mu.Unlock()
	c := l.Current().Stats()
	s.Generated += c.Generated
	s.CacheHits += c.CacheHits
	s.Bytes += c.Bytes
	s.Probed += c.Probed
	s.PeakGenerating = max(s.PeakGenerating, c.PeakGenerating)
	return s
}

// Change is what a refresh found.
type Change struct {
	Added, Removed, Replaced int
}

// Changed reports whether any tile changed.
func (c Change) Changed() bool { return c.Added+c.Removed+c.Replaced > 0 }

func (c Change) String() string {
	return fmt.Sprintf("%d tile(s) added, %d removed, %d replaced", c.Added, c.Removed, c.Replaced)
}

// Refresh discovers the tiles again; if they changed it swaps in the new
// store and calls the OnSwap functions. A failed discovery (the registry
// unreachable) keeps the current store and returns the error.
func (l *Store) Refresh(ctx context.Context) (Change, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now, err := l.open(ctx)
	if err != nil {
		return Change{}, err
	}
	old := l.cur.Load()
	ch := Diff(old.Catalogue(), now.Catalogue())
	if !ch.Changed() && old.Fingerprint() == now.Fingerprint() {
		return ch, nil
	}
	ps := old.Stats()
	l.past.Generated += ps.Generated
	l.past.CacheHits += ps.CacheHits
	l.past.Bytes += ps.Bytes
	l.past.Probed += ps.Probed
	l.past.PeakGenerating = max(l.past.PeakGenerating, ps.PeakGenerating)
	l.cur.Store(now)
	l.gen.Add(1)
	for _, fn := range l.onSwap {
		fn(old, now)
	}
	return ch, nil
}

// Diff counts the tiles added, removed and replaced (a different
// index.Tile.Identity) from a to b.
func Diff(a, b *index.Catalogue) Change {
	// One entry per tile: its year and coordinates and a hash of its
	// identity, not the identity's text (a million tiles are then two maps
	// of some 70 MB for the length of a refresh, not several hundred).
	type tileKey struct {
		year  int
		coord index.TileCoord
	}
	ids := func(c *index.Catalogue) map[tileKey][sha256.Size]byte {
		m := map[tileKey][sha256.Size]byte{}
		h := sha256.New()
		for _, y := range c.Years {
			for _, z := range y.Zones {
				for _, p := range z.Placements {
					h.Reset()
					p.Tile.Identity(h)
					var sum [sha256.Size]byte
					h.Sum(sum[:0])
					m[tileKey{y.Year, p.Tile.Coord}] = sum
				}
			}
		}
		return m
	}
	was, is := ids(a), ids(b)
	var ch Change
	for k, v := range is {
		if old, ok := was[k]; !ok {
			ch.Added++
		} else if old != v {
			ch.Replaced++
		}
	}
	for k := range was {
		if _, ok := is[k]; !ok {
			ch.Removed++
		}
	}
	return ch
}

// Run refreshes every interval (never when 0) and whenever kick receives,
// until ctx ends, logging what changed.
func (l *Store) Run(ctx context.Context, interval time.Duration, kick <-chan struct{}) {
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		case <-kick:
		}
		start := time.Now()
		ch, err := l.Refresh(ctx)
		switch {
		case err != nil:
			l.log.Warn("refresh failed: serving the tiles as they were", "err", err)
		case ch.Changed():
			l.log.Info("refreshed: the tiles changed; serving the new store", "change", ch.String(), "generation", l.Generation(), "took", time.Since(start).Round(time.Millisecond))
		default:
			l.log.Info("refreshed: no change", "took", time.Since(start).Round(time.Millisecond))
		}
	}
}

// The methods of the front ends' trees (fusefs.Tree, httpserve.Tree), each
// asking the current store.

func (l *Store) Stat(ctx context.Context, key string) (fs.FileInfo, error) {
	return l.Current().Stat(ctx, key)
}
func (l *Store) ReadDir(ctx context.Context, key string) ([]fs.DirEntry, error) {
	return l.Current().ReadDir(ctx, key)
}
func (l *Store) Get(ctx context.Context, key string) ([]byte, error) {
	return l.Current().Get(ctx, key)
}
func (l *Store) ModTime() time.Time  { return l.Current().ModTime() }
func (l *Store) Fingerprint() string { return l.Current().Fingerprint() }
func (l *Store) PinCached(key string, off int64, n int) ([][]byte, func(), bool) {
	return l.Current().PinCached(key, off, n)
}
func (l *Store) OpenCached(key string) (io.ReaderAt, int64, bool) {
	return l.Current().OpenCached(key)
}

// Snapshot is the current store, for a front end that answers a whole
// request from one store (httpserve.Snapshotter).
func (l *Store) Snapshot() httpserve.Tree { return l.Current() }
