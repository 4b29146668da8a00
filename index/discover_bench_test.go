package index

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// benchTiles is the size of BenchmarkDiscover's tiles root; override with
// TESSERAFS_BENCH_TILES.
func benchTiles(b *testing.B) int {
	if s := os.Getenv("TESSERAFS_BENCH_TILES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	return 100_000
}

// benchRoot returns a tiles root of n tiles: a fresh one, or with
// TESSERAFS_BENCH_ROOT set, that directory, made once and reused (it takes
// a while to write 100,000 tiles).
func benchRoot(b *testing.B, n int) string {
	dir := os.Getenv("TESSERAFS_BENCH_ROOT")
	if dir == "" {
		return makeBenchRoot(b, b.TempDir(), n)
	}
	marker := filepath.Join(dir, "complete-"+strconv.Itoa(n))
	if _, err := os.Stat(marker); err == nil {
		return dir
	}
	if err := os.RemoveAll(dir); err != nil {
		b.Fatal(err)
	}
	makeBenchRoot(b, dir, n)
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

// makeBenchRoot writes n tiles spread over every zone and both hemispheres
// (rows of 3,600 tiles around the globe at latitudes from −60 to +61),
// each with sparse .npy files of its true grid and a landmask placeholder.
func makeBenchRoot(b *testing.B, root string, n int) string {
	coords := make([]TileCoord, n)
	for i := range coords {
		coords[i] = TileCoord{Lon100: -17995 + 10*(i%3600), Lat100: -6005 + 450*(i/3600)}
	}
	fps, err := NewProjector().Footprints(coords)
	if err != nil {
		b.Fatal(err)
	}
	year := filepath.Join(root, RepresentationDir, "2024")
	lm := filepath.Join(root, LandmaskDir)
	if err := os.MkdirAll(lm, 0o755); err != nil {
		b.Fatal(err)
	}
	for i, c := range coords {
		name := c.Name()
		dir := filepath.Join(year, name)
		fp := fps[i]
		writeNpy(b, filepath.Join(dir, name+".npy"), "|i1", []int{fp.H, fp.W, Bands}, false, -1)
		writeNpy(b, filepath.Join(dir, name+"_scales.npy"), "<f4", []int{fp.H, fp.W}, false, -1)
		if err := os.WriteFile(filepath.Join(lm, name+".tiff"), nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return root
}

// benchWorkers is Options.Workers for BenchmarkDiscover (0: the default);
// override with TESSERAFS_BENCH_WORKERS to compare.
var benchWorkers, _ = strconv.Atoi(os.Getenv("TESSERAFS_BENCH_WORKERS"))

// cpuTime is the process's user + system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDiscover indexes a tiles root of 100,000 tiles (sparse files,
// in the page cache). "warm" reuses the PROJ transformations of earlier
// runs in the process, as a long-running mount re-indexing would;
// "coldPROJ" creates them again each time (about 4 ms per CRS, 120 CRSs),
// as the first Discover of a process does.
func BenchmarkDiscover(b *testing.B) {
	n := benchTiles(b)
	root := benchRoot(b, n)
	run := func(b *testing.B, cold bool) {
		var cpu time.Duration
		for b.Loop() {
			if cold {
				b.StopTimer()
				projectors.mu.Lock()
				projectors.idle = nil
				projectors.mu.Unlock()
				b.StartTimer()
			}
			c0 := cpuTime(b)
			cat, err := Discover(context.Background(), root, Options{Logger: quiet, Workers: benchWorkers})
			cpu += cpuTime(b) - c0
			if err != nil {
				b.Fatal(err)
			}
			y := cat.Year(2024)
			tiles := 0
			for _, z := range y.Zones {
				tiles += len(z.Placements)
			}
			if tiles != n || len(y.Problems) != 0 {
				b.Fatalf("%d tiles, %d problems (first %v)", tiles, len(y.Problems), y.Problems[:min(1, len(y.Problems))])
			}
		}
		b.ReportMetric(float64(n), "tiles/op")
		// CPU time (user + system, all threads) does not depend on what
		// else the machine is running, unlike ns/op.
		b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
	}
	b.Run("warm", func(b *testing.B) { run(b, false) })
	b.Run("coldPROJ", func(b *testing.B) { run(b, true) })
}
