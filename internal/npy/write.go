package npy

import (
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// headerAlign is NumPy's ARRAY_ALIGN: the data of a .npy file starts at a
// multiple of 64 bytes, so that a memory map of it is aligned for any dtype.
const headerAlign = 64

// WriteHeader writes the header of a C-order .npy file holding an array of
// the given dtype descr (e.g. "<i1", "<f4") and shape, and returns the
// number of bytes written, which is the offset of the data. The array data,
// prod(shape) elements in C order, follows it directly.
//
// The header is NumPy format 1.0, or 2.0 when the dict does not fit in a
// 1.0 header (65535 bytes), with the dict written as numpy.save writes it:
//
//	{'descr': '<i1', 'fortran_order': False, 'shape': (1113, 1106, 128), }
//
// padded with spaces and ended with '\n' so the data offset is a multiple
// of 64.
func WriteHeader(w io.Writer, descr string, shape []int) (int64, error) {
	hdr, err := encodeHeader(descr, shape)
	if err != nil {
		return 0, err
	}
	n, err := w.Write(hdr)
	if err != nil {
		return int64(n), fmt.Errorf("npy: write header: %w", err)
	}
	return int64(n), nil
}

// encodeHeader returns the magic, version, header length and padded dict.
func encodeHeader(descr string, shape []int) ([]byte, error) {
	if descr == "" || strings.ContainsAny(descr, "'\\\n") {
		return nil, fmt.Errorf("npy: invalid descr %q", descr)
	}
	var dict strings.Builder
	dict.WriteString("{'descr': '")
	dict.WriteString(descr)
	dict.WriteString("', 'fortran_order': False, 'shape': (")
	for i, d := range shape {
		if d < 0 {
			return nil, fmt.Errorf("npy: negative dimension %d in shape %v", d, shape)
		}
		if i > 0 {
			dict.WriteString(", ")
		}
		dict.WriteString(strconv.Itoa(d))
	}
	if len(shape) == 1 {
		dict.WriteString(",") // a Python 1-tuple
	}
	dict.WriteString("), }")

	// Format 1.0 has a 2-byte header length, 2.0 a 4-byte one. The
	// preamble is the 6-byte magic, 2 version bytes and the length.
	major, lenSize := byte(1), 2
	preamble := 8 + lenSize
	total := alignUp(preamble + dict.Len() + 1) // + '\n'
	if total-preamble > 0xFFFF {
		major, lenSize = 2, 4
		preamble = 8 + lenSize
		total = alignUp(preamble + dict.Len() + 1)
	}
	buf := make([]byte, 0, total)
	buf = append(buf, "\x93NUMPY"...)
	buf = append(buf, major, 0)
	if lenSize == 2 {
		buf = binary.LittleEndian.AppendUint16(buf, uint16(total-preamble))
	} else {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(total-preamble))
	}
	buf = append(buf, dict.String()...)
	for len(buf) < total-1 {
		buf = append(buf, ' ')
	}
	buf = append(buf, '\n')
	return buf, nil
}

func alignUp(n int) int { return (n + headerAlign - 1) / headerAlign * headerAlign }
