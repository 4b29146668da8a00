package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"golang.org/x/term"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/cache"
	"github.com/tesserafs/tesserafs/internal/keyspace"
	"github.com/tesserafs/tesserafs/internal/store"
)

func init() { subcommands = append(subcommands, newCacheCmd) }

func newCacheCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache stats|clear|warm --cache DIR",
		Short: "Inspect, empty or fill the chunk cache that mount, serve and cache warm share",
	}
	cmd.AddCommand(newCacheStatsCmd(), newCacheClearCmd(), newCacheWarmCmd())
	return cmd
}

func newCacheStatsCmd() *cobra.Command {
	var o cacheOptions
	cmd := &cobra.Command{
		Use:   "stats --cache DIR",
		Short: "Entries, bytes, budget and hit rate of a cache",
		Long: `Stats prints a cache's entries, bytes, budget, disk use, hits, misses and hit
rate (counted since the cache was created or cleared). A cache held open by a
running mount or serve is reported from the stats file that process refreshes,
naming the process.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCacheStats(o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.Cache, "cache", "", "cache directory")
	return cmd
}

func runCacheStats(o cacheOptions, stdout io.Writer) error {
	if o.Cache == "" {
		return usageErrorf("--cache is required")
	}
	if _, err := os.Stat(o.Cache); err != nil {
		return usageErrorf("--cache %s: %v", o.Cache, err)
	}
	c, err := cache.Open(o.Cache, cache.Options{Logger: slog.Default()})
	var st cache.Stats
	switch {
	case errors.Is(err, cache.ErrLocked):
		st, err = cache.ReadStatsFile(o.Cache)
		if err != nil {
			return usageErrorf("cache %s is in use by %s, which has not written its stats yet (%v); try again in a few seconds", o.Cache, lockHolder(o.Cache), err)
		}
		fmt.Fprintf(stdout, "cache %s is in use by %s; stats as of %s:\n", o.Cache, lockHolder(o.Cache), st.Written.Local().Format(time.DateTime))
	case err != nil:
		return err
	default:
		st = c.Stats()
		if err := c.Close(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "cache %s:\n", o.Cache)
	}
	fmt.Fprintf(stdout, "  entries   %d\n", st.Entries)
	fmt.Fprintf(stdout, "  bytes     %s (%.1f%% of the %s budget)\n", fmtBytes(st.Bytes), 100*float64(st.Bytes)/float64(max(st.Budget, 1)), fmtBytes(st.Budget))
	fmt.Fprintf(stdout, "  disk      %s\n", fmtBytes(st.Disk))
	fmt.Fprintf(stdout, "  hits      %d\n", st.Hits)
	fmt.Fprintf(stdout, "  misses    %d\n", st.Misses)
	fmt.Fprintf(stdout, "  hit rate  %.1f%%\n", 100*st.HitRate())
	fmt.Fprintf(stdout, "  evictions %d (this session)\n", st.Evictions)
	if st.Source != nil {
		fmt.Fprintf(stdout, "  source    %s\n", fmtSourceStats(*st.Source))
	}
	return nil
}

func newCacheClearCmd() *cobra.Command {
	var o cacheOptions
	cmd := &cobra.Command{
		Use:   "clear --cache DIR",
		Short: "Remove every entry of a cache",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCacheClear(o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.Cache, "cache", "", "cache directory")
	return cmd
}

func runCacheClear(o cacheOptions, stdout io.Writer) error {
	if o.Cache == "" {
		return usageErrorf("--cache is required")
	}
	if _, err := os.Stat(o.Cache); err != nil {
		return usageErrorf("--cache %s: %v", o.Cache, err)
	}
	c, err := o.open(slog.Default())
	if err != nil {
		return err
	}
	before := c.Stats()
	if err := c.Clear(); err != nil {
		c.Close()
		return err
	}
	if err := c.Close(); err != nil {
		return err
	}
	after, _ := cache.DiskUsage(o.Cache)
	fmt.Fprintf(stdout, "cleared %s: %d entries, %s removed; %s on disk now\n", o.Cache, before.Entries, fmtBytes(before.Bytes), fmtBytes(after))
	return nil
}

type cacheWarmOptions struct {
	storeOptions
	cacheOptions
	BBox string
}

func newCacheWarmCmd() *cobra.Command {
	var o cacheWarmOptions
	cmd := &cobra.Command{
		Use:   "warm --tiles DIR|URL --cache DIR [--zones Z,...] [--bbox lon0,lat0,lon1,lat1]",
		Short: "Generate shards into a cache ahead of use",
		Long: `Warm generates the shards of the given zones (--zones), or of the tiles that
touch a lon/lat box (--bbox lon0,lat0,lon1,lat1 in degrees), and keeps them
in the cache, so that a later mount serves them at once. Shards already
cached are skipped. Give the same --tiles, --year and --stretch as the mount
will use: a shard is cached under the fingerprint of its inputs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCacheWarm(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	o.storeOptions.register(cmd.Flags())
	o.cacheOptions.register(cmd.Flags(), "cache budget, e.g. 20GiB (default: the cache's last, or 20GiB)")
	cmd.Flags().StringVar(&o.BBox, "bbox", "", "only shards of the tiles touching this lon/lat box: lon0,lat0,lon1,lat1")
	return cmd
}

// warmKeys lists the data chunks to warm: every chunk of the zones'
// sharded arrays, or with a box only the shards that a tile touching the
// box overlaps. Coordinate chunks are not cached and not listed.
func warmKeys(ctx context.Context, st *store.Store, box *[4]float64) ([]string, error) {
	var keys []string
	for _, y := range st.Catalogue().Years {
		for _, z := range y.Zones {
			var want map[index.ShardIndex]bool
			if box != nil {
				want = shardsInBox(z, *box)
				if len(want) == 0 {
					continue
				}
			}
			err := st.Walk(ctx, keyspace.ZoneDir(y.Year, z.Zone), func(k string) error {
				key, ok := keyspace.Parse(k)
				if !ok || key.Phase() != keyspace.PhaseZones { // metadata, coordinate chunks
					return nil
				}
				if want != nil && !want[index.ShardIndex{Row: key.Coords[0], Col: key.Coords[1]}] {
					return nil
				}
				keys = append(keys, k)
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	return keys, nil
}

const shardSize = keyspace.ShardSize

// shardsInBox returns the shards of z that some tile touching box
// (lonMin, latMin, lonMax, latMax, as parseBBox gives) overlaps.
func shardsInBox(z *index.ZoneGrid, box [4]float64) map[index.ShardIndex]bool {
	out := map[index.ShardIndex]bool{}
	for _, p := range z.Placements {
		lon, lat := p.Tile.Coord.Lon(), p.Tile.Coord.Lat()
		if lon+0.05 < box[0] || lon-0.05 > box[2] || lat+0.05 < box[1] || lat-0.05 > box[3] {
			continue
		}
		r0, c0 := max(p.Row, 0)/shardSize, max(p.Col, 0)/shardSize
		r1, c1 := (p.Row+p.Tile.H-1)/shardSize, (p.Col+p.Tile.W-1)/shardSize
		for i := r0; i <= r1; i++ {
			for j := c0; j <= c1; j++ {
				if z.HasShard(shardSize, i, j) {
					out[index.ShardIndex{Row: i, Col: j}] = true
				}
			}
		}
	}
	return out
}

func runCacheWarm(ctx context.Context, o cacheWarmOptions, stdout io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	box, err := parseBBox(o.BBox)
	if err != nil {
		return err
	}
	if o.BBox == "" && len(o.Zones) == 0 {
		return usageErrorf("say what to warm: --zones or --bbox (warming everything is what materialize is for)")
	}
	log := slog.Default()
	c, err := o.cacheOptions.open(log)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := o.storeOptions.open(ctx, storeWith{Cache: c, Logger: log})
	if err != nil {
		return err
	}
	skipped := st.Skipped
	keys, err := warmKeys(ctx, st.Store, box)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return usageErrorf("no shards in the zones or box asked for")
	}
	start := time.Now()
	var done, bytes atomic.Int64
	report, finish := warmProgress(log, stdout, int64(len(keys)))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Workers + 1) // the store bounds generation; one more keeps it busy
	for _, k := range keys {
		g.Go(func() error {
			// Stat is what warming needs: a cached chunk answers from the
			// cache's size index; another is generated and cached.
			info, err := st.Stat(gctx, k)
			if err != nil {
				return err
			}
			bytes.Add(info.Size())
			report(done.Add(1), bytes.Load())
			return nil
		})
	}
	err = g.Wait()
	finish()
	if err != nil {
		return err
	}
	s, cs := st.Stats(), c.Stats()
	fmt.Fprintf(stdout, "warmed %d shards (%s) in %.1fs: %d generated, %d already cached; cache %d entries, %s of %s\n",
		len(keys), fmtBytes(bytes.Load()), time.Since(start).Seconds(), s.Generated, int64(len(keys))-s.Generated,
		cs.Entries, fmtBytes(cs.Bytes), fmtBytes(cs.Budget))
	if ss, ok := sourceStats(st.Catalogue()); ok {
		fmt.Fprintf(stdout, "source %s: %s\n", o.Tiles, fmtSourceStats(ss))
	}
	if bytes.Load() > cs.Budget {
		log.Warn("the shards warmed are larger than the cache budget: the first ones were evicted again; raise --cache-size or warm less",
			"warmed", fmtBytes(bytes.Load()), "budget", fmtBytes(cs.Budget))
	}
	if len(skipped) > 0 {
		return skippedError{len(skipped)}
	}
	return nil
}

// warmProgress shows a progress bar on a terminal and a log line every
// ten seconds otherwise.
func warmProgress(log *slog.Logger, stdout io.Writer, total int64) (func(done, bytes int64), func()) {
	var mu sync.Mutex
	if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		bar := progressbar.NewOptions64(total, progressbar.OptionSetWriter(f),
			progressbar.OptionSetDescription("warm"), progressbar.OptionShowCount(),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
		return func(done, _ int64) {
				mu.Lock()
				bar.Set64(done)
				mu.Unlock()
			}, func() {
				bar.Finish()
			}
	}
	last := time.Now()
	return func(done, bytes int64) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) >= 10*time.Second || done == total {
			last = time.Now()
			log.Info("warm", "shards", fmt.Sprintf("%d/%d", done, total), "bytes", fmtBytes(bytes))
		}
	}, func() {}
}
