// Package httpserve serves a year store (store.Store) over HTTP, read-only,
// for remote Zarr readers: zarr-python and xarray through fsspec,
// tensorstore's http kvstore, zarrita.js in Node and browsers.
//
// Every key of the tree is answered at its natural path
// (/2024.zarr/utm30/embeddings/c/3/7/0, /catalog.json) with the same bytes
// that the mount serves and materialize writes. What readers need from a
// server (exact lengths, byte ranges including suffix ranges, 404 for an
// absent chunk, strong ETags, CORS) is here; nothing else is: a request
// path is a key of the tree or it is refused (ParseTarget), and no file is
// ever opened by a name taken from a request. Generating a chunk is the
// one expensive thing a request can cause, so at most Options.Workers run
// at once and the others wait their turn (back-pressure): 503 with
// Retry-After only past Options.QueueWait or beyond Options.Queue waiting
// keys, both sized for the hundreds of concurrent requests that readers
// such as zarr-python send; many requests for one chunk share one
// generation. A waiting request holds no buffer, so memory is bounded by
// Workers, not by the queue.
package httpserve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/singleflight"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/keyspace"
)

// Options configure a Handler.
type Options struct {
	// CORSOrigins are the origins allowed to read from a browser: "*" for
	// any, or exact origins ("https://example.org"). Empty: no CORS headers,
	// so only same-origin pages (the viewer) can read.
	CORSOrigins []string
	// Workers is how many chunk generations run at once (default
	// GOMAXPROCS); Queue how many more keys may wait for one (default
	// DefaultQueue). A key that would wait beyond Queue, or longer than
	// QueueWait (default DefaultQueueWait), gets 503 with Retry-After.
	Workers, Queue int
	QueueWait      time.Duration
	// Assets is the viewer: "index.html" is served at "/", and any other
	// file at its own path when no key of the store has that path. nil: a
	// plain index page linking the year stores and the catalog.
	Assets fs.FS
	// Logger receives errors, and the access log unless AccessLog is set.
	// Default slog.Default().
	Logger *slog.Logger
	// AccessLog receives the access log: one Info record per request.
	// Default Logger. An AsyncHandler keeps its writing off the requests'
	// path.
	AccessLog *slog.Logger
	// Registry receives the metrics served at /metrics. nil: a new one.
	Registry *prometheus.Registry
	// RetryAfter is the Retry-After of a 503 for a full queue, in seconds
	// (default 1); SourceRetryAfter that of a 503 for a tile source that
	// is unavailable (default 5, the source's DownFor).
	RetryAfter, SourceRetryAfter int
}

// Stats count what a Handler answered, for the summary on exit.
type Stats struct {
	Requests  int64 // all requests
	Bytes     int64 // body bytes written
	Busy      int64 // answered 503 because the generation queue was full
	CacheHits int64 // chunk requests answered from the cache
	Fetched   int64 // chunk requests that had to generate (or wait for a generation)
}

// Tree is what the server needs of a store. Keys are slash paths from the
// root ("" is the root).
type Tree interface {
	// ReadDir lists directory key, cheaply (a lookup uses the parent's
	// listing). A key that does not exist is an error with a method
	// NotFound() bool that returns true (404); any other error, a missing
	// input file included, is the server's (5xx).
	ReadDir(ctx context.Context, key string) ([]fs.DirEntry, error)
	// Get returns the whole bytes of file key.
	Get(ctx context.Context, key string) ([]byte, error)
	// Fingerprint names the tree's inputs: equal fingerprints, equal
	// bytes (the ETags are made from it).
	Fingerprint() string
}

// Snapshotter is a Tree whose contents can be replaced while it serves (a
// live store that follows its tiles): each request is answered from one
// Snapshot, so that its ETag and its bytes come from the same tree.
type Snapshotter interface {
	Snapshot() Tree
}

// RangeTree is a Tree that can read part of a chunk it holds in a cache,
// without generating it: r fails once the chunk has left the cache, and
// the server then falls back to Get.
type RangeTree interface {
	Tree
	OpenCached(key string) (r io.ReaderAt, size int64, ok bool)
}

// Handler is the HTTP front end of one store. Safe for concurrent use.
type Handler struct {
	st   Tree
	opts Options
	log  *slog.Logger

	slots  chan struct{} // one per running generation
	queued atomic.Int64  // generations waiting for a slot
	flight singleflight.Group

	m       metrics
	metrics http.Handler

	requests, bytes, busy, hits, fetched atomic.Int64
}

