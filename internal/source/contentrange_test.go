package source

import (
	"errors"
	"fmt"
	"testing"
)

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want contentRange
		ok   bool
	}{
		{"bytes 0-99/100", contentRange{0, 99, 100}, true},
		{"bytes 5-5/6", contentRange{5, 5, 6}, true},
		{"bytes 1048576-2097151/104857600", contentRange{1048576, 2097151, 104857600}, true},
		{"bytes 0-99/*", contentRange{}, false},
		{"bytes */100", contentRange{}, false},
		{"bytes 10-5/100", contentRange{}, false},
		{"bytes 0-100/100", contentRange{}, false},
		{"bytes -1-5/100", contentRange{}, false},
		{"bytes +1-5/100", contentRange{}, false},
		{"bytes 0-5/100 ", contentRange{}, false},
		{"items 0-5/100", contentRange{}, false},
		{"bytes 0-99999999999999999999/100", contentRange{}, false},
		{"", contentRange{}, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseContentRange(tc.in)
			if tc.ok != (err == nil) || got != tc.want {
				t.Fatalf("parseContentRange(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
			}
			if err != nil && !errors.Is(err, errContentRange) {
				t.Fatalf("error %v does not wrap errContentRange", err)
			}
		})
	}
}

// FuzzParseContentRange checks that any header either parses to a range
// inside its total that prints back to the same text, or is refused.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/100", "bytes 5-5/6", "bytes 0-99/*", "bytes */100", "bytes 9-1/3", "bytes 00-01/02"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cr, err := parseContentRange(s)
		if err != nil {
			return
		}
		if cr.first < 0 || cr.first > cr.last || cr.last >= cr.total {
			t.Fatalf("%q parsed to %v, outside its total", s, cr)
		}
		// Leading zeros are allowed; the numbers must still round-trip.
		var a, b, c int64
		if _, err := fmt.Sscanf(s, "bytes %d-%d/%d", &a, &b, &c); err != nil || a != cr.first || b != cr.last || c != cr.total {
			t.Fatalf("%q parsed to %v, Sscanf says %d %d %d (%v)", s, cr, a, b, c, err)
		}
	})
}
