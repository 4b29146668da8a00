package zarr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// ParseArrayMetadata parses an array's zarr.json. It accepts what this
// package writes and what zarr-python writes for the same arrays: a regular
// chunk grid, the default chunk key encoding with separator "/", one of the
// data types of [DataType.Size]. Unknown members are refused unless they are
// objects with "must_understand": false, as the v3 specification requires;
// storage_transformers must be empty.
func ParseArrayMetadata(data []byte) (ArrayMetadata, error) {
	m, err := parseArray(data)
	if err != nil {
		return ArrayMetadata{}, fmt.Errorf("zarr: array metadata: %w", err)
	}
	return m, nil
}

func parseArray(data []byte) (ArrayMetadata, error) {
	keys, vals, err := parseObjectKeys(data)
	if err != nil {
		return ArrayMetadata{}, err
	}
	if err := checkHeader(vals, "array"); err != nil {
		return ArrayMetadata{}, err
	}
	var m ArrayMetadata
	for _, k := range keys {
		raw := vals[k]
		switch k {
		case "zarr_format", "node_type":
			// checked above
		case "shape":
			if err := json.Unmarshal(raw, &m.Shape); err != nil || m.Shape == nil {
				return m, fmt.Errorf("shape: want an array of integers: %s", short(raw))
			}
		case "data_type":
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return m, fmt.Errorf("data_type: want a string: %s", short(raw))
			}
			m.DataType = DataType(s)
		case "chunk_grid":
			var g struct {
				Name          string `json:"name"`
				Configuration struct {
					ChunkShape []int `json:"chunk_shape"`
				} `json:"configuration"`
			}
			if err := decodeStrict(raw, &g); err != nil {
				return m, fmt.Errorf("chunk_grid: %w", err)
			}
			if g.Name != "regular" {
				return m, fmt.Errorf("chunk_grid: unsupported grid %q, want \"regular\"", g.Name)
			}
			if g.Configuration.ChunkShape == nil {
				return m, errors.New("chunk_grid: missing chunk_shape")
			}
			m.ChunkShape = g.Configuration.ChunkShape
		case "chunk_key_encoding":
			var e struct {
				Name          string `json:"name"`
				Configuration *struct {
					Separator *string `json:"separator"`
				} `json:"configuration"`
			}
			if err := decodeStrict(raw, &e); err != nil {
				return m, fmt.Errorf("chunk_key_encoding: %w", err)
			}
			sep := "/" // the default encoding's default
			if e.Configuration != nil && e.Configuration.Separator != nil {
				sep = *e.Configuration.Separator
			}
			if e.Name != "default" || sep != "/" {
				return m, fmt.Errorf("chunk_key_encoding: unsupported %q with separator %q, want \"default\" with \"/\"", e.Name, sep)
			}
		case "fill_value":
			// parsed below, once data_type is known
		case "codecs":
			if err := json.Unmarshal(raw, &m.Codecs); err != nil {
				return m, fmt.Errorf("codecs: %w", err)
			}
		case "attributes":
			if isNull(raw) {
				return m, errors.New("attributes: want an object, got null")
			}
			if err := m.Attributes.UnmarshalJSON(raw); err != nil {
				return m, err
			}
		case "dimension_names":
			if isNull(raw) {
				break
			}
			var names []*string
			if err := json.Unmarshal(raw, &names); err != nil {
				return m, fmt.Errorf("dimension_names: want an array of strings: %s", short(raw))
			}
			m.DimensionNames = make([]string, len(names))
			for i, n := range names {
				if n == nil {
					return m, fmt.Errorf("dimension_names: name %d is null; unnamed dimensions are not supported", i)
				}
				m.DimensionNames[i] = *n
			}
		case "storage_transformers":
			var st []json.RawMessage
			if err := json.Unmarshal(raw, &st); err != nil || len(st) > 0 {
				return m, fmt.Errorf("storage_transformers: unsupported %s", short(raw))
			}
		default:
			if err := checkOptional(k, raw); err != nil {
				return m, err
			}
		}
	}
	for _, k := range []string{"shape", "data_type", "chunk_grid", "chunk_key_encoding", "fill_value", "codecs"} {
		if _, ok := vals[k]; !ok {
			return m, fmt.Errorf("missing %s", k)
		}
	}
	if m.DataType.Size() == 0 {
		return m, fmt.Errorf("unsupported data_type %q", m.DataType)
	}
	fill, err := parseFill(m.DataType, vals["fill_value"])
	if err != nil {
		return m, fmt.Errorf("fill_value: %w", err)
	}
	m.FillValue = fill
	if m.Attributes == nil {
		m.Attributes = Attrs{}
	}
	if err := m.validate(); err != nil {
		return m, err
	}
	return m, nil
}

// checkHeader checks zarr_format and node_type.
func checkHeader(vals map[string]json.RawMessage, nodeType string) error {
	var format int
	raw, ok := vals["zarr_format"]
	if !ok {
		return errors.New("missing zarr_format")
	}
	if err := json.Unmarshal(raw, &format); err != nil || format != 3 {
		return fmt.Errorf("zarr_format %s, want 3", short(raw))
	}
	var nt string
	raw, ok = vals["node_type"]
	if !ok {
		return errors.New("missing node_type")
	}
	if err := json.Unmarshal(raw, &nt); err != nil || nt != nodeType {
		return fmt.Errorf("node_type %s, want %q", short(raw), nodeType)
	}
	return nil
}

