package cache

// Lock order: maintMu → clearMu → wmu → mu. maintMu serializes
// maintenance rounds (and Clear, Close); clearMu excludes badger reads
// from DropAll; wmu excludes writes from DropPrefix (badger refuses
// writes while it drops) and from value-log GC; mu guards the in-memory index and counters and
// is never held across a badger call.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/tesserafs/tesserafs/internal/lru"
)

// Format is written into a new database; a database of another format is
// emptied at open.
const Format = "tesserafs-cache-1"

// DefaultBudget is the budget when Options.Budget is zero.
const DefaultBudget = 20 << 30

// MinBudget is the smallest budget accepted: badger's own files need a few
// MiB whatever the budget.
const MinBudget = 32 << 20

// StatsFile is written into the cache directory at every flush, so that
// `tesserafs cache stats` can report on a cache that a mount holds open.
const StatsFile = "tesserafs-cache-stats.json"

// ErrLocked is returned by Open when another process has the cache open.
var ErrLocked = errors.New("cache directory is in use by another process")

// Options configure a Cache.
type Options struct {
	// Budget bounds the disk space of the directory: live entries are
	// kept below it by the headroom that not-yet-reclaimed value-log space
	// needs, so the directory stays within Budget + 10 %. At least
	// MinBudget. A cache remembers its budget: zero means the one it was
	// last opened with, or DefaultBudget for a new cache.
	Budget int64
	// MaintainInterval is how often evicted space is reclaimed and the
	// access order is persisted; default 5 s. Evictions also start a round
	// at once when enough space awaits reclaiming.
	MaintainInterval time.Duration
	Logger           *slog.Logger
}

// Stats describe a cache.
type Stats struct {
	Entries int64 `json:"entries"`
	Bytes   int64 `json:"bytes"` // bytes of live entries
	Budget  int64 `json:"budget"`
	// Hits and Misses count Get, Pin and ReadAt calls (a mount reads in
	// requests of up to 1 MiB: one per request) since the cache was
	// created or cleared.
	Hits      int64 `json:"hits"`
	Misses    int64 `json:"misses"`
	Evictions int64 `json:"evictions"`
	// Disk is what the directory uses on disk, measured.
	Disk int64 `json:"disk"`
	// Written is when these stats were taken (set in the stats file).
	Written time.Time `json:"written,omitzero"`
	// Source is what the remote tiles source of the process holding the
	// cache has done, when it reads remote tiles (see SetSourceStats).
	Source *SourceStats `json:"source,omitempty"`
}

// SourceStats count the requests of a remote tiles source, for the stats
// file: the cache does not read tiles, it reports on behalf of the mount.
type SourceStats struct {
	Requests     int64 `json:"requests"`      // ranged GETs, retries included
	Retries      int64 `json:"retries"`       // of which retries
	BytesFetched int64 `json:"bytes_fetched"` // body bytes received
	BlockHits    int64 `json:"block_hits"`    // blocks served from the source's block cache
	BlockMisses  int64 `json:"block_misses"`  // blocks fetched
	BlockBytes   int64 `json:"block_bytes"`   // bytes in the block cache
	BlockLimit   int64 `json:"block_limit"`   // its bound
	Failures     int64 `json:"failures"`      // reads that failed after retries or checks
}

// SetSourceStats makes Stats (and the stats file) include what f returns:
// a mount over remote tiles reports its source's counters here.
func (c *Cache) SetSourceStats(f func() SourceStats) { c.sourceStats.Store(&f) }

// HitRate is Hits / (Hits + Misses), or 0 before any lookup.
func (s Stats) HitRate() float64 {
	if s.Hits+s.Misses == 0 {
		return 0
	}
	return float64(s.Hits) / float64(s.Hits+s.Misses)
}

