package landmask

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"image"
	"io"
	"math/bits"
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
	err = f.Chmod(0o644) // CreateTemp makes 0600; a mask is data for others
	if err == nil {
		err = Encode(bw, w, h, pix)
	}
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

// EncodeUniform writes a w × h single-band uint8 DEFLATE TIFF whose every
// pixel is v (an all-land mask for a sparse synthetic tile), without
// compressing w·h bytes: the DEFLATE stream is built directly, one literal
// then length-258 matches at distance 1 with the fixed Huffman codes, so it
// costs microseconds where Encode costs milliseconds. Same tags as Encode
// (one strip, BlackIsZero) less the resolution tags.
func EncodeUniform(out io.Writer, w, h int, v uint8) error {
	if w <= 0 || h <= 0 || w > 0xFFFF || h > 0xFFFF {
		return fmt.Errorf("landmask: bad size %d × %d", w, h)
	}
	data := uniformZlib(w*h, v)
	if len(data)%2 == 1 {
		data = append(data, 0) // the IFD starts on a word boundary
	}
	le := binary.LittleEndian
	buf := make([]byte, 0, 8+len(data)+2+9*12+4)
	buf = append(buf, "II*\x00"...)
	buf = le.AppendUint32(buf, uint32(8+len(data)))
	buf = append(buf, data...)
	const short, long = 3, 4
	entries := []struct {
		tag, typ uint16
		val      uint32
	}{
		{256, long, uint32(w)},         // ImageWidth
		{257, long, uint32(h)},         // ImageLength
		{258, short, 8},                // BitsPerSample
		{259, short, 8},                // Compression: Adobe DEFLATE
		{262, short, 1},                // PhotometricInterpretation: BlackIsZero
		{273, long, 8},                 // StripOffsets
		{277, short, 1},                // SamplesPerPixel
		{278, long, uint32(h)},         // RowsPerStrip
		{279, long, uint32(len(data))}, // StripByteCounts (padding included, harmless)
	}
	buf = le.AppendUint16(buf, uint16(len(entries)))
	for _, e := range entries {
		buf = le.AppendUint16(buf, e.tag)
		buf = le.AppendUint16(buf, e.typ)
		buf = le.AppendUint32(buf, 1)
		if e.typ == short {
			buf = le.AppendUint16(buf, uint16(e.val))
			buf = le.AppendUint16(buf, 0)
		} else {
			buf = le.AppendUint32(buf, e.val)
		}
	}
	buf = le.AppendUint32(buf, 0) // no next IFD
	_, err := out.Write(buf)
	return err
}

// uniformZlib returns a zlib stream of n ≥ 1 bytes all equal to v: one
// final fixed-Huffman block holding the literal v, ⌊(n−1)/258⌋ matches of
// length 258 at distance 1, the remaining (n−1) mod 258 bytes as literals,
// and the end-of-block code; then the Adler-32 of the data, in closed form.
func uniformZlib(n int, v uint8) []byte {
	var bw deflateBits
	bw.buf = append(make([]byte, 0, 64+n/258*13/8), 0x78, 0x01) // 32 KiB window, no dictionary
	bw.bits(1, 1)                                               // BFINAL
	bw.bits(1, 2)                                               // BTYPE 01: fixed Huffman codes
	literal := func() {
		if v < 144 {
			bw.code(0x30+uint32(v), 8)
		} else {
			bw.code(0x190+uint32(v)-144, 9)
		}
	}
	literal()
	for range (n - 1) / 258 {
		bw.code(0xC0+285-280, 8) // length symbol 285: 258, no extra bits
		bw.code(0, 5)            // distance code 0: 1, no extra bits
	}
	for range (n - 1) % 258 {
		literal()
	}
	bw.code(0, 7) // end of block (symbol 256)
	bw.flush()

	const mod = 65521
	nn := uint64(n)
	tri := nn / 2 % mod * ((nn + 1) % mod) // n(n+1)/2 mod 65521, without overflow
	if nn%2 == 1 {
		tri = nn % mod * ((nn + 1) / 2 % mod)
	}
	a := (1 + nn%mod*uint64(v)) % mod
	b := (nn%mod + tri%mod*uint64(v)) % mod
	return binary.BigEndian.AppendUint32(bw.buf, uint32(b<<16|a))
}

// deflateBits packs DEFLATE's bit stream: fields least significant bit
// first, Huffman codes most significant bit first.
type deflateBits struct {
	buf []byte
	acc uint64
	n   uint
}

func (d *deflateBits) bits(v uint32, n uint) {
	d.acc |= uint64(v) << d.n
	d.n += n
	for d.n >= 8 {
		d.buf = append(d.buf, byte(d.acc))
		d.acc >>= 8
		d.n -= 8
	}
}

func (d *deflateBits) code(c uint32, n uint) {
	d.bits(bits.Reverse32(c)>>(32-n), n)
}

func (d *deflateBits) flush() {
	if d.n > 0 {
		d.buf = append(d.buf, byte(d.acc))
		d.acc, d.n = 0, 0
	}
}
