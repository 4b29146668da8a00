package generate

import (
	"context"
	"encoding/binary"
	"math"
	"sync"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/npy"
	"github.com/tesserafs/tesserafs/zarr"
)

// Worker holds the buffers and the encoder of one generation at a time.
// It is not safe for concurrent use: a pool hands one to each goroutine.
type Worker struct {
	enc     *zarr.ShardEncoder
	emb     []byte    // ShardSize² × Bands int8, the shard's embeddings
	scales  []float32 // ShardSize² float32, the shard's scales
	covered []bool    // InnerPerSide², an inner chunk has a tile pixel
	chunk   []byte    // one raw inner chunk
	row     []byte    // one row of a tile window (3-D scales are the widest)
	outCap  int       // capacity of the last encoded shard, to size the next
	src     index.Source
}

// NewWorker allocates a worker's buffers (about 9 MiB plus the encoder),
// for tiles on a local disk.
func NewWorker() *Worker { return NewWorkerFor(nil) }

// NewWorkerFor is NewWorker for the tiles of src (nil: local paths).
func NewWorkerFor(src index.Source) *Worker {
	if src == nil {
		src = index.DirSource{}
	}
	return &Worker{
		src:     src,
		enc:     zarr.NewShardEncoder(ZstdLevel),
		emb:     make([]byte, ShardSize*ShardSize*Bands),
		scales:  make([]float32, ShardSize*ShardSize),
		covered: make([]bool, InnerPerSide*InnerPerSide),
		chunk:   make([]byte, InnerSize*InnerSize*Bands),
		row:     make([]byte, ShardSize*Bands*4),
	}
}

// window is the part of one placed tile that falls inside a shard, in
// zone pixels [r0,r1)×[c0,c1).
type window struct {
	p              index.Placement
	r0, r1, c0, c1 int
}

// shardWindows clips the placements overlapping shard (i, j) to it, in
// write order, and marks the inner chunks they cover.
func (w *Worker) shardWindows(z *index.ZoneGrid, i, j int) []window {
	sr, sc := i*ShardSize, j*ShardSize
	clear(w.covered)
	var wins []window
	for _, p := range z.Overlapping(sr, sc, sr+ShardSize, sc+ShardSize) {
		win := window{p: p,
			r0: max(sr, p.Row), r1: min(sr+ShardSize, p.Row+p.Tile.H),
			c0: max(sc, p.Col), c1: min(sc+ShardSize, p.Col+p.Tile.W)}
		if win.r0 >= win.r1 || win.c0 >= win.c1 {
			continue
		}
		wins = append(wins, win)
		for ci := (win.r0 - sr) / InnerSize; ci <= (win.r1-1-sr)/InnerSize; ci++ {
			for cj := (win.c0 - sc) / InnerSize; cj <= (win.c1-1-sc)/InnerSize; cj++ {
				w.covered[ci*InnerPerSide+cj] = true
			}
		}
	}
	return wins
}

// Inputs lists the source files a shard of zone z at (i, j) is built from,
// for the cache fingerprint: every input of every overlapping tile. Tiles
// not yet checked (a Lazy discovery) are checked first, in parallel: their
// stamps are those of the files the check opened. A tile that fails its
// check contributes a stamp no file has (size −1), so the fingerprint
// matches no cache entry and generation fails on that tile by name.
func Inputs(z *index.ZoneGrid, i, j int) []index.FileStamp {
	sr, sc := i*ShardSize, j*ShardSize
	return TileInputs(z.Overlapping(sr, sc, sr+ShardSize, sc+ShardSize))
}

// TileInputs lists the inputs of the placed tiles, checking them first
// (see Inputs).
func TileInputs(ps []index.Placement) []index.FileStamp {
	tiles := make([]*index.Tile, len(ps))
	for k, p := range ps {
		tiles[k] = p.Tile
	}
	// Fingerprints are asked for without a context (Stat, PinCached): a
	// check is a few header reads, bounded by the source's own timeouts.
	index.CheckTiles(context.Background(), tiles)
	var in []index.FileStamp
	for _, t := range tiles {
		if err := t.Check(context.Background()); err != nil {
			in = append(in, index.FileStamp{Path: t.EmbeddingsPath(), Size: -1})
			continue
		}
		in = append(in, t.Inputs...)
	}
	return in
}

