package fusefs_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tesserafs/tesserafs/fusefs"
	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/cache"
	"github.com/tesserafs/tesserafs/internal/httpserve"
	"github.com/tesserafs/tesserafs/internal/npy"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/synth"
)

// envReadyChild makes the test binary a ready child: "front|root|registry|
// mountpoint|cache|rgb"; it mounts (front "mount") or serves on loopback
// (front "serve") as `tesserafs mount` and `tesserafs serve` do, reads the
// first keys a reader asks for, prints one READY line and stops.
const envReadyChild = "TESSERAFS_READY_CHILD"

// BenchmarkMountReady (e): from a fresh process to a mount that answers
// (stat of catalog.json), as `tesserafs mount` does it: discover (Lazy: no
// tile file opened), open the cache, build the store, mount; then, in the
// same process and in this order, what xarray and zarr-python read first:
// the root zarr.json (consolidated metadata), a zone's zarr.json, and (on
// roots with tile data) the zone's first rgb shard, whose stretch sample
// reads up to 32 of the zone's shards. Every figure is the time from the
// process's start. Each run is a child process, so the RSS is that of a
// mount alone.
//
//   - 4real: four real synthetic tiles (2 × 2 at 40° N, ~60 shards in one
//     zone), for the first rgb chunk from tile bytes on local disk.
//   - 100k: 100,000 sparse tiles written by synth (with its registry.parquet);
//     their .npy data are holes, so the rgb read measures the work, not
//     the disk.
//   - 1M: 1,000,000 tiles as a remote root looks to discovery: registry and
//     landmasks parquet files, year and tile directories and empty landmask
//     files for the listing case, but no .npy data (none is opened before a
//     chunk is read: the metadata figures prove it). No rgb read.
//
// Each from the registry and from a listing (--registry none), with the
// page cache warm (after one untimed run) and cold: before each run dirty
// pages are synced and the page, dentry and inode caches dropped
// (/proc/sys/vm/drop_caches, as root); where that is not permitted the
// cold runs are skipped and say so. Goals (issues 10, 17): cold ready and
// root zarr.json ≤ 2 s for 100k and ≤ 10 s for 1M with a registry (ready
// ≤ 5 s), RSS ≤ 512 MiB at 1M, a first rgb chunk ≤ 3 s on local tiles.
func BenchmarkMountReady(b *testing.B) { benchReady(b, "mount") }

// BenchmarkServeReady is BenchmarkMountReady for `tesserafs serve`: ready
// is the first answer to GET /healthz, then GET of the same keys over
// loopback HTTP.
func BenchmarkServeReady(b *testing.B) { benchReady(b, "serve") }

func benchReady(b *testing.B, front string) {
	if front == "mount" {
		requireFUSE(b)
	}
	roots := []struct {
		name string
		root func(*testing.B) string
		rgb  bool
	}{
		{"4real", func(b *testing.B) string { return realRoot(b) }, true},
		{"100k", func(b *testing.B) string { return sparseRoot(b, 100_000) }, true},
		{"1M", func(b *testing.B) string { return skeletonRoot(b, 1_000_000) }, false},
	}
	for _, r := range roots {
		var root string
		for _, reg := range []string{"registry", "listing"} {
			for _, cold := range []bool{false, true} {
				name := fmt.Sprintf("%s/%s/%s", r.name, reg, map[bool]string{false: "warm", true: "cold"}[cold])
				b.Run(name, func(b *testing.B) {
					if root == "" {
						root = r.root(b)
					}
					registry := ""
					if reg == "listing" {
						registry = "none"
					}
					if cold && !dropCaches() {
						b.Skip("cold: /proc/sys/vm/drop_caches is not writable here (not root?): not measured")
					}
					if !cold {
						runReadyChild(b, front, root, registry, r.rgb) // warm the caches
					}
					var sum readyResult
					var rss, hwm int64
					var tiles int
					for b.Loop() {
						if cold {
							b.StopTimer()
							dropCaches()
							b.StartTimer()
						}
						res := runReadyChild(b, front, root, registry, r.rgb)
						sum.ready += res.ready
						sum.rootJSON += res.rootJSON
						sum.zoneJSON += res.zoneJSON
						sum.rgbChunk += res.rgbChunk
						sum.cpu += res.cpu
						sum.wait += res.wait
						rss, hwm, tiles = max(rss, res.rssKiB), max(hwm, res.hwmKiB), res.tiles
					}
					n := float64(b.N)
					b.ReportMetric(sum.ready.Seconds()/n, "s_ready")
					b.ReportMetric(sum.rootJSON.Seconds()/n, "s_root_zarr.json")
					b.ReportMetric(sum.zoneJSON.Seconds()/n, "s_zone_zarr.json")
					if r.rgb {
						b.ReportMetric(sum.rgbChunk.Seconds()/n, "s_first_rgb_chunk")
					}
					b.ReportMetric(sum.cpu.Seconds()/n, "cpu_s")
					b.ReportMetric(sum.wait.Seconds()/n, "runq_wait_s")
					b.ReportMetric(float64(rss)/1024, "MiB_rss_end")
					b.ReportMetric(float64(hwm)/1024, "MiB_rss_peak")
					b.ReportMetric(float64(tiles), "tiles")
				})
			}
		}
	}
}

