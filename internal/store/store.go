package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
	"github.com/tesserafs/tesserafs/internal/keyspace"
	"github.com/tesserafs/tesserafs/zarr"
)

// FormatVersion changes whenever the bytes generated for the same inputs
// change, so cached chunks of an older tesserafs are never served.
const FormatVersion = "tesserafs-store-3" // 3: the rgb stretch from at most 32 sample shards (docs/format.md §4)

// ErrNotFound is returned for a key that does not exist. It matches
// fs.ErrNotExist under errors.Is, and says NotFound() — how front ends
// that know nothing of the store (fusefs, httpserve) tell a key that does
// not exist from an input file that does not (a tile gone: an error of
// the key, which exists).
var ErrNotFound error = notFoundError{}

type notFoundError struct{}

func (notFoundError) Error() string        { return "key not found" }
func (notFoundError) NotFound() bool       { return true }
func (notFoundError) Is(target error) bool { return target == fs.ErrNotExist }

// ErrNotDir is returned for listing a key that is a file (the errno, so
// that front ends that know nothing of the store can match it).
var ErrNotDir error = syscall.ENOTDIR

// ErrIsDir is returned for reading a key that is a directory.
var ErrIsDir error = syscall.EISDIR

// Cache keeps generated chunks. Implementations must be safe for
// concurrent use; fp is the chunk's input fingerprint, and an entry must
// only be returned for the same key and fingerprint.
type Cache interface {
	Get(key string, fp []byte) ([]byte, bool)
	Size(key string, fp []byte) (int64, bool)
	Put(key string, fp []byte, data []byte)
}

// PinCache is a Cache that can lend part of an entry without copying it
// (Pin as in cache.Cache). Store.PinCached uses it.
type PinCache interface {
	Cache
	Pin(key string, fp []byte, off int64, n int) (slices [][]byte, release func(), ok bool)
}

// Options configure a Store.
type Options struct {
	Workers    int            // concurrent generations; default GOMAXPROCS
	Build      generate.Build // attributes of the zone groups
	Cache      Cache          // nil: no cache
	MaskBudget int64          // bytes of decoded landmasks kept; default 256 MiB
	Logger     *slog.Logger

	// ReadThrough, if set, is a source of derived chunks (zone rgb shards,
	// global_rgb chunks) after the store's own caches: a pyramid level is
	// then built from the level below as read from there instead of being
	// recomputed. It must hold only this store's bytes under their keys.
	// Its Put is called only to record an rgb stretch (StretchRecords), so
	// that the other partitions of a run read it instead of sampling the
	// zone again. The materializer's output is one
	// (materializer.OutputReadThrough).
	ReadThrough Cache
}

// Stats counts what a Store did, for tests, benchmarks and `cache stats`.
type Stats struct {
	Generated int64 // chunks generated
	CacheHits int64 // Gets, PinCached and OpenCached calls answered from the cache
	Bytes     int64 // bytes of generated chunks
	// PeakGenerating is the most chunk generations that ran at once (at
	// most Options.Workers).
	PeakGenerating int64
	// Probed is how many shards' existence was decided from their scales
	// and landmasks (occupancy.go): what lookups and listings cost.
	Probed int64
}

// Store is the virtual key space of one tiles catalogue. Safe for
// concurrent use.
type Store struct {
	cat     *index.Catalogue
	opts    Options
	log     *slog.Logger
	root    *dirNode
	masks   *generate.Masks
	workers chan *generate.Worker
	flight  singleflight.Group // every chunk generation, by key
	modTime time.Time

	fps fpMemo // chunk fingerprints (chunk.go)

	generated, hits, bytes atomic.Int64
	generating, peak       atomic.Int64 // generations running now, and at most
	probed                 atomic.Int64 // shards whose existence was decided
	fpOnce                 sync.Once
	fp                     string // Fingerprint

	probes    sync.Pool           // *generate.Worker from NewProbeFor (occupancy.go)
	der       *derivedEngine      // derived chunks (derived.go)
	stretches *stretchState       // rgb stretches (rgb.go)
	globals   map[int]*globalYear // global_rgb per year (globalrgb.go)

	mu       sync.Mutex // guards problems
	problems []index.Problem
}