// openChecked opens a tile's .npy from the worker's source and checks that
// it is still the file that was indexed: a tile replaced since discovery
// must not be served under the old geometry and fingerprint. A remote file
// is checked on its first read (size, ETag), a local one at once with the
// open file's own fstat, so a file replaced after the check cannot slip in.
func (w *Worker) openChecked(ctx context.Context, t *index.Tile, path string) (*npy.File, prefetcher, error) {
	// A tile of a lazy discovery (the mount) is checked on first use;
	// a bad one fails here, by name, every time.
	if err := t.Check(ctx); err != nil {
		return nil, nil, err
	}
	want := index.FileStamp{Path: path, Size: -1}
	for _, s := range t.Inputs {
		if s.Path == path {
			want = s
		}
	}
	var sf index.SourceFile
	var err error
	if want.Size < 0 {
		sf, err = w.src.Open(ctx, path)
	} else {
		sf, err = index.OpenStamp(ctx, w.src, want)
	}
	if err != nil {
		return nil, nil, &index.TileReadError{Coord: t.Coord, Err: err}
	}
	st := sf.Stamp()
	f, err := npy.NewFile(sf, st.Size, st.ModTime, path)
	if err != nil {
		sf.Close()
		return nil, nil, &index.TileReadError{Coord: t.Coord, Err: err}
	}
	pf, _ := sf.(prefetcher)
	return f, pf, nil
}

// prefetcher is a SourceFile that can load a byte range ahead of the reads
// (a remote file: one request per contiguous run of missing blocks).
type prefetcher interface {
	Prefetch(off, n int64) error
}