type metrics struct {
	requests   *prometheus.CounterVec
	bytes      prometheus.Counter
	hits       prometheus.Counter
	misses     prometheus.Counter
	genSeconds prometheus.Histogram
	generating prometheus.Gauge
	queued     prometheus.Gauge
	busy       prometheus.Counter
}

// New returns the handler of st.
func New(st Tree, opts Options) *Handler {
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	if opts.QueueWait <= 0 {
		opts.QueueWait = DefaultQueueWait
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.AccessLog == nil {
		opts.AccessLog = opts.Logger
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = 1
	}
	if opts.SourceRetryAfter <= 0 {
		opts.SourceRetryAfter = 5
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	h := &Handler{
		st:    st,
		opts:  opts,
		log:   opts.Logger,
		slots: make(chan struct{}, opts.Workers),
	}
	h.m = metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tesserafs_http_requests_total", Help: "HTTP requests by method and status code.",
		}, []string{"method", "code"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tesserafs_http_response_bytes_total", Help: "Body bytes written.",
		}),
		hits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tesserafs_chunk_cache_hits_total", Help: "Chunk requests answered from the cache.",
		}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tesserafs_chunk_cache_misses_total", Help: "Chunk requests not in the cache (generated, or joined a generation).",
		}),
		genSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tesserafs_generation_seconds",
			Help:    "Time to produce a chunk not in the cache, from admission to bytes (one observation per generation, not per waiting request).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		generating: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tesserafs_generations_in_flight", Help: "Chunk generations running now.",
		}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tesserafs_generations_queued", Help: "Chunk generations waiting for a worker.",
		}),
		busy: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tesserafs_http_busy_total", Help: "Requests answered 503 because the generation queue was full.",
		}),
	}
	reg.MustRegister(h.m.requests, h.m.bytes, h.m.hits, h.m.misses, h.m.genSeconds, h.m.generating, h.m.queued, h.m.busy)
	h.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return h
}

// Stats returns the counters so far.
func (h *Handler) Stats() Stats {
	return Stats{Requests: h.requests.Load(), Bytes: h.bytes.Load(), Busy: h.busy.Load(),
		CacheHits: h.hits.Load(), Fetched: h.fetched.Load()}
}

// Headers a browser may read from a cross-origin response, and send.
const (
	exposeHeaders = "Content-Range, Content-Length, ETag, Accept-Ranges, Content-Type"
	allowHeaders  = "Range, If-None-Match, If-Range"
	allowMethods  = "GET, HEAD, OPTIONS"
)

// ServeHTTP answers one request. See the package doc.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	h.serve(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	h.requests.Add(1)
	h.bytes.Add(rec.bytes)
	h.m.requests.WithLabelValues(r.Method, strconv.Itoa(rec.status)).Inc()
	h.m.bytes.Add(float64(rec.bytes))
	ctx := r.Context()
	if !h.opts.AccessLog.Enabled(ctx, slog.LevelInfo) {
		return
	}
	target := r.RequestURI
	if len(target) > 256 {
		target = target[:256] + "…"
	}
	h.opts.AccessLog.LogAttrs(ctx, slog.LevelInfo, "http",
		slog.String("method", r.Method), slog.String("path", target), slog.Int("status", rec.status),
		slog.Int64("bytes", rec.bytes), slog.String("range", r.Header.Get("Range")),
		slog.Duration("dur", time.Since(start)), slog.String("remote", r.RemoteAddr))
}

// treeKey is the context key of the tree a request is answered from.
type treeKey struct{}