// dropCaches syncs and drops the page, dentry and inode caches; false if
// not permitted.
func dropCaches() bool {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200) == nil
}

type readyResult struct {
	// ready, then the root zarr.json, a zone's zarr.json and its first
	// rgb shard read in turn: each the time from the process's start (0
	// for a read not asked for).
	ready, rootJSON, zoneJSON, rgbChunk time.Duration
	rssKiB, hwmKiB                      int64
	tiles                               int
	// cpu is the child's user + system time at the end: on a loaded
	// machine, what the wall clock would be on an idle one, roughly.
	cpu time.Duration
	// wait is the time the child's threads were runnable but waiting for
	// a CPU (the run queue delay of /proc/<pid>/task/*/schedstat): the
	// share of the wall clock that other processes took, not I/O.
	wait time.Duration
}

// runReadyChild runs one ready child over root and parses its line.
func runReadyChild(b *testing.B, front, root, registry string, rgb bool) readyResult {
	b.Helper()
	base := b.TempDir()
	mp := filepath.Join(base, "mnt")
	if err := os.Mkdir(mp, 0o755); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), envReadyChild+"="+strings.Join([]string{front, root, registry, mp, filepath.Join(base, "cache"), strconv.FormatBool(rgb)}, "|"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("ready child: %v\n%s", err, stderr.String())
	}
	var r readyResult
	var secs [4]float64
	var cpu, wait float64
	if _, err := fmt.Sscanf(string(out), "READY %g %g %g %g %d %d %d %g %g", &secs[0], &secs[1], &secs[2], &secs[3], &r.rssKiB, &r.hwmKiB, &r.tiles, &cpu, &wait); err != nil {
		b.Fatalf("ready child said %q: %v\n%s", out, err, stderr.String())
	}
	d := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	r.ready, r.rootJSON, r.zoneJSON, r.rgbChunk = d(secs[0]), d(secs[1]), d(secs[2]), d(secs[3])
	r.cpu, r.wait = d(cpu), d(wait)
	return r
}

