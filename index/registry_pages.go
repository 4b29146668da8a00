package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"
)

// A registry is outside bytes: before parquet-go decodes a page it
// allocates what the page header claims (the compressed bytes, the
// uncompressed buffer, one slot per value), so a corrupt header in a small
// file could cost gigabytes. checkPages walks every page header of every
// column chunk first, with its own bounded Thrift compact-protocol reader,
// and rejects a file whose pages claim more than the bytes that hold them
// can plausibly decode to.

// Bounds on the footer (the file's metadata), which parquet-go decodes
// with allocations as large as the lengths it claims: at most maxFooter
// bytes, maxFooterStructs structs and maxFooterElems list elements. A
// registry of 10 M rows in row groups of 10,000 has a footer of a few MB
// and about 50,000 structs.
const (
	maxFooter        = 64 << 20
	maxFooterStructs = 1 << 20
	maxFooterElems   = 1 << 22
)

// checkFooter checks the magic numbers and walks the footer's Thrift
// bytes, so that every length and count it claims fits in those bytes,
// before parquet-go decodes it.
func checkFooter(r io.ReaderAt, size int64) error {
	if size < 12 {
		return fmt.Errorf("%d bytes: too short for a parquet file", size)
	}
	var head, tail [8]byte
	if n, err := r.ReadAt(head[:4], 0); n < 4 {
		return fmt.Errorf("reading the magic number: %w", err)
	}
	if n, err := r.ReadAt(tail[:], size-8); n < 8 {
		return fmt.Errorf("reading the footer length: %w", err)
	}
	if string(head[:4]) != "PAR1" || string(tail[4:]) != "PAR1" {
		return fmt.Errorf("magic numbers %q and %q, want PAR1 (an encrypted footer is not supported)", head[:4], tail[4:])
	}
	n := int64(binary.LittleEndian.Uint32(tail[:4]))
	if n > size-12 || n > maxFooter {
		return fmt.Errorf("footer of %d bytes in a file of %d (at most %d)", n, size, maxFooter)
	}
	buf := make([]byte, n)
	if k, err := r.ReadAt(buf, size-8-n); int64(k) < n {
		return fmt.Errorf("reading the footer: %w", err)
	}
	t := thriftReader{b: buf, structs: maxFooterStructs, elems: maxFooterElems}
	if err := t.skip(ctStruct, 0); err != nil {
		if errors.Is(err, errShort) {
			return errors.New("footer: a length or count runs past the footer's bytes")
		}
		return fmt.Errorf("footer: %w", err)
	}
	return nil
}

// Bounds on one page.
const (
	// maxPageHeader is the largest page header read (statistics included).
	maxPageHeader = 1 << 20
	// maxPageBytes bounds a page's uncompressed size (a writer without a
	// page size limit puts 1.5 M hashes, 100 MB, in one page);
	// maxPageRatio bounds it relative to its compressed size, above
	// minPageBytes, which is what keeps a small file's claims small.
	maxPageBytes = 256 << 20
	minPageBytes = 4 << 20
	maxPageRatio = 1024
	// pageBytesPerFileByte lets a page of a large file be as large as
	// that (up to maxPageBytes) whatever its compressed size: a writer
	// without dictionaries puts a constant column of 1.5 M rows, 12 MB,
	// in a page that zstd makes a few hundred bytes.
	pageBytesPerFileByte = 16
	// valuesPerFileByte bounds the values one page may claim relative to
	// the file's size, above minPageValues: a page of run-length-encoded
	// values can hold many per byte, but not more than the file's rows.
	valuesPerFileByte = 256
	minPageValues     = 1 << 16
)

// pageHeader is what checkPages reads of a parquet PageHeader.
type pageHeader struct {
	typ                      int32
	uncompressed, compressed int32
	// numValues is the data or dictionary page header's num_values; isData
	// says which.
	numValues int32
	isData    bool
	hasValues bool
	// v2 level lengths, which must fit in the page.
	levelBytes int64
}

