package source

// Lock order: Remote.mu only; no other lock is taken while holding it.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/lru"
)

// backend is how a Remote talks to one kind of server.
type backend interface {
	root() string
	name(rel string) string
	// get asks for n bytes of name from off, or the whole file when n is
	// 0. Transient failures are *retryError; a missing file wraps
	// fs.ErrNotExist.
	get(ctx context.Context, name string, off, n int64) (*response, error)
	list(ctx context.Context, name string) ([]index.DirEntry, error)
}

// response is a backend's answer before its body is read and checked.
type response struct {
	body               io.ReadCloser
	first, last, total int64 // the bytes the body holds, of a file of total bytes
	etag               string
	modTime            time.Time
}

// retryError is a transient failure: the request may be tried again after
// at least after.
type retryError struct {
	err   error
	after time.Duration
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// errIntegrity is wrapped by every answer that is not the bytes asked for.
var errIntegrity = errors.New("integrity check failed")

// Remote is a tiles root on an HTTP server or in an S3 bucket. Safe for
// concurrent use.
type Remote struct {
	be   backend
	opts Options
	sem  chan struct{} // requests in flight

	requests, retries, fetched, hits, misses, failures atomic.Int64

	mu      sync.Mutex                  // guards the block cache below, warned and down
	warned  map[string]struct{}         // URLs whose failure was logged
	down    *lru.LRU[string, downEntry] // URLs that failed transiently, recently
	cached  *lru.LRU[blockKey, *block]
	pending map[blockKey]*block // blocks being fetched
}

var _ index.Source = (*Remote)(nil)

type blockKey struct {
	file string // fileKey of the file
	idx  int64
}

// block is one cached block, or one being fetched (ready open).
type block struct {
	key   blockKey
	data  []byte
	etag  string
	err   error
	ready chan struct{}
}

func newRemote(be backend, opts Options) *Remote {
	return &Remote{be: be, opts: opts, sem: make(chan struct{}, opts.Parallel),
		cached: lru.New[blockKey, *block](), pending: map[blockKey]*block{}, warned: map[string]struct{}{},
		down: lru.New[string, downEntry]()}
}

func (r *Remote) String() string         { return r.be.root() }
func (r *Remote) Path(rel string) string { return r.be.name(rel) }

// ReadDir lists a directory of an S3 root; an HTTP root cannot list.
func (r *Remote) ReadDir(ctx context.Context, name string) ([]index.DirEntry, error) {
	return r.be.list(ctx, name)
}

// Stats returns the source's counters.
func (r *Remote) Stats() Stats {
	r.mu.Lock()
	used := r.cached.Size()
	r.mu.Unlock()
	return Stats{Requests: r.requests.Load(), Retries: r.retries.Load(), BytesFetched: r.fetched.Load(),
		BlockHits: r.hits.Load(), BlockMisses: r.misses.Load(), CacheBytes: used, CacheLimit: r.opts.CacheBytes,
		Failures: r.failures.Load()}
}

// Open opens name, fetching its first block: that one request learns the
// file's size, ETag and Last-Modified and holds an .npy header.
func (r *Remote) Open(ctx context.Context, name string) (index.SourceFile, error) {
	f := &file{r: r, ctx: ctx, stamp: index.FileStamp{Path: name, Size: -1}}
	f.key = name + "\x00?"
	data, err := r.fetch(ctx, f, 0, r.opts.BlockSize)
	if err != nil {
		return nil, err
	}
	f.key = fileKey(f.stamp)
	r.put(f, 0, data)
	return f, nil
}

// OpenStamp opens want.Path without a request: the first read checks the
// file against want's size (and ETag and sha256 when known).
func (r *Remote) OpenStamp(ctx context.Context, want index.FileStamp) (index.SourceFile, error) {
	if want.Size < 0 {
		return nil, fmt.Errorf("%s: negative size in its stamp", want.Path)
	}
	return &file{r: r, ctx: ctx, stamp: want, key: fileKey(want)}, nil
}

// fileKey names a version of a file in the block cache.
func fileKey(s index.FileStamp) string {
	return s.Path + "\x00" + strconv.FormatInt(s.Size, 10) + "\x00" + s.SHA256
}

// file is an open remote file. Its ReadAt uses the context it was opened
// with.
type file struct {
	r   *Remote
	ctx context.Context
	key string

	mu    sync.Mutex // guards stamp
	stamp index.FileStamp
}

func (f *file) Stamp() index.FileStamp {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stamp
}

func (f *file) Close() error { return nil }

// ReadAt reads through the block cache, fetching the missing blocks of
// [off, off+len(p)) with one request per contiguous run.
func (f *file) ReadAt(p []byte, off int64) (int, error) {
	size := f.Stamp().Size
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset %d", f.stamp.Path, off)
	}
	if off >= size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), size)
	bs := f.r.opts.BlockSize
	blocks, err := f.r.get(f.ctx, f, off/bs, (end-1)/bs)
	if err != nil {
		return 0, err
	}
	n := 0
	for i, b := range blocks {
		start := (off/bs + int64(i)) * bs
		lo := max(off, start) - start
		hi := min(end, start+int64(len(b))) - start
		if lo >= hi {
			break
		}
		n += copy(p[n:], b[lo:hi])
	}
	if n < len(p) {
		if off+int64(n) < end {
			return n, fmt.Errorf("%s: %w: block shorter than the file", f.stamp.Path, errIntegrity)
		}
		return n, io.EOF
	}
	return n, nil
}

