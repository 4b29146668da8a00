package store

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
	"github.com/tesserafs/tesserafs/zarr"
)

// A node is one entry of the key space: *dirNode, *fileNode or *arrayNode.
type node interface{ isNode() }

// dirNode is a fixed directory: a group, or a folder of the STAC catalog.
type dirNode struct {
	names    []string // in listing order
	children map[string]node
	group    *zarr.GroupMetadata // non-nil for a Zarr group
}

func newDir() *dirNode { return &dirNode{children: map[string]node{}} }

func (d *dirNode) add(name string, n node) {
	if _, dup := d.children[name]; !dup {
		d.names = append(d.names, name)
	}
	d.children[name] = n
}

// fileNode is a small file computed once per store: metadata JSON, STAC
// documents. Its bytes are kept, since they are small and never change for
// the life of a Store.
type fileNode struct {
	gen func(ctx context.Context) ([]byte, error)
	onceData
}

// arrayNode is a Zarr array: its zarr.json and a chunk space under c/. Its
// metadata comes from the index and geometry alone (spec §4: no Zarr
// metadata depends on tile bytes).
type arrayNode struct {
	meta     zarr.ArrayMetadata
	metaFile *fileNode
	chunks   ChunkSource
}

func newArray(meta zarr.ArrayMetadata, chunks ChunkSource) *arrayNode {
	return &arrayNode{meta: meta, metaFile: jsonFile(meta), chunks: chunks}
}

func (*dirNode) isNode()   {}
func (*fileNode) isNode()  {}
func (*arrayNode) isNode() {}

// ChunkSource is the chunk space of one array: which chunk keys exist
// (from the index, without generating) and how to generate one.
type ChunkSource interface {
	// Dims is the number of chunk-grid dimensions (the array's rank).
	Dims() int
	// List returns, in ascending order, the coordinates that exist at the
	// next level under prefix (len(prefix) < Dims()).
	List(prefix []int) []int
	// Has reports whether the chunk at coords exists.
	Has(coords []int) bool
	// Inputs lists the source files the chunk is built from, for the
	// cache fingerprint; nil means "cheap, do not cache".
	Inputs(coords []int) []index.FileStamp
	// Generate computes the chunk's bytes with the worker's buffers.
	Generate(ctx context.Context, w *generate.Worker, coords []int) ([]byte, error)
}

// dirChecker is a ChunkSource that decides whether one chunk directory
// exists without listing its parent: a lookup of c/<i> in a zone of two
// hundred thousand shards must not decide every shard of the zone.
type dirChecker interface {
	// HasDir reports whether the chunk directory at prefix (0 <
	// len(prefix) < Dims()) exists, i.e. holds some chunk.
	HasDir(prefix []int) bool
}

// hasDir reports whether the chunk directory at prefix exists: what the
// parent's listing says, asked as cheaply as the source can.
func hasDir(c ChunkSource, prefix []int) bool {
	if d, ok := c.(dirChecker); ok {
		return d.HasDir(prefix)
	}
	return slices.Contains(c.List(prefix[:len(prefix)-1]), prefix[len(prefix)-1])
}

// resolved is a key resolved against the tree.
type resolved struct {
	n      node
	arr    *arrayNode // a chunk or chunk directory of this array
	coords []int      // chunk coordinates so far (after "c")
	inC    bool       // the key is c/ or below
}

// resolve walks key ("" is the root) to its node. ok is false for a key
// that does not exist.
func (s *Store) resolve(key string) (resolved, bool) {
	key = strings.Trim(key, "/")
	var n node = s.root
	if key == "" || key == "." {
		return resolved{n: n}, true
	}
	parts := strings.Split(key, "/")
	for i, p := range parts {
		switch cur := n.(type) {
		case *dirNode:
			next, ok := cur.children[p]
			if !ok {
				return resolved{}, false
			}
			n = next
		case *arrayNode:
			if p == "zarr.json" && i == len(parts)-1 {
				return resolved{n: cur.metaFile}, true
			}
			if p != "c" {
				return resolved{}, false
			}
			return resolveChunk(cur, parts[i+1:])
		default: // a file has no children
			return resolved{}, false
		}
	}
	return resolved{n: n}, true
}