// tree is the tree ctx's request is answered from: the snapshot taken
// when it arrived, or the handler's tree.
func (h *Handler) tree(ctx context.Context) Tree {
	if t, ok := ctx.Value(treeKey{}).(Tree); ok {
		return t
	}
	return h.st
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) {
	if s, ok := h.st.(Snapshotter); ok {
		r = r.WithContext(context.WithValue(r.Context(), treeKey{}, s.Snapshot()))
	}
	h.cors(w, r)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		w.Header().Set("Allow", allowMethods)
		if r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != "" {
			w.Header().Set("Access-Control-Allow-Methods", allowMethods)
			w.Header().Set("Access-Control-Allow-Headers", allowHeaders)
			w.Header().Set("Access-Control-Max-Age", "86400")
		}
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		w.Header().Set("Allow", allowMethods)
		http.Error(w, "read-only: "+allowMethods+" only", http.StatusMethodNotAllowed)
		return
	}
	key, dir, err := ParseTarget(r.RequestURI)
	if err != nil {
		http.Error(w, err.Error(), statusOf(err))
		return
	}
	switch {
	case key == "":
		h.serveIndex(w, r)
		return
	case key == "healthz" && !dir:
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
		return
	case key == "metrics" && !dir:
		h.metrics.ServeHTTP(w, r)
		return
	}
	// A cached chunk: found and sized by the cache alone, no listing.
	if isChunk(key) && !dir {
		if rt, ok := h.tree(r.Context()).(RangeTree); ok {
			if c, size, ok := rt.OpenCached(key); ok {
				h.serveCached(w, r, key, c, size)
				return
			}
		}
	}
	isFile, exists, err := h.lookup(r.Context(), key)
	if err != nil {
		h.fail(w, key, err)
		return
	}
	if exists && isFile && !dir {
		h.serveKey(w, r, key)
		return
	}
	if !exists && !dir && h.opts.Assets != nil {
		if b, err := fs.ReadFile(h.opts.Assets, key); err == nil {
			h.serveAsset(w, r, key, b)
			return
		}
	}
	// Directories are not listed (readers use consolidated metadata), as
	// on an object store.
	http.Error(w, "not found", http.StatusNotFound)
}

// cors sets the CORS headers of a response to an allowed origin.
func (h *Handler) cors(w http.ResponseWriter, r *http.Request) {
	if len(h.opts.CORSOrigins) == 0 {
		return
	}
	origin := r.Header.Get("Origin")
	allow := ""
	for _, o := range h.opts.CORSOrigins {
		if o == "*" {
			allow = "*"
			break
		}
		if origin != "" && o == origin {
			allow = origin
		}
	}
	hdr := w.Header()
	if allow != "*" {
		hdr.Add("Vary", "Origin")
	}
	if allow == "" {
		return
	}
	hdr.Set("Access-Control-Allow-Origin", allow)
	hdr.Set("Access-Control-Expose-Headers", exposeHeaders)
}

// lookup says whether key is in the tree and is a file, from the index
// alone (its parent's listing): nothing is generated.
func (h *Handler) lookup(ctx context.Context, key string) (isFile, exists bool, err error) {
	parent, name := "", key
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		parent, name = key[:i], key[i+1:]
	}
	entries, err := h.tree(ctx).ReadDir(ctx, parent)
	if isNotFound(err) {
		return false, false, nil
	}
	if err != nil {
		if errors.Is(err, syscall.ENOTDIR) {
			return false, false, nil
		}
		return false, false, err
	}
	for _, e := range entries {
		if e.Name() == name {
			return !e.IsDir(), true, nil
		}
	}
	return false, false, nil
}

// isNotFound reports whether err says a key does not exist (see
// Tree.ReadDir).
func isNotFound(err error) bool {
	var nf interface{ NotFound() bool }
	return errors.As(err, &nf) && nf.NotFound()
}

// isChunk reports whether key is a chunk (shard) of an array.
func isChunk(key string) bool { return keyspace.IsChunk(key) }

// ETag is the strong validator of key: a hash of the key and the store's
// fingerprint, which covers the format version, the build attributes and
// the path, size and modification time of every input tile. Equal ETags
// mean equal bytes; a changed tile changes every ETag (simple, and never
// wrong).
func (h *Handler) ETag(key string) string { return etagOf(h.st, key) }

func etagOf(t Tree, key string) string {
	s := sha256.Sum256([]byte(t.Fingerprint() + "\x00" + key))
	return `"` + hex.EncodeToString(s[:16]) + `"`
}

// prelude sets the headers every answer of key carries, answers a
// matching If-None-Match (done), and returns the Range header to honour.
func (h *Handler) prelude(w http.ResponseWriter, r *http.Request, key string) (rangeHdr string, done bool) {
	etag := etagOf(h.tree(r.Context()), key)
	hdr := w.Header()
	hdr.Set("ETag", etag)
	if isChunk(key) {
		// The ETag changes with the inputs; an hour without asking is
		// safe for data that changes only when the tiles are rebuilt.
		hdr.Set("Cache-Control", "public, max-age=3600")
		hdr.Set("Content-Type", "application/octet-stream")
	} else {
		hdr.Set("Cache-Control", "public, max-age=60")
		hdr.Set("Content-Type", contentType(key))
	}
	hdr.Set("Accept-Ranges", "bytes")
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return "", true
	}
	rangeHdr = r.Header.Get("Range")
	if ir := r.Header.Get("If-Range"); ir != "" && ir != etag {
		rangeHdr = "" // If-Range with another tag (or a date): the whole body
	}
	return rangeHdr, false
}

