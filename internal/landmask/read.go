package landmask

import (
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"io"
	"math"
	"os"

	"golang.org/x/image/tiff"
)

// MaxPixels bounds the mask Decode will allocate: far above a 0.1° tile
// (about 1.2 million pixels), far below what would exhaust memory.
const MaxPixels = 1 << 26

// Read decodes the landmask at path, which must be a w × h (width × height)
// single-band uint8 TIFF, into a row-major slice of h·w values. Errors name
// path and the reason.
func Read(path string, w, h int) ([]uint8, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("landmask: %w", err)
	}
	defer f.Close()
	pix, err := Decode(f, w, h)
	if err != nil {
		return nil, fmt.Errorf("landmask %s: %w", path, err)
	}
	return pix, nil
}

// TIFF tags and values the pre-check reads.
const (
	tagImageWidth      = 256
	tagImageLength     = 257
	tagBitsPerSample   = 258
	tagCompression     = 259
	tagPhotometric     = 262
	tagSamplesPerPixel = 277
	tagSampleFormat    = 339

	photoWhiteIsZero = 0
	photoBlackIsZero = 1
	photoPalette     = 3
)

var compressionNames = map[uint32]string{
	1: "none", 2: "CCITT RLE", 3: "CCITT Group 3", 4: "CCITT Group 4", 5: "LZW",
	6: "old-style JPEG", 7: "JPEG", 8: "DEFLATE", 32773: "PackBits", 32946: "DEFLATE",
	34712: "JPEG 2000", 34887: "LERC", 34925: "LZMA", 50000: "ZSTD", 50001: "WebP", 50002: "JPEG XL",
}

// ifd holds the fields of a TIFF's first IFD that decide whether it is a
// mask Decode can read, with the TIFF defaults for absent tags.
type ifd struct {
	width, height   uint32
	samples         uint32 // SamplesPerPixel
	bits            uint32 // first BitsPerSample
	compression     uint32
	photometric     uint32
	sampleFormat    uint32
	hasWidth, hasHt bool
}

// readIFD reads the header and first IFD of a classic TIFF.
func readIFD(r io.ReaderAt) (ifd, error) {
	var hdr [8]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return ifd{}, errors.New("not a TIFF file (too short)")
		}
		return ifd{}, err
	}
	var bo binary.ByteOrder
	switch string(hdr[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return ifd{}, errors.New("not a TIFF file")
	}
	switch bo.Uint16(hdr[2:4]) {
	case 42:
	case 43:
		return ifd{}, errors.New("BigTIFF not supported (write the landmask as a classic TIFF)")
	default:
		return ifd{}, errors.New("not a TIFF file")
	}
	off := int64(bo.Uint32(hdr[4:8]))
	var cnt [2]byte
	if _, err := r.ReadAt(cnt[:], off); err != nil {
		return ifd{}, fmt.Errorf("first IFD at %d: %w", off, noEOF(err))
	}
	n := int(bo.Uint16(cnt[:]))
	entries := make([]byte, 12*n)
	if _, err := r.ReadAt(entries, off+2); err != nil {
		return ifd{}, fmt.Errorf("first IFD at %d: %w", off, noEOF(err))
	}
	d := ifd{samples: 1, bits: 1, compression: 1, photometric: photoWhiteIsZero, sampleFormat: 1}
	for e := entries; len(e) >= 12; e = e[12:] {
		tag, typ, count := bo.Uint16(e[0:2]), bo.Uint16(e[2:4]), bo.Uint32(e[4:8])
		// The first value, when it is stored inline as a SHORT or LONG.
		var v uint32
		switch {
		case typ == 3 && count >= 1 && count <= 2:
			v = uint32(bo.Uint16(e[8:10]))
		case typ == 4 && count == 1:
			v = bo.Uint32(e[8:12])
		default:
			v = math.MaxUint32 // not inline, or an unexpected type
		}
		switch tag {
		case tagImageWidth:
			d.width, d.hasWidth = v, true
		case tagImageLength:
			d.height, d.hasHt = v, true
		case tagBitsPerSample:
			d.bits = v
			if count > 1 && d.samples == 1 {
				d.samples = count
			}
		case tagCompression:
			d.compression = v
		case tagPhotometric:
			d.photometric = v
		case tagSamplesPerPixel:
			d.samples = v
		case tagSampleFormat:
			d.sampleFormat = v
		}
	}
	return d, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// check says why d is not a w × h single-band uint8 mask Decode can read.
func (d ifd) check(w, h int) error {
	if !d.hasWidth || !d.hasHt || d.width == math.MaxUint32 || d.height == math.MaxUint32 {
		return errors.New("TIFF has no image size")
	}
	if d.samples != 1 {
		return fmt.Errorf("not single band: %d samples per pixel", d.samples)
	}
	if d.bits != 8 {
		return fmt.Errorf("not 8-bit: %d bits per sample", d.bits)
	}
	switch d.sampleFormat {
	case 1:
	case 2:
		return errors.New("samples are signed integers, want unsigned 8-bit")
	case 3:
		return errors.New("samples are floating point, want unsigned 8-bit")
	default:
		return fmt.Errorf("sample format %d, want unsigned 8-bit", d.sampleFormat)
	}
	switch d.compression {
	case 1, 5, 8, 32773, 32946:
	default:
		name, ok := compressionNames[d.compression]
		if !ok {
			name = fmt.Sprint(d.compression)
		}
		return fmt.Errorf("compression %s not supported (want none, DEFLATE, LZW or PackBits)", name)
	}
	switch d.photometric {
	case photoWhiteIsZero, photoBlackIsZero, photoPalette:
	default:
		return fmt.Errorf("photometric interpretation %d not supported for a single-band mask", d.photometric)
	}
	if int64(d.width) != int64(w) || int64(d.height) != int64(h) {
		return fmt.Errorf("size %d × %d (width × height), want %d × %d", d.width, d.height, w, h)
	}
	return nil
}

// Decode decodes a w × h single-band uint8 TIFF from r into a row-major
// slice of h·w values, as stored (see the package comment).
func Decode(r io.ReaderAt, w, h int) ([]uint8, error) {
	if w <= 0 || h <= 0 || int64(w)*int64(h) > MaxPixels {
		return nil, fmt.Errorf("cannot decode a %d × %d mask", w, h)
	}
	d, err := readIFD(r)
	if err != nil {
		return nil, err
	}
	if err := d.check(w, h); err != nil {
		return nil, err
	}
	// x/image/tiff uses r directly when it is an io.ReaderAt, reading
	// only the strips or tiles (never the whole file into memory).
	img, err := tiff.Decode(io.NewSectionReader(r, 0, math.MaxInt64))
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	var pix []uint8
	var stride int
	switch m := img.(type) {
	case *image.Gray:
		pix, stride = m.Pix, m.Stride
		if d.photometric == photoWhiteIsZero {
			// x/image/tiff inverts WhiteIsZero grey for display; the mask
			// is its stored values, as GDAL reads them.
			for i := range pix {
				pix[i] = 255 - pix[i]
			}
		}
	case *image.Paletted:
		// Palette indices are the stored values.
		pix, stride = m.Pix, m.Stride
	default:
		return nil, fmt.Errorf("decoded as %T, want single-band 8-bit grey", img)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h || b.Min != (image.Point{}) {
		return nil, fmt.Errorf("decoded bounds %v, want %d × %d", b, w, h)
	}
	if stride == w {
		return pix[:w*h], nil
	}
	out := make([]uint8, w*h)
	for i := range h {
		copy(out[i*w:(i+1)*w], pix[i*stride:])
	}
	return out, nil
}
