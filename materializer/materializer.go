// Package materializer writes a virtual store to disk: every key becomes a
// file, written atomically (a temporary file renamed into place), by a
// pool of workers. A file that exists is complete, so a run that was
// killed is finished by running it again, and the result is byte-identical
// to an uninterrupted run. Data chunks are written first and metadata
// last, the root zarr.json of each year at the very end, so a reader never
// sees a store whose metadata promises chunks that are not there yet.
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

	// Three passes over the index: chunks, then metadata and STAC, then the
	// root zarr.json of each year.
	isChunk := func(k string) bool { return strings.Contains(k, "/c/") }
	isRoot := func(k string) bool {
		d, f := filepath.Split(k)
		return f == "zarr.json" && strings.Count(d, "/") == 1 && strings.HasSuffix(d, ".zarr/")
	}
	passes := []func(string) bool{
		isChunk,
		func(k string) bool { return !isChunk(k) && !isRoot(k) },
		isRoot,
	}
	var total int64
	if err := st.Walk(ctx, "", func(string) error { total++; return nil }); err != nil {
		return Summary{}, err
	}

	w := &writer{st: st, dir: dir, tmp: tmp, dirs: map[string]bool{}}
	var prog Progress
	prog.Total = total
	var progMu sync.Mutex
	report := func(wrote bool, n int64) {
		progMu.Lock()
		defer progMu.Unlock()
		prog.Done++
		if wrote {
			prog.Written++
			prog.Bytes += n
		}
		if opts.Progress != nil {
			opts.Progress(prog)
		}
	}
	for _, pass := range passes {
		if err := w.pass(ctx, opts.Workers, pass, report); err != nil {
			return Summary{}, err
		}
	}
	if err := os.RemoveAll(tmp); err != nil {
		log.Warn("removing temporary directory", "path", tmp, "err", err)
	}
	return Summary{
		Files: total, Written: prog.Written, Existing: total - prog.Written,
		Bytes: prog.Bytes, Elapsed: time.Since(start),
	}, nil
}

type writer struct {
	st       *store.Store
	dir, tmp string
	seq      atomic.Int64

	mu   sync.Mutex // guards dirs
	dirs map[string]bool
}

// pass writes, with n workers, every key that keep accepts. The first
// error stops the pass.
func (w *writer) pass(ctx context.Context, n int, keep func(string) bool, report func(bool, int64)) error {
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
				if err != nil {
					cancel(err)
					return
				}
				report(wrote, size)
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
		return false, 0, err
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
