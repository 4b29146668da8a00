package source

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fault is what the proxy does to one request.
type fault int

const (
	pass        fault = iota
	drop              // close the connection before answering
	reset             // send the headers and half the body, then RST
	truncate          // send the headers and half the body, then FIN
	status503         // 503 Service Unavailable
	status429         // 429 Too Many Requests, Retry-After: 1
	lieRange          // a Content-Range one byte off the range asked for
	lieTotal          // a Content-Range with a wrong total
	stall             // send half the body, then nothing for 2 s
	notModified       // a 200 with the whole file to a range request
)

func (f fault) String() string {
	return [...]string{"pass", "drop", "reset", "truncate", "503", "429", "lie-range", "lie-total", "stall", "ignore-range"}[f]
}

// faultProxy forwards GETs to an upstream server (nginx) on loopback and
// breaks some of them as plan says. Each answer is written by hand on the
// hijacked connection, so that it can be cut, reset or falsified at the
// byte level.
type faultProxy struct {
	upstream string // base URL, ending in "/"
	plan     func(n int64, r *http.Request) fault
	latency  time.Duration // added before every answer
	n        atomic.Int64
	mu       sync.Mutex
	counts   map[fault]int
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := p.n.Add(1)
	f := pass
	if p.plan != nil {
		f = p.plan(n, r)
	}
	p.mu.Lock()
	if p.counts == nil {
		p.counts = map[fault]int{}
	}
	p.counts[f]++
	p.mu.Unlock()
	if p.latency > 0 {
		time.Sleep(p.latency)
	}
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, p.upstream+strings.TrimPrefix(r.URL.Path, "/"), nil)
	if rg := r.Header.Get("Range"); rg != "" && f != notModified {
		req.Header.Set("Range", rg)
	}
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	if f == drop {
		return
	}
	if f == status503 || f == status429 {
		code, extra := 503, ""
		if f == status429 {
			code, extra = 429, "Retry-After: 1\r\n"
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
	if cr := h.Get("Content-Range"); cr != "" && (f == lieRange || f == lieTotal) {
		c, err := parseContentRange(cr)
		if err == nil {
			switch {
			case f == lieRange && c.first > 0:
				c.first--
				c.last--
			case f == lieRange:
				c.first++
				c.last++
			default:
				c.total++
			}
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", c.first, c.last, c.total))
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Connection", "close")
	fmt.Fprintf(buf, "HTTP/1.1 %s\r\n", resp.Status)
	h.Write(buf)
	buf.WriteString("\r\n")
	switch f {
	case reset, truncate, stall:
		buf.Write(body[:len(body)/2])
		buf.Flush()
		switch f {
		case reset:
			if tc, ok := conn.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
		case stall:
			time.Sleep(2 * time.Second)
		}
		return
	}
	buf.Write(body)
	buf.Flush()
	// One request per connection (Connection: close) keeps the
	// hand-written framing simple.
}

func (p *faultProxy) count(f fault) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[f]
}

// startProxy serves p on a loopback port for the test's lifetime.
func startProxy(t testing.TB, p *faultProxy) string {
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
