package source

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// contentRange is a parsed "Content-Range: bytes first-last/total".
type contentRange struct {
	first, last, total int64
}

// errContentRange is wrapped by every parseContentRange error.
var errContentRange = errors.New("bad Content-Range")

// parseContentRange parses the Content-Range of a 206 answer. Only the
// form with a known total is accepted, with first ≤ last < total.
func parseContentRange(s string) (contentRange, error) {
	bad := func(why string) (contentRange, error) {
		if len(s) > 80 {
			s = s[:80] + "…"
		}
		return contentRange{}, fmt.Errorf("%w %q: %s", errContentRange, s, why)
	}
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return bad("want bytes first-last/total")
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return bad("no total")
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return bad("no range")
	}
	num := func(x string) (int64, bool) {
		if x == "" || len(x) > 18 {
			return 0, false
		}
		for i := 0; i < len(x); i++ {
			if x[i] < '0' || x[i] > '9' {
				return 0, false
			}
		}
		n, err := strconv.ParseInt(x, 10, 64)
		return n, err == nil
	}
	var cr contentRange
	if cr.first, ok = num(a); !ok {
		return bad("bad first byte")
	}
	if cr.last, ok = num(b); !ok {
		return bad("bad last byte")
	}
	if cr.total, ok = num(tot); !ok {
		return bad("bad or unknown total")
	}
	if cr.first > cr.last || cr.last >= cr.total {
		return bad("range outside the total")
	}
	return cr, nil
}