// New builds the key space of every year and zone of cat. Nothing is
// generated until asked for.
func New(cat *index.Catalogue, opts Options) (*Store, error) {
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.MaskBudget <= 0 {
		opts.MaskBudget = 256 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Store{
		cat:       cat,
		opts:      opts,
		log:       opts.Logger,
		workers:   make(chan *generate.Worker, opts.Workers),
		modTime:   time.Now().Truncate(time.Second),
		der:       newDerivedEngine(),
		stretches: newStretchState(),
		globals:   map[int]*globalYear{},
	}
	s.masks = generate.NewMasksFor(cat.Source, opts.MaskBudget, s.addProblem)
	for range opts.Workers {
		s.workers <- nil // allocated on first use
	}
	root, err := s.buildTree()
	if err != nil {
		return nil, err
	}
	s.root = root
	return s, nil
}

func (s *Store) addProblem(p index.Problem) {
	s.log.Warn("source tile", "path", p.Path, "reason", p.Reason)
	s.mu.Lock()
	s.problems = append(s.problems, p)
	s.mu.Unlock()
}

// Problems returns the warnings met while generating (unreadable landmasks).
func (s *Store) Problems() []index.Problem {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]index.Problem(nil), s.problems...)
}

// ReadThrough returns Options.ReadThrough (nil if none).
func (s *Store) ReadThrough() Cache { return s.opts.ReadThrough }

// Catalogue returns the index the store serves.
func (s *Store) Catalogue() *index.Catalogue { return s.cat }

// Stats returns the counters so far.
func (s *Store) Stats() Stats {
	return Stats{Generated: s.generated.Load(), CacheHits: s.hits.Load(), Bytes: s.bytes.Load(), PeakGenerating: s.peak.Load(), Probed: s.probed.Load()}
}

// ModTime is the modification time reported for every key.
func (s *Store) ModTime() time.Time { return s.modTime }

// info describes a key: an fs.FileInfo (Stat) and fs.DirEntry (ReadDir).
// A listed file's entry does not know its size (that can cost the chunk's
// generation): its Info stats it.
type info struct {
	s     *Store
	key   string
	size  int64
	dir   bool
	sized bool // size is known
}

var (
	_ fs.FileInfo = info{}
	_ fs.DirEntry = info{}
)

func (i info) Name() string       { return baseName(i.key) }
func (i info) Size() int64        { return i.size }
func (i info) IsDir() bool        { return i.dir }
func (i info) ModTime() time.Time { return i.s.modTime }
func (i info) Sys() any           { return nil }
func (i info) Type() fs.FileMode  { return i.Mode().Type() }
func (i info) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}

// Info implements fs.DirEntry. A listing has no context left to give: a
// file's size is asked without one.
func (i info) Info() (fs.FileInfo, error) {
	if i.dir || i.sized {
		return i, nil
	}
	return i.s.Stat(context.Background(), i.key)
}

func notFound(key string) error { return fmt.Errorf("%s: %w", key, ErrNotFound) }

func baseName(key string) string {
	key = strings.Trim(key, "/")
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		return key[i+1:]
	}
	if key == "" {
		return "."
	}
	return key
}

// Stat returns a key's name, size and kind. The size of a chunk is exact,
// so Stat of a chunk not yet generated generates it (or reads its size
// from the cache).
func (s *Store) Stat(ctx context.Context, key string) (fs.FileInfo, error) {
	key = strings.Trim(key, "/")
	r, ok := s.resolve(key)
	if !ok {
		return nil, notFound(key)
	}
	fi := info{s: s, key: key, dir: r.isDir(), sized: true}
	if fi.dir {
		return fi, nil
	}
	var b []byte
	var err error
	if f, ok := r.n.(*fileNode); ok {
		b, err = f.get(ctx)
	} else {
		if fp, ok := s.cached(key, r); ok {
			if n, ok := s.opts.Cache.Size(key, fp); ok {
				fi.size = n
				return fi, nil
			}
		}
		b, err = s.chunk(ctx, key, r)
	}
	if err != nil {
		return nil, err
	}
	fi.size = int64(len(b))
	return fi, nil
}

