package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/cache"
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