// Cache is a content cache in a badger database, bounded by a byte
// budget. It implements store.Cache and is safe for concurrent use.
type Cache struct {
	dir  string
	db   *badger.DB
	lock *os.File // holds LockName's flock while open
	log  *slog.Logger
	opts Options

	sourceStats atomic.Pointer[func() SourceStats]

	// Sizes derived from the budget; see sizes.
	liveCap   int64 // live entries never exceed this
	reclaimAt int64 // evicted bytes that start a maintenance round
	waitAbove int64 // evicted bytes above which Put waits for a round
	pieceSize int64 // values are written in pieces of at most this

	maintMu sync.Mutex   // serializes maintain, Clear, Close
	clearMu sync.RWMutex // R: badger reads; W: DropAll, Close
	wmu     sync.RWMutex // R: badger writes; W: DropPrefix, value-log GC, DropAll, Close

	mu        sync.Mutex               // guards everything below
	cond      *sync.Cond               // on mu: a maintenance round ended
	entries   *lru.LRU[string, *entry] // by id, most recently read first; its Size is the live bytes
	reserved  int64                    // bytes of Puts being written
	writing   map[string]bool
	pending   map[string]int64 // evicted ids awaiting DropPrefix → size
	garbage   int64            // bytes evicted but not yet reclaimed
	seq       uint64           // access sequence, increasing
	evictions int64
	closed    bool

	hits, misses atomic.Int64
	baseHits     int64 // counters persisted by earlier sessions
	baseMisses   int64

	kick chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
}

// entry is one cached value in the in-memory index.
type entry struct {
	id     string // key, 0, len(fp), fp
	size   int64
	pieces uint32
	seq    uint64 // last access
	saved  uint64 // access sequence persisted in the index record
}

// Key layout in badger.
const (
	formatKey   = "v"
	countersKey = "s"
	metaPrefix  = "m/" // + id → size u64, seq u64, pieces u32
	dataPrefix  = "d/" // + id + piece u32 → bytes
	metaLen     = 20
)

func entryID(key string, fp []byte) string {
	b := make([]byte, 0, len(key)+2+len(fp))
	b = append(b, key...)
	b = append(b, 0, byte(len(fp)))
	b = append(b, fp...)
	return string(b)
}

// idKey is the cache key an id was made from, for messages.
func idKey(id string) string {
	if i := strings.IndexByte(id, 0); i >= 0 {
		return id[:i]
	}
	return id
}

func metaKey(id string) []byte { return append([]byte(metaPrefix), id...) }

func dataKey(id string, piece uint32) []byte {
	b := append([]byte(dataPrefix), id...)
	return binary.BigEndian.AppendUint32(b, piece)
}

func encodeMeta(size int64, seq uint64, pieces uint32) []byte {
	b := make([]byte, metaLen)
	binary.LittleEndian.PutUint64(b[0:], uint64(size))
	binary.LittleEndian.PutUint64(b[8:], seq)
	binary.LittleEndian.PutUint32(b[16:], pieces)
	return b
}

// sizes derives the badger and eviction sizes from a budget.
//
// The disk use of the directory is live entries + evicted entries not yet
// dropped (≤ waitAbove plus one eviction) + value-log files' garbage that
// GC leaves (each closed file keeps < gcRatio of garbage, the active file
// at most one file) + badger's small files. Live entries are capped so
// that the sum stays within budget + 10 %.
type sizes struct {
	vlogFile, memTable, blockCache          int64
	liveCap, reclaimAt, waitAbove, pieceMax int64
}

const (
	gcRatio  = 0.1
	overhead = 4 << 20 // LSM tables, memtable log, DISCARD, MANIFEST
)

func sizesFor(budget int64) sizes {
	var s sizes
	s.vlogFile = min(max(budget/64, 1<<20), 256<<20)
	s.memTable = 4 << 20
	s.blockCache = min(max(budget/2048, 1<<20), 16<<20)
	s.reclaimAt = max(budget/50, s.vlogFile)
	s.waitAbove = 2 * s.reclaimAt
	s.liveCap = max(budget-budget/20-s.vlogFile-overhead, budget/2)
	s.pieceMax = s.vlogFile / 2
	return s
}

