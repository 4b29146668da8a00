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
//
// While a run is under way, its bookkeeping lives in the output: a state
// key (.tesserafs-materialize.json) naming the inputs, written once by the
// first writer (If-None-Match) and compared by every later one, so that
// no run, partition or resumed run mixes keys of different inputs; and,
// in a directory, the temporary files. A run that completes the store
// removes both, and the published tree then holds the store and the STAC
// catalog alone, key for key what the mount serves. A whole run into a
// directory also locks it (the lock leaves no file).
//
// A key that cannot be generated (its source tiles failed after retries:
// a remote server down, a tile truncated) does not stop the run: it is
// left out and named in the summary, everything else is written, and the
// root zarr.json of its year is held back, so the store is visibly
// incomplete until a later run finishes it. The run then returns
// ErrIncomplete, and the state stays for that later run.
package materializer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	Done, Total int64 // files, written or left out
	Failed      int64 // files that could not be generated
	Written     int64 // files written by this run (the rest were already there)
	Bytes       int64 // bytes written by this run
}

// Summary is the outcome of a run.
type Summary struct {
	Files    int64 // keys in the store
	Written  int64 // files written by this run
	Existing int64 // files already complete from an earlier run
	Bytes    int64 // bytes written by this run
	Elapsed  time.Duration
	// Phases is the time spent on each phase run (see Phases), in the
	// order written.
	Phases []Phase
	// Failed counts the files that could not be generated; Failures holds
	// the first MaxFailures of them, in the order they failed. Files
	// held back because others failed (a year's root zarr.json) are in
	// neither.
	Failed   int64
	Failures []Failure
	HeldBack []string // root zarr.json keys not written because of failures
}

// Phase is the wall time of one part of a run.
type Phase struct {
	Name    string
	Elapsed time.Duration
}

// Failure is a file that could not be generated, and why (the error names
// the tile and the file or URL that failed).
type Failure struct {
	Key string
	Err error
}

// MaxFailures bounds Summary.Failures.
const MaxFailures = 1000

// ErrIncomplete is returned (wrapped) by a run that wrote everything it
// could but left out the files of Summary.Failures; running it again
// finishes them.
var ErrIncomplete = errors.New("materialize incomplete: some files could not be generated")

const (
	stateName = ".tesserafs-materialize.json" // only while a run is unfinished
	tmpDir    = ".tesserafs-tmp"              // only while a run is under way
)

// state records what an output is being built from, so that a resumed
// run, or another partition, never mixes files of different inputs.
type state struct {
	Format      string `json:"format"`
	Fingerprint string `json:"fingerprint"`
}

// Run writes every key of st under dir: the whole run into a local
// directory, which it locks for the run. Partitioned runs, runs of one
// phase and object-store output use RunTo. Open st with ReadThrough:
// NewOutputCache(NewDirSink(dir)), so that derived chunks are built from
// the files already written rather than recomputed (a resumed run needs it
// most).
func Run(ctx context.Context, st *store.Store, dir string, opts Options) (Summary, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Summary{}, fmt.Errorf("output directory: %w", err)
	}
	unlock, err := lock(dir)
	if err != nil {
		return Summary{}, err
	}
	defer unlock()
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
// List) are skipped, so a rerun finishes what a killed one left.
//
// Before writing, RunTo claims the output for st's inputs (the state key,
// see the package comment); only then does st's read-through, if it is
// NewOutputCache of this sink, serve keys read back from the output.
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
	p := &progress{present: listed, fn: opts.Progress, failedIn: map[string]bool{}}
	var todo int
	for _, ph := range phases {
		keys := plan.Keys(ph, part)
		p.prog.Total += int64(len(keys))
		for _, k := range keys {
			if !listed[k.Key] {
				todo++
			}
		}
	}
	claimed, err := claim(ctx, st, sink, listed, todo)
	if err != nil {
		return Summary{}, err
	}
	// Chunks computed from other chunks (zone rgb from the zone's data,
	// global_rgb levels from zone rgb and from the level below) are read
	// back from the output, once it is known to hold st's keys.
	if oc, ok := st.ReadThrough().(*OutputCache); claimed && ok && oc.arm(ctx, sink, p.has) {
		defer oc.disarm()
	} else {
		log.Debug("the store does not read back from the output: derived chunks are recomputed", "out", sink.String())
	}

	var timings []Phase
	finished := false
	for _, ph := range phases {
		keys := plan.Keys(ph, part)
		t0 := time.Now()
		if ph == PhaseFinalize {
			if p.failedCount() == 0 {
				if err := p.checkComplete(plan, sink); err != nil {
					return Summary{}, err
				}
			}
			// Everything but the root zarr.json of each year, then those
			// of the years where nothing failed: a reader that finds a
			// root finds everything it lists.
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
			keys = p.holdBack(roots)
			finished = true
		}
		if err := p.write(ctx, st, sink, opts.Workers, keys); err != nil {
			return Summary{}, err
		}
		timings = append(timings, Phase{Name: ph, Elapsed: time.Since(t0)})
		log.Debug("phase done", "phase", ph, "partition", part.String(), "elapsed", time.Since(t0))
	}
	sum := Summary{
		Files: p.prog.Total, Written: p.prog.Written,
		Existing: p.prog.Total - p.prog.Written - p.prog.Failed - int64(len(p.heldBack)),
		Bytes:    p.prog.Bytes, Elapsed: time.Since(start), Phases: timings,
		Failed: p.prog.Failed, Failures: p.failures, HeldBack: p.heldBack,
	}
	if sum.Failed > 0 {
		// Unfinished: the state stays, for the run that finishes it.
		return sum, fmt.Errorf("%s: %w (%d files left out)", sink, ErrIncomplete, sum.Failed)
	}
	if finished && claimed {
		// Complete: the state goes (a run killed before that finds every
		// key written, writes nothing and succeeds).
		if err := sink.Delete(ctx, stateName); err != nil {
			return Summary{}, err
		}
	}
	return sum, nil
}

