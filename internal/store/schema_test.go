package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemasDir is the repository's offline copy of the JSON schemas
// (testdata/schemas, see its README and LICENSES.md).
func schemasDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("..", "..", "testdata", "schemas")
	if _, err := os.Stat(filepath.Join(dir, "url-map.json")); err != nil {
		t.Fatalf("no JSON schemas at %s: %v", dir, err)
	}
	return dir
}

// offlineLoader serves schema URLs from the offline copy, and fails for
// any other URL: nothing is fetched.
type offlineLoader struct {
	dir  string
	urls map[string]string
}

func (l offlineLoader) Load(url string) (any, error) {
	rel, ok := l.urls[url]
	if !ok {
		return nil, fmt.Errorf("schema %s is not in the offline copy", url)
	}
	b, err := os.ReadFile(filepath.Join(l.dir, rel))
	if err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	// The convention schemas put $ref beside properties, which draft-07
	// ignores: validate them as draft 2020-12 (the schemas README says so).
	if m, ok := doc.(map[string]any); ok && strings.Contains(url, "zarr-") {
		delete(m, "$schema")
	}
	return doc, nil
}

// lookaheadRegexp runs ECMA-262 patterns of the form ^(?!A)(?!B)…REST,
// which Go's RE2 cannot: it matches when ^REST does and no ^A, ^B does.
// Other patterns go to Go's regexp as they are.
type lookaheadRegexp struct {
	src  string
	main *regexp.Regexp
	not  []*regexp.Regexp
}

func (r *lookaheadRegexp) String() string { return r.src }

func (r *lookaheadRegexp) MatchString(s string) bool {
	for _, n := range r.not {
		if n.MatchString(s) {
			return false
		}
	}
	return r.main.MatchString(s)
}

func compileLookahead(src string) (jsonschema.Regexp, error) {
	rest, anchored := strings.CutPrefix(src, "^")
	r := &lookaheadRegexp{src: src}
	for anchored && strings.HasPrefix(rest, "(?!") {
		depth, end := 0, -1
		for i := 0; i < len(rest) && end < 0; i++ {
			switch rest[i] {
			case '\\':
				i++
			case '(':
				depth++
			case ')':
				if depth--; depth == 0 {
					end = i
				}
			}
		}
		if end < 0 {
			return nil, fmt.Errorf("pattern %q: unbalanced lookahead", src)
		}
		n, err := regexp.Compile("^(?:" + rest[3:end] + ")")
		if err != nil {
			return nil, err
		}
		r.not = append(r.not, n)
		rest = rest[end+1:]
	}
	if anchored {
		rest = "^" + rest
	}
	var err error
	r.main, err = regexp.Compile(rest)
	return r, err
}

// validateAgainst validates a zarr.json document against the schema at url.
func validateAgainst(t *testing.T, doc []byte, url string) {
	t.Helper()
	if err := schemaError(t, doc, url); err != nil {
		t.Errorf("does not validate against %s:\n%v", url, err)
	}
}

// schemaError validates doc against the schema at url, offline.
func schemaError(t *testing.T, doc []byte, url string) error {
	t.Helper()
	dir := schemasDir(t)
	var urls map[string]string
	b, err := os.ReadFile(filepath.Join(dir, "url-map.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &urls); err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(offlineLoader{dir: dir, urls: urls})
	c.UseRegexpEngine(compileLookahead)
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	sch, err := c.Compile(url)
	if err != nil {
		t.Fatalf("schema %s: %v", url, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	return sch.Validate(inst)
}

// TestSchemaRejects makes sure the validation is not vacuous: broken
// copies of global_rgb's zarr.json fail the multiscales schema.
func TestSchemaRejects(t *testing.T) {
	st := sharedStore(t)
	doc, err := st.Get(context.Background(), "2024.zarr/global_rgb/zarr.json")
	if err != nil {
		t.Fatal(err)
	}
	const url = "https://raw.githubusercontent.com/zarr-conventions/multiscales/refs/tags/v1/schema.json"
	for name, broken := range map[string]string{
		"absolute asset":        strings.Replace(string(doc), `"asset": "1"`, `"asset": "/1"`, 1),
		"derived, no transform": strings.Replace(string(doc), `"transform"`, `"xtransform"`, 2),
		"no multiscales":        strings.Replace(string(doc), `"multiscales": {`, `"xmultiscales": {`, 1),
		"wrong uuid":            strings.Replace(string(doc), "d35379db", "d35379dc", 1),
	} {
		if broken == string(doc) {
			t.Fatalf("%s: nothing replaced", name)
		}
		if schemaError(t, []byte(broken), url) == nil {
			t.Errorf("%s: validates", name)
		}
	}
}

// TestLookaheadRegexp checks the translation on the multiscales schema's
// path pattern.
func TestLookaheadRegexp(t *testing.T) {
	re, err := compileLookahead(`^(?!/)(?!.*(\.\.))([^/]+(/[^/]+)*)$`)
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string]bool{"0": true, "0/rgb": true, "/0": false, "a/../b": false, "a//b": false, "": false} {
		if got := re.MatchString(s); got != want {
			t.Errorf("%q: match %v, want %v", s, got, want)
		}
	}
}