func resolveChunk(a *arrayNode, parts []string) (resolved, bool) {
	dims := a.chunks.Dims()
	if len(parts) > dims {
		return resolved{}, false
	}
	coords := make([]int, 0, len(parts))
	for _, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || strconv.Itoa(v) != p {
			return resolved{}, false
		}
		coords = append(coords, v)
	}
	if len(coords) == dims {
		if !a.chunks.Has(coords) {
			return resolved{}, false
		}
	} else if len(coords) > 0 && !hasDir(a.chunks, coords) {
		return resolved{}, false
	}
	return resolved{arr: a, coords: coords, inC: true}, true
}

// isDir reports whether a resolved key is a directory.
func (r resolved) isDir() bool {
	switch r.n.(type) {
	case *dirNode, *arrayNode:
		return true
	}
	return r.inC && len(r.coords) < r.arr.chunks.Dims()
}

// shardSource is the chunk space of a sharded zone array: a shard exists
// where some tile touches it and, with occ (scales, rgb), where it holds a
// finite scale. trailing adds a last chunk dimension of one chunk ("/0"),
// as for embeddings (band) and rgb (rgba).
type shardSource struct {
	zone     *index.ZoneGrid
	occ      *occupancy // nil: every tile-touched shard exists
	trailing bool
	gen      func(ctx context.Context, w *generate.Worker, i, j int) ([]byte, error)
}

func (s *shardSource) Dims() int {
	if s.trailing {
		return 3
	}
	return 2
}

// The shards are the zone's shard bitset (index.ZoneGrid.HasShard,
// ShardRows, ShardCols), not a list: a million tiles touch twelve million.
// With occ, only those of them that hold a finite scale exist.

func (s *shardSource) List(prefix []int) []int {
	switch len(prefix) {
	case 0:
		rows := s.zone.ShardRows(generate.ShardSize)
		if s.occ == nil {
			return rows
		}
		return s.occ.rows(rows, func(i int) []int { return s.zone.ShardCols(generate.ShardSize, i) })
	case 1:
		cols := s.zone.ShardCols(generate.ShardSize, prefix[0])
		if s.occ == nil {
			return cols
		}
		return s.occ.row(prefix[0], cols)
	default:
		if s.Has(append(slices.Clone(prefix), 0)) {
			return []int{0}
		}
		return nil
	}
}

// HasDir decides row c[0] (c/<i>) from that row's shards alone, stopping
// at the first that exists, and c/<i>/<j> (embeddings, rgb) from its one
// shard.
func (s *shardSource) HasDir(c []int) bool {
	if len(c) == 2 {
		return s.Has([]int{c[0], c[1], 0})
	}
	cols := s.zone.ShardCols(generate.ShardSize, c[0])
	if s.occ == nil {
		return len(cols) > 0
	}
	return s.occ.anyInRow(c[0], cols)
}

func (s *shardSource) Has(c []int) bool {
	if len(c) != s.Dims() || (s.trailing && c[2] != 0) {
		return false
	}
	if !s.zone.HasShard(generate.ShardSize, c[0], c[1]) {
		return false
	}
	return s.occ == nil || s.occ.has(index.ShardIndex{Row: c[0], Col: c[1]})
}

func (s *shardSource) Inputs(c []int) []index.FileStamp {
	return generate.Inputs(s.zone, c[0], c[1])
}

func (s *shardSource) Generate(ctx context.Context, w *generate.Worker, c []int) ([]byte, error) {
	return s.gen(ctx, w, c[0], c[1])
}

// coordSource is the chunk space of an unsharded 1-D coordinate array.
type coordSource struct {
	n     int
	chunk func(k int) []byte
}

func (c *coordSource) Dims() int { return 1 }
func (c *coordSource) List(prefix []int) []int {
	out := make([]int, generate.CoordChunks(c.n))
	for k := range out {
		out[k] = k
	}
	return out
}
func (c *coordSource) Has(k []int) bool               { return len(k) == 1 && k[0] < generate.CoordChunks(c.n) }
func (c *coordSource) Inputs([]int) []index.FileStamp { return nil }
func (c *coordSource) Generate(_ context.Context, _ *generate.Worker, k []int) ([]byte, error) {
	return c.chunk(k[0]), nil
}