// Open opens (or creates) the cache in dir.
func Open(dir string, opts Options) (*Cache, error) {
	if opts.Budget == 0 {
		opts.Budget = storedBudget(dir)
	}
	if opts.Budget < MinBudget {
		return nil, fmt.Errorf("cache budget %d bytes: below the minimum of %d MiB", opts.Budget, MinBudget>>20)
	}
	if opts.MaintainInterval <= 0 {
		opts.MaintainInterval = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cache %s: %w", dir, err)
	}
	// Our own lock, taken before badger's: badger reports a held lock
	// only as text, so this is how a second process is told apart from
	// a broken database.
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	sz := sizesFor(opts.Budget)
	bopts := badger.DefaultOptions(dir).
		WithLogger(badgerLogger{opts.Logger}).
		WithValueLogFileSize(sz.vlogFile).
		WithValueThreshold(1 << 10). // every value goes to the value log
		WithMemTableSize(sz.memTable).
		WithNumMemtables(2).
		WithBaseTableSize(1 << 20).
		WithBaseLevelSize(4 << 20).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithNumCompactors(2).
		WithBlockCacheSize(sz.blockCache).
		WithIndexCacheSize(0).
		WithCompression(options.None). // values are zstd already; keys are few
		WithMetricsEnabled(false).
		WithDetectConflicts(false).
		WithNumVersionsToKeep(1)
	db, err := badger.Open(bopts)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("cache %s: open badger: %w", dir, err)
	}
	c := &Cache{
		dir:       dir,
		db:        db,
		lock:      lock,
		log:       opts.Logger,
		opts:      opts,
		liveCap:   sz.liveCap,
		reclaimAt: sz.reclaimAt,
		waitAbove: sz.waitAbove,
		pieceSize: sz.pieceMax,
		entries:   lru.New[string, *entry](),
		writing:   map[string]bool{},
		pending:   map[string]int64{},
		kick:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	c.cond = sync.NewCond(&c.mu)
	if err := c.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("cache %s: %w", dir, err)
	}
	if err := writeBudget(dir, opts.Budget); err != nil {
		db.Close()
		return nil, fmt.Errorf("cache %s: %w", dir, err)
	}
	c.mu.Lock()
	c.evictLocked(0)
	c.mu.Unlock()
	if err := writeStatsFile(dir, c.Stats()); err != nil {
		c.log.Warn("cache: writing the stats file", "dir", dir, "err", err)
	}
	c.wg.Add(1)
	go c.loop()
	return c, nil
}

