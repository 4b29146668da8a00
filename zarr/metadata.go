package zarr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// DataType is a Zarr v3 data type name.
type DataType string

// The data types this package can describe. All are fixed-size numbers (or
// bool), stored little endian by the bytes codec.
const (
	Bool    DataType = "bool"
	Int8    DataType = "int8"
	Int16   DataType = "int16"
	Int32   DataType = "int32"
	Int64   DataType = "int64"
	Uint8   DataType = "uint8"
	Uint16  DataType = "uint16"
	Uint32  DataType = "uint32"
	Uint64  DataType = "uint64"
	Float32 DataType = "float32"
	Float64 DataType = "float64"
)

// Size returns the size of one element in bytes, or 0 for a data type this
// package does not know.
func (d DataType) Size() int {
	switch d {
	case Bool, Int8, Uint8:
		return 1
	case Int16, Uint16:
		return 2
	case Int32, Uint32, Float32:
		return 4
	case Int64, Uint64, Float64:
		return 8
	}
	return 0
}

func (d DataType) isFloat() bool { return d == Float32 || d == Float64 }

func (d DataType) isSigned() bool { return d == Int8 || d == Int16 || d == Int32 || d == Int64 }

func (d DataType) isUnsigned() bool {
	return d == Uint8 || d == Uint16 || d == Uint32 || d == Uint64
}

// Codec names this package writes and understands.
const (
	CodecBytes    = "bytes"
	CodecZstd     = "zstd"
	CodecCrc32c   = "crc32c"
	CodecSharding = "sharding_indexed"
)

// Codec is one entry of a codec chain. Configuration is encoded as the
// "configuration" member and omitted when nil. Parsing gives a [BytesConfig],
// [ZstdConfig] or [ShardingConfig] for those codecs, nil for crc32c, and the
// raw JSON ([json.RawMessage]) for any other codec.
type Codec struct {
	Name          string
	Configuration any
}

// BytesConfig configures the "bytes" codec.
type BytesConfig struct {
	Endian string `json:"endian,omitempty"` // "little" or "big"
}

// ZstdConfig configures the "zstd" codec.
type ZstdConfig struct {
	Level    int  `json:"level"`
	Checksum bool `json:"checksum"`
}

// ShardingConfig configures the "sharding_indexed" codec.
type ShardingConfig struct {
	ChunkShape    []int   `json:"chunk_shape"` // inner chunk shape
	Codecs        []Codec `json:"codecs"`
	IndexCodecs   []Codec `json:"index_codecs"`
	IndexLocation string  `json:"index_location"` // "end" or "start"
}

// BytesCodec returns the bytes codec for dtype: no configuration for 1-byte
// types (endianness means nothing there, and zarr-python writes none), little
// endian otherwise.
func BytesCodec(dtype DataType) Codec {
	if dtype.Size() == 1 {
		return Codec{Name: CodecBytes}
	}
	return Codec{Name: CodecBytes, Configuration: BytesConfig{Endian: "little"}}
}

// ZstdCodec returns the zstd codec at level, without checksum.
func ZstdCodec(level int) Codec {
	return Codec{Name: CodecZstd, Configuration: ZstdConfig{Level: level, Checksum: false}}
}

// Crc32cCodec returns the crc32c codec.
func Crc32cCodec() Codec { return Codec{Name: CodecCrc32c} }

// ShardingCodec returns a sharding_indexed codec with the index at the end of
// the shard. inner is the chain of each inner chunk, index the chain of the
// index (usually BytesCodec(Uint64) and Crc32cCodec(); see [ShardIndexCodecs]).
func ShardingCodec(innerChunk []int, inner []Codec, index []Codec) Codec {
	return Codec{Name: CodecSharding, Configuration: ShardingConfig{
		ChunkShape:    innerChunk,
		Codecs:        inner,
		IndexCodecs:   index,
		IndexLocation: "end",
	}}
}

// ShardIndexCodecs returns the index chain that [ShardEncoder] writes and
// [DecodeShard] reads: bytes (little endian) then crc32c.
func ShardIndexCodecs() []Codec {
	return []Codec{BytesCodec(Uint64), Crc32cCodec()}
}

