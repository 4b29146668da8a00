package httpserve

// Benchmarks report ratios against a peer measured in the same run, never
// a wall-clock threshold: nginx serving the materialized tree for warm
// range reads, generating the shard in-process for a cold shard.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/cache"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/testservers"
	"github.com/tesserafs/tesserafs/internal/testtiles"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// rangeReq is one request of the load: a key and a Range header ("": the
// whole key, answered 200).
type rangeReq struct {
	key string
	rng string
	n   int64 // expected body length
}

// rangeLoad is a fixed list of range reads of shards, as Zarr readers make
// them: the index at the end (a suffix range), then inner chunks.
func rangeLoad(b *testing.B, out string, n int) []rangeReq {
	var keys []string
	var sizes []int64
	for _, k := range treeFiles(b, out) {
		if strings.Contains(k, "/c/") && (strings.Contains(k, "/embeddings/") || strings.Contains(k, "/scales/")) {
			fi, err := os.Stat(filepath.Join(out, k))
			if err != nil {
				b.Fatal(err)
			}
			keys, sizes = append(keys, k), append(sizes, fi.Size())
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	reqs := make([]rangeReq, n)
	for i := range reqs {
		j := r.IntN(len(keys))
		size := sizes[j]
		if i%4 == 0 { // the shard index: 16 bytes per inner chunk + crc32c
			n := min(size, 16*64*64+4)
			reqs[i] = rangeReq{keys[j], fmt.Sprintf("bytes=-%d", n), n}
			continue
		}
		n := min(size, 512+r.Int64N(8<<10))
		off := r.Int64N(size - n + 1)
		reqs[i] = rangeReq{keys[j], fmt.Sprintf("bytes=%d-%d", off, off+n-1), n}
	}
	return reqs
}

// loadResult is what one run of the load generator measured.
type loadResult struct {
	rps      float64
	p50, p99 time.Duration
}

// runLoad sends reqs to base with conc concurrent clients (keep-alive),
// stopping early after limit, and checks every answer is a 206 of the
// expected length.
func runLoad(b *testing.B, base string, reqs []rangeReq, conc int, limit time.Duration) loadResult {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, DisableCompression: true}}
	defer client.CloseIdleConnections()
	lat := make([]time.Duration, len(reqs))
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	deadline := time.Now().Add(limit)
	start := time.Now()
	for range conc {
		wg.Go(func() {
			buf := make([]byte, 64<<10)
			for i := range next {
				t0 := time.Now()
				req, _ := http.NewRequest(http.MethodGet, base+reqs[i].key, nil)
				want := http.StatusOK
				if reqs[i].rng != "" {
					req.Header.Set("Range", reqs[i].rng)
					want = http.StatusPartialContent
				}
				resp, err := client.Do(req)
				var n int64
				if err == nil {
					n, err = io.CopyBuffer(io.Discard, resp.Body, buf)
					resp.Body.Close()
					if err == nil && (resp.StatusCode != want || n != reqs[i].n) {
						err = fmt.Errorf("%s %s: %d, %d bytes, want %d, %d", reqs[i].key, reqs[i].rng, resp.StatusCode, n, want, reqs[i].n)
					}
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	sent := 0
	for i := range reqs {
		if time.Now().After(deadline) {
			break
		}
		next <- i
		sent++
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	l := slices.Clone(lat[:sent])
	slices.Sort(l)
	return loadResult{rps: float64(sent) / elapsed.Seconds(), p50: l[len(l)/2], p99: l[len(l)*99/100]}
}

// serveChild is the test binary run as a server process of its own (so
// that, like nginx, it does not share CPUs with the load generator's
// goroutines): the "test" preset's store with a cache in dir, every chunk
// generated first (warm) unless TESSERAFS_HTTPSERVE_COLD is set, served on
// a free loopback port whose URL is printed, with the default admission
// (Workers 2); it exits when its standard input closes.
func serveChild(dir string) {
	fail := func(err error) { fmt.Fprintln(os.Stderr, "child:", err); os.Exit(1) }
	tiles := os.Getenv("TESSERAFS_HTTPSERVE_TILES")
	cat, err := index.Discover(context.Background(), tiles, index.Options{Logger: quiet()})
	if err != nil {
		fail(err)
	}
	c, err := cache.Open(dir, cache.Options{Budget: 20 << 30, Logger: quiet()})
	if err != nil {
		fail(err)
	}
	defer c.Close()
	st, err := store.New(cat, store.Options{Workers: 2, Cache: c, Logger: quiet()})
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	if os.Getenv("TESSERAFS_HTTPSERVE_COLD") == "" {
		err = st.Walk(ctx, "", func(key string) error {
			if strings.Contains(key, "/c/") {
				_, err := st.Get(ctx, key)
				return err
			}
			return nil
		})
		if err != nil {
			fail(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	srv := &http.Server{Handler: New(st, Options{Logger: quiet()}), MaxHeaderBytes: 16 << 10}
	go srv.Serve(ln)
	// TESSERAFS_HTTPSERVE_CPUPROFILE: a CPU profile of the server process
	// (go test's -cpuprofile profiles the load generator only).
	if p := os.Getenv("TESSERAFS_HTTPSERVE_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	fmt.Printf("http://%s/\n", ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	srv.Close()
}

// startChild runs serveChild in a new process and returns its base URL;
// extra is added to its environment.
func startChild(b *testing.B, extra ...string) string {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TESSERAFS_HTTPSERVE_CHILD="+b.TempDir(),
		"TESSERAFS_HTTPSERVE_TILES="+testtiles.Root(b, "test"))
	cmd.Env = append(cmd.Env, extra...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "http://127.0.0.1:") {
		b.Fatalf("server process: %q, %v", line, err)
	}
	return strings.TrimSpace(line)
}

// BenchmarkWarmRange: range reads of cached shards (index suffixes and
// inner-chunk ranges, 8 concurrent clients, a fixed 4,000 requests or 30 s)
// from the handler in a server process of its own vs. nginx serving the
// materialized tree, same load, same run, alternating. Goals: x_nginx_rps ≥ 0.8, p99_x_nginx ≤ 2.
func BenchmarkWarmRange(b *testing.B) {
	out := materializedTree(b)
	nginx := testservers.Nginx(b, out)
	ours := startChild(b) // every chunk cached
	reqs := rangeLoad(b, out, 4000)
	const conc, limit = 8, 30 * time.Second
	runLoad(b, nginx, reqs[:200], conc, limit) // connections and page cache
	runLoad(b, ours, reqs[:200], conc, limit)
	var mine, peer []loadResult
	for b.Loop() {
		peer = append(peer, runLoad(b, nginx, reqs, conc, limit))
		mine = append(mine, runLoad(b, ours, reqs, conc, limit))
	}
	o, p := mergeLoad(mine), mergeLoad(peer)
	b.ReportMetric(o.rps, "req/s")
	b.ReportMetric(p.rps, "nginx_req/s")
	b.ReportMetric(o.rps/p.rps, "x_nginx_rps")
	b.ReportMetric(float64(o.p50.Microseconds())/1e3, "p50_ms")
	b.ReportMetric(float64(o.p99.Microseconds())/1e3, "p99_ms")
	b.ReportMetric(float64(p.p50.Microseconds())/1e3, "nginx_p50_ms")
	b.ReportMetric(float64(p.p99.Microseconds())/1e3, "nginx_p99_ms")
	b.ReportMetric(float64(o.p99)/float64(p.p99), "p99_x_nginx")
}

// BenchmarkZoneRead: a reader at concurrency 64 GETs every data key
// (embeddings, scales and rgb shards) of the largest zone, whole, from a
// fresh serve process whose cache is empty (cold: every shard generated,
// 2 workers, requests waiting their turn), then again (warm: every shard
// in its cache), and the same from nginx serving the materialized tree,
// same client, same run. Reports each time and p99 against nginx's.
// Goals (issue 18): ≤ 3× nginx cold (generation is the work), ≤ 1.3×
// warm.
func BenchmarkZoneRead(b *testing.B) {
	out := materializedTree(b)
	nginx := testservers.Nginx(b, out)
	sizes := map[string]map[string]int64{} // zone → key → size
	for _, k := range treeFiles(b, out) {
		if !strings.Contains(k, "/c/") || strings.Contains(k, "global_rgb") || strings.Contains(k, "ing/") || strings.Contains(k, "/band/") {
			continue
		}
		fi, err := os.Stat(filepath.Join(out, k))
		if err != nil {
			b.Fatal(err)
		}
		zone := strings.Split(k, "/")[1]
		if sizes[zone] == nil {
			sizes[zone] = map[string]int64{}
		}
		sizes[zone][k] = fi.Size()
	}
	var zone string
	for z, ks := range sizes {
		if len(ks) > len(sizes[zone]) {
			zone = z
		}
	}
	var reqs []rangeReq
	var total int64
	for k, n := range sizes[zone] {
		reqs = append(reqs, rangeReq{key: k, n: n})
		total += n
	}
	slices.SortFunc(reqs, func(a, b rangeReq) int { return strings.Compare(a.key, b.key) })
	const conc, limit = 64, 5 * time.Minute
	runLoad(b, nginx, reqs, conc, limit) // connections and page cache
	timed := func(base string) (time.Duration, loadResult) {
		t0 := time.Now()
		r := runLoad(b, base, reqs, conc, limit)
		return time.Since(t0), r
	}
	var cold, warm, peer time.Duration
	var coldP99, warmP99, peerP99 []time.Duration
	for b.Loop() {
		b.StopTimer()
		ours := startChild(b, "TESSERAFS_HTTPSERVE_COLD=1")
		b.StartTimer()
		d, r := timed(ours)
		cold += d
		coldP99 = append(coldP99, r.p99)
		d, r = timed(ours)
		warm += d
		warmP99 = append(warmP99, r.p99)
		d, r = timed(nginx)
		peer += d
		peerP99 = append(peerP99, r.p99)
	}
	med := func(ds []time.Duration) time.Duration { slices.Sort(ds); return ds[len(ds)/2] }
	n := float64(b.N)
	b.SetBytes(total)
	b.ReportMetric(float64(len(reqs)), "keys")
	b.ReportMetric(cold.Seconds()/n, "cold_s")
	b.ReportMetric(warm.Seconds()/n, "warm_s")
	b.ReportMetric(peer.Seconds()/n, "nginx_s")
	b.ReportMetric(cold.Seconds()/peer.Seconds(), "cold_x_nginx")
	b.ReportMetric(warm.Seconds()/peer.Seconds(), "warm_x_nginx")
	b.ReportMetric(float64(med(coldP99).Microseconds())/1e3, "cold_p99_ms")
	b.ReportMetric(float64(med(warmP99).Microseconds())/1e3, "warm_p99_ms")
	b.ReportMetric(float64(med(peerP99).Microseconds())/1e3, "nginx_p99_ms")
}

// mergeLoad is the mean throughput and the median of the percentiles of
// several runs.
func mergeLoad(rs []loadResult) loadResult {
	var m loadResult
	var p50, p99 []time.Duration
	for _, r := range rs {
		m.rps += r.rps / float64(len(rs))
		p50, p99 = append(p50, r.p50), append(p99, r.p99)
	}
	slices.Sort(p50)
	slices.Sort(p99)
	m.p50, m.p99 = p50[len(p50)/2], p99[len(p99)/2]
	return m
}

func openStoreQuiet(b *testing.B, withCache bool) *store.Store {
	cat, err := index.Discover(context.Background(), testtiles.Root(b, "test"), index.Options{Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	opts := store.Options{Workers: 2, Logger: quiet()}
	if withCache {
		c, err := cache.Open(b.TempDir(), cache.Options{Budget: 20 << 30, Logger: quiet()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		opts.Cache = c
	}
	st, err := store.New(cat, opts)
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkColdShard: the first request for a shard of a fresh server
// (empty cache) vs. generating the shard in-process with a fresh store
// (goal: x_inprocess ≤ 1.2); then 64 concurrent requests for one shard of
// another fresh server: exactly one generation (else it fails), and the
// time until all 64 have their bytes (x64_x_inprocess, reported only).
func BenchmarkColdShard(b *testing.B) {
	key, want := shardKey(b)
	ctx := context.Background()
	var inproc, first, all64 time.Duration
	fetch := func(client *http.Client, url string) error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n != int64(len(want)) {
			return fmt.Errorf("%s: %d, %d bytes, want 200, %d", url, resp.StatusCode, n, len(want))
		}
		return nil
	}
	for b.Loop() {
		st := openStoreQuiet(b, false)
		t0 := time.Now()
		if got, err := st.Get(ctx, key); err != nil || len(got) != len(want) {
			b.Fatalf("in-process: %d bytes, %v", len(got), err)
		}
		inproc += time.Since(t0)

		srv := serve(b, New(openStoreQuiet(b, true), Options{Logger: quiet()}))
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		t0 = time.Now()
		if err := fetch(client, srv.URL+"/"+key); err != nil {
			b.Fatal(err)
		}
		first += time.Since(t0)
		srv.Close()

		st = openStoreQuiet(b, true)
		srv = serve(b, New(st, Options{Logger: quiet()}))
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		t0 = time.Now()
		for range 64 {
			wg.Go(func() {
				if err := fetch(client, srv.URL+"/"+key); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		all64 += time.Since(t0)
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		if g := st.Stats().Generated; g != 1 {
			b.Fatalf("64 concurrent cold requests: %d generations, want 1", g)
		}
		client.CloseIdleConnections()
		srv.Close()
	}
	b.ReportMetric(float64(first)/float64(inproc), "x_inprocess")
	b.ReportMetric(inproc.Seconds()*1e3/float64(b.N), "inprocess_ms")
	b.ReportMetric(float64(all64)/float64(inproc), "x64_x_inprocess")
	b.ReportMetric(1, "generations_for_64")
}