// load checks the format and rebuilds the index from the index records.
// Values without a record and records whose values are incomplete (which
// a crash cannot produce, but a bug or a disk error could) are dropped.
func (c *Cache) load() error {
	var format []byte
	empty := true
	err := c.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false})
		defer it.Close()
		it.Rewind()
		empty = !it.Valid()
		item, err := txn.Get([]byte(formatKey))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		format, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("read format: %w", err)
	}
	if string(format) != Format {
		if !empty {
			c.log.Warn("cache: emptying a cache of another format", "dir", c.dir, "format", string(format), "want", Format)
			if err := c.db.DropAll(); err != nil {
				return fmt.Errorf("empty: %w", err)
			}
		}
		return c.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(formatKey), []byte(Format)) })
	}

	pieces := map[string]uint32{} // id → pieces present
	var entries []*entry
	err = c.db.View(func(txn *badger.Txn) error {
		if item, err := txn.Get([]byte(countersKey)); err == nil {
			_ = item.Value(func(v []byte) error {
				if len(v) == 16 {
					c.baseHits = int64(binary.LittleEndian.Uint64(v))
					c.baseMisses = int64(binary.LittleEndian.Uint64(v[8:]))
				}
				return nil
			})
		}
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: []byte(dataPrefix)})
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) < len(dataPrefix)+4 {
				continue
			}
			pieces[string(k[len(dataPrefix):len(k)-4])]++
		}
		it.Close()
		it = txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 256, Prefix: []byte(metaPrefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			id := string(item.Key()[len(metaPrefix):])
			err := item.Value(func(v []byte) error {
				if len(v) != metaLen {
					return fmt.Errorf("index record of %q: %d bytes", idKey(id), len(v))
				}
				e := &entry{
					id:     id,
					size:   int64(binary.LittleEndian.Uint64(v)),
					seq:    binary.LittleEndian.Uint64(v[8:]),
					pieces: binary.LittleEndian.Uint32(v[16:]),
				}
				e.saved = e.seq
				entries = append(entries, e)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load index: %w", err)
	}
	slices.SortFunc(entries, func(a, b *entry) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return strings.Compare(a.id, b.id)
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range entries {
		if pieces[e.id] != e.pieces {
			c.log.Warn("cache: dropping an incomplete entry", "key", idKey(e.id), "pieces", pieces[e.id], "want", e.pieces)
			c.pending[e.id] = e.size
			delete(pieces, e.id)
			continue
		}
		delete(pieces, e.id)
		c.entries.Add(e.id, e, e.size)
		c.seq = max(c.seq, e.seq+1)
	}
	for id := range pieces { // values without an index record
		c.pending[id] = 0
	}
	if len(c.pending) > 0 {
		c.kickLocked()
	}
	return nil
}

// Get returns the value of key with fingerprint fp, if cached. The bytes
// are the caller's.
func (c *Cache) Get(key string, fp []byte) ([]byte, bool) {
	id := entryID(key, fp)
	c.clearMu.RLock()
	defer c.clearMu.RUnlock()
	e, size, pieces, ok := c.use(id)
	if !ok {
		return nil, false
	}

	buf := make([]byte, size)
	off := 0
	err := c.db.View(func(txn *badger.Txn) error {
		for p := range pieces {
			item, err := txn.Get(dataKey(id, p))
			if err != nil {
				return fmt.Errorf("piece %d: %w", p, err)
			}
			err = item.Value(func(v []byte) error {
				if off+len(v) > len(buf) {
					return fmt.Errorf("piece %d: value longer than its recorded size %d", p, size)
				}
				off += copy(buf[off:], v)
				return nil
			})
			if err != nil {
				return err
			}
		}
		if off != len(buf) {
			return fmt.Errorf("value of %d bytes, recorded size %d", off, size)
		}
		return nil
	})
	if err != nil {
		c.dropUnreadable(key, e, err)
		return nil, false
	}
	c.hits.Add(1)
	return buf, true
}

// Pin returns the bytes of the entry for key and fp from off, at most n
// of them, as slices of badger's value log, without copying. They stay
// valid until release is called, which must happen exactly once and soon:
// until then the value-log files they point into cannot be collected, and
// Clear and Close wait. ok is false when there is no such entry (or it
// could not be read, and is dropped as Get does); release is then nil.
// Each call counts as a hit or a miss.
func (c *Cache) Pin(key string, fp []byte, off int64, n int) (slices [][]byte, release func(), ok bool) {
	id := entryID(key, fp)
	c.clearMu.RLock()
	e, size, pieces, ok := c.use(id)
	if !ok || off < 0 {
		c.clearMu.RUnlock()
		return nil, nil, false
	}
	want := min(int64(n), max(size-off, 0))
	if want == 0 {
		c.clearMu.RUnlock()
		c.hits.Add(1)
		return nil, func() {}, true
	}
	// badger hands out value-log bytes only inside Item.Value's callback,
	// so a goroutine stays inside the callbacks of every piece needed
	// until release.
	type pinned struct {
		slices [][]byte
		err    error
	}
	got := make(chan pinned, 1)
	done := make(chan struct{})
	go func() {
		defer c.clearMu.RUnlock()
		var out [][]byte
		var have, start int64 // bytes collected; offset of the current piece
		sent := false
		var hold func(txn *badger.Txn, i uint32) error
		hold = func(txn *badger.Txn, i uint32) error {
			if i == pieces {
				return fmt.Errorf("value of %d bytes, recorded size %d", start, size)
			}
			item, err := txn.Get(dataKey(id, i))
			if err != nil {
				return fmt.Errorf("piece %d: %w", i, err)
			}
			return item.Value(func(v []byte) error {
				end := start + int64(len(v))
				if pos := off + have; end > pos {
					s := v[pos-start : min(int64(len(v)), pos-start+want-have)]
					out = append(out, s)
					have += int64(len(s))
				}
				start = end
				if have == want {
					got <- pinned{slices: out}
					sent = true
					<-done
					return nil
				}
				return hold(txn, i+1)
			})
		}
		err := c.db.View(func(txn *badger.Txn) error { return hold(txn, 0) })
		if !sent {
			got <- pinned{err: err}
		}
	}()
	p := <-got
	if p.err != nil {
		c.dropUnreadable(key, e, p.err)
		return nil, nil, false
	}
	c.hits.Add(1)
	var once sync.Once
	return p.slices, func() { once.Do(func() { close(done) }) }, true
}

// ReadAt copies the bytes of the entry for key and fp from off into p,
// as many as p holds or the entry has after off, without a goroutine and
// without keeping anything pinned after it returns: the cheap way to read
// a range that is then written somewhere slow (a network reply). ok is
// false when there is no such entry (or it could not be read, and is
// dropped as Get does). Each call counts as a hit or a miss.
func (c *Cache) ReadAt(key string, fp []byte, p []byte, off int64) (n int, ok bool) {
	id := entryID(key, fp)
	c.clearMu.RLock()
	defer c.clearMu.RUnlock()
	e, size, pieces, ok := c.use(id)
	if !ok || off < 0 {
		return 0, false
	}
	want := int(min(int64(len(p)), max(size-off, 0)))
	if want == 0 {
		c.hits.Add(1)
		return 0, true
	}
	err := c.db.View(func(txn *badger.Txn) error {
		var start int64 // offset of piece i
		for i := uint32(0); i < pieces && n < want; i++ {
			item, err := txn.Get(dataKey(id, i))
			if err != nil {
				return fmt.Errorf("piece %d: %w", i, err)
			}
			// (A piece's length is only known exactly from its value:
			// ValueSize is an estimate for value-log entries.)
			err = item.Value(func(v []byte) error {
				if pos := off + int64(n); start+int64(len(v)) > pos {
					n += copy(p[n:want], v[pos-start:])
				}
				start += int64(len(v))
				return nil
			})
			if err != nil {
				return err
			}
		}
		if n != want {
			return fmt.Errorf("value of %d bytes, recorded size %d", start, size)
		}
		return nil
	})
	if err != nil {
		c.dropUnreadable(key, e, err)
		return 0, false
	}
	c.hits.Add(1)
	return n, true
}

// use finds entry id and marks it read now, or counts a miss. The caller
// holds clearMu.
func (c *Cache) use(id string) (e *entry, size int64, pieces uint32, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok = c.entries.Peek(id)
	if !ok || c.closed {
		c.misses.Add(1)
		return nil, 0, 0, false
	}
	c.touchLocked(e)
	return e, e.size, e.pieces, true
}

// dropUnreadable forgets entry e, which the database failed to read (err),
// unless it was evicted meanwhile, and counts the read as a miss.
func (c *Cache) dropUnreadable(key string, e *entry, err error) {
	c.mu.Lock()
	cur, _ := c.entries.Peek(e.id)
	still := cur == e
	if still {
		c.removeLocked(e)
		c.pending[e.id] = e.size
		c.garbage += e.size
	}
	c.mu.Unlock()
	if still { // not evicted meanwhile: the database lost it
		c.log.Error("cache: unreadable entry dropped", "key", key, "err", err)
	}
	c.misses.Add(1)
}

// Size returns the size of the value of key with fingerprint fp, if
// cached, without reading it.
func (c *Cache) Size(key string, fp []byte) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries.Peek(entryID(key, fp))
	if !ok || c.closed {
		return 0, false
	}
	return e.size, true
}

// Put stores data as the value of key with fingerprint fp, evicting the
// least recently read entries to stay within the budget. Failures are
// logged: a cache that cannot write only costs regeneration.
func (c *Cache) Put(key string, fp []byte, data []byte) {
	id := entryID(key, fp)
	size := int64(len(data))
	if size > c.liveCap {
		c.log.Debug("cache: value larger than the budget, not cached", "key", key, "bytes", size)
		return
	}
	c.mu.Lock()
	for c.garbage > c.waitAbove && !c.closed { // let reclaiming catch up
		c.kickLocked()
		c.cond.Wait()
	}
	c.mu.Unlock()

	c.wmu.RLock()
	defer c.wmu.RUnlock()
	c.mu.Lock()
	if c.closed || c.writing[id] {
		c.mu.Unlock()
		return
	}
	if e, ok := c.entries.Peek(id); ok {
		c.touchLocked(e)
		c.mu.Unlock()
		return
	}
	if n, ok := c.pending[id]; ok { // evicted, not yet dropped: keep the new value
		delete(c.pending, id)
		c.garbage -= n
	}
	c.evictLocked(size)
	c.reserved += size
	c.writing[id] = true
	seq := c.seq
	c.seq++
	c.mu.Unlock()

	pieces, err := c.write(id, data, seq)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.reserved -= size
	delete(c.writing, id)
	if err != nil {
		c.log.Error("cache: write failed", "key", key, "bytes", size, "err", err)
		return
	}
	e := &entry{id: id, size: size, pieces: pieces, seq: seq, saved: seq}
	c.entries.Add(id, e, size)
}

// write stores a value and its index record in one transaction.
func (c *Cache) write(id string, data []byte, seq uint64) (uint32, error) {
	var pieces uint32
	err := c.db.Update(func(txn *badger.Txn) error {
		for off := 0; off < len(data); off += int(c.pieceSize) {
			end := min(off+int(c.pieceSize), len(data))
			if err := txn.Set(dataKey(id, pieces), data[off:end]); err != nil {
				return err
			}
			pieces++
		}
		return txn.Set(metaKey(id), encodeMeta(int64(len(data)), seq, pieces))
	})
	return pieces, err
}

// touchLocked marks e as just read.
func (c *Cache) touchLocked(e *entry) {
	e.seq = c.seq
	c.seq++
	c.entries.Get(e.id) // now the most recently read
}

func (c *Cache) removeLocked(e *entry) {
	c.entries.Remove(e.id)
}

// evictLocked evicts least recently read entries until need more bytes
// fit under the live cap.
func (c *Cache) evictLocked(need int64) {
	for c.entries.Size()+c.reserved+need > c.liveCap {
		_, e, ok := c.entries.RemoveOldest()
		if !ok {
			break
		}
		c.pending[e.id] = e.size
		c.garbage += e.size
		c.evictions++
	}
	if c.garbage >= c.reclaimAt {
		c.kickLocked()
	}
}

func (c *Cache) kickLocked() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *Cache) loop() {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.MaintainInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-c.kick:
			c.maintain(false)
		case <-t.C:
			c.maintain(true)
		}
	}
}

