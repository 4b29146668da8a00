package synth

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/landmask"
	"github.com/tesserafs/tesserafs/internal/npy"
)

// Options says what Write makes.
type Options struct {
	Year  int
	Tiles []TileSpec
	// Sparse writes every .npy as a valid header followed by a hole up to
	// its full size (ftruncate): no disk blocks, and its data reads as
	// zeros (embeddings 0, scales 0.0, a valid scale). The landmask is
	// written, as all land (1): a DEFLATE TIFF of a few kilobytes built
	// directly (landmask.EncodeUniform), so a store built from sparse tiles
	// reads masks as it would for real tiles, logs no "missing landmask"
	// warnings, and has no water. Sparse tiles are for benchmarks of scale
	// (100,000 tiles in tens of seconds), not for value tests.
	Sparse bool
	// Workers is how many tiles are generated at once; 0 means GOMAXPROCS.
	Workers int
}

// Summary is what Write wrote.
type Summary struct {
	Tiles int
	// Bytes is the total size of the tile files written (.npy, scales,
	// landmask); for sparse tiles, their apparent size, not disk usage.
	Bytes int64
}

// Layout of a tiles root (spec §1).
const (
	RepresentationDir = "global_0.1_degree_representation"
	LandmaskDir       = "global_0.1_degree_tiff_all"
	ManifestName      = "synth.json"
)

// EmbeddingsPath is <root>/global_0.1_degree_representation/<year>/<name>/<name>.npy.
func EmbeddingsPath(root string, year int, c index.TileCoord) string {
	return filepath.Join(root, RepresentationDir, strconv.Itoa(year), c.Name(), c.Name()+".npy")
}

// ScalesPath is <root>/global_0.1_degree_representation/<year>/<name>/<name>_scales.npy.
func ScalesPath(root string, year int, c index.TileCoord) string {
	return filepath.Join(root, RepresentationDir, strconv.Itoa(year), c.Name(), c.Name()+"_scales.npy")
}

// LandmaskPath is <root>/global_0.1_degree_tiff_all/<name>.tiff: one per
// tile, shared by all years.
func LandmaskPath(root string, c index.TileCoord) string {
	return filepath.Join(root, LandmaskDir, c.Name()+".tiff")
}

// Write writes the tiles of opts under root in the source layout (spec §1),
// merges them into root's manifest, synth.json, and rewrites root's
// registry.parquet and landmasks.parquet from it (WriteRegistries). For each tile, at tile
// pixel (i, j) with global pixel (gE, gN) (see Global):
//
//   - <name>.npy, int8 (H, W, 128): band b < 127 = Embedding(gE, gN, b),
//     band 127 = Stamp(lon100, lat100);
//   - <name>_scales.npy, float32 (H, W) = Scale(gE, gN), or (H, W, 128) =
//     Scale3D(gE, gN, b) when the tile's Scales3D is set;
//   - <name>.tiff, uint8 (H, W) = 0 where Water(gE, gN), else 1; absent
//     when NoLandmask. The landmask is per tile, not per year: the last
//     Write of a tile decides it for every year.
//
// H and W are the tile's Footprint. Every file is written to a temporary
// name in its directory and renamed into place when complete, so a killed
// Write leaves whole files or hidden temporaries (".<name>.tmp*"), never a
// short file under a tile's name. Files are streamed a row at a time; tiles
// are generated in parallel, one go-proj Projector per worker.
//
// Tiles that were written completely are recorded in the manifest even when
// Write fails on another tile or is cancelled; the first error is returned.
func Write(ctx context.Context, root string, opts Options) (Summary, error) {
	if opts.Year < 1 || opts.Year > 9999 {
		return Summary{}, fmt.Errorf("synth: year %d out of range 1..9999", opts.Year)
	}
	if len(opts.Tiles) == 0 {
		return Summary{}, errors.New("synth: no tiles")
	}
	seen := make(map[index.TileCoord]bool, len(opts.Tiles))
	for _, t := range opts.Tiles {
		if _, err := index.ParseTileName(t.Coord.Name()); err != nil {
			return Summary{}, fmt.Errorf("synth: %w", err)
		}
		if seen[t.Coord] {
			return Summary{}, fmt.Errorf("synth: tile %s listed twice", t.Coord)
		}
		seen[t.Coord] = true
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(opts.Tiles))
	if err := os.MkdirAll(filepath.Join(root, RepresentationDir, strconv.Itoa(opts.Year)), 0o755); err != nil {
		return Summary{}, fmt.Errorf("synth: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(root, LandmaskDir), 0o755); err != nil {
		return Summary{}, fmt.Errorf("synth: %w", err)
	}

	var (
		written atomic.Int64
		mu      sync.Mutex
		done    []TileSpec // guarded by mu
	)
	next := make(chan TileSpec)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(next)
		for _, t := range opts.Tiles {
			select {
			case next <- t:
			case <-gctx.Done():
				return nil
			}
		}
		return nil
	})
	for range workers {
		g.Go(func() error {
			p := index.NewProjector()
			for t := range next {
				n, err := writeTile(gctx, p, root, opts.Year, t, opts.Sparse)
				if err != nil {
					return err
				}
				written.Add(n)
				mu.Lock()
				done = append(done, t)
				mu.Unlock()
				slog.Debug("synth: wrote tile", "tile", t.Coord, "bytes", n)
			}
			return nil
		})
	}
	err := g.Wait()
	if err == nil {
		err = ctx.Err() // cancelled before every tile was handed out
	}
	sum := Summary{Tiles: len(done), Bytes: written.Load()}
	if len(done) > 0 {
		if merr := updateManifest(root, opts.Year, done, opts.Sparse); merr != nil && err == nil {
			err = merr
		}
		if err == nil {
			err = WriteRegistries(ctx, root)
		}
	}
	return sum, err
}

