package materializer_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
	"github.com/tesserafs/tesserafs/internal/s3conf"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/synth"
	"github.com/tesserafs/tesserafs/internal/testservers"
	"github.com/tesserafs/tesserafs/internal/testtiles"
	"github.com/tesserafs/tesserafs/materializer"
)

// countingTransport counts the requests a client sends, by method.
type countingTransport struct {
	rt        http.RoundTripper
	puts, all atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.all.Add(1)
	if r.Method == http.MethodPut {
		c.puts.Add(1)
	}
	return c.rt.RoundTrip(r)
}

// selfCPU is this process's user and system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is process pid's user and system CPU time, from /proc (0 if
// unreadable).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	var ut, st int64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return time.Duration(ut+st) * (time.Second / 100) // USER_HZ
}

// BenchmarkPartitions measures partitioned materialization into a real S3
// server (versitygw on loopback), in one run:
//
//   - the data phases as one partition, then as two concurrent partitions,
//     each with one worker: the ratio is the speed-up of a second worker
//     machine (goal ≥ 1.8 on 2 cores);
//   - the requests and bytes per data key written to S3;
//   - the whole store (2 workers) into S3 vs. into a local directory
//     (goal ≥ 0.8).
func BenchmarkPartitions(b *testing.B) {
	tiles := testtiles.Tiles(b, "grid8", synth.Grid(8, 10.05, 84.05))
	var src int64
	filepath.Walk(tiles, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			src += fi.Size()
		}
		return nil
	})
	ctx := context.Background()
	cat, err := index.Discover(ctx, tiles, index.Options{})
	if err != nil {
		b.Fatal(err)
	}
	// Each partition has a store of its own, as on its own machine,
	// reading derived chunks back from the output.
	newStore := func(workers int, sink materializer.Sink) *store.Store {
		st, err := store.New(cat, store.Options{Workers: workers, Build: generate.Build{BuildVersion: "bench"},
			ReadThrough: materializer.NewOutputReadThrough(sink)})
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	srv := testservers.Versity(b)
	ct := &countingTransport{rt: http.DefaultTransport}
	client := s3.New(s3.Options{
		BaseEndpoint: aws.String(srv.Endpoint), Region: srv.Region, UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		HTTPClient:                 &http.Client{Transport: ct},
	})
	seq := 0
	newSink := func() materializer.Sink {
		seq++
		bucket := "bench-" + string(rune('a'+seq%26)) + time.Now().Format("150405.000000")
		srv.CreateBucket(b, bucket)
		return &materializer.S3Sink{Client: client, Loc: s3conf.Location{Bucket: bucket, Prefix: "out/"}}
	}
	// partitions runs the data phases of n concurrent partitions, one
	// worker each, and returns the wall time and what was written. As
	// under Slurm or Kubernetes (one array or Job per phase, each after
	// the one before), a phase starts once every partition has finished
	// the previous one: a partition that ran ahead would find the keys it
	// depends on missing and build them again. phaseWall and phaseCPU
	// (this process) are added to per phase.
	phaseWall := map[string]time.Duration{}
	phaseCPU := map[string]time.Duration{}
	partitions := func(n int) (time.Duration, materializer.Summary) {
		sink := newSink()
		var mu sync.Mutex
		var total materializer.Summary
		start := time.Now()
		for _, ph := range materializer.DataPhases {
			t0, c0 := time.Now(), selfCPU()
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					opts := materializer.Options{Workers: 1, Partition: materializer.Partition{I: i, N: n}, Phase: ph}
					var s materializer.Summary
					var err error
					// Labelled for -cpuprofile: pprof -tagfocus parts=n2 -tagfocus phase=zones.
					pprof.Do(ctx, pprof.Labels("parts", fmt.Sprint("n", n), "phase", ph), func(ctx context.Context) {
						s, err = materializer.RunTo(ctx, newStore(1, sink), sink, opts)
					})
					if err != nil {
						b.Error(err)
						return
					}
					if testing.Verbose() {
						b.Logf("%d/%d %-8s wall %6.2fs keys %d", i, n, ph, s.Elapsed.Seconds(), s.Written)
					}
					mu.Lock()
					total.Written += s.Written
					total.Bytes += s.Bytes
					mu.Unlock()
				})
			}
			wg.Wait()
			phaseWall[fmt.Sprint(n, ph)] += time.Since(t0)
			phaseCPU[fmt.Sprint(n, ph)] += selfCPU() - c0
		}
		return time.Since(start), total
	}
	whole := func(sink materializer.Sink) time.Duration {
		start := time.Now()
		if _, err := materializer.RunTo(ctx, newStore(2, sink), sink, materializer.Options{Workers: 2}); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	// cpu runs fn and returns the CPU time it took in this process and
	// in the server's.
	cpu := func(fn func()) (self, server time.Duration) {
		s0, v0 := selfCPU(), procCPU(srv.Pid)
		fn()
		return selfCPU() - s0, procCPU(srv.Pid) - v0
	}
	var one, two, toS3, toDir time.Duration
	var cpu1, cpu2, srv1, srv2 time.Duration
	var puts, reqs, keys, bytes int64
	for range b.N {
		ct.puts.Store(0)
		ct.all.Store(0)
		var sum materializer.Summary
		c, v := cpu(func() {
			var d time.Duration
			d, sum = partitions(1)
			one += d
		})
		cpu1, srv1 = cpu1+c, srv1+v
		puts, reqs, keys, bytes = ct.puts.Load(), ct.all.Load(), sum.Written, sum.Bytes
		c, v = cpu(func() {
			d, _ := partitions(2)
			two += d
		})
		cpu2, srv2 = cpu2+c, srv2+v
		toS3 += whole(newSink())
		dir := b.TempDir()
		toDir += whole(materializer.NewDirSink(dir))
		os.RemoveAll(dir)
	}
	n := float64(b.N)
	b.ReportMetric(float64(src)/1e6/(one.Seconds()/n), "src-MB/s-1part")
	b.ReportMetric(float64(src)/1e6/(two.Seconds()/n), "src-MB/s-2parts")
	b.ReportMetric(one.Seconds()/two.Seconds(), "x-2parts-vs-1")
	b.ReportMetric(float64(puts)/float64(keys), "PUTs/key")
	b.ReportMetric(float64(reqs)/float64(keys), "requests/key")
	b.ReportMetric(float64(bytes)/float64(keys)/(1<<20), "MiB/key")
	b.ReportMetric(float64(keys), "data-keys")
	b.ReportMetric(toDir.Seconds()/toS3.Seconds(), "x-s3-vs-dir")
	// CPU per data key, of this process and of the server: equal for one
	// and two partitions when no work is done twice.
	b.ReportMetric(cpu1.Seconds()*1e3/n/float64(keys), "cpu-ms/key-1part")
	b.ReportMetric(cpu2.Seconds()*1e3/n/float64(keys), "cpu-ms/key-2parts")
	b.ReportMetric(srv1.Seconds()*1e3/n/float64(keys), "server-cpu-ms/key-1part")
	b.ReportMetric(srv2.Seconds()*1e3/n/float64(keys), "server-cpu-ms/key-2parts")
	for _, ph := range materializer.DataPhases {
		for _, parts := range []int{1, 2} {
			k := fmt.Sprint(parts, ph)
			b.Logf("phase %-8s %d partition(s): wall %6.2fs  cpu %6.2fs", ph, parts, phaseWall[k].Seconds()/n, phaseCPU[k].Seconds()/n)
		}
	}
}
