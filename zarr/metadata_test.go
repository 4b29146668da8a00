package zarr

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/zarr")

// testdata is the repository's shared testdata directory for this package.
const testdata = "../testdata/zarr"

func shardedInt8() ArrayMetadata {
	return ArrayMetadata{
		Shape:      []int{2560, 1792, 128},
		DataType:   Int8,
		ChunkShape: []int{256, 256, 128},
		FillValue:  0,
		Codecs: []Codec{ShardingCodec([]int{4, 4, 128},
			[]Codec{BytesCodec(Int8), ZstdCodec(3)}, ShardIndexCodecs())},
		DimensionNames: []string{"northing", "easting", "band"},
	}
}

func shardedFloat32NaN() ArrayMetadata {
	return ArrayMetadata{
		Shape:      []int{2560, 1792},
		DataType:   Float32,
		ChunkShape: []int{256, 256},
		FillValue:  math.NaN(),
		Codecs: []Codec{ShardingCodec([]int{4, 4},
			[]Codec{BytesCodec(Float32), ZstdCodec(3)}, ShardIndexCodecs())},
		DimensionNames: []string{"northing", "easting"},
	}
}

func coordinateFloat64() ArrayMetadata {
	return ArrayMetadata{
		Shape:          []int{1792},
		DataType:       Float64,
		ChunkShape:     []int{1792},
		FillValue:      0,
		Codecs:         []Codec{BytesCodec(Float64)},
		DimensionNames: []string{"easting"},
	}
}

func unshardedZstdUint8() ArrayMetadata {
	return ArrayMetadata{
		Shape:          []int{1800, 3600, 4},
		DataType:       Uint8,
		ChunkShape:     []int{512, 512, 4},
		FillValue:      0,
		Codecs:         []Codec{BytesCodec(Uint8), ZstdCodec(3)},
		DimensionNames: []string{"lat", "lon", "band"},
	}
}

func zoneGroup() GroupMetadata {
	return GroupMetadata{Attributes: Attrs{
		{"zarr_conventions", []any{Attrs{
			{"schema_url", "https://example.org/schema.json?a=1&b=<2>"},
			{"name", "proj:"},
		}}},
		{"proj:code", "EPSG:32630"},
		{"spatial:transform", []Float{10, 0, 699960, 0, -10, 5800020}},
		{"spatial:shape", []int{2560, 1792}},
		{"tessera:year", 2024},
		{"tessera:has_rgb_preview", false},
	}}
}

func consolidatedRoot() GroupMetadata {
	return GroupMetadata{
		Attributes: Attrs{{"tessera:year", 2024}, {"tessera:dataset_version", "v1"}},
		Consolidated: &ConsolidatedMetadata{Entries: []Entry{
			{"utm30", zoneGroup()},
			{"utm30/easting", coordinateFloat64()},
			{"utm30/embeddings", shardedInt8()},
			{"utm30/scales", shardedFloat32NaN()},
			{"global_rgb", GroupMetadata{}},
			{"global_rgb/0", &GroupMetadata{}},
			{"global_rgb/0/rgb", unshardedZstdUint8()},
		}},
	}
}

// goldenCases are the metadata documents kept in testdata/zarr. They are
// also checked by zarr-python: see interop_test.go.
var goldenCases = []struct {
	file string
	v    any
}{
	{"array_sharded_int8.json", shardedInt8()},
	{"array_sharded_float32_nan.json", shardedFloat32NaN()},
	{"array_coordinate_float64.json", coordinateFloat64()},
	{"array_unsharded_zstd_uint8.json", unshardedZstdUint8()},
	{"group_attributes.json", zoneGroup()},
	{"group_consolidated.json", consolidatedRoot()},
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.file, func(t *testing.T) {
			got, err := Encode(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(testdata, tc.file)
			if *update {
				if err := os.MkdirAll(testdata, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Encode differs from %s (run with -update if intended):\n%s", path, got)
			}
		})
	}
}

