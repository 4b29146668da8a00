package landmask

import (
	"bufio"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/image/tiff"
)

// Encode writes a w × h single-band uint8 TIFF of pix (row-major, len w·h)
// with DEFLATE compression: the form of a source tile's landmask, 0 = water.
// It carries no GeoTIFF tags: tesserafs computes a tile's grid from its
// name, never from the mask.
func Encode(out io.Writer, w, h int, pix []uint8) error {
	if w <= 0 || h <= 0 || len(pix) != w*h {
		return fmt.Errorf("landmask: %d pixels for %d × %d", len(pix), w, h)
	}
	img := &image.Gray{Pix: pix, Stride: w, Rect: image.Rect(0, 0, w, h)}
	return tiff.Encode(out, img, &tiff.Options{Compression: tiff.Deflate})
}

// Write writes Encode's TIFF to path atomically: into a temporary file in
// the same directory, renamed over path only once complete, so a reader
// (or a killed writer) never sees a half-written mask under path's name.
// It does not fsync: it guards against a killed process, not a power cut.
func Write(path string, w, h int, pix []uint8) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("landmask %s: %w", path, err)
	}
	tmp := f.Name()
	bw := bufio.NewWriterSize(f, 1<<16)
	err = Encode(bw, w, h, pix)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("landmask %s: %w", path, err)
	}
	return nil
}
