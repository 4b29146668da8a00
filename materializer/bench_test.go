package materializer_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tesserafs/tesserafs/internal/synth"
	"github.com/tesserafs/tesserafs/internal/testtiles"
)

// BenchmarkMaterialize materializes a small tile set and one four times
// larger, each in a child process, and reports source MB/s and the child's
// peak RSS for both: memory must stay flat as the tile count grows.
func BenchmarkMaterialize(b *testing.B) {
	type result struct {
		mbps, rssMiB float64
	}
	run := func(n int) result {
		tiles := testtiles.Tiles(b, fmt.Sprintf("grid%d", n), synth.Grid(n, 10.05, 84.05))
		var src int64
		filepath.Walk(tiles, func(_ string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				src += fi.Size()
			}
			return nil
		})
		var res result
		for range b.N {
			out := b.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
			cmd.Env = append(os.Environ(), envTiles+"="+tiles, envOut+"="+out)
			cmd.Stderr = os.Stderr
			start := time.Now()
			if err := cmd.Run(); err != nil {
				b.Fatalf("materialize %d tiles: %v", n, err)
			}
			el := time.Since(start)
			ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			res.mbps = float64(src) / 1e6 / el.Seconds()
			res.rssMiB = max(res.rssMiB, float64(ru.Maxrss)/1024)
			os.RemoveAll(out)
		}
		return res
	}
	small, large := run(4), run(16)
	b.ReportMetric(small.mbps, "src-MB/s-4tiles")
	b.ReportMetric(large.mbps, "src-MB/s-16tiles")
	b.ReportMetric(small.rssMiB, "peakRSS-MiB-4tiles")
	b.ReportMetric(large.rssMiB, "peakRSS-MiB-16tiles")
}
