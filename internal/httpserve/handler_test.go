package httpserve

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/cache"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/testtiles"
	"github.com/tesserafs/tesserafs/materializer"
)

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func testLogger(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level}))
}

// openStore indexes the synthetic "test" preset and opens its store, with
// a cache when withCache.
func openStore(t testing.TB, withCache bool) *store.Store {
	t.Helper()
	tiles := testtiles.Root(t, "test")
	cat, err := index.Discover(context.Background(), tiles, index.Options{Logger: testLogger(t, slog.LevelError)})
	if err != nil {
		t.Fatal(err)
	}
	opts := store.Options{Workers: 2, Logger: testLogger(t, slog.LevelWarn)}
	if withCache {
		c, err := cache.Open(t.TempDir(), cache.Options{Budget: 2 << 30, Logger: testLogger(t, slog.LevelWarn)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := c.Close(); err != nil {
				t.Error(err)
			}
		})
		opts.Cache = c
	}
	st, err := store.New(cat, opts)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// serve starts a real HTTP server on loopback for h.
func serve(t testing.TB, h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.MaxHeaderBytes = 16 << 10
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

var materialized struct {
	once sync.Once
	dir  string
	err  error
}

// materializedTree writes the "test" preset's tree once per test binary
// (with its own store, no cache): the reference the server is compared with.
func materializedTree(t testing.TB) string {
	materialized.once.Do(func() {
		dir, err := os.MkdirTemp("", "tesserafs-httpserve-out-")
		if err != nil {
			materialized.err = err
			return
		}
		st := openStore(t, false)
		_, materialized.err = materializer.Run(context.Background(), st, dir, materializer.Options{Workers: 2})
		materialized.dir = dir
	})
	if materialized.err != nil {
		t.Fatal(materialized.err)
	}
	return materialized.dir
}

func TestMain(m *testing.M) {
	if dir := os.Getenv("TESSERAFS_HTTPSERVE_CHILD"); dir != "" {
		serveChild(dir)
		return
	}
	code := m.Run()
	if materialized.dir != "" {
		os.RemoveAll(materialized.dir)
	}
	os.Exit(code)
}

// treeFiles lists the files of a materialized tree (without its own
// bookkeeping files), as slash-separated keys.
func treeFiles(t testing.TB, dir string) []string {
	var keys []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".tesserafs") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			keys = append(keys, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func get(t testing.TB, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	return do(t, http.MethodGet, url, hdr)
}

func do(t testing.TB, method, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// TestEveryKeyEqualsMaterialized fetches every file of the materialized
// tree over HTTP (cold, then from the cache, then as HEAD and a suffix
// range) and compares the bytes and lengths.
func TestEveryKeyEqualsMaterialized(t *testing.T) {
	out := materializedTree(t)
	st := openStore(t, true)
	h := New(st, Options{Workers: 2, Logger: testLogger(t, slog.LevelWarn)})
	srv := serve(t, h)
	keys := treeFiles(t, out)
	if len(keys) < 50 {
		t.Fatalf("materialized tree has only %d files", len(keys))
	}
	var nBytes int64
	for pass := range 2 { // cold, then warm (zero-copy from the cache)
		for _, key := range keys {
			want, err := os.ReadFile(filepath.Join(out, key))
			if err != nil {
				t.Fatal(err)
			}
			resp, got := get(t, srv.URL+"/"+key, nil)
			if resp.StatusCode != 200 || !bytes.Equal(got, want) {
				t.Fatalf("pass %d: GET %s: %d, %d bytes; materialized %d bytes (equal %v)", pass, key, resp.StatusCode, len(got), len(want), bytes.Equal(got, want))
			}
			if resp.ContentLength != int64(len(want)) {
				t.Fatalf("GET %s: Content-Length %d, want %d", key, resp.ContentLength, len(want))
			}
			if pass == 1 {
				resp, body := do(t, http.MethodHead, srv.URL+"/"+key, nil)
				if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(len(want)) {
					t.Fatalf("HEAD %s: %d, Content-Length %d, body %d; want 200, %d, 0", key, resp.StatusCode, resp.ContentLength, len(body), len(want))
				}
				n := min(len(want), 64)
				resp, got = get(t, srv.URL+"/"+key, map[string]string{"Range": fmt.Sprintf("bytes=-%d", n)})
				if resp.StatusCode != 206 || !bytes.Equal(got, want[len(want)-n:]) {
					t.Fatalf("GET %s suffix %d: %d, %d bytes", key, n, resp.StatusCode, len(got))
				}
				nBytes += int64(len(want))
			}
		}
	}
	s := h.Stats()
	t.Logf("%d keys, %d bytes equal to the materialized tree; %d chunk requests from the cache, %d fetched", len(keys), nBytes, s.CacheHits, s.Fetched)
	if s.CacheHits == 0 {
		t.Error("no chunk was served from the cache on the second pass")
	}
	// Keys that are not in the tree.
	for _, p := range []string{"/2024.zarr/utm30/embeddings/c/999/0/0", "/2024.zarr/utm99/zarr.json", "/2024.zarr/utm30/",
		"/2024.zarr", "/catalog.json/x", "/nope"} {
		if resp, _ := get(t, srv.URL+p, nil); resp.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
}

// shardKey is a non-empty shard of the tree and its bytes.
func shardKey(t testing.TB) (string, []byte) {
	out := materializedTree(t)
	for _, k := range treeFiles(t, out) {
		if strings.Contains(k, "/embeddings/c/") {
			b, err := os.ReadFile(filepath.Join(out, k))
			if err != nil {
				t.Fatal(err)
			}
			return k, b
		}
	}
	t.Fatal("no embeddings shard in the materialized tree")
	return "", nil
}

func TestProtocol(t *testing.T) {
	key, want := shardKey(t)
	size := int64(len(want))
	st := openStore(t, true)
	h := New(st, Options{Workers: 2, CORSOrigins: []string{"https://viewer.example"}, Logger: testLogger(t, slog.LevelWarn)})
	srv := serve(t, h)
	url := srv.URL + "/" + key
	etag := h.ETag(key)
	S := func(n int64) string { return fmt.Sprint(n) }
	cases := []struct {
		name    string
		method  string
		hdr     map[string]string
		status  int
		body    []byte // nil: not checked
		headers map[string]string
	}{
		{"full", "GET", nil, 200, want, map[string]string{"Content-Length": S(size), "ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": "public, max-age=3600"}},
		{"head", "HEAD", nil, 200, []byte{}, map[string]string{"Content-Length": S(size), "ETag": etag}},
		{"a-b", "GET", map[string]string{"Range": "bytes=0-9"}, 206, want[:10], map[string]string{"Content-Range": "bytes 0-9/" + S(size), "Content-Length": "10"}},
		{"a-", "GET", map[string]string{"Range": "bytes=100-"}, 206, want[100:], map[string]string{"Content-Range": fmt.Sprintf("bytes 100-%d/%d", size-1, size)}},
		{"suffix", "GET", map[string]string{"Range": "bytes=-16"}, 206, want[size-16:], map[string]string{"Content-Range": fmt.Sprintf("bytes %d-%d/%d", size-16, size-1, size)}},
		{"suffix past start", "GET", map[string]string{"Range": fmt.Sprintf("bytes=-%d", size+10)}, 206, want, map[string]string{"Content-Range": fmt.Sprintf("bytes 0-%d/%d", size-1, size)}},
		{"clamped", "GET", map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", size-5, size+1000)}, 206, want[size-5:], map[string]string{"Content-Range": fmt.Sprintf("bytes %d-%d/%d", size-5, size-1, size)}},
		{"head range", "HEAD", map[string]string{"Range": "bytes=0-9"}, 206, []byte{}, map[string]string{"Content-Range": "bytes 0-9/" + S(size), "Content-Length": "10"}},
		{"unsatisfiable", "GET", map[string]string{"Range": fmt.Sprintf("bytes=%d-", size)}, 416, nil, map[string]string{"Content-Range": "bytes */" + S(size)}},
		{"suffix zero", "GET", map[string]string{"Range": "bytes=-0"}, 416, nil, map[string]string{"Content-Range": "bytes */" + S(size)}},
		{"multiple ranges: whole body", "GET", map[string]string{"Range": "bytes=0-1,5-6"}, 200, want, nil},
		{"malformed range ignored", "GET", map[string]string{"Range": "bytes=9-1"}, 200, want, nil},
		{"other unit ignored", "GET", map[string]string{"Range": "items=0-1"}, 200, want, nil},
		{"if-none-match", "GET", map[string]string{"If-None-Match": etag}, 304, []byte{}, map[string]string{"ETag": etag}},
		{"if-none-match weak", "GET", map[string]string{"If-None-Match": `"x", W/` + etag}, 304, []byte{}, nil},
		{"if-none-match star", "HEAD", map[string]string{"If-None-Match": "*"}, 304, []byte{}, nil},
		{"if-none-match other", "GET", map[string]string{"If-None-Match": `"0000"`}, 200, want, nil},
		{"if-range same", "GET", map[string]string{"Range": "bytes=0-3", "If-Range": etag}, 206, want[:4], nil},
		{"if-range other", "GET", map[string]string{"Range": "bytes=0-3", "If-Range": `"0000"`}, 200, want, nil},
		{"if-range date", "GET", map[string]string{"Range": "bytes=0-3", "If-Range": "Mon, 30 Nov 2026 00:00:00 GMT"}, 200, want, nil},
		{"cors", "GET", map[string]string{"Origin": "https://viewer.example", "Range": "bytes=-4"}, 206, want[size-4:], map[string]string{
			"Access-Control-Allow-Origin": "https://viewer.example", "Access-Control-Expose-Headers": exposeHeaders}},
		{"cors other origin", "GET", map[string]string{"Origin": "https://evil.example"}, 200, want, map[string]string{"Access-Control-Allow-Origin": ""}},
		{"preflight", "OPTIONS", map[string]string{"Origin": "https://viewer.example", "Access-Control-Request-Method": "GET",
			"Access-Control-Request-Headers": "range"}, 204, []byte{}, map[string]string{
			"Access-Control-Allow-Origin": "https://viewer.example", "Access-Control-Allow-Methods": allowMethods,
			"Access-Control-Allow-Headers": allowHeaders}},
		{"put", "PUT", nil, 405, nil, map[string]string{"Allow": allowMethods}},
		{"post", "POST", nil, 405, nil, map[string]string{"Allow": allowMethods}},
		{"delete", "DELETE", nil, 405, nil, map[string]string{"Allow": allowMethods}},
		{"patch", "PATCH", nil, 405, nil, map[string]string{"Allow": allowMethods}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := do(t, c.method, url, c.hdr)
			if resp.StatusCode != c.status {
				t.Fatalf("%s %v: status %d, want %d (%q)", c.method, c.hdr, resp.StatusCode, c.status, body[:min(len(body), 80)])
			}
			if c.body != nil && !bytes.Equal(body, c.body) {
				t.Errorf("body: %d bytes, want %d (equal: false)", len(body), len(c.body))
			}
			for k, v := range c.headers {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}
	// Metadata: short Cache-Control, JSON.
	resp, _ := get(t, srv.URL+"/2024.zarr/zarr.json", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "public, max-age=60" || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("zarr.json: %d, Cache-Control %q, Content-Type %q", resp.StatusCode, resp.Header.Get("Cache-Control"), resp.Header.Get("Content-Type"))
	}
}

// rawStatus sends a request line and headers as given, on a new
// connection, and returns the response status.
func rawStatus(t testing.TB, addr, requestLine string, extra string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "%s\r\nHost: %s\r\n%sConnection: close\r\n\r\n", requestLine, addr, extra)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%q: %v", requestLine, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSecurity sends hostile request targets and headers as raw bytes (a
// client library would clean or encode them) and checks each is refused,
// and that a real file outside the tree is never served.
func TestSecurity(t *testing.T) {
	st := openStore(t, false)
	srv := serve(t, New(st, Options{Logger: testLogger(t, slog.LevelWarn)}))
	addr := srv.Listener.Addr().String()
	cases := []struct {
		line   string
		extra  string
		status int
	}{
		{"GET /catalog.json HTTP/1.1", "", 200},
		{"GET /../../../../etc/passwd HTTP/1.1", "", 400},
		{"GET /2024.zarr/../../etc/passwd HTTP/1.1", "", 400},
		{"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1", "", 400},
		{"GET /%252e%252e/%252e%252e/etc/passwd HTTP/1.1", "", 400},
		{"GET /..%2f..%2fetc%2fpasswd HTTP/1.1", "", 400},
		{"GET //etc/passwd HTTP/1.1", "", 400},
		{"GET /etc/passwd HTTP/1.1", "", 404},
		{"GET http://127.0.0.1/etc/passwd HTTP/1.1", "", 400},
		{"GET /2024.zarr/zarr.json%00 HTTP/1.1", "", 400},
		{"GET /2024.zarr\\..\\..\\etc\\passwd HTTP/1.1", "", 400},
		{"GET /" + strings.Repeat("a", 2000) + " HTTP/1.1", "", 414},
		{"GET /catalog.json HTTP/1.1", "X-Big: " + strings.Repeat("b", 64<<10) + "\r\n", 431},
		{"DELETE /catalog.json HTTP/1.1", "", 405},
	}
	for _, c := range cases {
		if got := rawStatus(t, addr, c.line, c.extra); got != c.status {
			t.Errorf("%.80q: %d, want %d", c.line, got, c.status)
		}
	}
}

// TestOneGeneration: 64 concurrent requests for one cold shard cause one
// generation, take no queue places (Workers 1, Queue 1), and get the same bytes.
func TestOneGeneration(t *testing.T) {
	key, want := shardKey(t)
	st := openStore(t, true)
	h := New(st, Options{Workers: 1, Queue: 1, Logger: testLogger(t, slog.LevelWarn)})
	srv := serve(t, h)
	before := st.Stats().Generated
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			hdr := map[string]string{}
			if i%2 == 1 {
				hdr["Range"] = "bytes=-100"
			}
			resp, got := get(t, srv.URL+"/"+key, hdr)
			w := want
			if i%2 == 1 {
				w = want[len(want)-100:]
			}
			if (resp.StatusCode != 200 && resp.StatusCode != 206) || !bytes.Equal(got, w) {
				errs <- fmt.Errorf("request %d: %d, %d bytes", i, resp.StatusCode, len(got))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := st.Stats().Generated - before; n != 1 {
		t.Errorf("64 concurrent requests for one shard: %d generations, want 1", n)
	}
}

// TestBusy: with the one worker slot taken and the queue full, a request
// for another cold chunk gets 503 with Retry-After, and succeeds later.
func TestBusy(t *testing.T) {
	out := materializedTree(t)
	var shards []string
	for _, k := range treeFiles(t, out) {
		if strings.Contains(k, "/c/") && strings.Contains(k, "/scales/") {
			shards = append(shards, k)
		}
	}
	if len(shards) < 2 {
		t.Fatal("need two scales shards")
	}
	st := openStore(t, true)
	h := New(st, Options{Workers: 1, Queue: 1, Logger: testLogger(t, slog.LevelWarn)})
	srv := serve(t, h)
	h.slots <- struct{}{} // the one worker is busy
	queued := make(chan int)
	go func() {
		resp, _ := get(t, srv.URL+"/"+shards[0], nil)
		queued <- resp.StatusCode
	}()
	deadline := time.Now().Add(10 * time.Second)
	for h.queued.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	resp, _ := get(t, srv.URL+"/"+shards[1], nil)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("with the queue full: %d, Retry-After %q; want 503, 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	<-h.slots
	if code := <-queued; code != 200 {
		t.Errorf("queued request: %d, want 200", code)
	}
	if resp, _ := get(t, srv.URL+"/"+shards[1], nil); resp.StatusCode != 200 {
		t.Errorf("after the queue drained: %d, want 200", resp.StatusCode)
	}
	if h.Stats().Busy != 1 {
		t.Errorf("busy count %d, want 1", h.Stats().Busy)
	}
}

// TestQueueWait: a key that waits longer than QueueWait for a worker gets
// 503 with Retry-After (not a request that hangs); once a worker is free
// the same key is served.
func TestQueueWait(t *testing.T) {
	key, want := shardKey(t)
	st := openStore(t, true)
	h := New(st, Options{Workers: 1, Queue: 10, QueueWait: 200 * time.Millisecond, Logger: testLogger(t, slog.LevelWarn)})
	srv := serve(t, h)
	h.slots <- struct{}{} // the one worker is busy
	start := time.Now()
	resp, _ := get(t, srv.URL+"/"+key, nil)
	waited := time.Since(start)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || waited < 200*time.Millisecond {
		t.Errorf("no worker for %v: %d, Retry-After %q; want 503 after 200ms", waited, resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	<-h.slots
	if resp, got := get(t, srv.URL+"/"+key, nil); resp.StatusCode != 200 || !bytes.Equal(got, want) {
		t.Errorf("with a worker free: %d, %d bytes", resp.StatusCode, len(got))
	}
}

// TestBackPressure: with the defaults, one worker and every scales shard
// of the tree asked for at once, cold, by 64 clients, no request is
// refused: they wait their turn (the old default queue of 4 × workers
// answered most of them 503).
func TestBackPressure(t *testing.T) {
	out := materializedTree(t)
	var keys []string
	for _, k := range treeFiles(t, out) {
		if strings.Contains(k, "/c/") && !strings.Contains(k, "/band/") && !strings.Contains(k, "ing/") {
			keys = append(keys, k)
		}
	}
	st := openStore(t, true)
	h := New(st, Options{Workers: 1, Logger: testLogger(t, slog.LevelWarn)})
	srv := serve(t, h)
	var wg sync.WaitGroup
	errs := make(chan error, len(keys))
	sem := make(chan struct{}, 64)
	for _, k := range keys {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			resp, got := get(t, srv.URL+"/"+k, nil)
			wantB, err := os.ReadFile(filepath.Join(out, k))
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, wantB) {
				errs <- fmt.Errorf("%s: %d, %d bytes (%v)", k, resp.StatusCode, len(got), err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if b := h.Stats().Busy; b != 0 || len(keys) < 64 {
		t.Errorf("%d of %d keys refused as busy; want 0 of at least 64", b, len(keys))
	}
}

func TestOperations(t *testing.T) {
	st := openStore(t, true)
	key, _ := shardKey(t)
	assets := fstest.MapFS{"index.html": {Data: []byte("<p>viewer</p>")}, "assets/app.js": {Data: []byte("x=1")}}
	srv := serve(t, New(st, Options{Logger: testLogger(t, slog.LevelWarn), Assets: assets}))
	get(t, srv.URL+"/"+key, nil)
	get(t, srv.URL+"/"+key, map[string]string{"Range": "bytes=0-0"})
	if resp, b := get(t, srv.URL+"/healthz", nil); resp.StatusCode != 200 || string(b) != "ok\n" {
		t.Errorf("/healthz: %d %q", resp.StatusCode, b)
	}
	if resp, b := get(t, srv.URL+"/", nil); resp.StatusCode != 200 || string(b) != "<p>viewer</p>" {
		t.Errorf("/: %d %q", resp.StatusCode, b)
	}
	if resp, b := get(t, srv.URL+"/assets/app.js", nil); resp.StatusCode != 200 || string(b) != "x=1" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("/assets/app.js: %d %q %q", resp.StatusCode, b, resp.Header.Get("Content-Type"))
	}
	resp, b := get(t, srv.URL+"/metrics", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	for _, want := range []string{
		`tesserafs_http_requests_total{code="200",method="GET"}`,
		`tesserafs_http_requests_total{code="206",method="GET"} 1`,
		"tesserafs_http_response_bytes_total",
		"tesserafs_chunk_cache_hits_total 1",
		"tesserafs_chunk_cache_misses_total 1",
		"tesserafs_generation_seconds_count 1",
		"tesserafs_generations_in_flight 0",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// Without assets: a plain index page linking the store and catalog.
	srv2 := serve(t, New(st, Options{Logger: testLogger(t, slog.LevelWarn)}))
	if resp, b := get(t, srv2.URL+"/", nil); resp.StatusCode != 200 || !strings.Contains(string(b), `href="2024.zarr/zarr.json"`) || !strings.Contains(string(b), `href="catalog.json"`) {
		t.Errorf("index page: %d %q", resp.StatusCode, b)
	}
}

// TestCachedReadCountsOnce: each range read of a cached shard is one hit
// of the handler, of the store and of the cache (not two), and its bytes
// are the materialized shard's, including a whole-shard read larger than
// the copy buffer.
func TestCachedReadCountsOnce(t *testing.T) {
	key, want := shardKey(t)
	size := int64(len(want))
	tiles := testtiles.Root(t, "test")
	cat, err := index.Discover(context.Background(), tiles, index.Options{Logger: testLogger(t, slog.LevelError)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.Open(t.TempDir(), cache.Options{Budget: 2 << 30, Logger: testLogger(t, slog.LevelWarn)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	st, err := store.New(cat, store.Options{Workers: 2, Cache: c, Logger: testLogger(t, slog.LevelWarn)})
	if err != nil {
		t.Fatal(err)
	}
	h := New(st, Options{Workers: 2, Logger: testLogger(t, slog.LevelWarn)})
	srv := serve(t, h)
	if resp, got := get(t, srv.URL+"/"+key, nil); resp.StatusCode != 200 || !bytes.Equal(got, want) {
		t.Fatalf("cold GET: %d, %d bytes", resp.StatusCode, len(got))
	}
	h0, s0, c0 := h.Stats().CacheHits, st.Stats().CacheHits, c.Stats().Hits
	ranges := []struct{ off, n int64 }{{0, 16}, {size - 100, 100}, {size / 2, 8000}, {1, copyBufSize}}
	for _, rg := range ranges {
		if rg.off+rg.n > size {
			t.Fatalf("shard of %d bytes too small for range %d+%d", size, rg.off, rg.n)
		}
		resp, got := get(t, srv.URL+"/"+key, map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", rg.off, rg.off+rg.n-1)})
		if resp.StatusCode != 206 || !bytes.Equal(got, want[rg.off:rg.off+rg.n]) {
			t.Fatalf("range %d+%d: %d, %d bytes, equal %v", rg.off, rg.n, resp.StatusCode, len(got), bytes.Equal(got, want[rg.off:rg.off+rg.n]))
		}
	}
	n := int64(len(ranges))
	if dh, ds, dc := h.Stats().CacheHits-h0, st.Stats().CacheHits-s0, c.Stats().Hits-c0; dh != n || ds != n || dc != n {
		t.Errorf("%d cached range reads: handler %d hits, store %d, cache %d; want %d each", n, dh, ds, dc, n)
	}
	if size <= copyBufSize {
		t.Logf("shard of %d bytes: the whole-shard read fits one copy buffer", size)
	}
	if resp, got := get(t, srv.URL+"/"+key, nil); resp.StatusCode != 200 || !bytes.Equal(got, want) {
		t.Fatalf("warm whole GET: %d, %d bytes", resp.StatusCode, len(got))
	}
	if g := st.Stats().Generated; g != 1 {
		t.Errorf("%d generations, want 1", g)
	}
}
