package httpserve

import (
	"math"
	"strconv"
	"strings"
)

// byteRange is a satisfiable range of a body: [start, start+length).
type byteRange struct{ start, length int64 }

// rangeKind is what a Range header asks for.
type rangeKind int

const (
	rangeNone          rangeKind = iota // no header, not bytes, malformed, or several ranges: send all (200)
	rangeOne                            // one satisfiable range: 206
	rangeUnsatisfiable                  // one range, none of it in the body: 416
)

// parseRange reads a Range header for a body of size bytes (RFC 9110
// §14.1.2). It answers one range only: "a-b" (b clamped to the end),
// "a-", and the suffix "-N" (the last N bytes, all of them if N > size).
// A header with several ranges is answered with the whole body (200), as
// the RFC allows a server to ignore Range; no Zarr reader sends one. A
// malformed header is ignored the same way, as the RFC asks.
func parseRange(h string, size int64) (byteRange, rangeKind) {
	if h == "" {
		return byteRange{}, rangeNone
	}
	unit, spec, ok := strings.Cut(h, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return byteRange{}, rangeNone
	}
	spec = strings.TrimSpace(spec)
	if strings.Contains(spec, ",") {
		return byteRange{}, rangeNone
	}
	first, last, ok := strings.Cut(spec, "-")
	if !ok {
		return byteRange{}, rangeNone
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	if first == "" { // suffix: the last N bytes
		n, ok := parseDigits(last)
		if !ok {
			return byteRange{}, rangeNone
		}
		if n == 0 || size == 0 {
			return byteRange{}, rangeUnsatisfiable
		}
		n = min(n, size)
		return byteRange{size - n, n}, rangeOne
	}
	a, ok := parseDigits(first)
	if !ok {
		return byteRange{}, rangeNone
	}
	end := size - 1
	if last != "" {
		b, ok := parseDigits(last)
		if !ok || b < a {
			return byteRange{}, rangeNone
		}
		end = min(b, size-1)
	}
	if a >= size {
		return byteRange{}, rangeUnsatisfiable
	}
	return byteRange{a, end - a + 1}, rangeOne
}

// parseDigits parses a non-empty run of ASCII digits (no sign, no
// spaces); a number too large for an int64 is math.MaxInt64 (positions
// past the end are clamped anyway).
func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return math.MaxInt64, true
	}
	return n, true
}

// etagMatch reports whether an If-None-Match value lists etag (weak
// comparison, as RFC 9110 §13.1.2 asks for If-None-Match) or is "*".
func etagMatch(header, etag string) bool {
	for t := range strings.SplitSeq(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}
