package npy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const fixtures = "../../testdata/npy"

// TestOpenFixtures opens files written by numpy itself (see
// testdata/npy/make_fixtures.py).
func TestOpenFixtures(t *testing.T) {
	tests := []struct {
		file    string
		want    Header
		wantErr string // substring; "" = opens
	}{
		{"i1_2x3x4.npy", Header{Descr: "|i1", Shape: []int{2, 3, 4}, DataOffset: 128}, ""},
		{"f4_3x5.npy", Header{Descr: "<f4", Shape: []int{3, 5}, DataOffset: 128}, ""},
		{"f4_2x3x4_v2.npy", Header{Descr: "<f4", Shape: []int{2, 3, 4}, DataOffset: 128}, ""},
		{"u2_4_v3.npy", Header{Descr: "<u2", Shape: []int{4}, DataOffset: 128}, ""},
		{"f8_scalar.npy", Header{Descr: "<f8", Shape: []int{}, DataOffset: 128}, ""},
		{"bool_0x3.npy", Header{Descr: "|b1", Shape: []int{0, 3}, DataOffset: 128}, ""},
		{"f4_3x5_truncated.npy", Header{}, "truncated: want 188 bytes, have 181"},
		{"f4_fortran.npy", Header{}, "Fortran-order array not supported"},
		{"f4_bigendian.npy", Header{}, "big-endian dtype >f4 not supported"},
		{"structured.npy", Header{}, "structured dtypes are not supported"},
		{"unicode_U2.npy", Header{}, `dtype "<U2" not supported`},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(fixtures, tc.file)
			info, serr := Stat(path)
			f, err := Open(path)
			if (serr == nil) != (err == nil) || err != nil && serr.Error() != err.Error() {
				t.Errorf("Stat error %v, Open error %v", serr, err)
			}
			if err == nil && (!reflect.DeepEqual(info.Header, f.Header) || info.Size != f.Size || !info.ModTime.Equal(f.ModTime)) {
				t.Errorf("Stat %+v, Open %+v", info, f)
			}
			if tc.wantErr != "" {
				if err == nil {
					f.Close()
					t.Fatalf("Open succeeded, want error %q", tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("error %q, want it to name %s and contain %q", err, path, tc.wantErr)
				}
				var pe *fs.PathError
				if !errors.As(err, &pe) || pe.Path != path {
					t.Fatalf("error %#v is not an *fs.PathError for %s", err, path)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if !reflect.DeepEqual(f.Header, tc.want) {
				t.Fatalf("header %+v, want %+v", f.Header, tc.want)
			}
			if f.Size != f.Header.DataOffset+f.Header.DataSize() {
				t.Fatalf("size %d, header says %d", f.Size, f.Header.DataOffset+f.Header.DataSize())
			}
		})
	}
}

func TestReadValues(t *testing.T) {
	f, err := Open(filepath.Join(fixtures, "i1_2x3x4.npy"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	all := make([]byte, 30)
	n, err := f.ReadAt(all, 0)
	if n != 24 || err != io.EOF {
		t.Fatalf("ReadAt past the end = %d, %v; want 24, EOF", n, err)
	}
	for i := range 24 {
		if int8(all[i]) != int8(i-12) {
			t.Fatalf("element %d = %d, want %d", i, int8(all[i]), i-12)
		}
	}
	if n, err := f.ReadAt(all[:1], 24); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt at the end = %d, %v", n, err)
	}
	if _, err := f.ReadAt(all[:1], -1); err == nil {
		t.Fatal("negative offset accepted")
	}

	g, err := Open(filepath.Join(fixtures, "f4_3x5.npy"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	buf := make([]byte, 4)
	if _, err := g.ReadAt(buf, 7*4); err != nil {
		t.Fatal(err)
	}
	if v := math.Float32frombits(binary.LittleEndian.Uint32(buf)); v != 3.5 {
		t.Fatalf("element 7 = %v, want 3.5", v)
	}
}

func TestReadWindow(t *testing.T) {
	f, err := Open(filepath.Join(fixtures, "f4_2x3x4_v2.npy")) // arange(24) as (2, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	elem := func(r, c, b int) float32 { return float32(r*12 + c*4 + b) }
	windows := [][4]int{{0, 0, 2, 3}, {0, 1, 2, 3}, {1, 0, 2, 2}, {0, 2, 1, 3}, {1, 1, 1, 3}, {0, 0, 0, 0}}
	for _, w := range windows {
		r0, c0, r1, c1 := w[0], w[1], w[2], w[3]
		dst := make([]byte, (r1-r0)*(c1-c0)*4*4)
		if err := f.ReadWindow(dst, r0, c0, r1, c1); err != nil {
			t.Fatalf("window %v: %v", w, err)
		}
		i := 0
		for r := r0; r < r1; r++ {
			for c := c0; c < c1; c++ {
				for b := range 4 {
					if got := math.Float32frombits(binary.LittleEndian.Uint32(dst[i:])); got != elem(r, c, b) {
						t.Fatalf("window %v: (%d,%d,%d) = %v, want %v", w, r, c, b, got, elem(r, c, b))
					}
					i += 4
				}
			}
		}
	}
	for _, w := range [][4]int{{0, 0, 3, 1}, {-1, 0, 1, 1}, {1, 0, 0, 1}, {0, 0, 1, 4}} {
		if err := f.ReadWindow(make([]byte, 1024), w[0], w[1], w[2], w[3]); err == nil {
			t.Errorf("window %v outside the shape accepted", w)
		}
	}
	if err := f.ReadWindow(make([]byte, 8), 0, 0, 1, 1); err == nil {
		t.Error("short buffer accepted")
	}
}

// TestFileShrankAfterOpen checks that a file truncated under an open File
// gives an error, not short data (or, as a memory map would, SIGBUS).
func TestFileShrankAfterOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.npy")
	var buf bytes.Buffer
	if _, err := WriteHeader(&buf, "<f4", []int{100, 10}); err != nil {
		t.Fatal(err)
	}
	buf.Write(make([]byte, 4000))
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Truncate(path, 1000); err != nil {
		t.Fatal(err)
	}
	err = f.ReadWindow(make([]byte, 400), 50, 0, 60, 10)
	if err == nil || !strings.Contains(err.Error(), "shrank") || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %v, want one naming %s saying it shrank", err, path)
	}
}

func TestOpenNotRegular(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(dir)
	if err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("Open(dir) error %v", err)
	}
	_, err = Open(filepath.Join(dir, "missing.npy"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open(missing) error %v, want ErrNotExist", err)
	}
	_, err = Stat(dir)
	if err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("Stat(dir) error %v", err)
	}
	_, err = Stat(filepath.Join(dir, "missing.npy"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat(missing) error %v, want ErrNotExist", err)
	}
}

func TestOpenTrailingBytes(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(fixtures, "f4_3x5.npy"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "x.npy")
	os.WriteFile(path, append(raw, 0, 0, 0), 0o644)
	_, err = Open(path)
	if err == nil || !strings.Contains(err.Error(), "want 188 bytes, have 191 (3 trailing bytes)") {
		t.Fatalf("error %v", err)
	}
}

// header builds a preamble and dict by hand, padded as numpy pads it.
func header(major byte, dict string) []byte {
	pre := 10
	if major > 1 {
		pre = 12
	}
	total := (pre + len(dict) + 1 + 63) / 64 * 64
	b := append([]byte(magic), major, 0)
	if major == 1 {
		b = binary.LittleEndian.AppendUint16(b, uint16(total-pre))
	} else {
		b = binary.LittleEndian.AppendUint32(b, uint32(total-pre))
	}
	b = append(b, dict...)
	for len(b) < total-1 {
		b = append(b, ' ')
	}
	return append(b, '\n')
}

func TestParseHeader(t *testing.T) {
	tests := []struct {
		name    string
		raw     []byte
		want    Header
		wantErr string
	}{
		{"numpy form", header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"),
			Header{Descr: "<f4", Shape: []int{3, 4}, DataOffset: 128}, ""},
		{"any key order, double quotes, no trailing comma", header(1, `{"shape": (7,), "fortran_order": True, "descr": "|u1"}`),
			Header{Descr: "|u1", FortranOrder: true, Shape: []int{7}, DataOffset: 128}, ""},
		{"format 2.0", header(2, "{'descr': '<i1', 'fortran_order': False, 'shape': (1113, 1106, 128), }"),
			Header{Descr: "<i1", Shape: []int{1113, 1106, 128}, DataOffset: 128}, ""},
		{"0-d", header(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }"),
			Header{Descr: "<f8", Shape: []int{}, DataOffset: 128}, ""},
		{"trailing comma in shape", header(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3,), }"),
			Header{Descr: "<f8", Shape: []int{2, 3}, DataOffset: 128}, ""},

		{"empty", nil, Header{}, "bad magic"},
		{"short", []byte("hello\n"), Header{}, "bad magic"},
		{"magic only", []byte("\x93NUMPY\x01"), Header{}, "unexpected EOF"},
		{"bad magic", []byte("\x93NUMPZ\x01\x00\x00\x00"), Header{}, "bad magic"},
		{"version 4", []byte("\x93NUMPY\x04\x00\x00\x00"), Header{}, "unsupported format version 4.0"},
		{"version 1.1", []byte("\x93NUMPY\x01\x01\x00\x00"), Header{}, "unsupported format version 1.1"},
		{"short dict", header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }")[:40], Header{}, "unexpected EOF"},
		{"huge header length", []byte("\x93NUMPY\x02\x00\xff\xff\xff\xff"), Header{}, "exceeds"},
		{"missing key", header(1, "{'descr': '<f4', 'shape': (3, 4), }"), Header{}, `no "fortran_order" key`},
		{"extra key", header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}"), Header{}, `unexpected key "x"`},
		{"duplicate key", header(1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3,)}"), Header{}, "duplicate key"},
		{"int is not a tuple", header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3)}"), Header{}, "is an int, not a tuple"},
		{"list shape", header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': [3]}"), Header{}, "want a tuple"},
		{"negative dim", header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-3,)}"), Header{}, "non-negative"},
		{"leading zero", header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (03,)}"), Header{}, "leading zero"},
		{"python 2 long", header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3L,)}"), Header{}, "non-negative integer"},
		{"huge dim", header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}"), Header{}, "out of range"},
		{"count overflows", header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}"), Header{}, "overflows"},
		{"fortran not bool", header(1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (3,)}"), Header{}, "True or False"},
		{"Falsey", header(1, "{'descr': '<f4', 'fortran_order': Falsey, 'shape': (3,)}"), Header{}, "True or False"},
		{"unterminated string", header(1, "{'descr': '<f4"), Header{}, "unterminated string"},
		{"unquoted comma", header(1, "{'descr': '<f4, 'fortran_order': False, 'shape': (3,)}"), Header{}, "want ',' or '}'"},
		{"trailing garbage", header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,)} x"), Header{}, "trailing bytes"},
		{"no brace", header(1, "'descr': '<f4'"), Header{}, "want '{'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseHeader(bytes.NewReader(tc.raw))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(h, tc.want) {
				t.Fatalf("got %+v, want %+v", h, tc.want)
			}
		})
	}
}