// copyBufSize is the size of the pooled buffers a cached chunk is copied
// through: a shard index or an inner chunk in one piece, a whole shard in
// a few.
const copyBufSize = 128 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// serveCached answers key, a chunk the cache holds (c), from the cache:
// only the bytes asked for are read, through a pooled buffer, with no
// generation and no admission, and nothing of the cache stays pinned while
// the reply is written.
func (h *Handler) serveCached(w http.ResponseWriter, r *http.Request, key string, c io.ReaderAt, size int64) {
	rangeHdr, done := h.prelude(w, r, key)
	if done {
		return
	}
	rg, kind := parseRange(rangeHdr, size)
	off, n := h.head(w, kind, rg, size)
	if n < 0 || r.Method == http.MethodHead {
		return
	}
	h.hits.Add(1)
	h.m.hits.Inc()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for n > 0 {
		k := int(min(n, int64(len(buf))))
		if got, err := c.ReadAt(buf[:k], off); err != nil || got != k {
			// Evicted since OpenCached (rare): the headers are out, so
			// the bytes must be these; fetch them.
			b, err := h.fetch(r.Context(), key)
			if err != nil || int64(len(b)) != size {
				h.log.Error("chunk changed size while being served", "key", key, "err", err)
				panic(http.ErrAbortHandler)
			}
			w.Write(b[off : off+n])
			return
		}
		if _, err := w.Write(buf[:k]); err != nil {
			return
		}
		off, n = off+int64(k), n-int64(k)
	}
}

// serveKey answers key, a file of the tree not in the cache, through the
// store (admitted: see fetch).
func (h *Handler) serveKey(w http.ResponseWriter, r *http.Request, key string) {
	rangeHdr, done := h.prelude(w, r, key)
	if done {
		return
	}
	b, err := h.fetch(r.Context(), key)
	if err != nil {
		h.fail(w, key, err)
		return
	}
	size := int64(len(b))
	rg, kind := parseRange(rangeHdr, size)
	off, n := h.head(w, kind, rg, size)
	if n < 0 || r.Method == http.MethodHead {
		return
	}
	w.Write(b[off : off+n])
}

// head writes the status line and length headers of a body of size bytes
// for a Range of kind, and returns the part to send (n < 0: no body).
func (h *Handler) head(w http.ResponseWriter, kind rangeKind, rg byteRange, size int64) (off, n int64) {
	hdr := w.Header()
	switch kind {
	case rangeUnsatisfiable:
		hdr.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		hdr.Set("Content-Type", "text/plain; charset=utf-8")
		hdr.Del("Cache-Control")
		msg := "range not satisfiable\n"
		hdr.Set("Content-Length", strconv.Itoa(len(msg)))
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		io.WriteString(w, msg)
		return 0, -1
	case rangeOne:
		hdr.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", rg.start, rg.start+rg.length-1, size))
		hdr.Set("Content-Length", strconv.FormatInt(rg.length, 10))
		w.WriteHeader(http.StatusPartialContent)
		return rg.start, rg.length
	}
	hdr.Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	return 0, size
}

// Admission defaults: a reader at async.concurrency 256 asking for 256
// cold keys at once waits rather than being refused; a key that cannot
// start within the wait is refused (503 + Retry-After) so that no request
// hangs for ever behind a slow source.
const (
	DefaultQueue     = 4096
	DefaultQueueWait = 60 * time.Second
)

// errBusy is a generation refused: the queue is full, or no worker came
// free within QueueWait.
var errBusy = errors.New("too many chunk generations waiting")