// readyChild is the child's side: it mounts or serves, reads the first
// keys, prints "READY <ready s> <root s> <zone s> <rgb s> <VmRSS KiB>
// <VmHWM KiB> <tiles> <cpu s> <run-queue wait s>", stops.
func readyChild(spec string) int {
	parts := strings.Split(spec, "|")
	if len(parts) != 6 {
		fmt.Fprintln(os.Stderr, "bad spec", spec)
		return 2
	}
	front, root, registry, mp, cdir, rgb := parts[0], parts[1], parts[2], parts[3], parts[4], parts[5] == "true"
	ctx := context.Background()
	start := time.Now()
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 1 }
	// TESSERAFS_READY_PROFILE=dir writes cpu.pprof (start to the end) and
	// heap.pprof (at the end) there: where the time and the memory go.
	prof := os.Getenv("TESSERAFS_READY_PROFILE")
	if prof != "" {
		f, err := os.Create(filepath.Join(prof, "cpu.pprof"))
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer f.Close()
		}
	}
	cat, err := index.Discover(ctx, root, index.Options{Lazy: true, Registry: registry, Logger: quietLogger()})
	if err != nil {
		return fail(err)
	}
	c, err := cache.Open(cdir, cache.Options{Budget: 1 << 30, Logger: quietLogger()})
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	st, err := store.New(cat, store.Options{Cache: c, Logger: quietLogger()})
	if err != nil {
		return fail(err)
	}
	debug.FreeOSMemory() // as tesserafs mount and serve do
	// get reads a key through the front end.
	var get func(key string) error
	switch front {
	case "mount":
		srv, err := fusefs.Mount(ctx, st, mp, fusefs.Options{Logger: quietLogger()})
		if err != nil {
			return fail(err)
		}
		defer srv.Unmount()
		get = func(key string) error {
			_, err := os.ReadFile(filepath.Join(mp, key))
			return err
		}
		if _, err := os.Stat(filepath.Join(mp, "catalog.json")); err != nil {
			return fail(err)
		}
	case "serve":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fail(err)
		}
		hs := &http.Server{Handler: httpserve.New(st, httpserve.Options{Logger: quietLogger()})}
		go hs.Serve(ln)
		defer hs.Close()
		base := "http://" + ln.Addr().String() + "/"
		get = func(key string) error {
			resp, err := http.Get(base + key)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s: %s", key, resp.Status)
			}
			return nil
		}
		if err := get("healthz"); err != nil {
			return fail(err)
		}
	default:
		return fail(fmt.Errorf("front %q", front))
	}
	var at [4]time.Duration
	at[0] = time.Since(start)
	y := cat.Years[0]
	z := y.Zones[0]
	if err := get(fmt.Sprintf("%d.zarr/zarr.json", y.Year)); err != nil {
		return fail(err)
	}
	at[1] = time.Since(start)
	if err := get(fmt.Sprintf("%d.zarr/utm%02d/zarr.json", y.Year, z.Zone)); err != nil {
		return fail(err)
	}
	at[2] = time.Since(start)
	if rgb {
		sh := z.Shards(256)[0]
		if err := get(fmt.Sprintf("%d.zarr/utm%02d/rgb/c/%d/%d/0", y.Year, z.Zone, sh.Row, sh.Col)); err != nil {
			return fail(err)
		}
		at[3] = time.Since(start)
	}
	if prof != "" {
		pprof.StopCPUProfile()
		if f, err := os.Create(filepath.Join(prof, "heap.pprof")); err == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	rss, hwm := procStatus("VmRSS:"), procStatus("VmHWM:")
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	tiles := 0
	for _, y := range cat.Years {
		for _, z := range y.Zones {
			tiles += len(z.Placements)
		}
	}
	fmt.Printf("READY %.4f %.4f %.4f %.4f %d %d %d %.4f %.4f\n", at[0].Seconds(), at[1].Seconds(), at[2].Seconds(), at[3].Seconds(),
		rss, hwm, tiles, cpu.Seconds(), runQueueWait().Seconds())
	runtime.KeepAlive(cat)
	return 0
}

// runQueueWait is the time this process's threads spent runnable but not
// running, from each thread's schedstat (run time, run-queue wait,
// timeslices, in ns); 0 where the kernel does not say.
func runQueueWait() time.Duration {
	paths, _ := filepath.Glob("/proc/self/task/*/schedstat")
	var sum int64
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var run, wait, slices int64
		if _, err := fmt.Sscanf(string(b), "%d %d %d", &run, &wait, &slices); err == nil {
			sum += wait
		}
	}
	return time.Duration(sum)
}

// procStatus is a kB field of /proc/self/status.
func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return -1
}

// sparseRoot returns a tiles root of n sparse tiles, written once into
// the temporary directory (or TESSERAFS_BENCH_SPARSE_ROOT) and reused:
// writing 100,000 tiles takes about a minute. A root written before synth
// wrote registries gets them.
func sparseRoot(b *testing.B, n int) string {
	dir := os.Getenv("TESSERAFS_BENCH_SPARSE_ROOT")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), fmt.Sprintf("tesserafs-bench-sparse-%d", n))
	}
	marker := filepath.Join(dir, fmt.Sprintf(".complete-%d", n))
	if _, err := os.Stat(marker); err == nil {
		if _, err := os.Stat(filepath.Join(dir, index.RegistryName)); errors.Is(err, os.ErrNotExist) {
			b.Logf("writing the registry of %s (once)", dir)
			if err := synth.WriteRegistries(context.Background(), dir); err != nil {
				b.Fatal(err)
			}
		}
		return dir
	}
	os.RemoveAll(dir)
	b.Logf("writing %d sparse tiles to %s (once)", n, dir)
	if _, err := synth.Write(context.Background(), dir, synth.Options{Year: year, Tiles: synth.Grid(n, -3, 40), Sparse: true}); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