// PinCached lends the bytes of chunk key from off, at most n of them, if
// the cache holds that chunk and can lend part of an entry (PinCache):
// slices valid until release is called (exactly once, soon). ok is false
// otherwise, and the caller falls back to Get. It never generates, so a
// reader of a few bytes of a large cached chunk (a shard index, one inner
// chunk) pays for those bytes alone, and nothing is copied.
func (s *Store) PinCached(key string, off int64, n int) (slices [][]byte, release func(), ok bool) {
	pc, canPin := s.opts.Cache.(PinCache)
	if !canPin {
		return nil, nil, false
	}
	r, found := s.resolve(key)
	if !found || r.isDir() || r.arr == nil {
		return nil, nil, false
	}
	if _, isFile := r.n.(*fileNode); isFile {
		return nil, nil, false
	}
	fp, ok := s.cached(key, r)
	if !ok {
		return nil, nil, false
	}
	slices, release, ok = pc.Pin(key, fp, off, n)
	if ok {
		s.hits.Add(1)
	}
	return slices, release, ok
}

// RangeCache is a Cache that can copy part of an entry (ReadAt as in
// cache.Cache). Store.OpenCached uses it.
type RangeCache interface {
	Cache
	ReadAt(key string, fp []byte, p []byte, off int64) (n int, ok bool)
}

// ErrEvicted is the error of a read of a cached chunk that left the cache
// after OpenCached found it: the caller falls back to Get.
var ErrEvicted = errors.New("chunk left the cache")

// cachedChunk is a chunk that the cache held when OpenCached found it.
type cachedChunk struct {
	key string
	fp  []byte
	rc  RangeCache
}

// OpenCached finds chunk key in the cache, if the cache holds it and can
// copy part of an entry (RangeCache), and counts one cache hit: the
// caller then reads what it needs with ReadAt, which fails with
// ErrEvicted once the entry has left the cache (evicted, cleared); size is
// the chunk's exact length. It never generates, and nothing stays pinned:
// a reply written slowly to a network peer holds no lock of the cache.
func (s *Store) OpenCached(key string) (r io.ReaderAt, size int64, ok bool) {
	rc, ok := s.opts.Cache.(RangeCache)
	if !ok {
		return nil, 0, false
	}
	res, found := s.resolve(key)
	if !found || res.isDir() || res.arr == nil {
		return nil, 0, false
	}
	if _, isFile := res.n.(*fileNode); isFile {
		return nil, 0, false
	}
	fp, ok := s.cached(key, res)
	if !ok {
		return nil, 0, false
	}
	size, ok = rc.Size(key, fp)
	if !ok {
		return nil, 0, false
	}
	s.hits.Add(1)
	return &cachedChunk{key: key, fp: fp, rc: rc}, size, true
}

// ReadAt copies the chunk's bytes from off into p, as many as p holds or
// the chunk has after off (io.EOF when fewer than len(p)).
func (c *cachedChunk) ReadAt(p []byte, off int64) (int, error) {
	n, ok := c.rc.ReadAt(c.key, c.fp, p, off)
	switch {
	case !ok:
		return 0, ErrEvicted
	case n < len(p):
		return n, io.EOF
	}
	return n, nil
}

// Get returns a key's bytes.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	r, ok := s.resolve(key)
	if !ok {
		return nil, notFound(key)
	}
	if r.isDir() {
		return nil, fmt.Errorf("%s: %w", key, ErrIsDir)
	}
	if f, ok := r.n.(*fileNode); ok {
		return f.get(ctx)
	}
	return s.chunk(ctx, key, r)
}

// ReadDir lists a directory from the index alone: it never generates.
func (s *Store) ReadDir(ctx context.Context, key string) ([]fs.DirEntry, error) {
	key = strings.Trim(key, "/")
	r, ok := s.resolve(key)
	if !ok {
		return nil, notFound(key)
	}
	entry := func(name string, dir bool) fs.DirEntry {
		k := name
		if key != "" {
			k = key + "/" + name
		}
		return info{s: s, key: k, dir: dir}
	}
	switch n := r.n.(type) {
	case *dirNode:
		out := make([]fs.DirEntry, len(n.names))
		for i, name := range n.names {
			_, isFile := n.children[name].(*fileNode)
			out[i] = entry(name, !isFile)
		}
		return out, nil
	case *arrayNode:
		return []fs.DirEntry{entry("c", true), entry(keyspace.MetaFile, false)}, nil
	}
	if !r.isDir() {
		return nil, fmt.Errorf("%s: %w", key, ErrNotDir)
	}
	src := r.arr.chunks
	isDir := len(r.coords)+1 < src.Dims()
	coords := src.List(r.coords)
	out := make([]fs.DirEntry, len(coords))
	for i, c := range coords {
		out[i] = entry(strconv.Itoa(c), isDir)
	}
	return out, nil
}

