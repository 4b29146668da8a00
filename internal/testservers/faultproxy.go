package testservers

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Fault is what a FaultProxy does to one request.
type Fault int

// The faults a FaultProxy can inject.
const (
	Pass        Fault = iota
	Drop              // close the connection before answering
	Reset             // send the headers and half the body, then RST
	Truncate          // send the headers and half the body, then FIN
	Status503         // 503 Service Unavailable
	Status429         // 429 Too Many Requests, Retry-After: 1
	LieRange          // a Content-Range one byte off the range asked for
	LieTotal          // a Content-Range with a wrong total
	Stall             // send half the body, then nothing for 2 s
	IgnoreRange       // a 200 with the whole file to a range request
	Status404         // 404 Not Found
)

func (f Fault) String() string {
	names := [...]string{"pass", "drop", "reset", "truncate", "503", "429", "lie-range", "lie-total", "stall", "ignore-range", "404"}
	if f < 0 || int(f) >= len(names) {
		return "fault(" + strconv.Itoa(int(f)) + ")"
	}
	return names[f]
}

// FaultProxy forwards GETs to an upstream server (nginx) on loopback and
// breaks some of them as Plan says. Each answer is written by hand on the
// hijacked connection, so that it can be cut, reset or falsified at the
// byte level. It is test code: it reads each upstream answer whole.
type FaultProxy struct {
	Upstream string // base URL, ending in "/"
	// Plan picks the fault for the n-th request (from 1); nil passes all.
	// It may be called from several goroutines at once.
	Plan    func(n int64, r *http.Request) Fault
	Latency time.Duration // added before every answer

	n      atomic.Int64
	mu     sync.Mutex
	counts map[Fault]int
}

// ServeHTTP answers one request, broken or not.
func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := p.n.Add(1)
	f := Pass
	if p.Plan != nil {
		f = p.Plan(n, r)
	}
	p.mu.Lock()
	if p.counts == nil {
		p.counts = map[Fault]int{}
	}
	p.counts[f]++
	p.mu.Unlock()
	if p.Latency > 0 {
		time.Sleep(p.Latency)
	}
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, p.Upstream+strings.TrimPrefix(r.URL.Path, "/"), nil)
	if rg := r.Header.Get("Range"); rg != "" && f != IgnoreRange {
		req.Header.Set("Range", rg)
	}
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	switch f {
	case Drop:
		return
	case Status503, Status429, Status404:
		code, extra := 503, ""
		switch f {
		case Status429:
			code, extra = 429, "Retry-After: 1\r\n"
		case Status404:
			code = 404
		}
		fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\n%sConnection: close\r\nContent-Length: 0\r\n\r\n", code, http.StatusText(code), extra)
		buf.Flush()
		return
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		fmt.Fprintf(buf, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		buf.Flush()
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	h := resp.Header.Clone()
	if cr := h.Get("Content-Range"); cr != "" && (f == LieRange || f == LieTotal) {
		var first, last, total int64
		if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &first, &last, &total); err == nil {
			switch {
			case f == LieRange && first > 0:
				first, last = first-1, last-1
			case f == LieRange:
				first, last = first+1, last+1
			default:
				total++
			}
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, total))
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Connection", "close")
	fmt.Fprintf(buf, "HTTP/1.1 %s\r\n", resp.Status)
	h.Write(buf)
	buf.WriteString("\r\n")
	switch f {
	case Reset, Truncate, Stall:
		buf.Write(body[:len(body)/2])
		buf.Flush()
		switch f {
		case Reset:
			if tc, ok := conn.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
		case Stall:
			time.Sleep(2 * time.Second)
		}
		return
	}
	buf.Write(body)
	buf.Flush()
	// One request per connection (Connection: close) keeps the
	// hand-written framing simple.
}

// Count is how many requests got fault f so far.
func (p *FaultProxy) Count(f Fault) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[f]
}

// Requests is how many requests the proxy has seen.
func (p *FaultProxy) Requests() int64 { return p.n.Load() }

// StartFaultProxy serves p on a loopback port until t ends and returns
// its base URL, ending in "/".
func StartFaultProxy(t testing.TB, p *FaultProxy) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// TileOutage serves a tiles root through nginx behind a FaultProxy in
// which one tile's server can fail: after Fail, every request under the
// directory of a file (a tile's .npy files) answers 503, until Recover.
type TileOutage struct {
	URL    string // the proxy's base URL: a tiles root
	Proxy  *FaultProxy
	prefix atomic.Value // URL path prefix failing, "" for none
}

// StartTileOutage starts nginx on root and the proxy in front of it, on
// loopback; both stop when the test ends.
func StartTileOutage(t testing.TB, root string) *TileOutage {
	o := &TileOutage{}
	o.prefix.Store("")
	o.Proxy = &FaultProxy{Upstream: Nginx(t, root), Plan: func(_ int64, r *http.Request) Fault {
		if p := o.prefix.Load().(string); p != "" && strings.HasPrefix(r.URL.Path, p) {
			return Status503
		}
		return Pass
	}}
	o.URL = StartFaultProxy(t, o.Proxy)
	return o
}

// Fail makes every request under the directory of fileURL (a URL of the
// proxy) answer 503.
func (o *TileOutage) Fail(t testing.TB, fileURL string) {
	u, err := url.Parse(fileURL)
	if err != nil {
		t.Fatal(err)
	}
	o.prefix.Store(path.Dir(u.Path) + "/")
}

// Recover ends the failure.
func (o *TileOutage) Recover() { o.prefix.Store("") }
