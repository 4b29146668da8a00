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
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tesserafs/tesserafs/internal/keyspace"
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
// NewOutputReadThrough(NewDirSink(dir)), so that derived chunks are built from
// the files already written rather than recomputed (a resumed run needs it
// most).
func Run(ctx context.Context, st Store, dir string, opts Options) (Summary, error) {
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
	Count   int          // data keys missing
	Missing []MissingKey // the first MaxMissingShown of them, in key order
	Owners  []int        // the partitions that own missing keys, ascending
	Total   int          // data keys expected
	N       int          // partitions the owners refer to
}

// MissingKey is a data key a finalize found missing, and who owns it.
type MissingKey struct {
	Key, Phase string
	Owner      int
}

// MaxMissingShown bounds MissingError.Missing.
const MaxMissingShown = 20

func (e *MissingError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "finalize refused: %d of %d data keys are missing from %s", e.Count, e.Total, e.Where)
	if e.N > 1 {
		fmt.Fprintf(&b, "; owned by partition(s) %s of %d", strings.Trim(fmt.Sprint(e.Owners), "[]"), e.N)
	}
	b.WriteString(" (run those partitions again, then finalize)")
	for _, k := range e.Missing {
		fmt.Fprintf(&b, "\n  %s (phase %s, partition %d)", k.Key, k.Phase, k.Owner)
	}
	if e.Count > len(e.Missing) {
		fmt.Fprintf(&b, "\n  ... and %d more", e.Count-len(e.Missing))
	}
	return b.String()
}