// Maintain reclaims the space of evicted entries now and persists the
// access order and counters.
func (c *Cache) Maintain() {
	c.maintain(true)
}

// maintain runs one maintenance round: persist the access order (flush),
// drop evicted entries so that compaction counts their value-log space as
// discarded, then run value-log GC until no file is worth rewriting.
func (c *Cache) maintain(flush bool) {
	c.maintMu.Lock()
	defer c.maintMu.Unlock()
	c.maintainLocked(flush)
}

func (c *Cache) maintainLocked(flush bool) {
	if flush {
		if err := c.flush(); err != nil {
			c.log.Error("cache: persisting the access order", "dir", c.dir, "err", err)
		}
	}
	c.wmu.Lock()
	c.mu.Lock()
	var prefixes [][]byte
	var dropped int64
	for id, n := range c.pending {
		prefixes = append(prefixes, append([]byte(dataPrefix), id...), metaKey(id))
		dropped += n
	}
	clear(c.pending)
	c.mu.Unlock()
	var err error
	if len(prefixes) > 0 {
		err = c.db.DropPrefix(prefixes...)
	}
	if err != nil {
		c.log.Error("cache: dropping evicted entries", "dir", c.dir, "entries", len(prefixes)/2, "err", err)
	}
	// GC runs with writes held off too: badger's value-log rewrite reads
	// the memtable's max version without the lock its writers take (a
	// data race in badger v4.9.6 that -race reports).
	for range 1000 {
		if err := c.db.RunValueLogGC(gcRatio); err != nil {
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				c.log.Error("cache: value-log GC", "dir", c.dir, "err", err)
			}
			break
		}
	}
	c.wmu.Unlock()
	c.mu.Lock()
	c.garbage = max(c.garbage-dropped, 0)
	c.cond.Broadcast()
	c.mu.Unlock()
}