// TestGoldenRoundTrip parses every golden file and encodes it again: the
// parser must give back exactly what we write.
func TestGoldenRoundTrip(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(testdata, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var v any
			if strings.HasPrefix(tc.file, "array") {
				v, err = ParseArrayMetadata(data)
			} else {
				v, err = ParseGroupMetadata(data)
			}
			if err != nil {
				t.Fatal(err)
			}
			again, err := Encode(v)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, data) {
				t.Errorf("parse + encode changed the document:\n%s", again)
			}
		})
	}
}

func TestParseArrayMetadataValues(t *testing.T) {
	data, err := Encode(shardedInt8())
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseArrayMetadata(data)
	if err != nil {
		t.Fatal(err)
	}
	want := shardedInt8()
	want.Attributes = Attrs{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseArrayMetadata =\n%#v\nwant\n%#v", got, want)
	}
	sc, ok := got.Sharding()
	if !ok || !reflect.DeepEqual(sc.ChunkShape, []int{4, 4, 128}) {
		t.Errorf("Sharding() = %v, %v", sc, ok)
	}
	if g := got.ChunkGrid(); !reflect.DeepEqual(g, []int{10, 7, 1}) {
		t.Errorf("ChunkGrid() = %v", g)
	}
}

// TestParseZarrPython parses metadata as zarr-python 3.1 writes it (member
// order, storage_transformers, float fill 0.0).
func TestParseZarrPython(t *testing.T) {
	const doc = `{
  "shape": [8, 8],
  "data_type": "float32",
  "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [8, 8]}},
  "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
  "fill_value": "NaN",
  "codecs": [{"name": "sharding_indexed", "configuration": {"chunk_shape": [4, 4],
    "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
               {"name": "zstd", "configuration": {"level": 3, "checksum": false}}],
    "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
    "index_location": "end"}}],
  "attributes": {},
  "dimension_names": ["northing", "easting"],
  "zarr_format": 3,
  "node_type": "array",
  "storage_transformers": []
}`
	m, err := ParseArrayMetadata([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := m.FillValue.(float64); !ok || !math.IsNaN(f) {
		t.Errorf("FillValue = %#v, want NaN", m.FillValue)
	}
	if sc, ok := m.Sharding(); !ok || sc.Codecs[1].Configuration != (ZstdConfig{Level: 3}) {
		t.Errorf("Sharding() = %#v, %v", sc, ok)
	}
}

func TestFillValue(t *testing.T) {
	tests := []struct {
		dtype DataType
		fill  any
		json  string
		back  any // parsed value; nil: same as fill
	}{
		{Int8, 0, `0`, nil},
		{Int8, -128, `-128`, nil},
		{Int8, int8(127), `127`, 127},
		{Uint8, uint8(255), `255`, 255},
		{Int32, int64(-7), `-7`, -7},
		{Int64, math.MinInt64, `-9223372036854775808`, nil},
		{Uint64, uint64(math.MaxUint64), `18446744073709551615`, uint64(math.MaxUint64)},
		{Float64, 0, `0.0`, 0.0},
		{Float64, math.Copysign(0, -1), `-0.0`, nil},
		{Float32, 1.5, `1.5`, nil},
		{Float64, 1e-5, `1e-05`, nil},
		{Float64, 1e16, `1e+16`, nil},
		{Float64, 699960.0, `699960.0`, nil},
		{Float32, math.NaN(), `"NaN"`, nil},
		{Float32, math.Inf(1), `"Infinity"`, nil},
		{Float64, math.Inf(-1), `"-Infinity"`, nil},
		{Bool, true, `true`, nil},
	}
	for _, tc := range tests {
		t.Run(string(tc.dtype)+"/"+tc.json, func(t *testing.T) {
			got, err := appendFill(nil, tc.dtype, tc.fill)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.json {
				t.Errorf("appendFill(%s, %v) = %s, want %s", tc.dtype, tc.fill, got, tc.json)
			}
			back, err := parseFill(tc.dtype, got)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.back
			if want == nil {
				want = tc.fill
			}
			if f, ok := want.(float64); ok && math.IsNaN(f) {
				if b, ok := back.(float64); !ok || !math.IsNaN(b) {
					t.Errorf("parseFill(%s) = %#v, want NaN", got, back)
				}
				return
			}
			if !reflect.DeepEqual(back, want) {
				t.Errorf("parseFill(%s) = %#v (%T), want %#v (%T)", got, back, back, want, want)
			}
		})
	}
}

func TestFillValueErrors(t *testing.T) {
	tests := []struct {
		dtype DataType
		fill  any
	}{
		{Int8, 128},
		{Int8, -129},
		{Uint8, -1},
		{Int8, 0.5},
		{Int8, "NaN"},
		{Float32, 1e39},
		{Float32, "nan"},
		{Bool, 0},
		{Float64, nil},
	}
	for _, tc := range tests {
		if got, err := appendFill(nil, tc.dtype, tc.fill); err == nil {
			t.Errorf("appendFill(%s, %#v) = %s, want an error", tc.dtype, tc.fill, got)
		}
	}
}

func TestArrayMetadataInvalid(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*ArrayMetadata)
		want   string
	}{
		{"rank", func(m *ArrayMetadata) { m.ChunkShape = []int{256, 256} }, "rank"},
		{"zero chunk", func(m *ArrayMetadata) { m.ChunkShape[0] = 0 }, "positive"},
		{"dtype", func(m *ArrayMetadata) { m.DataType = "complex64" }, "unsupported data_type"},
		{"dims", func(m *ArrayMetadata) { m.DimensionNames = []string{"x"} }, "dimension_names"},
		{"no codecs", func(m *ArrayMetadata) { m.Codecs = nil }, "empty codec chain"},
		{"inner divides", func(m *ArrayMetadata) {
			m.Codecs = []Codec{ShardingCodec([]int{3, 4, 128}, []Codec{BytesCodec(Int8)}, ShardIndexCodecs())}
		}, "does not divide"},
		{"bytes endian", func(m *ArrayMetadata) {
			m.DataType = Int32
			m.Codecs = []Codec{ShardingCodec([]int{4, 4, 128}, []Codec{{Name: "bytes"}}, ShardIndexCodecs())}
		}, "needs an endian"},
		{"zstd first", func(m *ArrayMetadata) { m.Codecs = []Codec{ZstdCodec(3)} }, "cannot come first"},
		{"fill", func(m *ArrayMetadata) { m.FillValue = 300 }, "out of range"},
		{"attrs dup", func(m *ArrayMetadata) { m.Attributes = Attrs{{"a", 1}, {"a", 2}} }, "duplicate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := shardedInt8()
			tc.modify(&m)
			_, err := json.Marshal(m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Marshal error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParseArrayMetadataErrors(t *testing.T) {
	valid, err := json.Marshal(shardedFloat32NaN())
	if err != nil {
		t.Fatal(err)
	}
	replace := func(old, new string) string {
		if !strings.Contains(string(valid), old) {
			t.Fatalf("test setup: %q not in %s", old, valid)
		}
		return strings.Replace(string(valid), old, new, 1)
	}
	tests := []struct {
		name, doc, want string
	}{
		{"not json", `{"zarr_format":`, "EOF"},
		{"not object", `[]`, "want a JSON object"},
		{"format 2", replace(`"zarr_format":3`, `"zarr_format":2`), "zarr_format 2"},
		{"group", replace(`"node_type":"array"`, `"node_type":"group"`), `node_type "group"`},
		{"grid", replace(`"name":"regular"`, `"name":"rectilinear"`), "unsupported grid"},
		{"separator", replace(`"separator":"/"`, `"separator":"."`), "separator"},
		{"fill", replace(`"fill_value":"NaN"`, `"fill_value":"nan"`), "fill_value"},
		{"missing fill", replace(`"fill_value":"NaN",`, ``), "missing fill_value"},
		{"dtype", replace(`"data_type":"float32"`, `"data_type":"float16"`), "unsupported data_type"},
		{"unknown field", replace(`"attributes":{}`, `"attributes":{},"extra":1`), `unknown field "extra"`},
		{"must understand", replace(`"attributes":{}`, `"attributes":{},"ext":{"must_understand":true}`), `unknown field "ext"`},
		{"duplicate key", replace(`"attributes":{}`, `"attributes":{},"attributes":{}`), "duplicate key"},
		{"zstd config", replace(`"level":3,`, ``), "level and checksum"},
		{"zstd unknown", replace(`"level":3,`, `"level":3,"window":1,`), "unknown field"},
		{"index location", replace(`"index_location":"end"`, `"index_location":"middle"`), "index_location"},
		{"inner rank", replace(`"chunk_shape":[4,4]`, `"chunk_shape":[4]`), "rank"},
		{"storage transformers", replace(`"attributes":{}`, `"attributes":{},"storage_transformers":[{}]`), "storage_transformers"},
		{"null dimension", replace(`"dimension_names":["northing","easting"]`, `"dimension_names":[null,"easting"]`), "null"},
		{"trailing", string(valid) + "{}", "trailing data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseArrayMetadata([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseArrayMetadata error = %v, want one containing %q", err, tc.want)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "zarr: array metadata: ") {
				t.Errorf("error %q lacks context", err)
			}
		})
	}
}

func TestParseArrayMetadataLenient(t *testing.T) {
	valid, err := json.Marshal(shardedInt8())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, old, new string }{
		{"optional extension", `"attributes":{}`, `"attributes":{},"ext":{"must_understand":false,"x":1}`},
		{"codec short form", `{"name":"bytes"}`, `"bytes"`},
		{"default separator", `"configuration":{"separator":"/"}`, `"configuration":{}`},
		{"no attributes", `,"attributes":{}`, ``},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(string(valid), tc.old, tc.new, 1)
			if _, err := ParseArrayMetadata([]byte(doc)); err != nil {
				t.Errorf("ParseArrayMetadata(%s): %v", doc, err)
			}
		})
	}
	m := shardedFloat32NaN()
	m.FillValue = "0x7fc00000"
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseArrayMetadata(bytes.Replace(data, []byte(`"NaN"`), []byte(`"0x7fc00000"`), 1))
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := back.FillValue.(float64); !math.IsNaN(f) {
		t.Errorf("hex fill parsed as %v, want NaN", back.FillValue)
	}
}

