package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/testtiles"
)

// envGlobalChild makes TestGlobalBenchChild the child process of
// BenchmarkGlobalRGB: it builds every chunk of global_rgb from the tiles
// named by the variable and prints what it measured as JSON.
const envGlobalChild = "TESSERAFS_TEST_GLOBAL_RGB_TILES"

type globalBenchResult struct {
	Chunks    int     // global_rgb chunks, all levels
	Shards    int     // zone rgb shards they are made from
	RGBSec    float64 // building the zone rgb shards alone (the floor)
	GlobalSec float64 // building every global_rgb chunk, rgb shards included
}

// buildAllGlobal builds every rgb shard (if shardsOnly) or every global_rgb
// chunk level by level, bottom-up, as the materializer does, with
// GOMAXPROCS readers and no cache.
func buildAllGlobal(ctx context.Context, tiles string, shardsOnly bool) (globalBenchResult, error) {
	var res globalBenchResult
	cat, err := index.Discover(ctx, tiles, index.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return res, err
	}
	st, err := store.New(cat, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return res, err
	}
	y := cat.Years[0]
	var levels [][]string
	if shardsOnly {
		var keys []string
		for _, z := range y.Zones {
			for _, sh := range z.Shards(256) {
				keys = append(keys, fmt.Sprintf("%d.zarr/utm%02d/rgb/c/%d/%d/0", y.Year, z.Zone, sh.Row, sh.Col))
			}
		}
		levels = append(levels, keys)
	} else {
		idx, err := st.GlobalIndex(y.Year)
		if err != nil {
			return res, err
		}
		for l := range idx.Levels {
			var keys []string
			for _, c := range idx.Chunks(l) {
				keys = append(keys, fmt.Sprintf("%d.zarr/global_rgb/%d/rgb/c/%d/%d/0", y.Year, l, c[0], c[1]))
			}
			levels = append(levels, keys)
		}
	}
	for _, z := range y.Zones {
		res.Shards += len(z.Shards(256))
	}
	start := time.Now()
	for _, keys := range levels {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(runtime.GOMAXPROCS(0))
		for _, k := range keys {
			g.Go(func() error { _, err := st.Get(gctx, k); return err })
		}
		if err := g.Wait(); err != nil {
			return res, err
		}
		if !shardsOnly {
			res.Chunks += len(keys)
		}
	}
	if shardsOnly {
		res.RGBSec = time.Since(start).Seconds()
	} else {
		res.GlobalSec = time.Since(start).Seconds()
	}
	return res, nil
}

// TestGlobalBenchChild is BenchmarkGlobalRGB's child process; it does
// nothing in a normal test run.
func TestGlobalBenchChild(t *testing.T) {
	tiles := os.Getenv(envGlobalChild)
	if tiles == "" {
		t.Skip("child process of BenchmarkGlobalRGB only")
	}
	res, err := buildAllGlobal(context.Background(), tiles, os.Getenv(envGlobalChild+"_SHARDS") != "")
	if err != nil {
		t.Fatal(err)
	}
	json.NewEncoder(os.Stdout).Encode(res)
}

// BenchmarkGlobalRGB builds every global_rgb chunk of the synthetic zones
// (the "demo" preset: two mid-latitude zones, and "test": three polar
// ones) in a child process without a cache, bottom-up, and reports the
// time, the ratio to the floor (building the zone rgb shards the pyramid
// is made from, alone, in another child) and the child's peak RSS.
func BenchmarkGlobalRGB(b *testing.B) {
	for _, preset := range []string{"demo", "test"} {
		b.Run(preset, func(b *testing.B) {
			tiles := testtiles.Root(b, preset)
			child := func(shards bool) (globalBenchResult, float64) {
				cmd := exec.Command(os.Args[0], "-test.run=^TestGlobalBenchChild$", "-test.bench=^$", "-test.v=false")
				cmd.Env = append(os.Environ(), envGlobalChild+"="+tiles)
				if shards {
					cmd.Env = append(cmd.Env, envGlobalChild+"_SHARDS=1")
				}
				cmd.Stderr = os.Stderr
				out, err := cmd.Output()
				if err != nil {
					b.Fatalf("child: %v\n%s", err, out)
				}
				var res globalBenchResult
				line, _, _ := bytes.Cut(out, []byte("\n"))
				if err := json.Unmarshal(line, &res); err != nil {
					b.Fatalf("child output %q: %v", out, err)
				}
				return res, float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024
			}
			var global, floor globalBenchResult
			rss := 0.0
			for range b.N {
				f, _ := child(true)
				g, r := child(false)
				floor, global, rss = f, g, max(rss, r)
			}
			b.ReportMetric(global.GlobalSec*1000, "ms-all-global_rgb")
			b.ReportMetric(floor.RGBSec*1000, "ms-rgb-shards-floor")
			b.ReportMetric(global.GlobalSec/floor.RGBSec, "x-floor")
			b.ReportMetric(float64(global.Chunks), "chunks")
			b.ReportMetric(float64(global.Shards), "rgb-shards")
			b.ReportMetric(rss, "peakRSS-MiB")
		})
	}
}