func TestItemSizeAndDataSize(t *testing.T) {
	tests := []struct {
		descr string
		shape []int
		item  int
		data  int64
	}{
		{"|i1", []int{1113, 1106, 128}, 1, 1113 * 1106 * 128},
		{"<i1", []int{2, 3}, 1, 6},
		{"<f4", []int{1113, 1106}, 4, 1113 * 1106 * 4},
		{"<f8", []int{}, 8, 8},
		{"|b1", []int{0, 5}, 1, 0},
		{"<c16", []int{3}, 16, 48},
		{"<f4", []int{1 << 62, 2}, 4, -1}, // overflow
		{"<U2", []int{3}, 0, -1},
		{"|O", []int{3}, 0, -1},
		{"<f3", []int{3}, 0, -1},
		{"<i04", []int{3}, 0, -1},
		{"f4", []int{3}, 0, -1},
	}
	for _, tc := range tests {
		h := Header{Descr: tc.descr, Shape: tc.shape}
		item, err := h.ItemSize()
		if (err != nil) != (tc.item == 0) || item != tc.item {
			t.Errorf("%s: ItemSize = %d, %v; want %d", tc.descr, item, err, tc.item)
		}
		if got := h.DataSize(); got != tc.data {
			t.Errorf("%s %v: DataSize = %d, want %d", tc.descr, tc.shape, got, tc.data)
		}
	}
}

