package httpserve

import (
	"io/fs"
	"path"
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	long := "/" + strings.Repeat("a", MaxURLBytes)
	cases := []struct {
		target string
		key    string
		dir    bool
		status int // 0: accepted
	}{
		{"/", "", true, 0},
		{"/catalog.json", "catalog.json", false, 0},
		{"/2024.zarr/zarr.json", "2024.zarr/zarr.json", false, 0},
		{"/2024.zarr/utm30/embeddings/c/3/7/0", "2024.zarr/utm30/embeddings/c/3/7/0", false, 0},
		{"/2024.zarr/utm30/", "2024.zarr/utm30", true, 0},
		{"/2024.zarr/zarr.json?x=1", "2024.zarr/zarr.json", false, 0},
		{"/geotessera-2024/utm30_2024/utm30_2024.json", "geotessera-2024/utm30_2024/utm30_2024.json", false, 0},
		{"", "", false, 400},
		{"*", "", false, 400},
		{"http://example.org/catalog.json", "", false, 400},
		{"/../etc/passwd", "", false, 400},
		{"/2024.zarr/../../etc/passwd", "", false, 400},
		{"/2024.zarr/./zarr.json", "", false, 400},
		{"/%2e%2e/etc/passwd", "", false, 400},
		{"/%252e%252e/etc/passwd", "", false, 400},
		{"/2024.zarr%2fzarr.json", "", false, 400},
		{"//etc/passwd", "", false, 400},
		{"/2024.zarr//zarr.json", "", false, 400},
		{"/2024.zarr/zarr.json\x00", "", false, 400},
		{"/2024.zarr/%00", "", false, 400},
		{"/2024.zarr\\zarr.json", "", false, 400},
		{"/..\\..\\etc\\passwd", "", false, 400},
		{"/2024.zarr/zarr.json ", "", false, 400},
		{"/caf\xc3\xa9", "", false, 400},
		{long, "", false, 414},
		{"/" + strings.Repeat("a/", 20) + "b", "", false, 404},
	}
	for _, c := range cases {
		key, dir, err := ParseTarget(c.target)
		if c.status == 0 {
			if err != nil || key != c.key || dir != c.dir {
				t.Errorf("ParseTarget(%q) = %q, %v, %v; want %q, %v, nil", c.target, key, dir, err, c.key, c.dir)
			}
			continue
		}
		if err == nil {
			t.Errorf("ParseTarget(%q) = %q accepted; want status %d", c.target, key, c.status)
		} else if got := statusOf(err); got != c.status {
			t.Errorf("ParseTarget(%q): status %d (%v); want %d", c.target, got, err, c.status)
		}
	}
}

// FuzzParseTarget checks that whatever ParseTarget accepts is a clean,
// relative path of safe bytes that cannot leave the tree, and that
// whatever it refuses has a 4xx status.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"/", "/catalog.json", "/2024.zarr/utm30/embeddings/c/3/7/0", "/../x", "/%2e%2e/x",
		"/%252e/x", "//x", "/a\x00b", "/a\\b", "/a/./b", "/a/", "/a?b=../c", "*", "http://h/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		key, _, err := ParseTarget(target)
		if err != nil {
			if s := statusOf(err); s < 400 || s > 499 {
				t.Fatalf("ParseTarget(%q): status %d", target, s)
			}
			return
		}
		if key == "" {
			return
		}
		if !fs.ValidPath(key) || path.Clean(key) != key || strings.HasPrefix(key, "/") {
			t.Fatalf("ParseTarget(%q) = %q: not a clean relative path", target, key)
		}
		if hasDotDotSegment(key) || strings.ContainsAny(key, "\\\x00%?") {
			t.Fatalf("ParseTarget(%q) = %q: unsafe", target, key)
		}
		if len(target) > MaxURLBytes {
			t.Fatalf("ParseTarget accepted a target of %d bytes", len(target))
		}
	})
}

func hasDotDotSegment(key string) bool {
	for _, s := range strings.Split(key, "/") {
		if s == ".." {
			return true
		}
	}
	return false
}

func TestParseRange(t *testing.T) {
	const size = 100
	cases := []struct {
		h     string
		size  int64
		kind  rangeKind
		start int64
		n     int64
	}{
		{"", size, rangeNone, 0, 0},
		{"bytes=0-9", size, rangeOne, 0, 10},
		{"bytes=10-", size, rangeOne, 10, 90},
		{"bytes=-16", size, rangeOne, 84, 16},
		{"bytes=-1000", size, rangeOne, 0, 100},   // suffix longer than the body: all of it
		{"bytes=90-1000", size, rangeOne, 90, 10}, // clamped past EOF
		{"bytes=99-99", size, rangeOne, 99, 1},    // last byte
		{"bytes=0-99999999999999999999999", size, rangeOne, 0, 100},
		{"Bytes = 5-6", size, rangeOne, 5, 2},
		{"bytes=100-", size, rangeUnsatisfiable, 0, 0},
		{"bytes=100-200", size, rangeUnsatisfiable, 0, 0},
		{"bytes=-0", size, rangeUnsatisfiable, 0, 0},
		{"bytes=0-0", 0, rangeUnsatisfiable, 0, 0},
		{"bytes=-5", 0, rangeUnsatisfiable, 0, 0},
		{"bytes=0-1,5-6", size, rangeNone, 0, 0}, // several ranges: the whole body
		{"bytes=5-4", size, rangeNone, 0, 0},     // malformed: ignored
		{"bytes=a-b", size, rangeNone, 0, 0},
		{"bytes=+1-2", size, rangeNone, 0, 0},
		{"bytes=-", size, rangeNone, 0, 0},
		{"bytes=1", size, rangeNone, 0, 0},
		{"items=0-1", size, rangeNone, 0, 0},
	}
	for _, c := range cases {
		rg, kind := parseRange(c.h, c.size)
		if kind != c.kind || (kind == rangeOne && (rg.start != c.start || rg.length != c.n)) {
			t.Errorf("parseRange(%q, %d) = %+v, %v; want start %d length %d, %v", c.h, c.size, rg, kind, c.start, c.n, c.kind)
		}
	}
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-9", "bytes=-5", "bytes=5-", "bytes=0-1,2-3", "bytes=99999999999999999999-"} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			return
		}
		rg, kind := parseRange(h, size)
		if kind == rangeOne && (rg.start < 0 || rg.length <= 0 || rg.start+rg.length > size) {
			t.Fatalf("parseRange(%q, %d) = %+v outside the body", h, size, rg)
		}
	})
}