// flush persists changed access sequences and the counters, and writes
// the stats file.
func (c *Cache) flush() error {
	type rec struct {
		e      *entry
		size   int64
		seq    uint64
		pieces uint32
	}
	c.mu.Lock()
	var recs []rec
	for _, e := range c.entries.All() {
		if e.seq != e.saved {
			recs = append(recs, rec{e, e.size, e.seq, e.pieces})
		}
	}
	c.mu.Unlock()
	st := c.Stats()
	counters := make([]byte, 16)
	binary.LittleEndian.PutUint64(counters, uint64(st.Hits))
	binary.LittleEndian.PutUint64(counters[8:], uint64(st.Misses))

	c.wmu.RLock()
	wb := c.db.NewWriteBatch()
	var err error
	for _, r := range recs {
		if err = wb.Set(metaKey(r.e.id), encodeMeta(r.size, r.seq, r.pieces)); err != nil {
			break
		}
	}
	if err == nil {
		err = wb.Set([]byte(countersKey), counters)
	}
	if err == nil {
		err = wb.Flush()
	} else {
		wb.Cancel()
	}
	c.wmu.RUnlock()
	if err != nil {
		return err
	}
	c.mu.Lock()
	for _, r := range recs {
		r.e.saved = max(r.e.saved, r.seq)
	}
	c.mu.Unlock()
	return writeStatsFile(c.dir, st)
}