func TestParseGroupMetadata(t *testing.T) {
	data, err := Encode(consolidatedRoot())
	if err != nil {
		t.Fatal(err)
	}
	g, err := ParseGroupMetadata(data)
	if err != nil {
		t.Fatal(err)
	}
	if g.Consolidated == nil || len(g.Consolidated.Entries) != 7 {
		t.Fatalf("Consolidated = %+v", g.Consolidated)
	}
	var paths []string
	for _, e := range g.Consolidated.Entries {
		paths = append(paths, e.Path)
	}
	if want := "utm30 utm30/easting utm30/embeddings utm30/scales global_rgb global_rgb/0 global_rgb/0/rgb"; strings.Join(paths, " ") != want {
		t.Errorf("entry order %v, want %s", paths, want)
	}
	zone, ok := g.Consolidated.Entries[0].Node.(GroupMetadata)
	if !ok {
		t.Fatalf("utm30 is %T", g.Consolidated.Entries[0].Node)
	}
	v, _ := zone.Attributes.Get("tessera:year")
	if v != json.Number("2024") {
		t.Errorf("tessera:year = %#v", v)
	}
	if _, ok := g.Consolidated.Entries[2].Node.(ArrayMetadata); !ok {
		t.Errorf("utm30/embeddings is %T", g.Consolidated.Entries[2].Node)
	}

	for _, bad := range []string{
		`{"zarr_format":3,"node_type":"array","attributes":{}}`,
		`{"zarr_format":3,"node_type":"group","attributes":null}`,
		`{"zarr_format":3,"node_type":"group","consolidated_metadata":{"kind":"external","metadata":{}}}`,
		`{"zarr_format":3,"node_type":"group","consolidated_metadata":{"kind":"inline","metadata":{"/a":{"zarr_format":3,"node_type":"group"}}}}`,
		`{"zarr_format":3,"node_type":"group","consolidated_metadata":{"kind":"inline","metadata":{"a":{"node_type":"file"}}}}`,
	} {
		if _, err := ParseGroupMetadata([]byte(bad)); err == nil {
			t.Errorf("ParseGroupMetadata(%s): no error", bad)
		}
	}
}

