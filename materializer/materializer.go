// Package materializer writes a virtual store to a Sink: a directory or
// an s3:// prefix. Every key is written once and atomically (a temporary
// file linked into place; a PutObject with If-None-Match: *), by a pool of
// workers, and a key already there is skipped, so a run that was killed is
// finished by running it again, and the result is byte-identical to an
// uninterrupted run. Data chunks are written first and metadata last, the
// root zarr.json of each year at the very end, so a reader never sees a
// store whose metadata promises chunks that are not there yet.
//
// A run can be split into phases and partitions (plan.go) that separate
// machines run; a finalize step writes the metadata once every data key
// exists.
package materializer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tesserafs/tesserafs/internal/store"
)

// Options configure a run.
type Options struct {
	Workers int // concurrent generations and writes; default GOMAXPROCS
	// Progress, if set, is called after each file with the counts so far.
	Progress func(p Progress)
	Logger   *slog.Logger
	// MemoryLimit, if positive, is the Go runtime's soft memory limit for
	// the run (see runtime/debug.SetMemoryLimit), restored afterwards. The
	// garbage collector otherwise lets the heap grow to twice what is live,
	// which for shards of 8 MiB is a lot of memory for nothing.
	MemoryLimit int64
	// Partition is this worker's share of the data keys (zero: all).
	Partition Partition
	// Phase, if set, runs that phase only (see Phases).
	Phase string
	// Plan, if set, is the split to use (it must be for Partition.N).
	Plan *Plan
}

// DefaultMemoryLimit is a soft memory limit that leaves room for workers
// generating shards in parallel: each holds about 30 MiB at its peak.
func DefaultMemoryLimit(workers int) int64 { return (128 + 40*int64(workers)) << 20 }

// Progress is the state of a run.
type Progress struct {
	Done, Total int64 // files
	Written     int64 // files written by this run (the rest were already there)
	Bytes       int64 // bytes written by this run
}

// Summary is what a run did.
type Summary struct {
	Files    int64 // files in the tree
	Written  int64 // files written by this run
	Existing int64 // files already complete from an earlier run
	Bytes    int64 // bytes written by this run
	Elapsed  time.Duration
}

const (
	stateName = ".tesserafs-materialize.json"
	lockName  = ".tesserafs-materialize.lock"
	tmpDir    = ".tesserafs-tmp"
)

// state records what an output directory is being built from, so that a
// resumed run never mixes files of different inputs.
type state struct {
	Format      string `json:"format"`
	Fingerprint string `json:"fingerprint"`
}

// Run writes every key of st under dir: the whole run into a local
// directory, which it locks and stamps with the store's fingerprint so that
// a resumed run never mixes files of different inputs. Partitioned runs,
// runs of one phase and object-store output use RunTo.
func Run(ctx context.Context, st *store.Store, dir string, opts Options) (Summary, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Summary{}, fmt.Errorf("output directory: %w", err)
	}
	unlock, err := lock(dir)
	if err != nil {
		return Summary{}, err
	}
	defer unlock()
	if err := checkState(dir, st.Fingerprint()); err != nil {
		return Summary{}, err
	}
	// Temporary files of a killed run are all in one place, and this run
	// holds the lock: clear them.
	tmp := filepath.Join(dir, tmpDir)
	if err := os.RemoveAll(tmp); err != nil {
		return Summary{}, fmt.Errorf("clearing %s: %w", tmp, err)
	}
	opts.Partition, opts.Phase = Partition{}, ""
	return RunTo(ctx, st, NewDirSink(dir), opts)
}

// MissingError is a finalize refused because data keys are missing: some
// partition has not finished (or failed).
type MissingError struct {
	Where   string
	Missing []Key // in plan order, each with its owner
	Total   int   // data keys expected
	N       int   // partitions the owners refer to
}

func (e *MissingError) Error() string {
	var b strings.Builder
	var owners []int
	for _, k := range e.Missing {
		if !slices.Contains(owners, k.Owner) {
			owners = append(owners, k.Owner)
		}
	}
	slices.Sort(owners)
	fmt.Fprintf(&b, "finalize refused: %d of %d data keys are missing from %s", len(e.Missing), e.Total, e.Where)
	if e.N > 1 {
		fmt.Fprintf(&b, "; owned by partition(s) %s of %d", strings.Trim(fmt.Sprint(owners), "[]"), e.N)
	}
	b.WriteString(" (run those partitions again, then finalize)")
	for i, k := range e.Missing {
		if i == 20 {
			fmt.Fprintf(&b, "\n  ... and %d more", len(e.Missing)-20)
			break
		}
		fmt.Fprintf(&b, "\n  %s (phase %s, partition %d)", k.Key, k.Phase, k.Owner)
	}
	return b.String()
}