// TestRoundTripWriteHeader checks that what WriteHeader writes, Open reads.
func TestRoundTripWriteHeader(t *testing.T) {
	many := make([]int, 25000) // a format 2.0 header
	for i := range many {
		many[i] = 1
	}
	for _, shape := range [][]int{{1113, 1106, 128}, {150, 1113}, {7}, {}, many} {
		var buf bytes.Buffer
		n, err := WriteHeader(&buf, "<f4", shape)
		if err != nil {
			t.Fatal(err)
		}
		h, err := ParseHeader(&buf)
		if err != nil {
			t.Fatalf("shape of %d dims: %v", len(shape), err)
		}
		if h.DataOffset != n || !reflect.DeepEqual(h.Shape, shape) && len(shape) > 0 || h.Descr != "<f4" || h.FortranOrder {
			t.Fatalf("read back %+v (offset %d) for shape of %d dims", h.Descr, h.DataOffset, len(shape))
		}
	}
}

// TestOpenLongHeader opens a file whose header is longer than the first
// read: a format 2.0 header of 25,000 dimensions.
func TestOpenLongHeader(t *testing.T) {
	shape := make([]int, 25000)
	for i := range shape {
		shape[i] = 1
	}
	shape[0] = 3
	var buf bytes.Buffer
	if _, err := WriteHeader(&buf, "<f4", shape); err != nil {
		t.Fatal(err)
	}
	buf.Write(make([]byte, 12))
	path := filepath.Join(t.TempDir(), "long.npy")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	info, err := Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Header.Shape) != 25000 || info.Header.DataSize() != 12 {
		t.Fatalf("header of %d dims, %d data bytes", len(info.Header.Shape), info.Header.DataSize())
	}
}

