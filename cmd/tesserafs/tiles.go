package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"

	"github.com/spf13/pflag"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/cache"
	"github.com/tesserafs/tesserafs/internal/s3conf"
	"github.com/tesserafs/tesserafs/internal/source"
)

// tileOptions are the flags shared by every command that reads a tiles
// root: where it is, and which years and zones to take. The commands that
// open a store use storeOptions (open.go), which adds the rest.
type tileOptions struct {
	Tiles   string
	Years   []int
	Zones   []int
	Workers int
	// SourceCache is the remote block cache's size in bytes.
	SourceCache sizeValue
	// Registry is --registry: the registry.parquet to discover from.
	Registry string
	// lazy leaves each tile's checks to its first use (the mount); the
	// other commands check every tile before they start.
	lazy bool
}

func (o *tileOptions) register(fs *pflag.FlagSet) {
	fs.StringVar(&o.Tiles, "tiles", "", "tiles root: a directory, https://host/prefix/ or s3://bucket/prefix/ (holds global_0.1_degree_representation/)")
	o.SourceCache = sizeValue(source.DefaultCacheBytes)
	fs.Var(&o.SourceCache, "source-cache-size", "remote tile blocks kept in memory, e.g. 512MiB (remote --tiles only)")
	fs.IntSliceVar(&o.Years, "year", nil, "years to take (default: all found)")
	fs.IntSliceVar(&o.Zones, "zones", nil, "UTM zones to take, e.g. 30,31 (default: all)")
	fs.IntVar(&o.Workers, "workers", runtime.GOMAXPROCS(0), "concurrent workers")
	fs.StringVar(&o.Registry, "registry", "", `registry.parquet to discover the tiles from: a file or URL (default: the tiles root's own, if it has one; "none": list the root)`)
}

func (o *tileOptions) validate() error {
	if o.Tiles == "" {
		return usageErrorf("--tiles is required")
	}
	switch {
	case s3conf.IsURL(o.Tiles):
		if _, err := s3conf.ParseURL(o.Tiles); err != nil {
			return usageErrorf("--tiles: %v", err)
		}
	case source.IsRemote(o.Tiles):
		if _, err := source.ParseHTTPURL(o.Tiles); err != nil {
			return usageErrorf("--tiles: %v", err)
		}
	default:
		fi, err := os.Stat(o.Tiles)
		if err != nil {
			return usageErrorf("--tiles %s: %v", o.Tiles, err)
		}
		if !fi.IsDir() {
			return usageErrorf("--tiles %s: not a directory", o.Tiles)
		}
	}
	if o.Workers < 1 || o.Workers > 1024 {
		return usageErrorf("--workers %d: want 1..1024", o.Workers)
	}
	for _, z := range o.Zones {
		if z < 1 || z > 60 {
			return usageErrorf("--zones: %d is not a UTM zone (1..60)", z)
		}
	}
	for _, y := range o.Years {
		if y < 1900 || y > 2999 {
			return usageErrorf("--year: %d is not a plausible year", y)
		}
	}
	return nil
}

// discover indexes the tiles and reports what it skipped.
func (o *tileOptions) discover(ctx context.Context) (*index.Catalogue, []index.Problem, error) {
	src, err := source.OpenWith(ctx, o.Tiles, source.Options{CacheBytes: int64(o.SourceCache)})
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, err
		}
		return nil, nil, userError{err}
	}
	opts := index.Options{Years: o.Years, Zones: o.Zones, Workers: 4 * o.Workers,
		LogLimit: problemsShown, Registry: o.Registry, Lazy: o.lazy}
	if source.IsRemote(o.Registry) {
		// A registry elsewhere than the root: a source rooted at its
		// directory opens it.
		dir := o.Registry[:strings.LastIndex(o.Registry, "/")+1]
		if opts.RegistrySource, err = source.OpenWith(ctx, dir, source.Options{CacheBytes: int64(o.SourceCache)}); err != nil {
			return nil, nil, userError{fmt.Errorf("--registry %s: %w", o.Registry, err)}
		}
	}
	// Discover logs what it skipped and why (the first problemsShown of
	// each kind); the commands add only the counts.
	cat, err := index.DiscoverSource(ctx, src, opts)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, err
		}
		return nil, nil, userError{err} // a tiles root that is not laid out as spec §1
	}
	var skipped []index.Problem
	for _, y := range cat.Years {
		skipped = append(skipped, y.Problems...)
	}
	if len(cat.Years) == 0 {
		return nil, nil, userError{fmt.Errorf("no tiles found under %s for the years and zones asked for", o.Tiles)}
	}
	return cat, skipped, nil
}

// problemsShown is how many problems of each kind are logged in full.
const problemsShown = 20

// reportProblems logs the first problems in full and counts the rest.
func reportProblems(log *slog.Logger, what string, ps []index.Problem) {
	for i, p := range ps {
		if i == problemsShown {
			log.Warn(fmt.Sprintf("%d more %s not shown", len(ps)-problemsShown, what))
			break
		}
		log.Warn(what, "path", p.Path, "reason", p.Reason)
	}
}

// skippedError makes a run that skipped tiles end with exit status 3,
// after doing all the work it could.
type skippedError struct{ n int }

func (e skippedError) Error() string {
	return fmt.Sprintf("%d tile(s) were skipped (see the warnings above); everything else was built", e.n)
}
func (e skippedError) ExitCode() int { return 3 }

// sourceStats returns what cat's remote source has done; ok is false for
// local tiles.
func sourceStats(cat *index.Catalogue) (cache.SourceStats, bool) {
	if cat == nil || cat.Source == nil {
		return cache.SourceStats{}, false
	}
	s, ok := source.StatsOf(cat.Source)
	if !ok {
		return cache.SourceStats{}, false
	}
	return cache.SourceStats{Requests: s.Requests, Retries: s.Retries, BytesFetched: s.BytesFetched,
		BlockHits: s.BlockHits, BlockMisses: s.BlockMisses, BlockBytes: s.CacheBytes, BlockLimit: s.CacheLimit,
		Failures: s.Failures}, true
}

// fmtSourceStats is one line on what a remote source did.
func fmtSourceStats(s cache.SourceStats) string {
	return fmt.Sprintf("%d requests (%d retries, %d failed reads), %s fetched; blocks: %d hits, %d fetched, %s of %s cached",
		s.Requests, s.Retries, s.Failures, fmtBytes(s.BytesFetched), s.BlockHits, s.BlockMisses,
		fmtBytes(s.BlockBytes), fmtBytes(s.BlockLimit))
}
