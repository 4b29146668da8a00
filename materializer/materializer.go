// Package materializer writes a virtual store to disk: every key becomes a
// file, written atomically (a temporary file renamed into place), by a
// pool of workers. A file that exists is complete, so a run that was
// killed is finished by running it again, and the result is byte-identical
// to an uninterrupted run. Data chunks are written first and metadata
// last, the root zarr.json of each year at the very end, so a reader never
// sees a store whose metadata promises chunks that are not there yet.
//
// While a run is under way, its bookkeeping (a state file naming the
// inputs, and a directory of temporary files) lives in the output
// directory, so that a resumed run finds it; a run that completes removes
// it, and the published tree then holds the store and the STAC catalog
// alone, file for file what the mount serves. The lock is taken on the
// output directory itself and leaves no file.
//
// A file that cannot be generated (its source tiles failed after retries:
// a remote server down, a tile truncated) does not stop the run: it is
// left out and named in the summary, everything else is written, and the
// root zarr.json of its year is held back, so the store is visibly
// incomplete until a later run finishes it. Run then returns ErrIncomplete,
// and the bookkeeping stays for that later run.
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
	"strings"
	"sync"
	"sync/atomic"
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

// Summary is what a run did.
type Summary struct {
	Files    int64 // files in the tree
	Written  int64 // files written by this run
	Existing int64 // files already complete from an earlier run
	Bytes    int64 // bytes written by this run
	Elapsed  time.Duration
	// Phases is the time spent on each part of the tree, in the order
	// written: "zones" (embeddings, scales, coordinates), "rgb",
	// "global_rgb", "metadata" (zarr.json and STAC).
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

// getError marks a failure to generate one key, which skips that key
// rather than stopping the run.
type getError struct{ err error }

func (e getError) Error() string { return e.err.Error() }
func (e getError) Unwrap() error { return e.err }

const (
	stateName = ".tesserafs-materialize.json" // only while a run is unfinished
	tmpDir    = ".tesserafs-tmp"              // only while a run is under way
)

// state records what an output directory is being built from, so that a
// resumed run never mixes files of different inputs.
type state struct {
	Format      string `json:"format"`
	Fingerprint string `json:"fingerprint"`
}

// Run writes every key of st under dir. Open st with ReadThrough:
// NewOutputCache(dir), so that derived chunks are built from the files
// already written rather than recomputed (a resumed run needs it most).
func Run(ctx context.Context, st *store.Store, dir string, opts Options) (Summary, error) {
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
	// Chunks computed from other chunks (global_rgb levels, built from
	// zone rgb and from the level below) read those back from what this
	// run, or the one it resumes, has written, if the store was opened
	// with this directory's OutputCache.
	if oc, ok := st.ReadThrough().(*OutputCache); !ok || !oc.arm(dir) {
		log.Debug("the store does not read back from the output: derived chunks are recomputed", "dir", dir)
	}
	// Temporary files of a killed run are all in one place: clear it.
	tmp := filepath.Join(dir, tmpDir)
	if err := os.RemoveAll(tmp); err != nil {
		return Summary{}, fmt.Errorf("clearing %s: %w", tmp, err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return Summary{}, fmt.Errorf("output directory: %w", err)
	}

	// Passes over the index, each timed as a phase: the zones' data
	// chunks, their rgb previews (which the global preview is built from),
	// the global_rgb chunks, then metadata and STAC, the root zarr.json of
	// each year last.
	isChunk := func(k string) bool { return strings.Contains(k, "/c/") }
	isGlobal := func(k string) bool { return strings.Contains(k, ".zarr/global_rgb/") }
	isRGB := func(k string) bool { return strings.Contains(k, "/rgb/c/") && !isGlobal(k) }
	isRoot := func(k string) bool {
		d, f := filepath.Split(k)
		return f == "zarr.json" && strings.Count(d, "/") == 1 && strings.HasSuffix(d, ".zarr/")
	}
	passes := []struct {
		phase string
		keep  func(string) bool
	}{
		{"zones", func(k string) bool { return isChunk(k) && !isRGB(k) && !isGlobal(k) }},
		{"rgb", isRGB},
		{"global_rgb", func(k string) bool { return isChunk(k) && isGlobal(k) }},
		{"metadata", func(k string) bool { return !isChunk(k) && !isRoot(k) }},
		{"metadata", isRoot},
	}
	var total int64
	if err := st.Walk(ctx, "", func(string) error { total++; return nil }); err != nil {
		return Summary{}, err
	}

	w := &writer{st: st, dir: dir, tmp: tmp, dirs: map[string]bool{}}
	var (
		prog     Progress
		progMu   sync.Mutex
		failures []Failure
		failedIn = map[string]bool{} // top-level directories with a failure
	)
	prog.Total = total
	report := func(key string, wrote bool, n int64, err error) {
		progMu.Lock()
		defer progMu.Unlock()
		prog.Done++
		switch {
		case err != nil:
			prog.Failed++
			if len(failures) < MaxFailures {
				failures = append(failures, Failure{Key: key, Err: err})
			}
			top, _, _ := strings.Cut(key, "/")
			failedIn[top] = true
			log.Debug("materialize: file left out", "key", key, "err", err)
		case wrote:
			prog.Written++
			prog.Bytes += n
		}
		if opts.Progress != nil {
			opts.Progress(prog)
		}
	}
	var phases []Phase
	// A year's root zarr.json is held back while any of its files failed.
	var heldBack []string
	rootPass := func(k string) bool {
		if !isRoot(k) {
			return false
		}
		top, _, _ := strings.Cut(k, "/")
		progMu.Lock()
		defer progMu.Unlock()
		if failedIn[top] {
			heldBack = append(heldBack, k)
			return false
		}
		return true
	}
	passes[len(passes)-1].keep = rootPass
	for _, pass := range passes {
		t0 := time.Now()
		if err := w.pass(ctx, opts.Workers, pass.keep, report); err != nil {
			return Summary{}, err
		}
		if n := len(phases); n > 0 && phases[n-1].Name == pass.phase {
			phases[n-1].Elapsed += time.Since(t0)
		} else {
			phases = append(phases, Phase{Name: pass.phase, Elapsed: time.Since(t0)})
		}
		log.Debug("materialize phase", "phase", pass.phase, "took", time.Since(t0))
	}
	sum := Summary{
		Files: total, Written: prog.Written, Existing: total - prog.Written - prog.Failed - int64(len(heldBack)),
		Bytes: prog.Bytes, Elapsed: time.Since(start), Phases: phases,
		Failed: prog.Failed, Failures: failures, HeldBack: heldBack,
	}
	if sum.Failed > 0 {
		// Unfinished: the state stays, for the run that finishes it.
		if err := os.RemoveAll(tmp); err != nil {
			log.Warn("removing temporary directory", "path", tmp, "err", err)
		}
		return sum, fmt.Errorf("%s: %w (%d files left out)", dir, ErrIncomplete, sum.Failed)
	}
	// Complete: the bookkeeping goes, the state last (a run killed before
	// that finds every file written and removes it).
	if err := os.RemoveAll(tmp); err != nil {
		return Summary{}, fmt.Errorf("removing temporary directory %s: %w", tmp, err)
	}
	if err := os.Remove(filepath.Join(dir, stateName)); err != nil {
		return Summary{}, fmt.Errorf("removing %s: %w", filepath.Join(dir, stateName), err)
	}
	return sum, nil
}

type writer struct {
	st       *store.Store
	dir, tmp string
	seq      atomic.Int64

	mu   sync.Mutex // guards dirs
	dirs map[string]bool
}

// pass writes, with n workers, every key that keep accepts. A key that
// cannot be generated is reported and skipped; any other error (writing
// the output, cancellation) stops the pass.
func (w *writer) pass(ctx context.Context, n int, keep func(string) bool, report func(string, bool, int64, error)) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	keys := make(chan string, 4*n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range keys {
				wrote, size, err := w.file(ctx, k)
				var ge getError
				if err != nil && (!errors.As(err, &ge) || ctx.Err() != nil) {
					cancel(err)
					return
				}
				report(k, wrote, size, err)
			}
		}()
	}
	walkErr := w.st.Walk(ctx, "", func(k string) error {
		if !keep(k) {
			return nil
		}
		select {
		case keys <- k:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	})
	close(keys)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if walkErr != nil {
		return walkErr
	}
	return ctx.Err()
}

// file writes one key unless it is already complete on disk.
func (w *writer) file(ctx context.Context, key string) (bool, int64, error) {
	dst := filepath.Join(w.dir, filepath.FromSlash(key))
	if fi, err := os.Lstat(dst); err == nil && fi.Mode().IsRegular() {
		return false, 0, nil
	}
	data, err := w.st.Get(ctx, key)
	if err != nil {
		return false, 0, getError{err} // the store's errors name the key
	}
	if err := w.mkdir(filepath.Dir(dst)); err != nil {
		return false, 0, err
	}
	tmp := filepath.Join(w.tmp, fmt.Sprintf("%d", w.seq.Add(1)))
	if err := writeFile(tmp, data); err != nil {
		os.Remove(tmp)
		return false, 0, fmt.Errorf("writing %s: %w", dst, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return false, 0, fmt.Errorf("writing %s: %w", dst, err)
	}
	return true, int64(len(data)), nil
}

func writeFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (w *writer) mkdir(d string) error {
	w.mu.Lock()
	done := w.dirs[d]
	w.mu.Unlock()
	if done {
		return nil
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", d, err)
	}
	w.mu.Lock()
	w.dirs[d] = true
	w.mu.Unlock()
	return nil
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
			return fmt.Errorf("%s is not empty and holds no unfinished tesserafs materialize run "+
				"(a finished run keeps no state there); choose an empty --out directory", dir)
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