func TestShapeString(t *testing.T) {
	for shape, want := range map[string]string{"": "()", "7": "(7,)", "3 4": "(3, 4)"} {
		h := Header{Shape: []int{}}
		for _, f := range strings.Fields(shape) {
			var v int
			for _, c := range f {
				v = v*10 + int(c-'0')
			}
			h.Shape = append(h.Shape, v)
		}
		if got := h.ShapeString(); got != want {
			t.Errorf("ShapeString(%v) = %q, want %q", h.Shape, got, want)
		}
	}
}

// FuzzParseHeader feeds ParseHeader arbitrary bytes, seeded from the numpy
// fixtures. A header it accepts must be self-consistent and print back to a
// dict that parses to the same header.
func FuzzParseHeader(f *testing.F) {
	entries, err := os.ReadDir(fixtures)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".npy") {
			raw, err := os.ReadFile(filepath.Join(fixtures, e.Name()))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(raw)
		}
	}
	f.Add(header(1, `{"shape": (7,), "fortran_order": True, "descr": "|u1"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, err := ParseHeader(bytes.NewReader(raw))
		if err != nil {
			return
		}
		if h.DataOffset > int64(len(raw)) || h.DataOffset < 10 {
			t.Fatalf("data offset %d for %d bytes", h.DataOffset, len(raw))
		}
		for _, d := range h.Shape {
			if d < 0 {
				t.Fatalf("negative dimension in %v", h.Shape)
			}
		}
		if h.Count() < 0 {
			t.Fatalf("accepted overflowing shape %v", h.Shape)
		}
		if strings.ContainsAny(h.Descr, "'\\\n") {
			return // WriteHeader refuses these; nothing to round-trip
		}
		fo := "False"
		if h.FortranOrder {
			fo = "True"
		}
		again, err := ParseHeader(bytes.NewReader(header(2, "{'descr': '"+h.Descr+"', 'fortran_order': "+fo+", 'shape': "+h.ShapeString()+"}")))
		if err != nil {
			t.Fatalf("reprinted header of %+v does not parse: %v", h, err)
		}
		if again.Descr != h.Descr || again.FortranOrder != h.FortranOrder || !reflect.DeepEqual(again.Shape, h.Shape) {
			t.Fatalf("round trip %+v → %+v", h, again)
		}
	})
}

// FuzzCheckFile runs Open's and Stat's checks (header read with one or two
// preads, dtype, order, length) on arbitrary file contents. A file they
// accept has exactly the length its header says.
func FuzzCheckFile(f *testing.F) {
	entries, err := os.ReadDir(fixtures)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".npy") {
			raw, err := os.ReadFile(filepath.Join(fixtures, e.Name()))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(raw)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, d, err := checkFile(bytes.NewReader(raw), int64(len(raw)))
		if err != nil {
			return
		}
		if h.DataOffset+h.DataSize() != int64(len(raw)) || d.size <= 0 || h.FortranOrder {
			t.Fatalf("accepted %+v (item %d) for %d bytes", h, d.size, len(raw))
		}
	})
}
