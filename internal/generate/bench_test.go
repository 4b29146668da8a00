package generate_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
	"github.com/tesserafs/tesserafs/internal/testtiles"
	"github.com/tesserafs/tesserafs/zarr"
)

// fullShard finds a shard of the demo tiles that one tile covers entirely,
// so the benchmark builds a whole 8 MiB shard.
func fullShard(b *testing.B) (*index.ZoneGrid, int, int) {
	cat, err := index.Discover(context.Background(), testtiles.Root(b, "demo"), index.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	for _, z := range cat.Years[0].Zones {
		for _, sh := range z.Shards(generate.ShardSize) {
			r0, c0 := sh.Row*generate.ShardSize, sh.Col*generate.ShardSize
			for _, p := range z.Overlapping(r0, c0, r0+generate.ShardSize, c0+generate.ShardSize) {
				if p.Row <= r0 && p.Col <= c0 && p.Row+p.Tile.H >= r0+generate.ShardSize && p.Col+p.Tile.W >= c0+generate.ShardSize {
					return z, sh.Row, sh.Col
				}
			}
		}
	}
	b.Fatal("no fully covered shard in the demo tiles")
	return nil, 0, 0
}

// BenchmarkEmbeddingsShard builds one full embeddings shard from its tile
// (read windows, gather inner chunks, zstd, index) and reports its speed
// against the floor measured in the same run: zstd-compressing the same
// 4096 inner chunks alone with the same encoder settings.
func BenchmarkEmbeddingsShard(b *testing.B) {
	z, i, j := fullShard(b)
	w := generate.NewWorker()
	const raw = generate.ShardSize * generate.ShardSize * generate.Bands
	shard, err := w.EmbeddingsShard(context.Background(), z, i, j)
	if err != nil {
		b.Fatal(err)
	}
	chunks, err := zarr.DecodeShard(shard, generate.InnerPerSide*generate.InnerPerSide)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(raw)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := w.EmbeddingsShard(context.Background(), z, i, j); err != nil {
			b.Fatal(err)
		}
	}
	build := time.Since(start)
	b.StopTimer()

	enc := zarr.NewShardEncoder(generate.ZstdLevel)
	var dst []byte
	start = time.Now()
	for range b.N {
		for _, c := range chunks {
			dst = enc.EncodeZstd(dst[:0], c)
		}
	}
	floor := time.Since(start)
	mbps := func(d time.Duration) float64 { return float64(b.N) * raw / 1e6 / d.Seconds() }
	b.ReportMetric(mbps(floor), "floor-MB/s")
	b.ReportMetric(floor.Seconds()/build.Seconds(), "x-floor")
}

// BenchmarkScalesShard builds one full scales shard (scales windows,
// landmask, NaN rules, zstd of 4096 tiny chunks).
func BenchmarkScalesShard(b *testing.B) {
	z, i, j := fullShard(b)
	w := generate.NewWorker()
	masks := generate.NewMasks(64<<20, nil)
	b.SetBytes(generate.ShardSize * generate.ShardSize * 4)
	for range b.N {
		if _, err := w.ScalesShard(context.Background(), z, i, j, masks); err != nil {
			b.Fatal(err)
		}
	}
}
