package landmask

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/image/tiff"
)

func TestWriteRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		w, h int
		pix  func(i, j int) uint8
	}{
		{"all land", 97, 1113, func(i, j int) uint8 { return 1 }},
		{"water squares", 160, 300, func(i, j int) uint8 {
			if (i/50+j/50)%3 == 0 {
				return 0
			}
			return 1
		}},
		{"one pixel", 1, 1, func(i, j int) uint8 { return 0 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pix := make([]uint8, tc.w*tc.h)
			for i := range tc.h {
				for j := range tc.w {
					pix[i*tc.w+j] = tc.pix(i, j)
				}
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "grid_0.05_85.05.tiff")
			if err := Write(path, tc.w, tc.h, pix); err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
				t.Fatalf("stat %v, %v: want mode 0644", fi.Mode(), err)
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			checkTags(t, raw)
			img, err := tiff.Decode(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			g, ok := img.(*image.Gray)
			if !ok {
				t.Fatalf("decoded %T, want *image.Gray", img)
			}
			if g.Rect != image.Rect(0, 0, tc.w, tc.h) {
				t.Fatalf("bounds %v, want %d × %d", g.Rect, tc.w, tc.h)
			}
			for i := range tc.h {
				if !bytes.Equal(g.Pix[i*g.Stride:i*g.Stride+tc.w], pix[i*tc.w:(i+1)*tc.w]) {
					t.Fatalf("row %d differs", i)
				}
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("directory holds %d entries, want only the mask (no temp files)", len(entries))
			}
		})
	}
}

// checkTags checks the TIFF is one band of 8-bit samples, DEFLATE
// compressed, reading the first IFD directly.
func checkTags(t *testing.T, raw []byte) {
	t.Helper()
	var bo binary.ByteOrder
	switch string(raw[:4]) {
	case "II*\x00":
		bo = binary.LittleEndian
	case "MM\x00*":
		bo = binary.BigEndian
	default:
		t.Fatalf("not a classic TIFF: % x", raw[:4])
	}
	ifd := bo.Uint32(raw[4:])
	n := int(bo.Uint16(raw[ifd:]))
	tags := map[uint16]uint32{}
	for k := range n {
		e := raw[int(ifd)+2+12*k:]
		tag, typ := bo.Uint16(e), bo.Uint16(e[2:])
		if typ == 3 { // SHORT
			tags[tag] = uint32(bo.Uint16(e[8:]))
		} else {
			tags[tag] = bo.Uint32(e[8:])
		}
	}
	const (
		bitsPerSample   = 258
		compression     = 259
		samplesPerPixel = 277
		deflate         = 8
	)
	if tags[bitsPerSample] != 8 || tags[compression] != deflate {
		t.Errorf("BitsPerSample %d Compression %d, want 8 and %d (DEFLATE)", tags[bitsPerSample], tags[compression], deflate)
	}
	if s, ok := tags[samplesPerPixel]; ok && s != 1 {
		t.Errorf("SamplesPerPixel %d, want 1", s)
	}
}

func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
		w, h int
		pix  []uint8
	}{
		{"short pixels", filepath.Join(dir, "a.tiff"), 3, 3, make([]uint8, 8)},
		{"zero size", filepath.Join(dir, "b.tiff"), 0, 3, nil},
		{"missing directory", filepath.Join(dir, "no", "c.tiff"), 1, 1, []uint8{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := Write(tc.path, tc.w, tc.h, tc.pix); err == nil {
				t.Fatal("no error")
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left %d files behind after errors", len(entries))
	}
}

func TestEncodeUniform(t *testing.T) {
	tests := []struct {
		w, h int
		v    uint8
	}{
		{1, 1, 1}, {1, 2, 0}, {257, 1, 1}, {259, 1, 1}, {155, 1120, 1}, {1113, 1105, 1}, {300, 7, 143}, {300, 7, 144}, {31, 17, 255},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%dx%d=%d", tc.w, tc.h, tc.v), func(t *testing.T) {
			var buf bytes.Buffer
			if err := EncodeUniform(&buf, tc.w, tc.h, tc.v); err != nil {
				t.Fatal(err)
			}
			raw := buf.Bytes()
			checkTags(t, raw)
			// The strip is a valid zlib stream, Adler-32 included.
			off := binary.LittleEndian.Uint32(raw[4:]) // IFD offset: the strip is [8, off)
			zr, err := zlib.NewReader(bytes.NewReader(raw[8:off]))
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(zr)
			if err != nil {
				t.Fatalf("inflate: %v", err)
			}
			if !bytes.Equal(data, bytes.Repeat([]byte{tc.v}, tc.w*tc.h)) {
				t.Fatalf("inflated %d bytes, not %d × %d", len(data), tc.w, tc.h)
			}
			img, err := tiff.Decode(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			g := img.(*image.Gray)
			if g.Rect != image.Rect(0, 0, tc.w, tc.h) || !bytes.Equal(g.Pix, data) {
				t.Fatalf("decoded %v", g.Rect)
			}
		})
	}
	for _, bad := range [][2]int{{0, 1}, {1, 0}, {70000, 1}} {
		if err := EncodeUniform(io.Discard, bad[0], bad[1], 1); err == nil {
			t.Errorf("EncodeUniform(%d × %d): no error", bad[0], bad[1])
		}
	}
}

func BenchmarkEncodeUniform(b *testing.B) {
	for b.Loop() {
		EncodeUniform(io.Discard, 1113, 1105, 1)
	}
}