// checkOptional accepts an unknown member only if it says it may be ignored.
func checkOptional(key string, raw json.RawMessage) error {
	var ext struct {
		MustUnderstand *bool `json:"must_understand"`
	}
	if err := json.Unmarshal(raw, &ext); err != nil || ext.MustUnderstand == nil || *ext.MustUnderstand {
		return fmt.Errorf("unknown field %q (not marked \"must_understand\": false)", key)
	}
	return nil
}

// parseFill parses a v3 fill value for dtype.
func parseFill(dtype DataType, raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch {
	case dtype == Bool:
		if b, ok := tok.(bool); ok {
			return b, nil
		}
	case dtype.isFloat():
		switch v := tok.(type) {
		case json.Number:
			f, err := strconv.ParseFloat(string(v), 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", v, err)
			}
			if dtype == Float32 && math.Abs(f) > math.MaxFloat32 {
				return nil, fmt.Errorf("%s out of range for float32", v)
			}
			return f, nil
		case string:
			f, err := parseSpecialFloat(v)
			if err != nil {
				return nil, err
			}
			if len(v) == 10 && dtype != Float32 || len(v) == 18 && dtype != Float64 {
				return nil, fmt.Errorf("%q has the wrong width for %s", v, dtype)
			}
			return f, nil
		}
	default: // integers
		if v, ok := tok.(json.Number); ok {
			neg, mag, ok := intValue(v)
			if !ok {
				return nil, fmt.Errorf("%s is not an integer", v)
			}
			if !intFits(dtype, neg, mag) {
				return nil, fmt.Errorf("%s out of range for %s", v, dtype)
			}
			if neg {
				return -int(mag-1) - 1, nil
			}
			if mag > math.MaxInt {
				return mag, nil
			}
			return int(mag), nil
		}
	}
	return nil, fmt.Errorf("%s is not a %s fill value", short(raw), dtype)
}

// ParseGroupMetadata parses a group's zarr.json, with its inline consolidated
// metadata if present. Attributes and consolidated entries keep their order.
func ParseGroupMetadata(data []byte) (GroupMetadata, error) {
	g, err := parseGroup(data)
	if err != nil {
		return GroupMetadata{}, fmt.Errorf("zarr: group metadata: %w", err)
	}
	return g, nil
}

func parseGroup(data []byte) (GroupMetadata, error) {
	keys, vals, err := parseObjectKeys(data)
	if err != nil {
		return GroupMetadata{}, err
	}
	if err := checkHeader(vals, "group"); err != nil {
		return GroupMetadata{}, err
	}
	g := GroupMetadata{Attributes: Attrs{}}
	for _, k := range keys {
		raw := vals[k]
		switch k {
		case "zarr_format", "node_type":
		case "attributes":
			if isNull(raw) {
				return g, errors.New("attributes: want an object, got null")
			}
			if err := g.Attributes.UnmarshalJSON(raw); err != nil {
				return g, err
			}
		case "consolidated_metadata":
			if isNull(raw) {
				break
			}
			c, err := parseConsolidated(raw)
			if err != nil {
				return g, fmt.Errorf("consolidated_metadata: %w", err)
			}
			g.Consolidated = c
		default:
			if err := checkOptional(k, raw); err != nil {
				return g, err
			}
		}
	}
	return g, nil
}

func parseConsolidated(data []byte) (*ConsolidatedMetadata, error) {
	keys, vals, err := parseObjectKeys(data)
	if err != nil {
		return nil, err
	}
	var kind string
	if err := json.Unmarshal(vals["kind"], &kind); err != nil || kind != "inline" {
		return nil, fmt.Errorf("kind %s, want \"inline\"", short(vals["kind"]))
	}
	for _, k := range keys {
		switch k {
		case "kind", "metadata":
		case "must_understand":
			var mu bool
			if err := json.Unmarshal(vals[k], &mu); err != nil {
				return nil, fmt.Errorf("must_understand: want a boolean: %s", short(vals[k]))
			}
		default:
			return nil, fmt.Errorf("unknown field %q", k)
		}
	}
	raw, ok := vals["metadata"]
	if !ok {
		return nil, errors.New("missing metadata")
	}
	paths, nodes, err := parseObjectKeys(raw)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	c := &ConsolidatedMetadata{Entries: make([]Entry, 0, len(paths))}
	for _, p := range paths {
		if err := validPath(p); err != nil {
			return nil, fmt.Errorf("metadata: %w", err)
		}
		var head struct {
			NodeType string `json:"node_type"`
		}
		if err := json.Unmarshal(nodes[p], &head); err != nil {
			return nil, fmt.Errorf("metadata: %q: want an object: %w", p, err)
		}
		var node any
		switch head.NodeType {
		case "array":
			node, err = parseArray(nodes[p])
		case "group":
			node, err = parseGroup(nodes[p])
		default:
			err = fmt.Errorf("node_type %q, want \"array\" or \"group\"", head.NodeType)
		}
		if err != nil {
			return nil, fmt.Errorf("metadata: %q: %w", p, err)
		}
		c.Entries = append(c.Entries, Entry{Path: p, Node: node})
	}
	return c, nil
}

// short quotes at most a few dozen bytes of raw JSON for an error message.
func short(raw json.RawMessage) string {
	const max = 40
	if raw == nil {
		return "(missing)"
	}
	if len(raw) > max {
		return string(raw[:max]) + "…"
	}
	return string(raw)
}
