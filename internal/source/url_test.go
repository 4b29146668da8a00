package source

import (
	"errors"
	"strings"
	"testing"
)

func TestParseHTTPURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://tiles.example.org/v1/", "https://tiles.example.org/v1/"},
		{"https://tiles.example.org/v1", "https://tiles.example.org/v1/"},
		{"http://127.0.0.1:8080/", "http://127.0.0.1:8080/"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080/"},
		{"https://user:pw@example.org/v1/", ""},
		{"https://example.org/v1/?x=1", ""},
		{"https://example.org/v1/#f", ""},
		{"https://example.org/a/../v1/", ""},
		{"https://example.org//v1/", "https://example.org/v1/"},
		{"https://example.org/a//v1/", ""},
		{"https:///v1/", ""},
		{"ftp://example.org/v1/", ""},
		{"https://example.org/v 1/", ""},
		{"https://example.org:x/", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			u, err := ParseHTTPURL(tc.in)
			if tc.want == "" {
				if err == nil || !errors.Is(err, ErrBadURL) {
					t.Fatalf("ParseHTTPURL(%q) = %v, %v; want an ErrBadURL", tc.in, u, err)
				}
				return
			}
			if err != nil || u.String() != tc.want {
				t.Fatalf("ParseHTTPURL(%q) = %v, %v; want %s", tc.in, u, err, tc.want)
			}
		})
	}
}

// FuzzParseHTTPURL checks that an accepted --tiles URL is a clean http(s)
// root whose file names stay under it.
func FuzzParseHTTPURL(f *testing.F) {
	for _, s := range []string{"https://tiles.example.org/v1/", "http://127.0.0.1:8080", "https://a/b/../c", "http://[::1]:80/x/", "https://u@h/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseHTTPURL(s)
		if err != nil {
			return
		}
		base := u.String()
		if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") || !strings.HasSuffix(base, "/") {
			t.Fatalf("%q accepted as %q", s, base)
		}
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Host == "" {
			t.Fatalf("%q accepted with user, query, fragment or no host: %q", s, base)
		}
		name := (&httpBackend{base: base}).name("global_0.1_degree_representation/2024/grid_0.05_0.05/grid_0.05_0.05.npy")
		if !strings.HasPrefix(name, base) {
			t.Fatalf("file name %q escapes %q", name, base)
		}
	})
}