// writeTile writes one tile's files and returns their total size.
func writeTile(ctx context.Context, p *index.Projector, root string, year int, t TileSpec, sparse bool) (int64, error) {
	fp, err := p.Footprint(t.Coord)
	if err != nil {
		return 0, fmt.Errorf("synth: %w", err)
	}
	if fp.W <= 0 || fp.H <= 0 {
		return 0, fmt.Errorf("synth: tile %s: empty footprint %+v", t.Coord, fp)
	}
	if err := os.MkdirAll(filepath.Dir(EmbeddingsPath(root, year, t.Coord)), 0o755); err != nil {
		return 0, fmt.Errorf("synth: %w", err)
	}
	g := newRowGen(t.Coord, fp)
	var total int64

	embPath := EmbeddingsPath(root, year, t.Coord)
	n, err := writeNpy(ctx, embPath, "<i1", []int{fp.H, fp.W, 128}, fp.W*128, sparse, g.embeddings)
	if err != nil {
		return 0, err
	}
	total += n

	scaleShape, scaleRow := []int{fp.H, fp.W}, fp.W*4
	if t.Scales3D {
		scaleShape, scaleRow = []int{fp.H, fp.W, 128}, fp.W*128*4
	}
	fill := func(dst []byte, i int) { g.scales(dst, i, t.Scales3D) }
	n, err = writeNpy(ctx, ScalesPath(root, year, t.Coord), "<f4", scaleShape, scaleRow, sparse, fill)
	if err != nil {
		return 0, err
	}
	total += n

	maskPath := LandmaskPath(root, t.Coord)
	switch {
	case t.NoLandmask:
		if err := os.Remove(maskPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("synth: %w", err)
		}
	case sparse:
		var enc bytes.Buffer
		if err := landmask.EncodeUniform(&enc, fp.W, fp.H, 1); err != nil {
			return 0, fmt.Errorf("synth: landmask %s: %w", maskPath, err)
		}
		if err := writeFileAtomic(maskPath, enc.Bytes()); err != nil {
			return 0, err
		}
		total += int64(enc.Len())
	default:
		if err := landmask.Write(maskPath, fp.W, fp.H, g.mask()); err != nil {
			return 0, fmt.Errorf("synth: %w", err)
		}
		fi, err := os.Stat(maskPath)
		if err != nil {
			return 0, fmt.Errorf("synth: %w", err)
		}
		total += fi.Size()
	}
	return total, nil
}

// writeNpy writes a .npy of the given dtype and shape atomically, its data
// rowBytes per row from fill(dst, row) for shape[0] rows, or, when sparse, a
// hole of that size. It returns the file's size.
func writeNpy(ctx context.Context, path, descr string, shape []int, rowBytes int, sparse bool, fill func(dst []byte, i int)) (int64, error) {
	f, err := createTemp(path)
	if err != nil {
		return 0, err
	}
	size, err := func() (int64, error) {
		if sparse {
			off, err := npy.WriteHeader(f, descr, shape)
			if err != nil {
				return 0, err
			}
			size := off + int64(shape[0])*int64(rowBytes)
			return size, f.Truncate(size)
		}
		bw := bufio.NewWriterSize(f, 1<<20)
		off, err := npy.WriteHeader(bw, descr, shape)
		if err != nil {
			return 0, err
		}
		size := off + int64(shape[0])*int64(rowBytes)
		row := make([]byte, rowBytes)
		for i := range shape[0] {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			fill(row, i)
			if _, err := bw.Write(row); err != nil {
				return 0, err
			}
		}
		return size, bw.Flush()
	}()
	if err := commitTemp(f, path, err); err != nil {
		return 0, err
	}
	return size, nil
}

// createTemp creates the hidden temporary file that will become path, mode
// 0644 (before umask): tiles are data for other users and processes (a FUSE
// server, Python tests). Unlike os.CreateTemp (0600) it needs no chmod: one
// syscall less per file matters for 100,000 sparse tiles.
func createTemp(path string) (*os.File, error) {
	for {
		tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp"+strconv.FormatUint(rand.Uint64(), 36))
		f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("synth: %w", err)
		}
		return f, nil
	}
}

// commitTemp closes f and renames it to path if err (the error of writing
// it) is nil; otherwise, or if that fails, it removes f and returns the
// error naming path.
func commitTemp(f *os.File, path string, err error) error {
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return fmt.Errorf("synth: %s: %w", path, err)
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	f, err := createTemp(path)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	return commitTemp(f, path, err)
}