func writeStatsFile(dir string, st Stats) error {
	st.Written = time.Now().UTC().Truncate(time.Second)
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+StatsFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, StatsFile))
}

// budgetFile holds the budget a cache was last opened with, so that
// commands that only look at a cache (stats, clear) need not be told it,
// and never evict with a smaller default.
const budgetFile = "tesserafs-cache-budget"

func storedBudget(dir string) int64 {
	b, err := os.ReadFile(filepath.Join(dir, budgetFile))
	if err != nil {
		return DefaultBudget
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n < MinBudget {
		return DefaultBudget
	}
	return n
}

func writeBudget(dir string, n int64) error {
	if storedBudget(dir) == n {
		if _, err := os.Stat(filepath.Join(dir, budgetFile)); err == nil {
			return nil
		}
	}
	tmp := filepath.Join(dir, "."+budgetFile+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(n, 10)+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, budgetFile))
}

// ReadStatsFile returns the stats a running cache last wrote into dir.
func ReadStatsFile(dir string) (Stats, error) {
	var st Stats
	b, err := os.ReadFile(filepath.Join(dir, StatsFile))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: %w", filepath.Join(dir, StatsFile), err)
	}
	return st, nil
}

// Stats returns the cache's counters and its measured disk use.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	st := Stats{
		Entries:   int64(c.entries.Len()),
		Bytes:     c.entries.Size(),
		Budget:    c.opts.Budget,
		Hits:      c.baseHits + c.hits.Load(),
		Misses:    c.baseMisses + c.misses.Load(),
		Evictions: c.evictions,
	}
	c.mu.Unlock()
	st.Disk, _ = DiskUsage(c.dir)
	if f := c.sourceStats.Load(); f != nil {
		ss := (*f)()
		st.Source = &ss
	}
	return st
}

// Clear removes every entry and resets the counters.
func (c *Cache) Clear() error {
	c.maintMu.Lock()
	defer c.maintMu.Unlock()
	c.clearMu.Lock()
	defer c.clearMu.Unlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	c.entries.Clear()
	clear(c.pending)
	c.garbage, c.evictions, c.baseHits, c.baseMisses = 0, 0, 0, 0
	c.hits.Store(0)
	c.misses.Store(0)
	c.cond.Broadcast()
	c.mu.Unlock()
	if err := c.db.DropAll(); err != nil {
		return fmt.Errorf("cache %s: clear: %w", c.dir, err)
	}
	if err := c.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(formatKey), []byte(Format)) }); err != nil {
		return fmt.Errorf("cache %s: clear: %w", c.dir, err)
	}
	return nil
}

// Close persists the access order, reclaims what was evicted and closes
// the database. Gets and Puts after Close miss and do nothing.
func (c *Cache) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	close(c.done)
	c.wg.Wait()
	c.maintMu.Lock()
	defer c.maintMu.Unlock()
	c.maintainLocked(true)
	c.clearMu.Lock()
	defer c.clearMu.Unlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	err := c.db.Close()
	c.lock.Close()
	if err != nil {
		return fmt.Errorf("cache %s: close: %w", c.dir, err)
	}
	return nil
}

// LockName is the file in a cache directory whose exclusive flock the
// process that has the cache open holds.
const LockName = "tesserafs.lock"

// lockDir takes the cache directory's lock, or fails with ErrLocked when
// another process holds it.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, LockName), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("cache %s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("cache %s: lock: %w", dir, err)
	}
	return f, nil
}

// DiskUsage is the space the files under dir occupy on disk (allocated
// blocks, so sparse files count for what they hold).
func DiskUsage(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // removed while walking
				return nil
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += info.Size()
		}
		return nil
	})
	return n, err
}

// badgerLogger sends badger's messages to slog: errors and warnings as
// such, information at debug level, its debug chatter nowhere.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) msg(f string, a []any) string {
	return "badger: " + strings.TrimSpace(fmt.Sprintf(f, a...))
}
func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error(b.msg(f, a)) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn(b.msg(f, a)) }
func (b badgerLogger) Infof(f string, a ...any)    { b.l.Debug(b.msg(f, a)) }
func (b badgerLogger) Debugf(string, ...any)       {}
