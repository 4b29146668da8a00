package s3conf

import (
	"errors"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in, bucket, prefix string
		ok                 bool
	}{
		{"s3://tiles/v1/", "tiles", "v1/", true},
		{"s3://tiles/v1", "tiles", "v1/", true},
		{"s3://tiles", "tiles", "", true},
		{"s3://tiles/", "tiles", "", true},
		{"s3://my.bucket-2/a/b/c/", "my.bucket-2", "a/b/c/", true},
		{"s3://ab/x", "", "", false},
		{"s3://Tiles/x", "", "", false},
		{"s3://tiles/../x", "", "", false},
		{"s3://tiles/a//b", "", "", false},
		{"s3://tiles/a/./b", "", "", false},
		{"s3://tiles/a%2e%2e/b", "", "", false},
		{"s3://tiles/a?x=1", "", "", false},
		{"s3://tiles/a#f", "", "", false},
		{"s3://tiles/a\x00b", "", "", false},
		{"s3://-tiles/a", "", "", false},
		{"s3://ti..les/a", "", "", false},
		{"https://tiles/a", "", "", false},
		{"/data/tiles", "", "", false},
	} {
		l, err := ParseURL(tc.in)
		if tc.ok != (err == nil) {
			t.Errorf("ParseURL(%q): err = %v, want ok = %v", tc.in, err, tc.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrBadURL) {
				t.Errorf("ParseURL(%q): %v does not wrap ErrBadURL", tc.in, err)
			}
			continue
		}
		if l.Bucket != tc.bucket || l.Prefix != tc.prefix {
			t.Errorf("ParseURL(%q) = %+v, want bucket %q prefix %q", tc.in, l, tc.bucket, tc.prefix)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"s3://tiles/v1/", "s3://a.b-c/x/y", "s3://tiles/../", "s3://x", "s3://tiles/%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseURL(s)
		if err != nil {
			return
		}
		if !validBucket(l.Bucket) {
			t.Fatalf("%q: accepted bad bucket %q", s, l.Bucket)
		}
		if l.Prefix != "" && !strings.HasSuffix(l.Prefix, "/") {
			t.Fatalf("%q: prefix %q does not end in /", s, l.Prefix)
		}
		for _, seg := range strings.Split(strings.TrimSuffix(l.Prefix, "/"), "/") {
			if l.Prefix != "" && (seg == "" || seg == "." || seg == "..") {
				t.Fatalf("%q: prefix %q has segment %q", s, l.Prefix, seg)
			}
		}
		if again, err := ParseURL(l.String()); err != nil || again != l {
			t.Fatalf("%q: round trip %q gave %+v, %v", s, l.String(), again, err)
		}
	})
}