// Prefetch loads [off, off+n) into the block cache, with one request per
// contiguous run of missing blocks, so that the ReadAt calls that follow
// are served from memory. Generators call it for all of a shard's windows
// at once, so the windows' requests are in flight together.
func (f *file) Prefetch(off, n int64) error {
	size := f.Stamp().Size
	end := min(off+n, size)
	if off < 0 || off >= end {
		return nil
	}
	bs := f.r.opts.BlockSize
	_, err := f.r.get(f.ctx, f, off/bs, (end-1)/bs)
	return err
}

// get returns blocks b0..b1 of f, fetching the missing ones.
func (r *Remote) get(ctx context.Context, f *file, b0, b1 int64) ([][]byte, error) {
	out := make([]*block, b1-b0+1)
	var owned []int64
	r.mu.Lock()
	for b := b0; b <= b1; b++ {
		k := blockKey{f.key, b}
		if e, ok := r.cached.Get(k); ok {
			out[b-b0] = e
			continue
		}
		if e, ok := r.pending[k]; ok {
			out[b-b0] = e
			continue
		}
		e := &block{key: k, ready: make(chan struct{})}
		r.pending[k] = e
		out[b-b0] = e
		owned = append(owned, b)
	}
	r.mu.Unlock()
	r.hits.Add(int64(len(out) - len(owned)))
	r.misses.Add(int64(len(owned)))

	// Runs of consecutive owned blocks, at most MaxRun each, in parallel.
	var wg sync.WaitGroup
	for i := 0; i < len(owned); {
		j := i + 1
		for j < len(owned) && owned[j] == owned[j-1]+1 && j-i < r.opts.MaxRun {
			j++
		}
		run := owned[i:j]
		wg.Go(func() { r.fetchRun(ctx, f, run, out[run[0]-b0:]) })
		i = j
	}
	wg.Wait()

	data := make([][]byte, len(out))
	for i, e := range out {
		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e.err != nil {
			return nil, e.err
		}
		if et := f.adoptETag(e.etag); et != e.etag {
			// The server answered with another version than the one
			// cached: the cached blocks are stale. Fail this read (its
			// bytes would mix versions) and drop them, so that the next
			// read fetches the current version whole.
			r.dropStale(f.key, et)
			return nil, fmt.Errorf("%s: %w: cached block has ETag %s, the server now %s (the file was replaced; its cached blocks are dropped)", f.stamp.Path, errIntegrity, e.etag, et)
		}
		data[i] = e.data
	}
	return data, nil
}

// adoptETag records etag as the file's if it has none yet, and returns
// the file's.
func (f *file) adoptETag(etag string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stamp.ETag == "" {
		f.stamp.ETag = etag
	}
	return f.stamp.ETag
}

