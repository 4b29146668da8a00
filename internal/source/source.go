package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/s3conf"
)

// Options tune a remote source; zero values take the defaults.
type Options struct {
	// CacheBytes bounds the block cache; default DefaultCacheBytes.
	CacheBytes int64
	// BlockSize is the unit of ranged reads and of the cache; default 1 MiB.
	BlockSize int64
	// MaxRun bounds one ranged GET, in blocks; default 32.
	MaxRun int
	// Parallel bounds the requests in flight; default 16.
	Parallel int
	// Attempts is how many times a request is tried; default 5.
	Attempts int
	// Backoff is the first retry's mean wait (doubling, with jitter, up to
	// MaxBackoff); defaults 200 ms and 5 s. Retry-After is honoured up to
	// MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// ConnectTimeout bounds a TCP connect, HeaderTimeout the wait for a
	// response's headers, IdleTimeout a body read making no progress;
	// defaults 10 s, 30 s, 30 s.
	ConnectTimeout, HeaderTimeout, IdleTimeout time.Duration
	// DownFor is how long a file whose read failed transiently after its
	// retries (server down, 5xx, timeouts) fails fast, without a request,
	// before the next read tries the server again; default
	// DefaultDownFor.
	DownFor time.Duration
	Logger  *slog.Logger
}

// DefaultDownFor is the default Options.DownFor: short, so that a source
// back from an outage is used again within seconds, and long enough that
// readers of a down source fail at once instead of each waiting through
// the retry schedule.
const DefaultDownFor = 5 * time.Second

// DefaultCacheBytes is the default block cache size.
const DefaultCacheBytes = 512 << 20

func (o *Options) defaults() {
	def := func(p *time.Duration, d time.Duration) {
		if *p <= 0 {
			*p = d
		}
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	if o.BlockSize <= 0 {
		o.BlockSize = 1 << 20
	}
	if o.MaxRun <= 0 {
		o.MaxRun = 32
	}
	if o.Parallel <= 0 {
		o.Parallel = 16
	}
	if o.Attempts <= 0 {
		o.Attempts = 5
	}
	def(&o.Backoff, 200*time.Millisecond)
	def(&o.MaxBackoff, 5*time.Second)
	def(&o.ConnectTimeout, 10*time.Second)
	def(&o.HeaderTimeout, 30*time.Second)
	def(&o.IdleTimeout, 30*time.Second)
	def(&o.DownFor, DefaultDownFor)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// IsRemote reports whether spec names an HTTP(S) or S3 root rather than a
// directory.
func IsRemote(spec string) bool {
	return strings.HasPrefix(spec, "http://") || strings.HasPrefix(spec, "https://") || s3conf.IsURL(spec)
}

// ErrBadURL is wrapped by the errors of a --tiles URL that cannot be used.
var ErrBadURL = errors.New("not a usable tiles URL")

// Open opens the tiles root spec with default options: a directory, an
// http(s)://host/prefix/ URL or an s3://bucket/prefix/ URL.
func Open(ctx context.Context, spec string) (index.Source, error) {
	return OpenWith(ctx, spec, Options{})
}

// OpenWith is Open with options for a remote root.
func OpenWith(ctx context.Context, spec string, opts Options) (index.Source, error) {
	opts.defaults()
	switch {
	case s3conf.IsURL(spec):
		loc, err := s3conf.ParseURL(spec)
		if err != nil {
			return nil, err
		}
		c, err := s3conf.NewClient(ctx)
		if err != nil {
			return nil, err
		}
		return newRemote(&s3Backend{loc: loc, client: c, http: newHTTPClient(opts)}, opts), nil
	case strings.HasPrefix(spec, "http://"), strings.HasPrefix(spec, "https://"):
		u, err := ParseHTTPURL(spec)
		if err != nil {
			return nil, err
		}
		return newRemote(newHTTPBackend(u, opts), opts), nil
	case strings.Contains(spec, "://"):
		return nil, fmt.Errorf("--tiles %q: %w: want a directory, http(s):// or s3://", spec, ErrBadURL)
	}
	fi, err := os.Stat(spec)
	if err != nil {
		return nil, fmt.Errorf("tiles root: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("tiles root %s: not a directory", spec)
	}
	return index.DirSource{Root: filepath.Clean(spec)}, nil
}

// ParseHTTPURL checks an http(s) tiles root: a host, no user info (put
// credentials nowhere near a command line), no query or fragment, and a
// path without "." or ".." segments. The path is made to end in "/".
func ParseHTTPURL(s string) (*url.URL, error) {
	bad := func(why string) (*url.URL, error) {
		return nil, fmt.Errorf("%q: %w: %s", s, ErrBadURL, why)
	}
	if len(s) > 2048 {
		return bad("longer than 2048 bytes")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == ' ' {
			return bad("control character or space")
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return bad(err.Error())
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("want http:// or https://")
	case u.Host == "" || u.Hostname() == "":
		return bad("no host")
	case u.User != nil:
		return bad("user info in the URL")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(s, "?#"):
		return bad("query or fragment")
	case u.Opaque != "":
		return bad("opaque URL")
	}
	if p := u.Port(); p != "" {
		for _, c := range p {
			if c < '0' || c > '9' {
				return bad("bad port")
			}
		}
	}
	p := strings.Trim(u.Path, "/")
	if p != "" {
		for _, seg := range strings.Split(p, "/") {
			if seg == "" || seg == "." || seg == ".." {
				return bad("empty, '.' or '..' path segment")
			}
		}
	}
	u.Path = "/" + p
	if p != "" {
		u.Path += "/"
	}
	u.RawPath = ""
	return u, nil
}

// Stats counts what a remote source did.
type Stats struct {
	Requests     int64 // ranged GETs sent, retries included
	Retries      int64 // of which retries
	BytesFetched int64 // body bytes received and accepted
	BlockHits    int64 // blocks read from the cache
	BlockMisses  int64 // blocks fetched
	CacheBytes   int64 // bytes in the block cache now
	CacheLimit   int64
	Failures     int64 // reads that failed after retries or checks
}

// StatsOf returns the counters of a remote source; ok is false for a
// directory.
func StatsOf(src index.Source) (Stats, bool) {
	r, ok := src.(*Remote)
	if !ok {
		return Stats{}, false
	}
	return r.Stats(), true
}