// RunTo writes keys of st into sink: with opts.Phase "" and a whole
// partition, every phase and then finalize (the whole store); with a
// partition and no phase, that partition's share of every data phase, in
// order; with opts.Phase, that phase only. Keys already in the sink (one
// List) are skipped, so a rerun finishes what a killed one left, and
// the sink holds no state but the keys themselves.
func RunTo(ctx context.Context, st *store.Store, sink Sink, opts Options) (Summary, error) {
	start := time.Now()
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.MemoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(opts.MemoryLimit))
	}
	if c, ok := sink.(interface{ Close() error }); ok {
		defer c.Close()
	}
	part := opts.Partition
	var phases []string
	switch {
	case opts.Phase != "":
		if !slices.Contains(Phases, opts.Phase) {
			return Summary{}, fmt.Errorf("phase %q: want one of %s", opts.Phase, strings.Join(Phases, ", "))
		}
		phases = []string{opts.Phase}
	case part.Whole():
		phases = Phases
	default:
		phases = DataPhases
	}
	plan := opts.Plan
	if plan == nil || plan.N != max(part.N, 1) {
		var err error
		if plan, err = NewPlan(ctx, st, part.N); err != nil {
			return Summary{}, err
		}
	}
	listed, err := sink.List(ctx)
	if err != nil {
		return Summary{}, err
	}
	p := &progress{present: listed, fn: opts.Progress}
	for _, ph := range phases {
		p.prog.Total += int64(len(plan.Keys(ph, part)))
	}
	// Chunks computed from other chunks (global_rgb levels, from zone rgb
	// and from the level below) read those back from the output.
	defer st.SetReadThrough(sinkCache{ctx, sink})()

	for _, ph := range phases {
		keys := plan.Keys(ph, part)
		t0 := time.Now()
		if ph == PhaseFinalize {
			if err := p.checkComplete(plan, sink); err != nil {
				return Summary{}, err
			}
			// Everything but the root zarr.json of each year, then those:
			// a reader that finds a root finds everything it lists.
			var roots []Key
			keys = slices.DeleteFunc(slices.Clone(keys), func(k Key) bool {
				if isRoot(k.Key) {
					roots = append(roots, k)
					return true
				}
				return false
			})
			if err := p.write(ctx, st, sink, opts.Workers, keys); err != nil {
				return Summary{}, err
			}
			keys = roots
		}
		if err := p.write(ctx, st, sink, opts.Workers, keys); err != nil {
			return Summary{}, err
		}
		log.Debug("phase done", "phase", ph, "partition", part.String(), "elapsed", time.Since(t0))
	}
	return Summary{
		Files: p.prog.Total, Written: p.prog.Written, Existing: p.prog.Total - p.prog.Written,
		Bytes: p.prog.Bytes, Elapsed: time.Since(start),
	}, nil
}

// progress tracks a run: the keys present in the sink and the counts.
type progress struct {
	mu      sync.Mutex // guards all below
	present map[string]bool
	prog    Progress
	fn      func(Progress)
}

func (p *progress) has(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.present[key]
}

func (p *progress) done(key string, wrote bool, n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.present[key] = true
	p.prog.Done++
	if wrote {
		p.prog.Written++
		p.prog.Bytes += n
	}
	if p.fn != nil {
		p.fn(p.prog)
	}
}

// checkComplete refuses to finalize while a data key of the plan is not in
// the sink.
func (p *progress) checkComplete(plan *Plan, sink Sink) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := &MissingError{Where: sink.String(), N: plan.N}
	for _, ph := range DataPhases {
		for _, k := range plan.Phases[ph] {
			e.Total++
			if !p.present[k.Key] {
				e.Missing = append(e.Missing, k)
			}
		}
	}
	if len(e.Missing) > 0 {
		return e
	}
	return nil
}

// write writes keys with n workers, skipping those present. The first
// error stops it.
func (p *progress) write(ctx context.Context, st *store.Store, sink Sink, n int, keys []Key) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ch := make(chan string, 4*n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range ch {
				if p.has(k) {
					p.done(k, false, 0)
					continue
				}
				data, err := st.Get(ctx, k)
				if err != nil {
					cancel(err)
					return
				}
				wrote, err := sink.Put(ctx, k, data)
				if err != nil {
					cancel(err)
					return
				}
				p.done(k, wrote, int64(len(data)))
			}
		}()
	}
feed:
	for _, k := range keys {
		select {
		case ch <- k.Key:
		case <-ctx.Done():
			break feed
		}
	}
	close(ch)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// lock takes an exclusive lock on the output directory: two runs writing
// the same tree at once would each believe the other's files complete.
func lock(dir string) (func(), error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s is being written by another tesserafs materialize (lock %s held)", dir, path)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
		os.Remove(path)
	}, nil
}

// checkState refuses to resume into a directory built from other inputs,
// and records the inputs of a new one.
func checkState(dir, fp string) error {
	path := filepath.Join(dir, stateName)
	want := state{Format: store.FormatVersion, Fingerprint: fp}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		var have state
		if err := json.Unmarshal(b, &have); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if have != want {
			return fmt.Errorf("%s holds a store built from other tiles or options (%s); "+
				"write to a new --out directory or remove this one", dir, path)
		}
		return nil
	case errors.Is(err, fs.ErrNotExist):
		if entries, _ := os.ReadDir(dir); len(nonInternal(entries)) > 0 {
			return fmt.Errorf("%s is not empty and was not written by tesserafs materialize; choose an empty --out directory", dir)
		}
		b, _ := json.MarshalIndent(want, "", "  ")
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		return os.Rename(tmp, path)
	default:
		return fmt.Errorf("%s: %w", path, err)
	}
}

func nonInternal(entries []os.DirEntry) []os.DirEntry {
	var out []os.DirEntry
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".tesserafs-") {
			out = append(out, e)
		}
	}
	return out
}
