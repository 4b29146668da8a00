package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/cache"
	"github.com/tesserafs/tesserafs/internal/live"
	"github.com/tesserafs/tesserafs/internal/source"
	"github.com/tesserafs/tesserafs/internal/store"
)

// What the two long-running front ends (mount, serve) share around their
// store: the lines they print at ready and at exit, and the source
// counters their cache reports to `cache stats`.

// yearStores names the year stores a catalogue serves: "2024.zarr, 2025.zarr".
func yearStores(cat *index.Catalogue) string {
	names := make([]string, len(cat.Years))
	for i, y := range cat.Years {
		names[i] = fmt.Sprintf("%d.zarr", y.Year)
	}
	return strings.Join(names, ", ")
}

// printCacheLine prints the cache's size against its budget.
func printCacheLine(w io.Writer, dir string, cs cache.Stats) {
	fmt.Fprintf(w, "  cache %s: %d entries, %s of %s\n", dir, cs.Entries, fmtBytes(cs.Bytes), fmtBytes(cs.Budget))
}

// attachSourceStats makes `cache stats` on c show the remote source's
// counters while a front end runs over cat (a local root has none).
func attachSourceStats(c *cache.Cache, cat *index.Catalogue) {
	if _, ok := sourceStats(cat); ok {
		c.SetSourceStats(func() cache.SourceStats { ss, _ := sourceStats(cat); return ss })
	}
}

// reportAtExit prints what a front end's run cost the source, and the
// tiles that failed when first read.
func reportAtExit(w io.Writer, log *slog.Logger, tiles string, cat *index.Catalogue) {
	if ss, ok := sourceStats(cat); ok {
		fmt.Fprintf(w, "  source %s: %s\n", tiles, fmtSourceStats(ss))
	}
	if late := cat.LateProblems(); len(late) > 0 {
		reportProblems(log, "tile failed when first read (its shards failed)", late)
	}
}

// refreshOptions is --refresh of the long-running front ends: how often
// the tiles are discovered again (SIGHUP forces it at any time).
type refreshOptions struct {
	Refresh string
}

// refreshLine says how the front end follows its tiles.
func refreshLine(every time.Duration) string {
	if every == 0 {
		return fmt.Sprintf("tiles discovered again on SIGHUP (kill -HUP %d)", os.Getpid())
	}
	return fmt.Sprintf("tiles discovered again every %s and on SIGHUP (kill -HUP %d)", every, os.Getpid())
}

// defaultRemoteRefresh is --refresh auto for a remote tiles root.
const defaultRemoteRefresh = 10 * time.Minute

func (o *refreshOptions) register(fs *pflag.FlagSet) {
	fs.StringVar(&o.Refresh, "refresh", "auto", `discover the tiles again this often and serve what changed (added, removed, replaced tiles): a duration, 0 (never; SIGHUP still does), or auto (`+defaultRemoteRefresh.String()+` for http(s):// and s3:// tiles, 0 for a local root)`)
}

// interval is --refresh for tiles (a local path or a URL).
func (o *refreshOptions) interval(tiles string) (time.Duration, error) {
	if o.Refresh == "" || o.Refresh == "auto" {
		if source.IsRemote(tiles) {
			return defaultRemoteRefresh, nil
		}
		return 0, nil
	}
	d, err := time.ParseDuration(o.Refresh)
	if err != nil || d < 0 {
		return 0, usageErrorf("--refresh %q: want a duration such as 10m, 0, or auto", o.Refresh)
	}
	return d, nil
}

// followTiles makes the front end's store follow its tiles: a live store
// that o reopens every interval and on SIGHUP, until ctx ends, once start
// is called (after the front end registered what must happen at a swap:
// the mount tells the kernel to drop its caches).
func followTiles(ctx context.Context, o *storeOptions, with storeWith, first *store.Store, interval time.Duration, log *slog.Logger) (ls *live.Store, start func()) {
	ls = live.New(first, func(ctx context.Context) (*store.Store, error) {
		st, err := o.open(ctx, with)
		if err != nil {
			return nil, err
		}
		return st.Store, nil
	}, log)
	return ls, func() {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		kick := make(chan struct{}, 1)
		go func() {
			defer signal.Stop(hup)
			for {
				select {
				case <-ctx.Done():
					return
				case <-hup:
					select {
					case kick <- struct{}{}:
					default:
					}
				}
			}
		}()
		go ls.Run(ctx, interval, kick)
	}
}
