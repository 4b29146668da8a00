package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tesserafs/tesserafs/index"
)

// httpBackend reads a tiles root from an HTTP(S) server with ranged GETs.
type httpBackend struct {
	base   string // ends in "/"
	client *http.Client
}

// newHTTPClient is an http.Client with explicit connect, TLS and
// response-header timeouts (body reads are bounded by the idle watchdog
// of fetchOnce) and no transparent compression, which would break byte
// ranges.
func newHTTPClient(opts Options) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   opts.ConnectTimeout,
		ResponseHeaderTimeout: opts.HeaderTimeout,
		MaxIdleConnsPerHost:   opts.Parallel,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     true,
	}}
}

func newHTTPBackend(u *url.URL, opts Options) *httpBackend {
	return &httpBackend{base: u.String(), client: newHTTPClient(opts)}
}

func (h *httpBackend) root() string { return h.base }

func (h *httpBackend) name(rel string) string {
	segs := strings.Split(strings.Trim(rel, "/"), "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return h.base + strings.Join(segs, "/")
}

func (h *httpBackend) list(context.Context, string) ([]index.DirEntry, error) {
	return nil, index.ErrNoListing
}

func (h *httpBackend) get(ctx context.Context, name string, off, n int64) (*response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, name, nil)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	}
	resp, err := h.client.Do(req)
	if err != nil {
		if ctx.Err() != nil && context.Cause(ctx) != errIdle {
			return nil, err
		}
		return nil, &retryError{err: err} // connect/header timeout, reset, refused
	}
	ok := false
	defer func() {
		if !ok {
			resp.Body.Close()
		}
	}()
	r := &response{body: resp.Body, etag: resp.Header.Get("ETag")}
	if lm := resp.Header.Get("Last-Modified"); lm != "" {
		r.modTime, _ = http.ParseTime(lm)
	}
	switch code := resp.StatusCode; {
	case code == http.StatusPartialContent:
		cr, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errIntegrity, err)
		}
		if resp.ContentLength >= 0 && resp.ContentLength != cr.last-cr.first+1 {
			return nil, fmt.Errorf("%w: Content-Length %d for Content-Range %d-%d", errIntegrity, resp.ContentLength, cr.first, cr.last)
		}
		r.first, r.last, r.total = cr.first, cr.last, cr.total
	case code == http.StatusOK:
		// A whole file: asked for, or the server ignored the range of a
		// read from offset 0 that covers it.
		if resp.ContentLength < 0 {
			return nil, fmt.Errorf("%w: 200 answer without Content-Length", errIntegrity)
		}
		if n > 0 && (off != 0 || resp.ContentLength > n) {
			return nil, fmt.Errorf("%w: the server ignored the Range header (200 instead of 206)", errIntegrity)
		}
		r.first, r.last, r.total = 0, resp.ContentLength-1, resp.ContentLength
		if resp.ContentLength == 0 {
			r.first = 0
		}
	case code == http.StatusNotFound || code == http.StatusGone:
		return nil, fmt.Errorf("%s: %w", resp.Status, fs.ErrNotExist)
	case code == http.StatusTooManyRequests || code >= 500:
		return nil, &retryError{err: errors.New(resp.Status), after: retryAfter(resp.Header.Get("Retry-After"))}
	default:
		return nil, fmt.Errorf("unexpected answer %s", resp.Status)
	}
	ok = true
	return r, nil
}

// retryAfter parses a Retry-After header: seconds or an HTTP date. 0 when
// absent or unparsable; callers cap it.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(min(s, 3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