// checkPages checks the page headers of every column chunk of f (size
// bytes, read through r) against the chunk's and the file's sizes and the
// row group's rows.
func checkPages(r io.ReaderAt, size int64, f *parquet.File) error {
	md := f.Metadata()
	maxValues := max(int64(minPageValues), valuesPerFileByte*size)
	if md.NumRows > maxValues {
		// Rows cost decoding time even when their pages are small.
		return fmt.Errorf("claims %d rows in %d bytes (at most %d)", md.NumRows, size, maxValues)
	}
	buf := make([]byte, 0, 4096)
	for gi, rg := range md.RowGroups {
		for _, c := range rg.Columns {
			m := c.MetaData
			start := m.DataPageOffset
			if m.DictionaryPageOffset > 0 {
				start = min(start, m.DictionaryPageOffset)
			}
			end := start + m.TotalCompressedSize
			where := fmt.Sprintf("row group %d: column %v", gi, m.PathInSchema)
			if start < 4 || m.TotalCompressedSize < 0 || end > size || end < start {
				return fmt.Errorf("%s: bytes %d+%d lie outside the file (%d bytes)", where, start, m.TotalCompressedSize, size)
			}
			var values int64
			for pos := start; pos < end; {
				h, n, err := readPageHeader(r, pos, end, &buf)
				if err != nil {
					return fmt.Errorf("%s: page at byte %d: %w", where, pos, err)
				}
				if err := h.check(rg.NumRows, maxValues, pageBytesPerFileByte*size, end-pos-n); err != nil {
					return fmt.Errorf("%s: page at byte %d: %w", where, pos, err)
				}
				if h.isData {
					values += int64(h.numValues)
				}
				pos += n + int64(h.compressed)
			}
			if values != m.NumValues {
				return fmt.Errorf("%s: pages hold %d values, the column chunk says %d", where, values, m.NumValues)
			}
		}
	}
	return nil
}

// check bounds one page; room is the chunk's bytes after the header, and
// any page may be minBytes uncompressed.
func (h *pageHeader) check(rows, maxValues, minBytes, room int64) error {
	if h.compressed < 0 || int64(h.compressed) > room {
		return fmt.Errorf("compressed size %d, but %d bytes remain in the column chunk", h.compressed, room)
	}
	limit := min(maxPageBytes, max(minPageBytes, minBytes, maxPageRatio*int64(h.compressed)))
	if h.uncompressed < 0 || int64(h.uncompressed) > limit {
		return fmt.Errorf("uncompressed size %d for %d compressed bytes (at most %d)", h.uncompressed, h.compressed, limit)
	}
	switch h.typ {
	case 0, 2, 3: // DATA_PAGE, DICTIONARY_PAGE, DATA_PAGE_V2
		if !h.hasValues {
			return fmt.Errorf("page of type %d without its header", h.typ)
		}
	default:
		return fmt.Errorf("page type %d: not a data or dictionary page", h.typ)
	}
	if v := int64(h.numValues); v < 0 || v > rows || v > maxValues {
		return fmt.Errorf("%d values in a row group of %d rows (at most %d per page in a file this size)", v, rows, maxValues)
	}
	if h.levelBytes < 0 || h.levelBytes > int64(h.uncompressed) {
		return fmt.Errorf("level lengths %d exceed the page's %d bytes", h.levelBytes, h.uncompressed)
	}
	return nil
}