// MarshalJSON implements [json.Marshaler].
func (c Codec) MarshalJSON() ([]byte, error) {
	if c.Name == "" {
		return nil, errors.New("zarr: codec without a name")
	}
	var buf bytes.Buffer
	buf.WriteString(`{"name":`)
	if err := writeJSON(&buf, c.Name); err != nil {
		return nil, err
	}
	if c.Configuration != nil {
		buf.WriteString(`,"configuration":`)
		if err := writeJSON(&buf, c.Configuration); err != nil {
			return nil, fmt.Errorf("zarr: codec %s: %w", c.Name, err)
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// UnmarshalJSON parses a codec object (or the short form, a bare name
// string). The configurations of bytes, zstd, crc32c and sharding_indexed are
// checked strictly; others are kept as raw JSON.
func (c *Codec) UnmarshalJSON(data []byte) error {
	var name string
	if err := json.Unmarshal(data, &name); err == nil {
		if name == "" {
			return errors.New("codec: empty name")
		}
		*c = Codec{Name: name}
		return c.parseConfig(nil)
	}
	keys, vals, err := parseObjectKeys(data)
	if err != nil {
		return fmt.Errorf("codec: %w", err)
	}
	for _, k := range keys {
		if k != "name" && k != "configuration" {
			return fmt.Errorf("codec: unknown field %q", k)
		}
	}
	if err := json.Unmarshal(vals["name"], &name); err != nil || name == "" {
		return errors.New("codec: name must be a non-empty string")
	}
	*c = Codec{Name: name}
	if err := c.parseConfig(vals["configuration"]); err != nil {
		return fmt.Errorf("codec %s: %w", name, err)
	}
	return nil
}

func (c *Codec) parseConfig(raw json.RawMessage) error {
	present := raw != nil && !isNull(raw)
	switch c.Name {
	case CodecBytes:
		if !present {
			return nil
		}
		var cfg BytesConfig
		if err := decodeStrict(raw, &cfg); err != nil {
			return err
		}
		if cfg.Endian != "little" && cfg.Endian != "big" && cfg.Endian != "" {
			return fmt.Errorf("endian %q, want \"little\" or \"big\"", cfg.Endian)
		}
		c.Configuration = cfg
	case CodecZstd:
		if !present {
			return errors.New("missing configuration")
		}
		var cfg struct {
			Level    *int  `json:"level"`
			Checksum *bool `json:"checksum"`
		}
		if err := decodeStrict(raw, &cfg); err != nil {
			return err
		}
		if cfg.Level == nil || cfg.Checksum == nil {
			return errors.New("configuration needs level and checksum")
		}
		c.Configuration = ZstdConfig{Level: *cfg.Level, Checksum: *cfg.Checksum}
	case CodecCrc32c:
		if present {
			var cfg struct{}
			if err := decodeStrict(raw, &cfg); err != nil {
				return err
			}
		}
	case CodecSharding:
		if !present {
			return errors.New("missing configuration")
		}
		var cfg struct {
			ChunkShape    []int   `json:"chunk_shape"`
			Codecs        []Codec `json:"codecs"`
			IndexCodecs   []Codec `json:"index_codecs"`
			IndexLocation *string `json:"index_location"`
		}
		if err := decodeStrict(raw, &cfg); err != nil {
			return err
		}
		if cfg.ChunkShape == nil || cfg.Codecs == nil || cfg.IndexCodecs == nil {
			return errors.New("configuration needs chunk_shape, codecs and index_codecs")
		}
		loc := "end" // the spec's default
		if cfg.IndexLocation != nil {
			loc = *cfg.IndexLocation
		}
		if loc != "end" && loc != "start" {
			return fmt.Errorf("index_location %q, want \"end\" or \"start\"", loc)
		}
		c.Configuration = ShardingConfig{
			ChunkShape:    cfg.ChunkShape,
			Codecs:        cfg.Codecs,
			IndexCodecs:   cfg.IndexCodecs,
			IndexLocation: loc,
		}
	default:
		if present {
			c.Configuration = append(json.RawMessage(nil), raw...)
		}
	}
	return nil
}

// decodeStrict unmarshals a JSON object into v, refusing unknown fields.
func decodeStrict(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	return nil
}

// ArrayMetadata is the zarr.json of an array with a regular chunk grid and the
// default chunk key encoding with separator "/".
type ArrayMetadata struct {
	Shape    []int
	DataType DataType
	// ChunkShape is the chunk grid's chunk shape: for a sharded array, the
	// shape of one shard (the inner chunk shape is in the sharding codec).
	ChunkShape []int
	// FillValue: a number (any Go integer or float type), a bool for bool,
	// or math.NaN() / ±math.Inf for floats, which encode as "NaN",
	// "Infinity" and "-Infinity". Parsing gives int for integer types
	// (uint64 when above math.MaxInt), float64 for floats, bool for bool.
	FillValue      any
	Codecs         []Codec
	Attributes     Attrs
	DimensionNames []string // nil: omitted
}

// ChunkGrid returns the number of chunks (shards, for a sharded array) along
// each dimension: ceil(shape / chunk shape).
func (m ArrayMetadata) ChunkGrid() []int {
	g := make([]int, len(m.Shape))
	for i := range g {
		if i < len(m.ChunkShape) && m.ChunkShape[i] > 0 {
			g[i] = (m.Shape[i] + m.ChunkShape[i] - 1) / m.ChunkShape[i]
		}
	}
	return g
}

// Sharding returns the configuration of the array's sharding codec, if its
// chain is a single sharding_indexed codec.
func (m ArrayMetadata) Sharding() (ShardingConfig, bool) {
	if len(m.Codecs) != 1 || m.Codecs[0].Name != CodecSharding {
		return ShardingConfig{}, false
	}
	switch c := m.Codecs[0].Configuration.(type) {
	case ShardingConfig:
		return c, true
	case *ShardingConfig:
		if c != nil {
			return *c, true
		}
	}
	return ShardingConfig{}, false
}

// validate checks what every reader would refuse anyway, so that bad metadata
// fails when it is written rather than when it is read.
func (m ArrayMetadata) validate() error {
	if m.DataType.Size() == 0 {
		return fmt.Errorf("unsupported data_type %q", m.DataType)
	}
	if len(m.ChunkShape) != len(m.Shape) {
		return fmt.Errorf("chunk_shape %v has rank %d, shape %v has rank %d",
			m.ChunkShape, len(m.ChunkShape), m.Shape, len(m.Shape))
	}
	for i, n := range m.Shape {
		if n < 0 {
			return fmt.Errorf("shape %v: negative extent in dimension %d", m.Shape, i)
		}
	}
	for i, n := range m.ChunkShape {
		if n <= 0 {
			return fmt.Errorf("chunk_shape %v: extent in dimension %d must be positive", m.ChunkShape, i)
		}
	}
	if m.DimensionNames != nil && len(m.DimensionNames) != len(m.Shape) {
		return fmt.Errorf("%d dimension_names for rank %d", len(m.DimensionNames), len(m.Shape))
	}
	if err := validateChain(m.Codecs, m.ChunkShape, m.DataType); err != nil {
		return fmt.Errorf("codecs: %w", err)
	}
	return nil
}

// validateChain checks a codec chain for chunks of the given shape and type:
// configurations of the codecs this package knows, and, when every codec is
// known, the order array→bytes then bytes→bytes with exactly one array→bytes
// codec.
func validateChain(chain []Codec, chunkShape []int, dtype DataType) error {
	if len(chain) == 0 {
		return errors.New("empty codec chain")
	}
	allKnown := true
	arrayToBytes := 0
	for i, c := range chain {
		switch c.Name {
		case CodecBytes:
			arrayToBytes++
			if i != 0 && allKnown {
				return fmt.Errorf("%s must come first in the chain", c.Name)
			}
			if err := validateBytes(c, dtype); err != nil {
				return err
			}
		case CodecSharding:
			arrayToBytes++
			if i != 0 && allKnown {
				return fmt.Errorf("%s must come first in the chain", c.Name)
			}
			if err := validateSharding(c, chunkShape, dtype); err != nil {
				return fmt.Errorf("%s: %w", c.Name, err)
			}
		case CodecZstd, CodecCrc32c:
			if i == 0 {
				return fmt.Errorf("%s is a bytes-to-bytes codec and cannot come first", c.Name)
			}
		case "":
			return fmt.Errorf("codec %d has no name", i)
		default:
			allKnown = false
		}
	}
	if allKnown && arrayToBytes != 1 {
		return fmt.Errorf("want exactly one array-to-bytes codec, got %d", arrayToBytes)
	}
	return nil
}

func validateBytes(c Codec, dtype DataType) error {
	var endian string
	switch cfg := c.Configuration.(type) {
	case nil:
	case BytesConfig:
		endian = cfg.Endian
	case *BytesConfig:
		if cfg != nil {
			endian = cfg.Endian
		}
	default:
		return nil // someone else's representation; let the reader judge
	}
	if endian == "" && dtype.Size() > 1 {
		return fmt.Errorf("bytes codec needs an endian for %s", dtype)
	}
	return nil
}

func validateSharding(c Codec, shardShape []int, dtype DataType) error {
	var cfg ShardingConfig
	switch v := c.Configuration.(type) {
	case ShardingConfig:
		cfg = v
	case *ShardingConfig:
		if v == nil {
			return errors.New("nil configuration")
		}
		cfg = *v
	default:
		return fmt.Errorf("configuration is %T, want ShardingConfig", c.Configuration)
	}
	if len(cfg.ChunkShape) != len(shardShape) {
		return fmt.Errorf("inner chunk_shape %v has rank %d, shard shape %v has rank %d",
			cfg.ChunkShape, len(cfg.ChunkShape), shardShape, len(shardShape))
	}
	for i, n := range cfg.ChunkShape {
		if n <= 0 || shardShape[i]%n != 0 {
			return fmt.Errorf("inner chunk_shape %v does not divide shard shape %v", cfg.ChunkShape, shardShape)
		}
	}
	if cfg.IndexLocation != "end" && cfg.IndexLocation != "start" {
		return fmt.Errorf("index_location %q, want \"end\" or \"start\"", cfg.IndexLocation)
	}
	if err := validateChain(cfg.Codecs, cfg.ChunkShape, dtype); err != nil {
		return fmt.Errorf("inner codecs: %w", err)
	}
	// The index is an array of shape (inner grid..., 2) of uint64.
	if err := validateChain(cfg.IndexCodecs, nil, Uint64); err != nil {
		return fmt.Errorf("index_codecs: %w", err)
	}
	return nil
}

// MarshalJSON writes the array's zarr.json object, members in the order of
// the Zarr v3 specification: zarr_format, node_type, shape, data_type,
// chunk_grid, chunk_key_encoding, fill_value, codecs, attributes ({} when
// empty), dimension_names (when set).
func (m ArrayMetadata) MarshalJSON() ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("zarr: array metadata: %w", err)
	}
	shape := m.Shape
	if shape == nil {
		shape = []int{}
	}
	chunks := m.ChunkShape
	if chunks == nil {
		chunks = []int{}
	}
	var buf bytes.Buffer
	buf.WriteString(`{"zarr_format":3,"node_type":"array","shape":`)
	if err := writeJSON(&buf, shape); err != nil {
		return nil, err
	}
	buf.WriteString(`,"data_type":`)
	if err := writeJSON(&buf, string(m.DataType)); err != nil {
		return nil, err
	}
	buf.WriteString(`,"chunk_grid":{"name":"regular","configuration":{"chunk_shape":`)
	if err := writeJSON(&buf, chunks); err != nil {
		return nil, err
	}
	buf.WriteString(`}},"chunk_key_encoding":{"name":"default","configuration":{"separator":"/"}},"fill_value":`)
	fill, err := appendFill(nil, m.DataType, m.FillValue)
	if err != nil {
		return nil, fmt.Errorf("zarr: array metadata: fill_value: %w", err)
	}
	buf.Write(fill)
	buf.WriteString(`,"codecs":`)
	if err := writeJSON(&buf, m.Codecs); err != nil {
		return nil, fmt.Errorf("zarr: array metadata: %w", err)
	}
	buf.WriteString(`,"attributes":`)
	if err := writeJSON(&buf, m.Attributes); err != nil {
		return nil, fmt.Errorf("zarr: array metadata: %w", err)
	}
	if m.DimensionNames != nil {
		buf.WriteString(`,"dimension_names":`)
		if err := writeJSON(&buf, m.DimensionNames); err != nil {
			return nil, err
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// appendFill appends the Zarr v3 JSON form of fill value v for dtype.
func appendFill(b []byte, dtype DataType, v any) ([]byte, error) {
	switch {
	case dtype == Bool:
		x, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("%v (%T) for bool, want a bool", v, v)
		}
		return strconv.AppendBool(b, x), nil
	case dtype.isFloat():
		f, ok := floatValue(v)
		if !ok {
			return nil, fmt.Errorf("%v (%T) for %s, want a number", v, v, dtype)
		}
		switch {
		case math.IsNaN(f):
			return append(b, `"NaN"`...), nil
		case math.IsInf(f, 1):
			return append(b, `"Infinity"`...), nil
		case math.IsInf(f, -1):
			return append(b, `"-Infinity"`...), nil
		case dtype == Float32 && math.Abs(f) > math.MaxFloat32:
			return nil, fmt.Errorf("%v out of range for float32", f)
		}
		return appendPythonFloat(b, f), nil
	case dtype.isSigned() || dtype.isUnsigned():
		neg, mag, ok := intValue(v)
		if !ok {
			return nil, fmt.Errorf("%v (%T) for %s, want an integer", v, v, dtype)
		}
		if !intFits(dtype, neg, mag) {
			return nil, fmt.Errorf("%v out of range for %s", v, dtype)
		}
		if neg {
			b = append(b, '-')
		}
		return strconv.AppendUint(b, mag, 10), nil
	}
	return nil, fmt.Errorf("unsupported data_type %q", dtype)
}

// floatValue converts a Go number, a json.Number or one of the v3 special
// strings to float64.
func floatValue(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		return f, err == nil
	case string:
		f, err := parseSpecialFloat(x)
		return f, err == nil
	}
	if neg, mag, ok := intValue(v); ok {
		f := float64(mag)
		if neg {
			f = -f
		}
		return f, true
	}
	return 0, false
}

// intValue converts an integer-valued Go number to sign and magnitude.
func intValue(v any) (neg bool, mag uint64, ok bool) {
	signed := func(i int64) (bool, uint64, bool) {
		if i < 0 {
			return true, uint64(-(i + 1)) + 1, true
		}
		return false, uint64(i), true
	}
	switch x := v.(type) {
	case int:
		return signed(int64(x))
	case int8:
		return signed(int64(x))
	case int16:
		return signed(int64(x))
	case int32:
		return signed(int64(x))
	case int64:
		return signed(x)
	case uint:
		return false, uint64(x), true
	case uint8:
		return false, uint64(x), true
	case uint16:
		return false, uint64(x), true
	case uint32:
		return false, uint64(x), true
	case uint64:
		return false, x, true
	case float64:
		if x != math.Trunc(x) || math.Abs(x) >= 1<<63 {
			return false, 0, false
		}
		return signed(int64(x))
	case float32:
		return intValue(float64(x))
	case json.Number:
		s := string(x)
		if strings.HasPrefix(s, "-") {
			i, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return false, 0, false
			}
			return signed(i)
		}
		u, err := strconv.ParseUint(s, 10, 64)
		return false, u, err == nil
	}
	return false, 0, false
}

// intFits reports whether the integer (neg, mag) is in range for dtype.
func intFits(dtype DataType, neg bool, mag uint64) bool {
	bits := uint(dtype.Size() * 8)
	if dtype.isUnsigned() {
		return !neg && (bits == 64 || mag < 1<<bits)
	}
	if neg {
		return mag <= 1<<(bits-1)
	}
	return mag < 1<<(bits-1)
}

// parseSpecialFloat parses the string forms of a v3 float fill value: "NaN",
// "Infinity", "-Infinity", or "0x" and the hex digits of the value's bits
// (8 digits: float32, 16 digits: float64).
func parseSpecialFloat(s string) (float64, error) {
	switch s {
	case "NaN":
		return math.NaN(), nil
	case "Infinity":
		return math.Inf(1), nil
	case "-Infinity":
		return math.Inf(-1), nil
	}
	if hex, ok := strings.CutPrefix(s, "0x"); ok {
		bits, err := strconv.ParseUint(hex, 16, 64)
		if err == nil {
			switch len(hex) {
			case 8:
				return float64(math.Float32frombits(uint32(bits))), nil
			case 16:
				return math.Float64frombits(bits), nil
			}
		}
	}
	return 0, fmt.Errorf("%q is not a float fill value", s)
}

// GroupMetadata is the zarr.json of a group. Consolidated, when set, is
// written inline as consolidated_metadata.
type GroupMetadata struct {
	Attributes   Attrs
	Consolidated *ConsolidatedMetadata
}

// MarshalJSON writes zarr_format, node_type, attributes ({} when empty) and,
// when Consolidated is set, consolidated_metadata.
func (g GroupMetadata) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(`{"zarr_format":3,"node_type":"group","attributes":`)
	if err := writeJSON(&buf, g.Attributes); err != nil {
		return nil, fmt.Errorf("zarr: group metadata: %w", err)
	}
	if g.Consolidated != nil {
		buf.WriteString(`,"consolidated_metadata":`)
		if err := writeJSON(&buf, g.Consolidated); err != nil {
			return nil, err
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// Entry is one node of consolidated metadata: its path relative to the group
// that holds the consolidated metadata ("utm30", "utm30/embeddings") and its
// metadata, an ArrayMetadata or a GroupMetadata (or pointers to them).
type Entry struct {
	Path string
	Node any
}

// ConsolidatedMetadata is the inline consolidated metadata of a group: the
// metadata of every node below it, flat, keyed by path, in the given order.
type ConsolidatedMetadata struct {
	Entries []Entry
}

// MarshalJSON writes {"kind":"inline","must_understand":false,"metadata":{...}}.
// Each group entry carries an empty consolidated_metadata of its own, the
// flat form zarr-python 3 writes (and expects: a group entry without it is
// read as "not consolidated" and its children are looked up in the store).
// A group entry whose own Consolidated has entries is an error: the flat form
// lists every descendant at the top.
func (c ConsolidatedMetadata) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(`{"kind":"inline","must_understand":false,"metadata":{`)
	seen := make(map[string]struct{}, len(c.Entries))
	for i, e := range c.Entries {
		if err := validPath(e.Path); err != nil {
			return nil, fmt.Errorf("zarr: consolidated metadata: %w", err)
		}
		if _, dup := seen[e.Path]; dup {
			return nil, fmt.Errorf("zarr: consolidated metadata: duplicate path %q", e.Path)
		}
		seen[e.Path] = struct{}{}
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := writeJSON(&buf, e.Path); err != nil {
			return nil, err
		}
		buf.WriteByte(':')
		node, err := consolidatedNode(e.Node)
		if err != nil {
			return nil, fmt.Errorf("zarr: consolidated metadata: %q: %w", e.Path, err)
		}
		if err := writeJSON(&buf, node); err != nil {
			return nil, fmt.Errorf("zarr: consolidated metadata: %q: %w", e.Path, err)
		}
	}
	buf.WriteString("}}")
	return buf.Bytes(), nil
}

// consolidatedNode returns the value to write for one consolidated entry.
func consolidatedNode(n any) (json.Marshaler, error) {
	switch v := n.(type) {
	case ArrayMetadata:
		return v, nil
	case *ArrayMetadata:
		if v != nil {
			return *v, nil
		}
	case GroupMetadata:
		return flatGroup(v)
	case *GroupMetadata:
		if v != nil {
			return flatGroup(*v)
		}
	default:
		return nil, fmt.Errorf("node is %T, want ArrayMetadata or GroupMetadata", n)
	}
	return nil, errors.New("nil node")
}

func flatGroup(g GroupMetadata) (GroupMetadata, error) {
	if g.Consolidated != nil && len(g.Consolidated.Entries) > 0 {
		return g, errors.New("group entry has consolidated entries of its own; list them flat at the top instead")
	}
	g.Consolidated = &ConsolidatedMetadata{}
	return g, nil
}

// validPath checks a consolidated metadata key: relative, "/"-separated,
// without empty, "." or ".." segments.
func validPath(p string) error {
	if p == "" {
		return errors.New("empty path")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("path %q: want a relative path without empty, \".\" or \"..\" segments", p)
		}
	}
	return nil
}