// realRoot returns a tiles root of four real (not sparse) synthetic tiles,
// 2 × 2 at 40° N, written once into the temporary directory and reused.
func realRoot(b *testing.B) string {
	dir := filepath.Join(os.TempDir(), "tesserafs-bench-real-4-"+synth.SourceHash()[:12])
	marker := filepath.Join(dir, ".complete")
	if _, err := os.Stat(marker); err == nil {
		return dir
	}
	os.RemoveAll(dir)
	b.Logf("writing 4 real tiles to %s (once)", dir)
	if _, err := synth.Write(context.Background(), dir, synth.Options{Year: year, Tiles: synth.Grid(4, -2.95, 40.05)}); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

// skeletonRoot returns a root of n tiles with registry.parquet and
// landmasks.parquet (the sizes of real tiles of each tile's grid), the
// year and tile directories, and empty landmask files, but no .npy files:
// what discovery of a remote root, or a lazy listing, sees. Written once
// into the temporary directory and reused.
func skeletonRoot(b *testing.B, n int) string {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("tesserafs-bench-skeleton-%d", n))
	marker := filepath.Join(dir, ".complete")
	if _, err := os.Stat(marker); err == nil {
		return dir
	}
	os.RemoveAll(dir)
	b.Logf("writing a %d-tile skeleton root to %s (once)", n, dir)
	specs := synth.Grid(n, -3, 40)
	rows := make([]index.RegistryRow, len(specs))
	lrows := make([]index.LandmaskRow, len(specs))
	mtime := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, runtime.GOMAXPROCS(0))
	for w := range errs {
		wg.Go(func() {
			p := index.NewProjector()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(specs) || errs[w] != nil {
					return
				}
				c := specs[i].Coord
				fp, err := p.Footprint(c)
				if err != nil {
					errs[w] = err
					return
				}
				name := c.Name()
				if err := os.MkdirAll(filepath.Join(dir, index.RepresentationDir, strconv.Itoa(year), name), 0o755); err != nil {
					errs[w] = err
					return
				}
				if err := os.WriteFile(filepath.Join(dir, index.LandmaskDir, name+".tiff"), nil, 0o644); err != nil {
					errs[w] = err
					return
				}
				rows[i] = index.RegistryRow{Geometry: index.PointWKB(c.Lon(), c.Lat()), Lat: c.Lat(), Lon: c.Lon(), Year: year,
					LonI: int32(c.Lon100), LatI: int32(c.Lat100), MTime: mtime,
					FileSize: npySize(b, "<i1", fp.H, fp.W, 128), ScalesSize: npySize(b, "<f4", fp.H, fp.W)}
				lrows[i] = index.LandmaskRow{Geometry: rows[i].Geometry, Lat: c.Lat(), Lon: c.Lon(), LonI: rows[i].LonI, LatI: rows[i].LatI, FileSize: 4096}
			}
		})
		if w == 0 {
			if err := os.MkdirAll(filepath.Join(dir, index.LandmaskDir), 0o755); err != nil {
				b.Fatal(err)
			}
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if err := index.WriteRegistry(&buf, rows); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, index.RegistryName), buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	buf.Reset()
	if err := index.WriteLandmasks(&buf, lrows); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, index.LandmasksName), buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

// npySize is the size of a .npy file of the given dtype and shape.
func npySize(b *testing.B, descr string, shape ...int) int64 {
	var hdr bytes.Buffer
	if _, err := npy.WriteHeader(&hdr, descr, shape); err != nil {
		b.Fatal(err)
	}
	n := int64(1)
	if descr == "<f4" {
		n = 4
	}
	for _, s := range shape {
		n *= int64(s)
	}
	return int64(hdr.Len()) + n
}
