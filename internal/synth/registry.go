package synth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tesserafs/tesserafs/index"
)

// WriteRegistries writes root's registry.parquet and landmasks.parquet in
// geotessera's schema (see index.RegistryRow) from its manifest: one row
// per tile of every year, one per landmask file, with the files' sizes,
// modification times and sha256. Write calls it, so every synthetic root
// is also a valid remote root.
//
// Sparse tiles get no .npy hashes (empty strings, "not known"): hashing
// means reading every byte, 100 MB of zeros per tile, which for a million
// tiles is hours for nothing (their content is a header and a hole).
// Readers never fetch a tile whole to check it anyway; a landmask, which
// they do fetch whole, is always hashed (it is a few kilobytes).
// Dense tiles are hashed again at every Write: they are few (tests, the
// demo), and a kept hash could go stale.
func WriteRegistries(ctx context.Context, root string) error {
	m, err := ReadManifest(root)
	if err != nil {
		return err
	}
	type job struct {
		year int
		t    ManifestTile
	}
	var jobs []job
	for _, y := range m.Years {
		for _, t := range y.Tiles {
			jobs = append(jobs, job{y.Year, t})
		}
	}
	rows := make([]index.RegistryRow, len(jobs))
	errs := make([]error, len(jobs))
	parallel(ctx, len(jobs), func(i int) {
		j := jobs[i]
		c := index.TileCoord{Lon100: j.t.Lon100, Lat100: j.t.Lat100}
		r := index.RegistryRow{
			Geometry: index.PointWKB(c.Lon(), c.Lat()),
			Lat:      c.Lat(), Lon: c.Lon(), Year: int64(j.year),
			LonI: int32(c.Lon100), LatI: int32(c.Lat100),
		}
		var emb, sc fileFacts
		if emb, errs[i] = facts(EmbeddingsPath(root, j.year, c), !j.t.Sparse); errs[i] != nil {
			return
		}
		if sc, errs[i] = facts(ScalesPath(root, j.year, c), !j.t.Sparse); errs[i] != nil {
			return
		}
		r.Hash, r.FileSize, r.MTime = emb.hash, emb.size, emb.mtime
		r.ScalesHash, r.ScalesSize = sc.hash, sc.size
		rows[i] = r
	})
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		return fmt.Errorf("synth: registry: %w", err)
	}

	// Landmasks: one per tile that has one, whatever the year.
	seen := map[index.TileCoord]bool{}
	var masks []index.TileCoord
	for _, y := range m.Years {
		for _, t := range y.Tiles {
			c := index.TileCoord{Lon100: t.Lon100, Lat100: t.Lat100}
			if t.Landmask != LandmaskNone && !seen[c] {
				seen[c] = true
				masks = append(masks, c)
			}
		}
	}
	lrows := make([]index.LandmaskRow, len(masks))
	errs = make([]error, len(masks))
	parallel(ctx, len(masks), func(i int) {
		c := masks[i]
		f, err := facts(LandmaskPath(root, c), true)
		if err != nil {
			errs[i] = err
			return
		}
		lrows[i] = index.LandmaskRow{Geometry: index.PointWKB(c.Lon(), c.Lat()), Lat: c.Lat(), Lon: c.Lon(),
			LonI: int32(c.Lon100), LatI: int32(c.Lat100), Hash: f.hash, FileSize: f.size}
	})
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		return fmt.Errorf("synth: landmasks: %w", err)
	}

	var buf bytes.Buffer
	if err := index.WriteRegistry(&buf, rows); err != nil {
		return fmt.Errorf("synth: registry: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(root, index.RegistryName), buf.Bytes()); err != nil {
		return err
	}
	buf.Reset()
	if err := index.WriteLandmasks(&buf, lrows); err != nil {
		return fmt.Errorf("synth: landmasks: %w", err)
	}
	return writeFileAtomic(filepath.Join(root, index.LandmasksName), buf.Bytes())
}

// fileFacts are a file's registry columns.
type fileFacts struct {
	size  int64
	mtime time.Time
	hash  string
}

// facts stats path and, if hash, hashes it.
func facts(path string, hash bool) (fileFacts, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileFacts{}, err
	}
	f := fileFacts{size: fi.Size(), mtime: fi.ModTime()}
	if !hash {
		return f, nil
	}
	r, err := os.Open(path)
	if err != nil {
		return fileFacts{}, err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return fileFacts{}, fmt.Errorf("%s: %w", path, err)
	}
	f.hash = hex.EncodeToString(h.Sum(nil))
	return f, nil
}

// parallel runs fn(0..n-1) on GOMAXPROCS × 2 goroutines (stat and read
// wait on the disk), stopping early when ctx is done.
func parallel(ctx context.Context, n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, 2*runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}