func TestConsolidatedMetadataErrors(t *testing.T) {
	tests := []struct {
		name    string
		entries []Entry
		want    string
	}{
		{"dup", []Entry{{"a", GroupMetadata{}}, {"a", GroupMetadata{}}}, "duplicate path"},
		{"absolute", []Entry{{"/a", GroupMetadata{}}}, "relative path"},
		{"dotdot", []Entry{{"a/../b", GroupMetadata{}}}, "relative path"},
		{"type", []Entry{{"a", "zarr.json"}}, "want ArrayMetadata or GroupMetadata"},
		{"nested", []Entry{{"a", GroupMetadata{Consolidated: &ConsolidatedMetadata{
			Entries: []Entry{{"b", GroupMetadata{}}}}}}}, "flat"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := json.Marshal(GroupMetadata{Consolidated: &ConsolidatedMetadata{Entries: tc.entries}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestAttrs(t *testing.T) {
	a := Attrs{
		{"z", 1},
		{"a", Attrs{{"y", "<&>"}, {"b", []any{Float(10), Float(0.1), Attrs{}}}}},
		{"m", nil},
	}
	// Compact and without HTML escaping, as Encode writes (json.Marshal
	// would escape <&> at the top level).
	compact := func(v any) string {
		var buf bytes.Buffer
		if err := writeJSON(&buf, v); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	data := compact(a)
	const want = `{"z":1,"a":{"y":"<&>","b":[10.0,0.1,{}]},"m":null}`
	if data != want {
		t.Errorf("Marshal = %s, want %s", data, want)
	}
	var back Attrs
	if err := json.Unmarshal([]byte(data), &back); err != nil {
		t.Fatal(err)
	}
	if again := compact(back); again != want {
		t.Errorf("round trip = %s, want %s", again, want)
	}
	for _, empty := range []Attrs{nil, {}} {
		if data, _ := json.Marshal(empty); string(data) != "{}" {
			t.Errorf("Marshal(%#v) = %s, want {}", empty, data)
		}
	}
	for _, bad := range []string{
		`[]`,
		`{"a":1,"a":2}`,
		`{"a":{"b":1,"b":2}}`,
		`{"x":` + strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1) + `}`,
		`{"x":1} {}`,
	} {
		if err := back.UnmarshalJSON([]byte(bad)); err == nil {
			t.Errorf("UnmarshalJSON(%.30s): no error", bad)
		}
	}
	if _, err := json.Marshal(Float(math.NaN())); err == nil {
		t.Error("Marshal(Float(NaN)): no error")
	}
}

func TestChunkKey(t *testing.T) {
	tests := []struct {
		coords []int
		key    string
	}{
		{nil, "c"},
		{[]int{0}, "c/0"},
		{[]int{1, 2, 0}, "c/1/2/0"},
		{[]int{14063, 7031, 0}, "c/14063/7031/0"},
	}
	for _, tc := range tests {
		if got := ChunkKey(tc.coords...); got != tc.key {
			t.Errorf("ChunkKey(%v) = %q, want %q", tc.coords, got, tc.key)
		}
		back, err := ParseChunkKey(tc.key)
		if err != nil || len(back) != len(tc.coords) || (len(back) > 0 && !reflect.DeepEqual(back, tc.coords)) {
			t.Errorf("ParseChunkKey(%q) = %v, %v", tc.key, back, err)
		}
	}
	for _, bad := range []string{"", "c/", "c//1", "c/01", "c/-1", "c/+1", "c/1/", "d/1", "c.1", "c/1a", "c/99999999999999999999", "zarr.json"} {
		if got, err := ParseChunkKey(bad); err == nil {
			t.Errorf("ParseChunkKey(%q) = %v, want an error", bad, got)
		}
	}
}
