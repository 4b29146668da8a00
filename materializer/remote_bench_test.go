package materializer_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/source"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/testservers"
	"github.com/tesserafs/tesserafs/internal/testtiles"
	"github.com/tesserafs/tesserafs/materializer"
)

// BenchmarkRemoteShards reads every embeddings shard of zone 30 of the
// test tiles once, in-process, from local disk and from nginx over HTTP
// with 0 and 20 ms added per request, and reports: source bytes fetched ÷
// the bytes of the tile files the shards cover (each read once), requests
// per shard, the time per shard against local disk, and at 20 ms the
// sequential round trips per shard (time added ÷ latency).
func BenchmarkRemoteShards(b *testing.B) {
	root := testtiles.Root(b, "test")
	base := testservers.Nginx(b, root)
	ctx := context.Background()
	shards := func(src index.Source) (time.Duration, int, int64) {
		cat, err := index.Discover(ctx, root, index.Options{Zones: []int{30}})
		if err != nil {
			b.Fatal(err)
		}
		var need int64
		for _, p := range cat.Years[0].Zones[0].Placements {
			need += p.Tile.Inputs[0].Size
		}
		if src != nil {
			if err := source.Rebase(cat, src); err != nil {
				b.Fatal(err)
			}
		}
		st, err := store.New(cat, store.Options{Workers: 1})
		if err != nil {
			b.Fatal(err)
		}
		var keys []string
		st.Walk(ctx, "2024.zarr/utm30/embeddings", func(k string) error {
			if !strings.HasSuffix(k, "zarr.json") {
				keys = append(keys, k)
			}
			return nil
		})
		start := time.Now()
		for _, k := range keys {
			if _, err := st.Get(ctx, k); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start) / time.Duration(len(keys)), len(keys), need
	}
	for range b.N {
		local, n, need := shards(nil)
		var at0 time.Duration
		for _, lat := range []time.Duration{0, 20 * time.Millisecond} {
			up, _ := url.Parse(base)
			rp := httputil.NewSingleHostReverseProxy(up)
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(lat)
				rp.ServeHTTP(w, r)
			})}
			ln := testListen2(b)
			go srv.Serve(ln)
			src, err := source.Open(ctx, "http://"+ln.Addr().String()+"/")
			if err != nil {
				b.Fatal(err)
			}
			remote, _, _ := shards(src)
			srv.Close()
			st, _ := source.StatsOf(src)
			ms := strconv(lat)
			b.ReportMetric(float64(st.BytesFetched)/float64(need), "fetched/needed")
			b.ReportMetric(float64(st.Requests)/float64(n), "requests/shard@"+ms)
			b.ReportMetric(float64(remote)/float64(local), "http/local-time@"+ms)
			b.ReportMetric(float64(remote.Milliseconds()), "ms/shard@"+ms)
			if lat == 0 {
				at0 = remote
			} else {
				// Sequential round trips: the time the latency added, in
				// latencies.
				b.ReportMetric(float64(remote-at0)/float64(lat), "round-trips/shard@"+ms)
			}
		}
		b.ReportMetric(float64(local.Milliseconds()), "ms/shard-local")
	}
}

func strconv(d time.Duration) string { return d.String() }
func testListen2(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// BenchmarkMaterializeRemote materializes zone 30 of the test tiles from
// local disk and from nginx over HTTP (loopback, no added latency) and
// reports the throughput ratio, HTTP ÷ local (goal ≥ 0.8), and the source
// MB/s of each.
func BenchmarkMaterializeRemote(b *testing.B) {
	root := testtiles.Root(b, "test")
	base := testservers.Nginx(b, root)
	ctx := context.Background()
	run := func(src index.Source) (time.Duration, int64) {
		cat, err := index.Discover(ctx, root, index.Options{Zones: []int{30}})
		if err != nil {
			b.Fatal(err)
		}
		var need int64
		for _, p := range cat.Years[0].Zones[0].Placements {
			for _, in := range p.Tile.Inputs {
				need += in.Size
			}
		}
		if src != nil {
			if err := source.Rebase(cat, src); err != nil {
				b.Fatal(err)
			}
		}
		out := b.TempDir()
		st, err := store.New(cat, store.Options{ReadThrough: materializer.NewOutputReadThrough(materializer.NewDirSink(out))})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := materializer.Run(ctx, st, out, materializer.Options{}); err != nil {
			b.Fatal(err)
		}
		return time.Since(start), need
	}
	for range b.N {
		local, need := run(nil)
		src, err := source.Open(ctx, base)
		if err != nil {
			b.Fatal(err)
		}
		remote, _ := run(src)
		b.ReportMetric(float64(local)/float64(remote), "http/local-throughput")
		b.ReportMetric(float64(need)/1e6/local.Seconds(), "MB/s-local")
		b.ReportMetric(float64(need)/1e6/remote.Seconds(), "MB/s-http")
	}
}