// fetch returns the bytes of key through the store, admitted: one
// admission per key however many requests ask for it at once, at most
// Workers running and Queue waiting, each at most QueueWait.
func (h *Handler) fetch(ctx context.Context, key string) ([]byte, error) {
	chunk := isChunk(key)
	if chunk {
		h.fetched.Add(1)
		h.m.misses.Inc()
	}
	t := h.tree(ctx)
	// One generation per key of one tree: a request of a newer snapshot
	// does not join one of an older.
	ch := h.flight.DoChan(t.Fingerprint()+"\x00"+key, func() (any, error) {
		select {
		case h.slots <- struct{}{}:
		default:
			if h.queued.Add(1) > int64(h.opts.Queue) {
				h.queued.Add(-1)
				return nil, errBusy
			}
			h.m.queued.Inc()
			t := time.NewTimer(h.opts.QueueWait)
			var admitted bool
			select {
			case h.slots <- struct{}{}:
				admitted = true
			case <-t.C:
			}
			t.Stop()
			h.queued.Add(-1)
			h.m.queued.Dec()
			if !admitted {
				return nil, errBusy
			}
		}
		defer func() { <-h.slots }()
		start := time.Now()
		h.m.generating.Inc()
		defer h.m.generating.Dec()
		// Others may be waiting on this generation: a cancelled first
		// caller does not cancel it (the store does the same).
		b, err := t.Get(context.WithoutCancel(ctx), key)
		if chunk && err == nil {
			h.m.genSeconds.Observe(time.Since(start).Seconds())
		}
		return b, err
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.([]byte), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fail answers an error of the store or of admission.
func (h *Handler) fail(w http.ResponseWriter, key string, err error) {
	var te *index.TileError
	switch {
	case errors.Is(err, errBusy):
		h.busy.Add(1)
		h.m.busy.Inc()
		w.Header().Set("Retry-After", strconv.Itoa(h.opts.RetryAfter))
		w.Header().Del("ETag")
		w.Header().Del("Cache-Control")
		http.Error(w, "busy: too many chunks being generated, retry later", http.StatusServiceUnavailable)
	case isNotFound(err):
		w.Header().Del("ETag")
		http.Error(w, "not found", http.StatusNotFound)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The client is gone; nothing useful can be sent.
	case errors.Is(err, index.ErrUnavailable):
		// The tile source is down or failing: transient. Readers that
		// retry 503 (tensorstore, zarrita, browsers) come back.
		h.log.Warn("serving a key: tile source unavailable", "key", key, "err", err)
		w.Header().Del("ETag")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Retry-After", strconv.Itoa(h.opts.SourceRetryAfter))
		http.Error(w, key+": tile source unavailable, retry later", http.StatusServiceUnavailable)
	case errors.As(err, &te):
		// A tile the key needs is unusable: say which and why (the
		// reason, not the server's path of the file).
		h.log.Error("serving a key", "key", key, "err", err)
		w.Header().Del("ETag")
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, fmt.Sprintf("%s: tile %s: %s", key, te.Coord, te.Reason), http.StatusInternalServerError)
	default:
		h.log.Error("serving a key", "key", key, "err", err)
		w.Header().Del("ETag")
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "internal error generating "+key, http.StatusInternalServerError)
	}
}

func contentType(key string) string {
	if t := mime.TypeByExtension(path.Ext(key)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// serveAsset serves a file of the viewer.
func (h *Handler) serveAsset(w http.ResponseWriter, r *http.Request, name string, b []byte) {
	w.Header().Set("Content-Type", contentType(name))
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(b)
}

// serveIndex serves "/": the viewer, or a page linking the top of the tree.
func (h *Handler) serveIndex(w http.ResponseWriter, r *http.Request) {
	if h.opts.Assets != nil {
		if b, err := fs.ReadFile(h.opts.Assets, "index.html"); err == nil {
			h.serveAsset(w, r, "index.html", b)
			return
		}
	}
	entries, err := h.tree(r.Context()).ReadDir(r.Context(), "")
	if err != nil {
		h.fail(w, "", err)
		return
	}
	var sb strings.Builder
	sb.WriteString("<!doctype html>\n<meta charset=utf-8>\n<title>tesserafs</title>\n<h1>tesserafs</h1>\n<ul>\n")
	for _, e := range entries {
		link := e.Name()
		switch {
		case strings.HasSuffix(e.Name(), ".zarr"):
			link += "/zarr.json"
		case e.IsDir():
			continue
		}
		fmt.Fprintf(&sb, "<li><a href=\"%s\">%s</a>\n", html.EscapeString(link), html.EscapeString(e.Name()))
	}
	sb.WriteString("</ul>\n")
	w.Header().Set("Cache-Control", "no-cache")
	h.serveAsset(w, r, "index.html", []byte(sb.String()))
}

// recorder keeps the status and body size of a response for the access
// log and the metrics.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the real writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
