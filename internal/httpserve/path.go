package httpserve

import (
	"errors"
	"net/http"
	"strings"
)

// MaxURLBytes is the longest request target accepted (longer: 414). The
// longest key of a year store is well under 100 bytes.
const MaxURLBytes = 1024

// maxSegments bounds the depth of a key (a chunk key of global_rgb is the
// deepest: 2024.zarr/global_rgb/9/rgb/c/1/2/0).
const maxSegments = 16

// pathError is a refused request target and the status it is answered with.
type pathError struct {
	status int
	reason string
}

func (e *pathError) Error() string { return e.reason }

// errPath builds a pathError.
func errPath(status int, reason string) error { return &pathError{status, reason} }

// statusOf is the HTTP status for an error of ParseTarget.
func statusOf(err error) int {
	var pe *pathError
	if errors.As(err, &pe) {
		return pe.status
	}
	return http.StatusBadRequest
}

// ParseTarget turns a raw request target (the request line's URI, as sent)
// into a store key, or refuses it. A key is a sequence of segments made of
// ASCII letters, digits, '.', '_' and '-', joined by '/'; nothing else is
// ever a key, so everything else is refused before the store is asked:
//
//   - a target that is not origin-form ("/..."), e.g. "*" or an absolute URL: 400
//   - longer than MaxURLBytes: 414
//   - percent-encoding of anything: 400 (no key needs it, and refusing it
//     refuses encoded and double-encoded traversal, NUL, backslashes and
//     slashes in one rule)
//   - empty segments ("//", so no absolute path hides inside), "." and "..": 400
//   - any other byte (NUL, '\\', controls, non-ASCII): 400
//
// The query string is ignored. "/" gives the empty key (the index page);
// a trailing slash names a directory and is kept as dir = true.
func ParseTarget(target string) (key string, dir bool, err error) {
	if len(target) > MaxURLBytes {
		return "", false, errPath(http.StatusRequestURITooLong, "request target too long")
	}
	if target == "" || target[0] != '/' {
		return "", false, errPath(http.StatusBadRequest, "request target is not a path")
	}
	if i := strings.IndexByte(target, '?'); i >= 0 {
		target = target[:i]
	}
	if target == "/" {
		return "", true, nil
	}
	p := target[1:]
	if strings.HasSuffix(p, "/") {
		dir = true
		p = p[:len(p)-1]
	}
	n := 0
	for seg := range strings.SplitSeq(p, "/") {
		n++
		if n > maxSegments {
			return "", false, errPath(http.StatusNotFound, "path too deep")
		}
		switch seg {
		case "":
			return "", false, errPath(http.StatusBadRequest, "empty path segment")
		case ".", "..":
			return "", false, errPath(http.StatusBadRequest, "dot segment in path")
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			switch {
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
			case c == '%':
				return "", false, errPath(http.StatusBadRequest, "percent-encoded path")
			default:
				return "", false, errPath(http.StatusBadRequest, "byte not allowed in a path")
			}
		}
	}
	return p, dir, nil
}
