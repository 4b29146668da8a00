package landmask

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const fixtures = "../../testdata/landmask"

// The fixtures' size and pattern (testdata/landmask/make_fixtures.py).
const fw, fh = 50, 37

func pattern(i, j int) uint8 { return uint8((31*i + 7*j) % 256) }

// TestReadFixtures reads masks written by GDAL (through rasterio) in the
// layouts and codecs source landmasks come in, and checks every pixel.
func TestReadFixtures(t *testing.T) {
	for _, name := range []string{
		"striped_none.tiff",
		"striped_deflate_pred2.tiff",
		"tiled_deflate.tiff",
		"tiled_lzw_pred2.tiff",
		"tiled_packbits.tiff",
		"cog_deflate.tiff",
		"miniswhite.tiff",
		"palette.tiff",
	} {
		t.Run(name, func(t *testing.T) {
			pix, err := Read(filepath.Join(fixtures, name), fw, fh)
			if err != nil {
				t.Fatal(err)
			}
			if len(pix) != fw*fh {
				t.Fatalf("%d values, want %d", len(pix), fw*fh)
			}
			for i := range fh {
				for j := range fw {
					if got := pix[i*fw+j]; got != pattern(i, j) {
						t.Fatalf("(%d, %d) = %d, want %d", i, j, got, pattern(i, j))
					}
				}
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	tests := []struct {
		name    string
		w, h    int
		wantErr string
	}{
		{"zstd.tiff", fw, fh, "compression ZSTD not supported"},
		{"bigtiff.tiff", fw, fh, "BigTIFF not supported"},
		{"uint16.tiff", fw, fh, "not 8-bit: 16 bits per sample"},
		{"int8.tiff", fw, fh, "signed integers, want unsigned 8-bit"},
		{"two_band.tiff", fw, fh, "not single band: 2 samples per pixel"},
		{"not_a_tiff.tiff", fw, fh, "not a TIFF file"},
		{"tiled_deflate.tiff", fh, fw, "size 50 × 37 (width × height), want 37 × 50"},
		{"tiled_deflate.tiff", 1113, 1106, "size 50 × 37 (width × height), want 1113 × 1106"},
		{"missing.tiff", fw, fh, "no such file"},
		{"tiled_deflate.tiff", 0, fh, "cannot decode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(fixtures, tc.name)
			_, err := Read(path, tc.w, tc.h)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %v, want one naming %s and saying %q", err, path, tc.wantErr)
			}
		})
	}
}

// TestReadCorrupt checks a TIFF whose pixel data is cut off: the header
// is fine, so only the decoder can notice.
func TestReadCorrupt(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(fixtures, "striped_none.tiff"))
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{4, 7, 12, 300, len(raw) - 100} {
		if _, err := Decode(bytes.NewReader(raw[:cut]), fw, fh); err == nil {
			t.Errorf("TIFF cut at %d bytes decoded", cut)
		}
	}
}

// TestReadWriteRoundTrip reads what the package's own writer writes.
func TestReadWriteRoundTrip(t *testing.T) {
	const w, h = 97, 150
	pix := make([]uint8, w*h)
	for i := range pix {
		pix[i] = uint8(i * 13)
	}
	path := filepath.Join(t.TempDir(), "grid_0.05_85.05.tiff")
	if err := Write(path, w, h, pix); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path, w, h)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pix) {
		t.Fatal("read back differs from what was written")
	}
}

// FuzzDecode feeds Decode arbitrary bytes and sizes, seeded with the
// fixtures. It must never panic nor return a mask of the wrong length.
func FuzzDecode(f *testing.F) {
	entries, err := os.ReadDir(fixtures)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tiff") {
			raw, err := os.ReadFile(filepath.Join(fixtures, e.Name()))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(raw, uint16(fw), uint16(fh))
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte, w, h uint16) {
		// Keep masks small so the fuzzer spends its time on parsing.
		ww, hh := int(w%1024), int(h%1024)
		pix, err := Decode(bytes.NewReader(raw), ww, hh)
		if err == nil && len(pix) != ww*hh {
			t.Fatalf("%d values for %d × %d", len(pix), ww, hh)
		}
	})
}

// TestFixtureTags checks the fixtures are what their names say, so the
// tests above exercise what they claim to.
func TestFixtureTags(t *testing.T) {
	tests := []struct {
		name                     string
		compression, photometric uint32
	}{
		{"striped_none.tiff", 1, photoBlackIsZero},
		{"tiled_lzw_pred2.tiff", 5, photoBlackIsZero},
		{"tiled_deflate.tiff", 8, photoBlackIsZero},
		{"tiled_packbits.tiff", 32773, photoBlackIsZero},
		{"miniswhite.tiff", 8, photoWhiteIsZero},
		{"palette.tiff", 8, photoPalette},
		{"zstd.tiff", 50000, photoBlackIsZero},
	}
	for _, tc := range tests {
		f, err := os.Open(filepath.Join(fixtures, tc.name))
		if err != nil {
			t.Fatal(err)
		}
		d, err := readIFD(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if d.compression != tc.compression || d.photometric != tc.photometric || d.width != fw || d.height != fh {
			t.Errorf("%s: %+v, want compression %d photometric %d", tc.name, d, tc.compression, tc.photometric)
		}
	}
}
