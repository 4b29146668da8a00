package index

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/tesserafs/tesserafs/internal/npy"
)

// writeNpy writes a .npy file holding only a header for descr and shape
// (C order unless fortran), then sets its length: size < 0 means the full
// length the header promises, made sparse with ftruncate so that tests
// cost no disk; otherwise exactly size bytes.
func writeNpy(tb testing.TB, path, descr string, shape []int, fortran bool, size int64) {
	tb.Helper()
	var buf bytes.Buffer
	if _, err := npy.WriteHeader(&buf, descr, shape); err != nil {
		tb.Fatal(err)
	}
	hdr := buf.Bytes()
	if fortran {
		hdr = bytes.Replace(hdr, []byte("'fortran_order': False,"), []byte("'fortran_order': True, "), 1)
	}
	if size < 0 {
		size = fullSize(tb, hdr)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, hdr, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		tb.Fatal(err)
	}
}

// fullSize is the length of the file whose header is hdr.
func fullSize(tb testing.TB, hdr []byte) int64 {
	tb.Helper()
	h, err := npy.ParseHeader(bytes.NewReader(hdr))
	if err != nil {
		tb.Fatal(err)
	}
	return h.DataOffset + h.DataSize()
}

// tileSpec says how to write one tile's files.
type tileSpec struct {
	year     int
	coord    TileCoord
	scales3D bool
	landmask bool
}

// writeTile writes a valid tile (sparse .npy files of the tile's grid) and
// optionally a placeholder landmask (discovery does not read it).
func writeTile(tb testing.TB, p *Projector, root string, s tileSpec) Footprint {
	tb.Helper()
	fp, err := p.Footprint(s.coord)
	if err != nil {
		tb.Fatal(err)
	}
	name := s.coord.Name()
	dir := filepath.Join(root, RepresentationDir, strconv.Itoa(s.year), name)
	writeNpy(tb, filepath.Join(dir, name+".npy"), "|i1", []int{fp.H, fp.W, Bands}, false, -1)
	scales := []int{fp.H, fp.W}
	if s.scales3D {
		scales = append(scales, Bands)
	}
	writeNpy(tb, filepath.Join(dir, name+"_scales.npy"), "<f4", scales, false, -1)
	if s.landmask {
		lm := filepath.Join(root, LandmaskDir, name+".tiff")
		if err := os.MkdirAll(filepath.Dir(lm), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(lm, []byte("placeholder"), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return fp
}