// onceData memoizes a small file's bytes once they were computed; a
// failure is not kept, so a later read tries again (a STAC item whose
// stretch sample met a source outage).
type onceData struct {
	mu   sync.Mutex // held while computing: concurrent readers wait
	done bool
	data []byte
}

func (f *fileNode) get(ctx context.Context) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return f.data, nil
	}
	b, err := f.gen(ctx)
	if err != nil {
		return nil, err
	}
	f.data, f.done = b, true
	return b, nil
}

// encodeJSON is how every JSON document of the store is written: indented
// by two spaces, with a final newline.
func encodeJSON(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func jsonFile(v any) *fileNode {
	return &fileNode{gen: func(context.Context) ([]byte, error) { return encodeJSON(v) }}
}

// Walk calls fn for every file key under prefix, depth first in listing
// order, from the index alone.
func (s *Store) Walk(ctx context.Context, prefix string, fn func(key string) error) error {
	entries, err := s.ReadDir(ctx, prefix)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		key := e.Name()
		if p := strings.Trim(prefix, "/"); p != "" {
			key = p + "/" + e.Name()
		}
		if e.IsDir() {
			err = s.Walk(ctx, key, fn)
		} else {
			err = fn(key)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// collectMeta collects, under dir d at path p, every group and array with
// its metadata, for consolidated metadata.
func collectMeta(ctx context.Context, d *dirNode, p string, out map[string]any) error {
	for _, name := range d.names {
		path := name
		if p != "" {
			path = p + "/" + name
		}
		switch n := d.children[name].(type) {
		case *dirNode:
			if n.group != nil {
				out[path] = *n.group
			}
			if err := collectMeta(ctx, n, path, out); err != nil {
				return err
			}
		case *arrayNode:
			out[path] = n.meta
		}
	}
	return nil
}

func consolidated(ctx context.Context, d *dirNode) (*zarr.ConsolidatedMetadata, error) {
	m := map[string]any{}
	if err := collectMeta(ctx, d, "", m); err != nil {
		return nil, err
	}
	paths := make([]string, 0, len(m))
	for p := range m {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	c := &zarr.ConsolidatedMetadata{}
	for _, p := range paths {
		c.Entries = append(c.Entries, zarr.Entry{Path: p, Node: m[p]})
	}
	return c, nil
}

// Fingerprint identifies everything the store's bytes depend on, as
// discovery knew it: the format version, the build attributes, and every
// tile's identity (index.Tile.Identity: its coordinates and the stamps or
// registry sizes and hashes of its files). Two stores with the same
// fingerprint serve the same bytes. Computed once.
func (s *Store) Fingerprint() string {
	s.fpOnce.Do(func() {
		h := sha256.New()
		b, _ := json.Marshal(s.opts.Build)
		fmt.Fprintf(h, "%s\n%s\n", FormatVersion, b)
		for _, y := range s.cat.Years {
			for _, z := range y.Zones {
				fmt.Fprintf(h, "year %d zone %d\n", y.Year, z.Zone)
				for _, p := range z.Placements {
					p.Tile.Identity(h)
				}
			}
		}
		s.fp = hex.EncodeToString(h.Sum(nil))
	})
	return s.fp
}

// ChunkInputs is the number of source files a chunk is computed from (the
// tiles' .npy, scales and landmask files, and for previews the stretch
// samples), from the index alone: a measure of the work of generating it.
// ok is false for a key that is not a chunk.
func (s *Store) ChunkInputs(key string) (n int, ok bool) {
	r, found := s.resolve(key)
	if !found || r.arr == nil || len(r.coords) != r.arr.chunks.Dims() {
		return 0, false
	}
	return len(r.arr.chunks.Inputs(r.coords)), true
}

// Exists reports whether key is a file of the store, deciding as a listing
// does (for a zone's scales and rgb shards that means reading the shard's
// scales, never its embeddings): nothing is generated.
func (s *Store) Exists(key string) bool {
	r, ok := s.resolve(key)
	return ok && !r.isDir()
}
