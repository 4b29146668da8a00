package fusefs_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/source"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/testservers"
)

// BenchmarkRemoteMountFirstRead reads every embeddings shard of zone 30
// of the test tiles once through a fresh mount (no cache: each read
// generates), over local tiles and over nginx by HTTP through a proxy
// adding 0 and 20 ms per request, and reports the time per shard, its
// ratio to local tiles, and at 20 ms the sequential round trips per shard
// (the time the latency added, in latencies; goal ≤ 4).
func BenchmarkRemoteMountFirstRead(b *testing.B) {
	requireFUSE(b)
	ctx := context.Background()
	tiles := testTiles(b)
	base := testservers.Nginx(b, tiles)
	perShard := func(src index.Source) (time.Duration, float64) {
		cat, err := index.Discover(ctx, tiles, index.Options{Zones: []int{30}, Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		if src != nil {
			if err := source.Rebase(cat, src); err != nil {
				b.Fatal(err)
			}
		}
		st, err := store.New(cat, store.Options{Workers: 2, Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		_, mp := mount(b, st)
		keys := shardKeys(b, st, "2024.zarr/utm30/embeddings")
		start := time.Now()
		for _, k := range keys {
			if _, err := os.ReadFile(filepath.Join(mp, filepath.FromSlash(k))); err != nil {
				b.Fatal(err)
			}
		}
		var reqs float64
		if s, ok := source.StatsOf(src); ok {
			reqs = float64(s.Requests) / float64(len(keys))
		}
		return time.Since(start) / time.Duration(len(keys)), reqs
	}
	for range b.N {
		local, _ := perShard(nil)
		var at0 time.Duration
		for _, lat := range []time.Duration{0, 20 * time.Millisecond} {
			p := &testservers.FaultProxy{Upstream: base, Latency: lat}
			src, err := source.Open(ctx, testservers.StartFaultProxy(b, p))
			if err != nil {
				b.Fatal(err)
			}
			remote, reqs := perShard(src)
			ms := lat.String()
			b.ReportMetric(float64(remote.Microseconds())/1e3, "ms/shard-http@"+ms)
			b.ReportMetric(float64(remote)/float64(local), "http/local-time@"+ms)
			b.ReportMetric(reqs, "requests/shard@"+ms)
			if lat == 0 {
				at0 = remote
			} else {
				b.ReportMetric(float64(remote-at0)/float64(lat), "round-trips/shard@"+ms)
			}
		}
		b.ReportMetric(float64(local.Microseconds())/1e3, "ms/shard-local")
	}
}