// openWindows opens the file of every window (embeddings or scales, as
// path picks) and, for remote files, fetches every window's row band at
// once, so that a shard costs one round of parallel requests rather than
// one per tile. bytesPerPixel is that of the file's pixels.
func (w *Worker) openWindows(ctx context.Context, wins []window, path func(*index.Tile) string, bytesPerPixel func(*index.Tile) int64) ([]*npy.File, error) {
	files := make([]*npy.File, len(wins))
	pfs := make([]prefetcher, len(wins))
	closeAll := func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}
	for k, win := range wins {
		f, pf, err := w.openChecked(ctx, win.p.Tile, path(win.p.Tile))
		if err != nil {
			closeAll()
			return nil, err
		}
		files[k], pfs[k] = f, pf
	}
	errs := make([]error, len(wins))
	var wg sync.WaitGroup
	for k, win := range wins {
		if pfs[k] == nil {
			continue
		}
		t := win.p.Tile
		px := bytesPerPixel(t)
		first := (int64(win.r0-win.p.Row)*int64(t.W) + int64(win.c0-win.p.Col)) * px
		last := (int64(win.r1-1-win.p.Row)*int64(t.W) + int64(win.c1-win.p.Col)) * px
		off := files[k].Header.DataOffset
		wg.Go(func() {
			if err := pfs[k].Prefetch(off+first, last-first); err != nil {
				errs[k] = &index.TileReadError{Coord: t.Coord, Err: err}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			closeAll()
			return nil, err
		}
	}
	return files, nil
}

// EmbeddingsShard returns the encoded embeddings shard (i, j) of zone z,
// or nil if no tile touches it.
func (w *Worker) EmbeddingsShard(ctx context.Context, z *index.ZoneGrid, i, j int) ([]byte, error) {
	wins := w.shardWindows(z, i, j)
	if len(wins) == 0 {
		return nil, nil
	}
	if err := w.fillEmbeddings(ctx, i, j, wins); err != nil {
		return nil, err
	}
	const px = Bands // bytes per pixel
	// An all-zero inner chunk (the fill value) is left out (spec §3). The
	// shard itself is written whenever a tile touches it, even in the
	// unlikely case that every chunk is zero: listing it must not read the
	// embeddings (spec §3), so it cannot know.
	out, _, err := w.encode(InnerSize*InnerSize*px, func(ci, cj int, dst []byte) bool {
		var bits byte
		for k := range InnerSize {
			row := w.emb[((ci*InnerSize+k)*ShardSize+cj*InnerSize)*px:][:InnerSize*px]
			copy(dst[k*InnerSize*px:], row)
			for _, b := range row {
				bits |= b
			}
		}
		return bits != 0
	})
	return out, err
}

// fillEmbeddings paints w.emb for shard (i, j) from its windows, in write
// order. The buffer is cleared first: an inner chunk that a tile covers
// only partly must hold the fill value 0, not a previous shard's bytes, in
// the pixels no tile covers.
func (w *Worker) fillEmbeddings(ctx context.Context, i, j int, wins []window) error {
	clear(w.emb)
	sr, sc := i*ShardSize, j*ShardSize
	const px = Bands // bytes per pixel
	files, err := w.openWindows(ctx, wins, func(t *index.Tile) string { return t.EmbeddingsPath() }, func(*index.Tile) int64 { return px })
	if err != nil {
		return err
	}
	for k, win := range wins {
		t := win.p.Tile
		f := files[k]
		files[k] = nil
		n := (win.c1 - win.c0) * px
		for r := win.r0; r < win.r1; r++ {
			dst := w.emb[((r-sr)*ShardSize+(win.c0-sc))*px:][:n]
			off := (int64(r-win.p.Row)*int64(t.W) + int64(win.c0-win.p.Col)) * px
			if _, err := f.ReadAt(dst, off); err != nil {
				f.Close()
				closeFiles(files)
				return &index.TileReadError{Coord: t.Coord, Path: t.EmbeddingsPath(), Err: err}
			}
		}
		f.Close()
	}
	return nil
}

// ScalesShard returns the encoded scales shard (i, j) of zone z, or nil if
// it has no finite scale (no tile touches it, or all its pixels are water
// or NaN). Water pixels and non-finite scales become NaN; 3-D scales are
// reduced by NaN-aware max over bands. An inner chunk of NaN alone (the
// fill value) is left out (spec §3).
func (w *Worker) ScalesShard(ctx context.Context, z *index.ZoneGrid, i, j int, masks *Masks) ([]byte, error) {
	wins := w.shardWindows(z, i, j)
	if len(wins) == 0 {
		return nil, nil
	}
	if err := w.fillScales(ctx, z, i, j, wins, masks); err != nil {
		return nil, err
	}
	out, stored, err := w.encode(InnerSize*InnerSize*4, func(ci, cj int, dst []byte) bool {
		valid := false
		for k := range InnerSize {
			src := w.scales[(ci*InnerSize+k)*ShardSize+cj*InnerSize:][:InnerSize]
			for x, v := range src {
				binary.LittleEndian.PutUint32(dst[(k*InnerSize+x)*4:], math.Float32bits(v))
				valid = valid || v == v
			}
		}
		return valid
	})
	if stored == 0 {
		return nil, err
	}
	return out, err
}

// NewProbeFor returns a Worker with only the buffers HasScales needs (about
// 400 KiB): for deciding, without generating, which scales and rgb shards
// exist, for tiles on a local disk. Only HasScales may be called on it.
// It reads the tiles of src (nil: local paths).
func NewProbeFor(src index.Source) *Worker {
	if src == nil {
		src = index.DirSource{}
	}
	return &Worker{
		src:     src,
		scales:  make([]float32, ShardSize*ShardSize),
		covered: make([]bool, InnerPerSide*InnerPerSide),
		row:     make([]byte, ShardSize*Bands*4),
	}
}

// HasScales reports whether shard (i, j) of zone z has a finite scale,
// that is whether its scales and rgb shards exist (spec §3: a shard whose
// inner chunks all hold the fill value is absent). It reads the scales and
// landmasks of the tiles that touch the shard, never their embeddings.
func (w *Worker) HasScales(ctx context.Context, z *index.ZoneGrid, i, j int, masks *Masks) (bool, error) {
	wins := w.shardWindows(z, i, j)
	if len(wins) == 0 {
		return false, nil
	}
	if err := w.fillScales(ctx, z, i, j, wins, masks); err != nil {
		return false, err
	}
	for _, v := range w.scales {
		if v == v {
			return true, nil
		}
	}
	return false, nil
}

// fillScales paints w.scales for shard (i, j) from its windows, in write
// order; pixels no tile covers are NaN.
func (w *Worker) fillScales(ctx context.Context, z *index.ZoneGrid, i, j int, wins []window, masks *Masks) error {
	nan := float32(math.NaN())
	for k := range w.scales {
		w.scales[k] = nan
	}
	sr, sc := i*ShardSize, j*ShardSize
	files, err := w.openWindows(ctx, wins, func(t *index.Tile) string { return t.ScalesPath() },
		func(t *index.Tile) int64 { return int64(max(t.ScalesBands, 1)) * 4 })
	if err != nil {
		return err
	}
	for k, win := range wins {
		t := win.p.Tile
		f := files[k]
		files[k] = nil
		mask, err := masks.MaskErr(ctx, t)
		if err != nil {
			f.Close()
			closeFiles(files)
			return err
		}
		bands := max(t.ScalesBands, 1)
		n := win.c1 - win.c0
		row := w.row[:n*bands*4]
		for r := win.r0; r < win.r1; r++ {
			tr := r - win.p.Row
			tc0 := win.c0 - win.p.Col
			off := (int64(tr)*int64(t.W) + int64(tc0)) * int64(bands) * 4
			if _, err := f.ReadAt(row, off); err != nil {
				f.Close()
				closeFiles(files)
				return &index.TileReadError{Coord: t.Coord, Path: t.ScalesPath(), Err: err}
			}
			dst := w.scales[(r-sr)*ShardSize+(win.c0-sc):][:n]
			for x := range n {
				v := nanMax(row[x*bands*4:][:bands*4])
				if mask != nil && mask[tr*t.W+tc0+x] == 0 {
					v = nan
				}
				dst[x] = v
			}
		}
		f.Close()
	}
	return nil
}

// closeFiles closes the files not yet closed.
func closeFiles(files []*npy.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// nanMax returns the NaN-aware max of little-endian float32 values, NaN if
// all are NaN; ±Inf becomes NaN (non-finite scales mark no data).
func nanMax(b []byte) float32 {
	best := float32(math.NaN())
	for k := 0; k < len(b); k += 4 {
		v := math.Float32frombits(binary.LittleEndian.Uint32(b[k:]))
		if v != v {
			continue
		}
		if best != best || v > best {
			best = v
		}
	}
	if math.IsInf(float64(best), 0) {
		return float32(math.NaN())
	}
	return best
}

// encode builds a shard of InnerPerSide² inner chunks of chunkBytes each;
// gather copies inner chunk (ci, cj) into dst and reports whether it holds
// a value other than the fill value. Inner chunks that no tile covers or
// that hold only the fill value are left out (absent = fill value, spec
// §3); stored counts the others.
func (w *Worker) encode(chunkBytes int, gather func(ci, cj int, dst []byte) bool) (out []byte, stored int, err error) {
	if cap(w.chunk) < chunkBytes {
		w.chunk = make([]byte, chunkBytes)
	}
	buf := w.chunk[:chunkBytes]
	// The shard is encoded into a buffer the caller keeps (cache, reply),
	// sized from the last one so that it is rarely grown and never copied.
	out, err = w.enc.Encode(make([]byte, 0, w.outCap), InnerPerSide*InnerPerSide, func(k int) []byte {
		if !w.covered[k] {
			return nil
		}
		if !gather(k/InnerPerSide, k%InnerPerSide, buf) {
			return nil
		}
		stored++
		return buf
	})
	if err != nil {
		return nil, 0, err
	}
	w.outCap = max(w.outCap, cap(out))
	return out, stored, nil
}