// readPageHeader reads the page header at pos (before end): a small read
// first, larger ones only when the header is longer, up to maxPageHeader.
// It returns the header and its length in bytes.
func readPageHeader(r io.ReaderAt, pos, end int64, buf *[]byte) (pageHeader, int64, error) {
	for want := int64(256); ; want *= 16 {
		n := min(want, end-pos, maxPageHeader)
		b := (*buf)[:0]
		if int64(cap(b)) < n {
			b = make([]byte, 0, n)
			*buf = b
		}
		b = b[:n]
		if k, err := r.ReadAt(b, pos); int64(k) < n {
			return pageHeader{}, 0, fmt.Errorf("reading the page header: %w", err)
		}
		t := thriftReader{b: b}
		h, err := t.pageHeader()
		if err == nil {
			return h, int64(t.pos), nil
		}
		if !errors.Is(err, errShort) || n == end-pos || n == maxPageHeader {
			if errors.Is(err, errShort) {
				return pageHeader{}, 0, errors.New("page header runs past the column chunk or exceeds 1 MiB")
			}
			return pageHeader{}, 0, err
		}
	}
}

// errShort is a header that runs past the bytes read.
var errShort = errors.New("short page header")

// thriftReader reads the Thrift compact protocol from b, never allocating
// what the bytes claim: lengths are checked against the bytes at hand.
type thriftReader struct {
	b   []byte
	pos int
	// structs and elems, when positive, are how many more structs and
	// container elements may be read.
	structs, elems int
}

// Compact-protocol type codes.
const (
	ctStop   = 0
	ctTrue   = 1
	ctFalse  = 2
	ctByte   = 3
	ctI16    = 4
	ctI32    = 5
	ctI64    = 6
	ctDouble = 7
	ctBinary = 8
	ctList   = 9
	ctSet    = 10
	ctMap    = 11
	ctStruct = 12
)

// maxThriftDepth bounds nested structs and containers.
const maxThriftDepth = 16

func (t *thriftReader) byte1() (byte, error) {
	if t.pos >= len(t.b) {
		return 0, errShort
	}
	c := t.b[t.pos]
	t.pos++
	return c, nil
}

func (t *thriftReader) uvarint() (uint64, error) {
	v, n := binary.Uvarint(t.b[t.pos:])
	switch {
	case n == 0:
		return 0, errShort
	case n < 0:
		return 0, errors.New("thrift: varint overflows 64 bits")
	}
	t.pos += n
	return v, nil
}

// int32 reads a zigzag varint that must fit 32 bits.
func (t *thriftReader) int32() (int32, error) {
	u, err := t.uvarint()
	if err != nil {
		return 0, err
	}
	v := int64(u>>1) ^ -int64(u&1)
	if v < -1<<31 || v > 1<<31-1 {
		return 0, fmt.Errorf("thrift: i32 field holds %d", v)
	}
	return int32(v), nil
}

// field reads a field header: its id and type, or ctStop.
func (t *thriftReader) field(last int16) (int16, byte, error) {
	c, err := t.byte1()
	if err != nil {
		return 0, 0, err
	}
	typ := c & 0x0f
	if typ == ctStop {
		return 0, ctStop, nil
	}
	if d := int16(c >> 4); d != 0 {
		return last + d, typ, nil
	}
	v, err := t.int32()
	if err != nil {
		return 0, 0, err
	}
	return int16(v), typ, nil
}

// skip skips one value of type typ.
func (t *thriftReader) skip(typ byte, depth int) error {
	if depth > maxThriftDepth {
		return errors.New("thrift: nested too deep")
	}
	switch typ {
	case ctTrue, ctFalse:
		return nil
	case ctByte:
		_, err := t.byte1()
		return err
	case ctI16, ctI32, ctI64:
		_, err := t.uvarint()
		return err
	case ctDouble:
		return t.advance(8)
	case ctBinary:
		n, err := t.uvarint()
		if err != nil {
			return err
		}
		return t.advance(n)
	case ctList, ctSet:
		c, err := t.byte1()
		if err != nil {
			return err
		}
		n, et := uint64(c>>4), c&0x0f
		if n == 15 {
			if n, err = t.uvarint(); err != nil {
				return err
			}
		}
		return t.skipN(n, depth, et)
	case ctMap:
		n, err := t.uvarint()
		if err != nil || n == 0 {
			return err
		}
		c, err := t.byte1()
		if err != nil {
			return err
		}
		for range n {
			if err := t.skipElem(c>>4, depth); err != nil {
				return err
			}
			if err := t.skipElem(c&0x0f, depth); err != nil {
				return err
			}
		}
		return nil
	case ctStruct:
		return t.fields(depth+1, func(int16, byte) (bool, error) { return false, nil })
	}
	return fmt.Errorf("thrift: unknown type %d", typ)
}

