package zarr

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteInteropStore writes a small Zarr v3 store with this package alone,
// for checking with other readers, when ZARR_INTEROP_DIR names a directory:
//
//	ZARR_INTEROP_DIR=/tmp/interop go test ./zarr -run TestWriteInteropStore
//	python testdata/zarr/check_interop_store.py /tmp/interop/store.zarr
//
// The store has a root group with consolidated metadata and a group "g" of
// four arrays: sharded int8 and float32 (NaN fill) arrays whose shape is not a
// multiple of the shard shape, with absent inner chunks and an absent shard; an
// unsharded float64 coordinate array; and an unsharded bytes+zstd uint8 array
// with an absent chunk. The values are the functions in
// check_interop_store.py. The Go tests never need Python.
func TestWriteInteropStore(t *testing.T) {
	dir := os.Getenv("ZARR_INTEROP_DIR")
	if dir == "" {
		t.Skip("ZARR_INTEROP_DIR not set: make interop runs this test and checks its store with Python readers")
	}
	root := filepath.Join(dir, "store.zarr")
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	quiet := func(r, c int) bool { return r >= 256 && c >= 256 } // no data: the absent shard
	arrays := []struct {
		path  string
		meta  ArrayMetadata
		inner []int // sharded: the inner chunk shape
		elem  func(idx []int, b []byte) []byte
	}{
		{"g/emb", ArrayMetadata{
			Shape: []int{300, 260, 16}, DataType: Int8, ChunkShape: []int{256, 256, 16}, FillValue: 0,
			Codecs: []Codec{ShardingCodec([]int{4, 4, 16},
				[]Codec{BytesCodec(Int8), ZstdCodec(3)}, ShardIndexCodecs())},
			DimensionNames: []string{"northing", "easting", "band"},
		}, []int{4, 4, 16}, func(i []int, b []byte) []byte {
			r, c, k := i[0], i[1], i[2]
			if quiet(r, c) || r < 8 && c < 8 {
				return append(b, 0)
			}
			return append(b, byte(int8((r*7+c*13+k*3)%255-127)))
		}},
		{"g/scales", ArrayMetadata{
			Shape: []int{300, 260}, DataType: Float32, ChunkShape: []int{256, 256}, FillValue: math.NaN(),
			Codecs: []Codec{ShardingCodec([]int{4, 4},
				[]Codec{BytesCodec(Float32), ZstdCodec(3)}, ShardIndexCodecs())},
			DimensionNames: []string{"northing", "easting"},
		}, []int{4, 4}, func(i []int, b []byte) []byte {
			r, c := i[0], i[1]
			v := float32(r*1000+c) + 0.25
			if quiet(r, c) || r >= 100 && r < 108 && c >= 100 && c < 108 {
				v = float32(math.NaN())
			}
			return binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}},
		{"g/easting", ArrayMetadata{
			Shape: []int{260}, DataType: Float64, ChunkShape: []int{128}, FillValue: 0,
			Codecs:         []Codec{BytesCodec(Float64)},
			DimensionNames: []string{"easting"},
		}, nil, func(i []int, b []byte) []byte {
			return binary.LittleEndian.AppendUint64(b, math.Float64bits(699960+(float64(i[0])+0.5)*10))
		}},
		{"g/rgb", ArrayMetadata{
			Shape: []int{300, 260, 4}, DataType: Uint8, ChunkShape: []int{128, 128, 4}, FillValue: 0,
			Codecs:         []Codec{BytesCodec(Uint8), ZstdCodec(3)},
			DimensionNames: []string{"northing", "easting", "rgba"},
		}, nil, func(i []int, b []byte) []byte {
			if quiet(i[0], i[1]) {
				return append(b, 0)
			}
			return append(b, byte(i[0]+2*i[1]+3*i[2]))
		}},
	}

	write := func(key string, data []byte) {
		t.Helper()
		p := filepath.Join(root, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	encode := func(v any) []byte {
		t.Helper()
		data, err := Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}

	group := GroupMetadata{Attributes: Attrs{{"title", "zarr package interop"}, {"transform", []Float{10, 0, 699960}}}}
	entries := []Entry{{"g", group}}
	enc := NewShardEncoder(3)
	var shard []byte
	written, absent := 0, 0
	for _, a := range arrays {
		entries = append(entries, Entry{a.path, a.meta})
		write(a.path+"/zarr.json", encode(a.meta))
		fillBytes := fillElement(t, a.meta)
		forEach(a.meta.ChunkGrid(), func(chunk []int) {
			origin := make([]int, len(chunk))
			for d := range chunk {
				origin[d] = chunk[d] * a.meta.ChunkShape[d]
			}
			var data []byte
			if a.inner == nil {
				raw := chunkBytes(a.meta.Shape, origin, a.meta.ChunkShape, fillBytes, a.elem)
				if raw != nil && len(a.meta.Codecs) > 1 {
					raw = enc.EncodeZstd(nil, raw)
				}
				data = raw
			} else {
				var inners [][]byte
				grid := make([]int, len(a.inner))
				for d := range grid {
					grid[d] = a.meta.ChunkShape[d] / a.inner[d]
				}
				forEach(grid, func(in []int) {
					o := make([]int, len(in))
					for d := range in {
						o[d] = origin[d] + in[d]*a.inner[d]
					}
					inners = append(inners, chunkBytes(a.meta.Shape, o, a.inner, fillBytes, a.elem))
				})
				var err error
				shard, err = enc.Encode(shard, len(inners), func(i int) []byte { return inners[i] })
				if err != nil {
					t.Fatal(err)
				}
				data = shard
			}
			if data == nil {
				absent++
				return
			}
			written++
			write(a.path+"/"+ChunkKey(chunk...), data)
		})
	}
	write("g/zarr.json", encode(group))
	write("zarr.json", encode(GroupMetadata{
		Attributes:   Attrs{{"zarr_package", "interop"}},
		Consolidated: &ConsolidatedMetadata{Entries: entries},
	}))
	t.Logf("wrote %s: %d chunks or shards, %d absent", root, written, absent)
}

// fillElement returns the bytes of one fill-value element.
func fillElement(t *testing.T, m ArrayMetadata) []byte {
	t.Helper()
	switch m.DataType {
	case Float32:
		f, _ := floatValue(m.FillValue)
		return binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(f)))
	case Float64:
		f, _ := floatValue(m.FillValue)
		return binary.LittleEndian.AppendUint64(nil, math.Float64bits(f))
	case Int8, Uint8:
		_, mag, _ := intValue(m.FillValue)
		return []byte{byte(mag)}
	}
	t.Fatalf("fillElement: %s not handled", m.DataType)
	return nil
}