// RunTo writes keys of st into sink: with opts.Phase "" and a whole
// partition, every phase and then finalize (the whole store); with a
// partition and no phase, that partition's share of every data phase, in
// order; with opts.Phase, that phase only. Keys already in the sink are
// skipped, so a rerun finishes what a killed one left: a partition lists
// only the prefixes of the rows of units it owns (a zone's shard row, a
// global_rgb chunk row), one row at a time, and never holds the plan's
// keys; finalize compares the whole listing with the store's keys, both
// streamed in lexicographic order.
//
// Before writing, RunTo claims the output for st's inputs (the state key,
// see the package comment); only then does st's read-through, if it is
// NewOutputReadThrough of this sink, serve keys read back from the output.
func RunTo(ctx context.Context, st Store, sink Sink, opts Options) (Summary, error) {
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
	claimed, refuse, err := claim(ctx, st, sink)
	if err != nil {
		return Summary{}, err
	}
	p := &progress{present: map[string]bool{}, listed: map[string]bool{}, refuse: refuse,
		fn: opts.Progress, failedIn: map[string]bool{}}
	// The keys to write (zone shards count three, an upper bound: the
	// scales and rgb of a shard without a finite scale are absent).
	for _, ph := range phases {
		if ph == PhaseFinalize {
			continue
		}
		err := plan.Rows(ctx, ph, part, func([]string) error { return nil }, func(u Unit) error {
			p.prog.Total += int64(len(u.Keys()))
			return nil
		})
		if err != nil {
			return Summary{}, err
		}
	}
	// Chunks computed from other chunks (zone rgb from the zone's data,
	// global_rgb levels from zone rgb and from the level below) are read
	// back from the output, once it is known to hold st's keys.
	if oc, ok := outputReadThrough(st); claimed && ok && oc.arm(ctx, sink, p.mayHave) {
		defer oc.disarm()
	} else {
		log.Debug("the store does not read back from the output: derived chunks are recomputed", "out", sink.String())
	}

	var timings []Phase
	finished := false
	for _, ph := range phases {
		t0 := time.Now()
		if ph == PhaseFinalize {
			if err := p.finalize(ctx, st, sink, opts.Workers, plan); err != nil {
				return Summary{}, err
			}
			finished = true
		} else if err := p.writeUnits(ctx, st, sink, opts.Workers, plan, ph, part); err != nil {
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
		// Complete: the stretch records and then the state go (a run
		// killed before that finds every key written, writes nothing
		// and succeeds).
		for _, k := range st.StretchRecords() {
			if err := sink.Delete(ctx, k); err != nil {
				return Summary{}, err
			}
		}
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
// else's files): a run may go through it without claiming it, and refuse
// is the error it must stop with before writing any key.
func claim(ctx context.Context, st Store, sink Sink) (claimed bool, refuse error, err error) {
	want := state{Format: store.FormatVersion, Fingerprint: st.Fingerprint()}
	b, _ := json.MarshalIndent(want, "", "  ")
	b = append(b, '\n')
	where := sink.String()
	have, ok, err := sink.Get(ctx, stateName)
	if err != nil {
		return false, nil, err
	}
	if !ok {
		empty := true
		err := sink.List(ctx, "", func(string) error { empty = false; return errStop })
		if err != nil && !errors.Is(err, errStop) {
			return false, nil, err
		}
		if !empty {
			return false, fmt.Errorf("%s is not empty and holds no unfinished tesserafs materialize run "+
				"(a finished run keeps no state there); choose an empty --out", where), nil
		}
		_, err = sink.Put(ctx, stateName, b)
		if errors.Is(err, ErrConflict) { // another writer claimed it first
			return false, nil, otherInputs(where)
		}
		return err == nil, nil, err
	}
	if !bytes.Equal(have, b) {
		var got state
		if err := json.Unmarshal(have, &got); err != nil {
			return false, nil, fmt.Errorf("%s: %s: %w", where, stateName, err)
		}
		if got != want {
			return false, nil, otherInputs(where)
		}
	}
	return true, nil, nil
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

// progress tracks a run: the keys known present in the sink, the counts
// and the failures.
type progress struct {
	mu       sync.Mutex      // guards all below
	present  map[string]bool // keys listed or written
	listed   map[string]bool // row prefixes listed (see rowPrefix)
	refuse   error           // if set, the error to stop with instead of writing
	prog     Progress
	fn       func(Progress)
	failures []Failure
	failedIn map[string]bool // top-level directories (years) with a failure
	heldBack []string
}

// rowPrefix is the prefix of a chunk key up to its first chunk coordinate
// (".../c/<i>/"): the unit of a partition's listing.
func rowPrefix(key string) string {
	k, ok := keyspace.Parse(key)
	if !ok || k.Kind != keyspace.Chunk {
		return ""
	}
	return k.ChunkRow()
}

func (p *progress) has(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.present[key]
}

// mayHave reports whether key may be in the sink: it is known present, or
// its row was not listed by this run (a key another partition owns).
func (p *progress) mayHave(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.present[key] || !p.listed[rowPrefix(key)]
}

// list records the keys of the sink under prefixes.
func (p *progress) list(ctx context.Context, sink Sink, prefixes []string) error {
	for _, pre := range prefixes {
		var keys []string
		if err := sink.List(ctx, pre, func(k string) error { keys = append(keys, k); return nil }); err != nil {
			return err
		}
		p.mu.Lock()
		for _, k := range keys {
			p.present[k] = true
		}
		p.listed[pre] = true
		p.mu.Unlock()
	}
	return nil
}

func (p *progress) failedCount() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.prog.Failed
}

// absent drops a key counted in Total that the store does not have.
func (p *progress) absent() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prog.Total--
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
func (p *progress) holdBack(roots []string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var keep []string
	for _, k := range roots {
		top, _, _ := strings.Cut(k, "/")
		if p.failedIn[top] && !p.present[k] {
			p.heldBack = append(p.heldBack, k)
			continue
		}
		keep = append(keep, k)
	}
	return keep
}

// writeUnits writes the keys of part's units of phase with n workers,
// listing the output one row of units at a time, ahead of the workers.
func (p *progress) writeUnits(ctx context.Context, st Store, sink Sink, n int, plan *Plan, phase string, part Partition) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ch := make(chan Unit, 4*n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for u := range ch {
				for k, key := range u.Keys() {
					// A zone shard's scales and rgb exist only where it
					// holds a finite scale.
					if k > 0 && !p.has(key) && !st.Exists(key) {
						p.absent()
						continue
					}
					if err := p.writeKey(ctx, st, sink, key); err != nil {
						cancel(err)
						return
					}
				}
			}
		})
	}
	err := plan.Rows(ctx, phase, part, func(prefixes []string) error {
		return p.list(ctx, sink, prefixes)
	}, func(u Unit) error {
		select {
		case ch <- u:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(ch)
	wg.Wait()
	if err != nil && ctx.Err() == nil {
		return err
	}
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// writeKey writes one key unless it is present. A key that cannot be
// generated is recorded and skipped; any other error (writing the
// output, cancellation) is returned.
func (p *progress) writeKey(ctx context.Context, st Store, sink Sink, k string) error {
	if p.has(k) {
		p.done(k, false, 0, nil)
		return nil
	}
	if p.refuse != nil {
		return p.refuse
	}
	data, err := st.Get(ctx, k)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		// The store's errors name the key.
		p.done(k, false, 0, getError{err})
		return nil
	}
	wrote, err := sink.Put(ctx, k, data)
	if err != nil {
		return err
	}
	p.done(k, wrote, int64(len(data)), nil)
	return nil
}

// finalize checks that every data key of st is in the sink (unless keys
// failed in this run), then writes the finalize keys: everything but the
// root zarr.json of each year, then those of the years where nothing
// failed, so that a reader that finds a root finds everything it lists.
func (p *progress) finalize(ctx context.Context, st Store, sink Sink, n int, plan *Plan) error {
	fin, err := p.compare(ctx, st, sink, plan, p.failedCount() == 0)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.prog.Total += int64(len(fin))
	p.mu.Unlock()
	var roots []string
	fin = slices.DeleteFunc(fin, func(k string) bool {
		if isRoot(k) {
			roots = append(roots, k)
			return true
		}
		return false
	})
	if err := p.writeKeys(ctx, st, sink, n, fin); err != nil {
		return err
	}
	return p.writeKeys(ctx, st, sink, n, p.holdBack(roots))
}

// compare walks st's keys and the sink's listing side by side, both in
// lexicographic order, holding neither: it records the finalize keys
// present and returns every finalize key; with check, it refuses with a
// *MissingError if a data key is missing.
func (p *progress) compare(ctx context.Context, st Store, sink Sink, plan *Plan, check bool) ([]string, error) {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lch := make(chan string, 1024)
	lerr := make(chan error, 1)
	go func() {
		defer close(lch)
		lerr <- sink.List(lctx, "", func(k string) error {
			select {
			case lch <- k:
				return nil
			case <-lctx.Done():
				return lctx.Err()
			}
		})
	}()
	cur, more := <-lch
	var fin []string
	e := &MissingError{Where: sink.String(), N: plan.N}
	owners := map[int]bool{}
	err := walkSorted(ctx, st, "", false, func(k string) error {
		for more && cur < k {
			cur, more = <-lch
		}
		present := more && cur == k
		ph := PhaseOf(k)
		if ph == PhaseFinalize {
			fin = append(fin, k)
			if present {
				p.mu.Lock()
				p.present[k] = true
				p.mu.Unlock()
			}
			return nil
		}
		e.Total++
		if present || !check {
			return nil
		}
		e.Count++
		_, owner, _ := plan.OwnerOf(k)
		owners[owner] = true
		if len(e.Missing) < MaxMissingShown {
			e.Missing = append(e.Missing, MissingKey{Key: k, Phase: ph, Owner: owner})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	cancel()
	for range lch { // drain: the lister stops at its next key
	}
	if err := <-lerr; err != nil && !errors.Is(err, context.Canceled) {
		return nil, err
	}
	if e.Count > 0 {
		e.Owners = slices.Sorted(maps.Keys(owners))
		return nil, e
	}
	return fin, nil
}

// writeKeys writes keys with n workers, skipping those present.
func (p *progress) writeKeys(ctx context.Context, st Store, sink Sink, n int, keys []string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ch := make(chan string, 4*n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for k := range ch {
				if err := p.writeKey(ctx, st, sink, k); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
feed:
	for _, k := range keys {
		select {
		case ch <- k:
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
