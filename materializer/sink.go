package materializer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
)

// Sink is where a run's keys go: a directory or an object-store prefix.
// Every key is written once and atomically: a reader sees it whole or not
// at all, and a key that is already there is never overwritten. Writing a
// key that exists with the same bytes is not an error (a rerun, or a
// second worker on the same partition); with other bytes it is a
// *ConflictError.
type Sink interface {
	// Put writes key unless it exists. wrote is false when identical
	// bytes were already there.
	Put(ctx context.Context, key string, data []byte) (wrote bool, err error)
	// Get returns a key's bytes; ok is false for a key that is absent.
	Get(ctx context.Context, key string) (data []byte, ok bool, err error)
	// List returns every key present, relative to the sink's root, but
	// for the sink's own entries (names starting with .tesserafs-).
	List(ctx context.Context) (map[string]bool, error)
	// Delete removes a key; an absent key is not an error. Runs delete
	// only their own state key, never a key of the store.
	Delete(ctx context.Context, key string) error
	// String names the sink for messages: a path or an s3:// URL.
	String() string
}

// ErrConflict is matched (errors.Is) by every *ConflictError.
var ErrConflict = errors.New("exists with different content")

// ConflictError is a key that already exists with other bytes than the
// ones this run computed: the output holds a store built from other tiles
// or options. It is never overwritten.
type ConflictError struct {
	Where string // the sink
	Key   string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s: %s %v (built from other tiles or options?); not overwritten", e.Where, e.Key, ErrConflict)
}

func (e *ConflictError) Unwrap() error { return ErrConflict }

// internalPrefix marks a sink's own entries (temporary files, the state
// key of an unfinished run), which are not keys of the store.
const internalPrefix = ".tesserafs-"

// DirSink writes keys as files under Dir. A file is written to a temporary
// name and hard-linked into place, which fails if the name exists: that
// is the directory's If-None-Match, so concurrent writers of one key
// cannot replace each other's file.
type DirSink struct {
	Dir string

	tmpOnce sync.Once
	tmp     string // this process's temporary directory
	tmpErr  error
	seq     atomic.Int64

	mu   sync.Mutex // guards dirs
	dirs map[string]bool
}

// NewDirSink returns a sink writing under dir.
func NewDirSink(dir string) *DirSink {
	return &DirSink{Dir: filepath.Clean(dir), dirs: map[string]bool{}}
}

func (d *DirSink) String() string { return d.Dir }

func (d *DirSink) path(key string) string { return filepath.Join(d.Dir, filepath.FromSlash(key)) }

// tmpDir is this process's own temporary directory, so that concurrent
// runs (partitions sharing a file system) never clear each other's files.
func (d *DirSink) tmpDir() (string, error) {
	d.tmpOnce.Do(func() {
		base := filepath.Join(d.Dir, tmpDir)
		if err := os.MkdirAll(base, 0o755); err != nil {
			d.tmpErr = fmt.Errorf("output directory: %w", err)
			return
		}
		d.tmp, d.tmpErr = os.MkdirTemp(base, fmt.Sprintf("%d-", os.Getpid()))
	})
	return d.tmp, d.tmpErr
}

// Close removes this process's temporary directory.
func (d *DirSink) Close() error {
	if d.tmp == "" {
		return nil
	}
	err := os.RemoveAll(d.tmp)
	os.Remove(filepath.Join(d.Dir, tmpDir)) // only if empty: others may use it
	return err
}

// Put implements Sink.
func (d *DirSink) Put(_ context.Context, key string, data []byte) (bool, error) {
	dst := d.path(key)
	if err := d.mkdir(filepath.Dir(dst)); err != nil {
		return false, err
	}
	dir, err := d.tmpDir()
	if err != nil {
		return false, err
	}
	tmp := filepath.Join(dir, fmt.Sprint(d.seq.Add(1)))
	defer os.Remove(tmp)
	if err := writeFile(tmp, data); err != nil {
		return false, fmt.Errorf("writing %s: %w", dst, err)
	}
	err = os.Link(tmp, dst)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return false, fmt.Errorf("writing %s: %w", dst, err)
	}
	have, err := os.ReadFile(dst)
	if err != nil {
		return false, fmt.Errorf("%s exists: %w", dst, err)
	}
	if !bytes.Equal(have, data) {
		return false, &ConflictError{Where: d.Dir, Key: key}
	}
	return false, nil
}

// Get implements Sink.
func (d *DirSink) Get(_ context.Context, key string) ([]byte, bool, error) {
	b, err := os.ReadFile(d.path(key))
	switch {
	case err == nil:
		return b, true, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, false, nil
	default:
		return nil, false, err
	}
}

// Delete implements Sink.
func (d *DirSink) Delete(_ context.Context, key string) error {
	if err := os.Remove(d.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", d.path(key), err)
	}
	return nil
}

// size is the size of key's file, if it is a regular file.
func (d *DirSink) size(key string) (int64, bool) {
	fi, err := os.Stat(d.path(key))
	if err != nil || !fi.Mode().IsRegular() {
		return 0, false
	}
	return fi.Size(), true
}

// List implements Sink: every regular file, except the sink's own.
func (d *DirSink) List(ctx context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	err := filepath.WalkDir(d.Dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p == d.Dir && errors.Is(err, fs.ErrNotExist) {
				return filepath.SkipAll
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if strings.HasPrefix(e.Name(), internalPrefix) {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if e.Type().IsRegular() {
			rel, err := filepath.Rel(d.Dir, p)
			if err != nil {
				return err
			}
			out[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", d.Dir, err)
	}
	return out, nil
}

func (d *DirSink) mkdir(dir string) error {
	d.mu.Lock()
	done := d.dirs[dir]
	d.mu.Unlock()
	if done {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	d.mu.Lock()
	d.dirs[dir] = true
	d.mu.Unlock()
	return nil
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