// chunkBytes returns the bytes of the chunk of the given shape at origin, C
// order, with fill outside the array; nil if it holds nothing but fill.
// (A NaN fill is compared by bits, as the canonical NaN.)
func chunkBytes(shape, origin, chunk []int, fill []byte, elem func([]int, []byte) []byte) []byte {
	var b []byte
	idx := make([]int, len(chunk))
	allFill := true
	forEach(chunk, func(rel []int) {
		inside := true
		for d := range rel {
			idx[d] = origin[d] + rel[d]
			inside = inside && idx[d] < shape[d]
		}
		start := len(b)
		if inside {
			b = elem(idx, b)
		} else {
			b = append(b, fill...)
		}
		if !bytes.Equal(b[start:], fill) {
			allFill = false
		}
	})
	if allFill {
		return nil
	}
	return b
}

// forEach calls fn with every index of a grid of the given shape, in C order.
func forEach(shape []int, fn func(idx []int)) {
	for _, n := range shape {
		if n <= 0 {
			return
		}
	}
	idx := make([]int, len(shape))
	for {
		fn(idx)
		d := len(idx) - 1
		for ; d >= 0; d-- {
			idx[d]++
			if idx[d] < shape[d] {
				break
			}
			idx[d] = 0
		}
		if d < 0 {
			return
		}
	}
}
