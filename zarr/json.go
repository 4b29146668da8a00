package zarr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// KV is one member of an ordered JSON object.
type KV struct {
	Key   string
	Value any
}

// Attrs is a JSON object whose members keep their order. Zarr attributes are
// plain JSON, but conventions (and people diffing files) expect a fixed key
// order, which a Go map cannot give. Values may themselves be Attrs, so nested
// objects keep their order too.
//
// When parsed (see [Attrs.UnmarshalJSON]), nested objects become Attrs, arrays
// []any, numbers [json.Number] (so they re-encode exactly as written), strings
// string, booleans bool and null nil.
type Attrs []KV

// MarshalJSON writes the members in slice order; nil or empty gives {}.
// Duplicate keys are an error: a JSON reader would silently keep only one.
func (a Attrs) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	seen := make(map[string]struct{}, len(a))
	for i, kv := range a {
		if _, dup := seen[kv.Key]; dup {
			return nil, fmt.Errorf("zarr: attributes: duplicate key %q", kv.Key)
		}
		seen[kv.Key] = struct{}{}
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := writeJSON(&buf, kv.Key); err != nil {
			return nil, err
		}
		buf.WriteByte(':')
		if err := writeJSON(&buf, kv.Value); err != nil {
			return nil, fmt.Errorf("zarr: attribute %q: %w", kv.Key, err)
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// UnmarshalJSON reads a JSON object keeping the order of its members, at every
// level of nesting. Duplicate keys are an error. Following the encoding/json
// convention, null leaves a unchanged.
func (a *Attrs) UnmarshalJSON(data []byte) error {
	if isNull(data) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("zarr: attributes: %w", err)
	}
	if tok != json.Delim('{') {
		return fmt.Errorf("zarr: attributes: want a JSON object, got %s", describeToken(tok))
	}
	obj, err := decodeObject(dec, 1)
	if err != nil {
		return fmt.Errorf("zarr: attributes: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("zarr: attributes: trailing data after object")
	}
	*a = obj
	return nil
}

// Get returns the value of the first member named key.
func (a Attrs) Get(key string) (any, bool) {
	for _, kv := range a {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

// maxDepth bounds the nesting of parsed JSON values, so that a hostile
// document cannot drive the recursive decoder arbitrarily deep.
const maxDepth = 256

// decodeObject reads the members of an object whose '{' has been consumed,
// and its closing '}'.
func decodeObject(dec *json.Decoder, depth int) (Attrs, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nesting deeper than %d", maxDepth)
	}
	obj := Attrs{}
	seen := map[string]struct{}{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("want an object key, got %s", describeToken(tok))
		}
		if _, dup := seen[key]; dup {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = struct{}{}
		v, err := decodeValue(dec, depth)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", key, err)
		}
		obj = append(obj, KV{key, v})
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, err
	}
	return obj, nil
}

// decodeValue reads one JSON value, objects as Attrs.
func decodeValue(dec *json.Decoder, depth int) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		return decodeObject(dec, depth+1)
	case json.Delim('['):
		if depth+1 > maxDepth {
			return nil, fmt.Errorf("nesting deeper than %d", maxDepth)
		}
		arr := []any{}
		for dec.More() {
			v, err := decodeValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		if _, err := dec.Token(); err != nil { // ']'
			return nil, err
		}
		return arr, nil
	case json.Delim('}'), json.Delim(']'):
		return nil, fmt.Errorf("unexpected %s", describeToken(tok))
	}
	return tok, nil // string, json.Number, bool or nil
}

func describeToken(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		return strconv.Quote(t.String())
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", tok)
}

// Float is a float64 that encodes the way Python's json module does: always
// with a decimal point or an exponent (10.0, not 10; 1e-05). Use it for
// attribute values that readers expect to be floats, such as an affine
// transform. NaN and infinities are not JSON and fail to encode.
type Float float64

// MarshalJSON implements [json.Marshaler].
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil, fmt.Errorf("zarr: %v is not a JSON number", v)
	}
	return appendPythonFloat(nil, v), nil
}

// appendPythonFloat formats a finite v like Python's repr(float): the shortest
// decimal that reads back exactly, in exponent form below 1e-4 and from 1e16.
func appendPythonFloat(b []byte, v float64) []byte {
	if a := math.Abs(v); a != 0 && (a < 1e-4 || a >= 1e16) {
		return strconv.AppendFloat(b, v, 'e', -1, 64)
	}
	start := len(b)
	b = strconv.AppendFloat(b, v, 'f', -1, 64)
	if !bytes.ContainsRune(b[start:], '.') {
		b = append(b, ".0"...)
	}
	return b
}

// writeJSON appends the JSON encoding of v without HTML escaping (Python's
// json module does not escape <, > and &, and URLs in attributes should stay
// readable).
func writeJSON(buf *bytes.Buffer, v any) error {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	buf.Truncate(buf.Len() - 1) // Encode's newline
	return nil
}

// Encode renders a metadata value (an [ArrayMetadata], a [GroupMetadata] or
// anything else JSON can encode) as the content of a zarr.json file: indented
// with two spaces like zarr-python writes, without HTML escaping, and ending
// in a single newline so that it is a well-formed text file.
func Encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// parseObjectKeys splits a JSON object into its members, keeping their order
// and rejecting duplicate keys. Values are left raw.
func parseObjectKeys(data []byte) ([]string, map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, err
	}
	if tok != json.Delim('{') {
		return nil, nil, fmt.Errorf("want a JSON object, got %s", describeToken(tok))
	}
	var keys []string
	vals := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, nil, fmt.Errorf("want an object key, got %s", describeToken(tok))
		}
		if _, dup := vals[key]; dup {
			return nil, nil, fmt.Errorf("duplicate key %q", key)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, fmt.Errorf("%q: %w", key, err)
		}
		keys = append(keys, key)
		vals[key] = raw
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errors.New("trailing data after object")
	}
	return keys, vals, nil
}

// isNull reports whether raw is the JSON literal null.
func isNull(raw json.RawMessage) bool {
	return strings.TrimSpace(string(raw)) == "null"
}