// skipN skips n elements of type et; each takes at least one byte (a
// boolean in a container is a byte), so n is checked against the bytes.
func (t *thriftReader) skipN(n uint64, depth int, et byte) error {
	if n > uint64(len(t.b)-t.pos) {
		return errShort
	}
	if t.elems > 0 {
		if n >= uint64(t.elems) {
			return fmt.Errorf("more than %d list elements", maxFooterElems)
		}
		t.elems -= int(n)
	}
	for range n {
		if err := t.skipElem(et, depth); err != nil {
			return err
		}
	}
	return nil
}

func (t *thriftReader) skipElem(et byte, depth int) error {
	if et == ctTrue || et == ctFalse {
		_, err := t.byte1()
		return err
	}
	return t.skip(et, depth+1)
}

func (t *thriftReader) advance(n uint64) error {
	if n > uint64(len(t.b)-t.pos) {
		return errShort
	}
	t.pos += int(n)
	return nil
}

// fields reads a struct's fields up to its stop, calling fn for each;
// fn returns false to have the field skipped.
func (t *thriftReader) fields(depth int, fn func(id int16, typ byte) (bool, error)) error {
	if depth > maxThriftDepth {
		return errors.New("thrift: nested too deep")
	}
	if t.structs > 0 {
		if t.structs == 1 {
			return fmt.Errorf("more than %d structs", maxFooterStructs)
		}
		t.structs--
	}
	var last int16
	for {
		id, typ, err := t.field(last)
		if err != nil {
			return err
		}
		if typ == ctStop {
			return nil
		}
		last = id
		done, err := fn(id, typ)
		if err != nil {
			return err
		}
		if !done {
			if err := t.skip(typ, depth); err != nil {
				return err
			}
		}
	}
}

// pageHeader reads a PageHeader (parquet.thrift): type (1),
// uncompressed_page_size (2), compressed_page_size (3), and num_values of
// data_page_header (5), dictionary_page_header (7) or data_page_header_v2
// (8), with v2's level lengths (5, 6).
func (t *thriftReader) pageHeader() (pageHeader, error) {
	var h pageHeader
	seen := 0
	i32 := func(typ byte, dst *int32) (bool, error) {
		if typ != ctI32 {
			return false, fmt.Errorf("page header: field of type %d where an i32 belongs", typ)
		}
		v, err := t.int32()
		*dst = v
		return true, err
	}
	err := t.fields(0, func(id int16, typ byte) (bool, error) {
		switch id {
		case 1:
			seen |= 1
			return i32(typ, &h.typ)
		case 2:
			seen |= 2
			return i32(typ, &h.uncompressed)
		case 3:
			seen |= 4
			return i32(typ, &h.compressed)
		case 5, 7, 8:
			if typ != ctStruct {
				return false, nil
			}
			if h.hasValues {
				return false, errors.New("page header: more than one page type's header")
			}
			h.hasValues, h.isData = true, id != 7
			var defLen, repLen int32
			err := t.fields(1, func(sub int16, styp byte) (bool, error) {
				switch {
				case sub == 1:
					return i32(styp, &h.numValues)
				case id == 8 && sub == 5:
					return i32(styp, &defLen)
				case id == 8 && sub == 6:
					return i32(styp, &repLen)
				}
				return false, nil
			})
			h.levelBytes = int64(defLen) + int64(repLen)
			if defLen < 0 || repLen < 0 {
				h.levelBytes = -1
			}
			return true, err
		}
		return false, nil
	})
	if err != nil {
		return h, err
	}
	if seen != 7 {
		return h, errors.New("page header: type or sizes missing")
	}
	return h, nil
}