// claim checks that sink may receive st's keys, and returns whether it
// holds st's state key (so that its keys are st's and may be read back).
// The first writer of an output writes the state key, once
// (If-None-Match); every later run, partition or resumed run compares it.
// An output without it that holds keys is a finished store (or someone
// else's files): a run with nothing left to write there succeeds without
// claiming it; any other is refused.
func claim(ctx context.Context, st *store.Store, sink Sink, listed map[string]bool, todo int) (bool, error) {
	want := state{Format: store.FormatVersion, Fingerprint: st.Fingerprint()}
	b, _ := json.MarshalIndent(want, "", "  ")
	b = append(b, '\n')
	where := sink.String()
	have, ok, err := sink.Get(ctx, stateName)
	if err != nil {
		return false, err
	}
	if !ok {
		if len(listed) > 0 {
			if todo == 0 {
				return false, nil
			}
			return false, fmt.Errorf("%s is not empty and holds no unfinished tesserafs materialize run "+
				"(a finished run keeps no state there); choose an empty --out", where)
		}
		_, err := sink.Put(ctx, stateName, b)
		if errors.Is(err, ErrConflict) { // another writer claimed it first
			return false, otherInputs(where)
		}
		return err == nil, err
	}
	if !bytes.Equal(have, b) {
		var got state
		if err := json.Unmarshal(have, &got); err != nil {
			return false, fmt.Errorf("%s: %s: %w", where, stateName, err)
		}
		if got != want {
			return false, otherInputs(where)
		}
	}
	return true, nil
}

func otherInputs(where string) error {
	return fmt.Errorf("%s holds a store built from other tiles or options (%s); "+
		"write to a new --out or remove this one", where, stateName)
}

// getError marks a failure to generate one key, which skips that key
// rather than stopping the run.
type getError struct{ err error }

func (e getError) Error() string { return e.err.Error() }
func (e getError) Unwrap() error { return e.err }

// progress tracks a run: the keys present in the sink, the counts and the
// failures.
type progress struct {
	mu       sync.Mutex // guards all below
	present  map[string]bool
	prog     Progress
	fn       func(Progress)
	failures []Failure
	failedIn map[string]bool // top-level directories (years) with a failure
	heldBack []string
}

func (p *progress) has(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.present[key]
}

func (p *progress) failedCount() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.prog.Failed
}

func (p *progress) done(key string, wrote bool, n int64, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prog.Done++
	switch {
	case err != nil:
		p.prog.Failed++
		if len(p.failures) < MaxFailures {
			p.failures = append(p.failures, Failure{Key: key, Err: err})
		}
		top, _, _ := strings.Cut(key, "/")
		p.failedIn[top] = true
	default:
		p.present[key] = true
		if wrote {
			p.prog.Written++
			p.prog.Bytes += n
		}
	}
	if p.fn != nil {
		p.fn(p.prog)
	}
}

// holdBack returns the roots of the years where nothing failed, and
// records the others as held back.
func (p *progress) holdBack(roots []Key) []Key {
	p.mu.Lock()
	defer p.mu.Unlock()
	var keep []Key
	for _, k := range roots {
		top, _, _ := strings.Cut(k.Key, "/")
		if p.failedIn[top] && !p.present[k.Key] {
			p.heldBack = append(p.heldBack, k.Key)
			continue
		}
		keep = append(keep, k)
	}
	return keep
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

// write writes keys with n workers, skipping those present. A key that
// cannot be generated is recorded and skipped; any other error (writing
// the output, cancellation) stops it.
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
					p.done(k, false, 0, nil)
					continue
				}
				data, err := st.Get(ctx, k)
				if err != nil {
					if ctx.Err() != nil {
						cancel(err)
						return
					}
					// The store's errors name the key.
					p.done(k, false, 0, getError{err})
					continue
				}
				wrote, err := sink.Put(ctx, k, data)
				if err != nil {
					cancel(err)
					return
				}
				p.done(k, wrote, int64(len(data)), nil)
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
// the same tree at once would each believe the other's files complete. The
// lock is on the directory itself, so it leaves nothing in the tree.
func lock(dir string) (func(), error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s is being written by another tesserafs materialize (directory locked)", dir)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