// fetchRun fetches the consecutive blocks run (pending entries es[0:len(run)])
// with one request, and caches them or records the error.
func (r *Remote) fetchRun(ctx context.Context, f *file, run []int64, es []*block) {
	bs := r.opts.BlockSize
	off := run[0] * bs
	data, err := r.fetch(ctx, f, off, int64(len(run))*bs)
	etag := f.Stamp().ETag
	var rep *replacedError
	if errors.As(err, &rep) {
		r.dropStale(f.key, rep.now)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range run {
		e := es[i]
		delete(r.pending, e.key)
		if err != nil {
			e.err = err // not cached: the next read tries again
		} else {
			lo := min(int64(i)*bs, int64(len(data)))
			hi := min(lo+bs, int64(len(data)))
			e.data, e.etag = data[lo:hi:hi], etag
			r.insertLocked(e)
		}
		close(e.ready)
	}
}

// put caches data fetched from off 0 (by Open) as f's leading blocks.
func (r *Remote) put(f *file, b0 int64, data []byte) {
	bs := r.opts.BlockSize
	etag := f.Stamp().ETag
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := int64(0); i*bs < int64(len(data)); i++ {
		k := blockKey{f.key, b0 + i}
		if _, ok := r.cached.Peek(k); ok {
			continue
		}
		if _, ok := r.pending[k]; ok {
			continue
		}
		hi := min((i+1)*bs, int64(len(data)))
		e := &block{key: k, data: data[i*bs : hi : hi], etag: etag, ready: make(chan struct{})}
		close(e.ready)
		r.insertLocked(e)
	}
}

// dropStale removes the cached blocks of file key whose ETag is not etag:
// blocks of a version the server no longer has.
func (r *Remote) dropStale(key, etag string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var stale []blockKey
	for k, e := range r.cached.All() {
		if k.file == key && e.etag != etag {
			stale = append(stale, k)
		}
	}
	for _, k := range stale {
		r.cached.Remove(k)
	}
}

// replacedError is an answer whose ETag differs from the one the file was
// first read (or indexed) with.
type replacedError struct{ was, now string }

func (e *replacedError) Error() string {
	return fmt.Sprintf("%v: ETag %s, first read as %s (the file was replaced)", errIntegrity, e.now, e.was)
}
func (e *replacedError) Unwrap() error { return errIntegrity }

func (r *Remote) insertLocked(e *block) {
	r.cached.Add(e.key, e, int64(len(e.data)))
	r.cached.Trim(r.opts.CacheBytes, 1, nil, nil)
}

// fetch gets [off, off+n) of f (clipped at its size when known) with
// bounded retries, and returns the checked body.
func (r *Remote) fetch(ctx context.Context, f *file, off, n int64) ([]byte, error) {
	name := f.stamp.Path
	if size := f.Stamp().Size; size >= 0 {
		n = min(n, size-off)
		if n <= 0 {
			return nil, nil
		}
	}
	if err := r.stillDown(name); err != nil {
		return nil, err
	}
	var last error
	for attempt := 0; attempt < r.opts.Attempts; attempt++ {
		if attempt > 0 {
			r.retries.Add(1)
			wait := r.backoff(attempt, last)
			r.opts.Logger.Debug("retrying a remote read", "url", name, "offset", off, "attempt", attempt+1, "after", wait, "error", last)
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
		data, err := r.fetchOnce(ctx, f, off, n)
		if err == nil {
			r.fetched.Add(int64(len(data)))
			return data, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		last = err
		var re *retryError
		if !errors.As(err, &re) {
			break
		}
	}
	r.failures.Add(1)
	err := fmt.Errorf("%s: bytes %d-%d: %w", name, off, off+n-1, last)
	if errors.Is(last, fs.ErrNotExist) {
		return nil, err // not logged here: the caller says what was missing
	}
	var re *retryError
	if errors.As(last, &re) {
		// Transient: the file fails fast for DownFor, then is tried again.
		err = fmt.Errorf("%w: %w", index.ErrUnavailable, err)
		r.markDown(name, err)
	}
	if r.firstFailure(name) {
		r.opts.Logger.Warn("remote read failed", "url", name, "offset", off, "bytes", n, "error", last)
	} else {
		r.opts.Logger.Debug("remote read failed again", "url", name, "offset", off, "bytes", n, "error", last)
	}
	return nil, &ReportedError{err: err}
}

// downEntry is a file that failed transiently: reads fail with err until
// until.
type downEntry struct {
	until time.Time
	err   error
}

// maxDown bounds the files remembered as down.
const maxDown = 4096

func (r *Remote) markDown(name string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down.Add(name, downEntry{until: time.Now().Add(r.opts.DownFor), err: err}, 1)
	r.down.Trim(maxDown, 0, nil, nil)
}

// stillDown returns the error of a file that failed transiently less than
// DownFor ago (a reported *ReportedError wrapping index.ErrUnavailable),
// or nil: then the caller tries the server.
func (r *Remote) stillDown(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.down.Peek(name)
	if !ok {
		return nil
	}
	if left := time.Until(d.until); left > 0 {
		r.failures.Add(1)
		return &ReportedError{err: fmt.Errorf("%w (not tried again for %s)", d.err, left.Round(time.Millisecond))}
	}
	r.down.Remove(name)
	return nil
}

// maxWarned bounds the URLs remembered as already reported; beyond it
// every failure is logged.
const maxWarned = 4096

// firstFailure reports whether url has not failed before in this session
// (or too many others have), and remembers it.
func (r *Remote) firstFailure(url string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.warned[url]; ok {
		return false
	}
	if len(r.warned) < maxWarned {
		r.warned[url] = struct{}{}
	}
	return true
}

// ReportedError is a read that failed after retries or checks and has
// been logged, naming its URL, by the source (once per URL and session):
// callers that log errors may log it at debug level only, so that a
// failing remote tile gives one warning however many reads it fails.
type ReportedError struct{ err error }

func (e *ReportedError) Error() string { return e.err.Error() }
func (e *ReportedError) Unwrap() error { return e.err }

// Reported marks the error as already logged.
func (e *ReportedError) Reported() bool { return true }

// backoff is the wait before attempt (1, 2, …): exponential with full
// jitter around the mean, at least what Retry-After asked, at most
// MaxBackoff.
func (r *Remote) backoff(attempt int, err error) time.Duration {
	mean := r.opts.Backoff << (attempt - 1)
	d := mean/2 + rand.N(mean+1)
	var re *retryError
	if errors.As(err, &re) && re.after > d {
		d = re.after
	}
	return min(d, r.opts.MaxBackoff)
}

// errIdle marks a body read that made no progress for IdleTimeout.
var errIdle = errors.New("no data for the idle timeout")

// fetchOnce sends one request and checks its answer.
func (r *Remote) fetchOnce(ctx context.Context, f *file, off, n int64) ([]byte, error) {
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-r.sem }()
	r.requests.Add(1)
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(r.opts.ConnectTimeout+r.opts.HeaderTimeout, func() { cancel(errIdle) })
	defer watchdog.Stop()
	idle := func(err error) error {
		if context.Cause(rctx) == errIdle && ctx.Err() == nil {
			return &retryError{err: fmt.Errorf("%w (%s)", errIdle, r.opts.IdleTimeout)}
		}
		return err
	}
	want := f.Stamp()
	resp, err := r.be.get(rctx, want.Path, off, n)
	if err != nil {
		return nil, idle(err)
	}
	defer resp.body.Close()
	bad := func(format string, args ...any) ([]byte, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{errIntegrity}, args...)...)
	}
	wantLast := resp.total - 1 // a whole file
	if n > 0 {
		wantLast = min(off+n, resp.total) - 1
	}
	switch {
	case resp.first != off || resp.last != wantLast:
		return bad("asked for bytes %d-%d, the answer holds %d-%d/%d", off, off+max(n, 1)-1, resp.first, resp.last, resp.total)
	case want.Size >= 0 && resp.total != want.Size:
		return bad("size %d, indexed as %d", resp.total, want.Size)
	case want.ETag != "" && resp.etag != "" && resp.etag != want.ETag:
		return nil, &replacedError{was: want.ETag, now: resp.etag}
	}
	buf := make([]byte, resp.last-resp.first+1)
	for got := 0; got < len(buf); {
		watchdog.Reset(r.opts.IdleTimeout)
		m, err := resp.body.Read(buf[got:])
		got += m
		if err != nil {
			if got == len(buf) && err == io.EOF {
				break
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, idle(&retryError{err: fmt.Errorf("short body: %d of %d bytes: %w", got, len(buf), err)})
		}
	}
	if resp.first == 0 && resp.last == resp.total-1 && want.SHA256 != "" {
		sum := sha256.Sum256(buf)
		if got := hex.EncodeToString(sum[:]); got != want.SHA256 {
			return bad("sha256 %s, the registry says %s", got, want.SHA256)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stamp.ETag != "" && resp.etag != "" && resp.etag != f.stamp.ETag {
		return nil, &replacedError{was: f.stamp.ETag, now: resp.etag}
	}
	if f.stamp.Size < 0 {
		f.stamp.Size, f.stamp.ModTime = resp.total, resp.modTime
	}
	if f.stamp.ETag == "" {
		f.stamp.ETag = resp.etag
	}
	return buf, nil
}
