package npy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// magic starts every .npy file.
const magic = "\x93NUMPY"

// MaxHeaderLen bounds the header dict ParseHeader accepts, so that a
// corrupt length field cannot make it allocate gigabytes. A 3-D array's
// header is about 100 bytes; format 2.0 exists for structured dtypes with
// thousands of fields, which this package does not read anyway.
const MaxHeaderLen = 1 << 20

// Header is a parsed .npy header.
type Header struct {
	// Descr is the dtype string as written, e.g. "|i1" or "<f4".
	Descr string
	// FortranOrder is true for column-major data.
	FortranOrder bool
	// Shape is the array shape; empty for a 0-d array.
	Shape []int
	// DataOffset is the byte offset of the array data in the file: the
	// length of the preamble and the header dict.
	DataOffset int64
}

// ParseHeader reads a .npy header from r, leaving r at the start of the
// data. It accepts format versions 1.0, 2.0 and 3.0 and a dict with exactly
// the keys 'descr' (a string), 'fortran_order' (True or False) and 'shape'
// (a tuple of non-negative ints), in any order, as a Python literal.
// The dtype itself is checked by ItemSize, not here.
func ParseHeader(r io.Reader) (Header, error) {
	// Read exactly the header, then parse it as parseHeader does the
	// first bytes of a file; a short read leaves parseHeader to say what
	// is missing.
	buf := make([]byte, 12, 256)
	n, err := io.ReadFull(r, buf[:8])
	if err != nil {
		if err != io.EOF && err != io.ErrUnexpectedEOF {
			return Header{}, fmt.Errorf("npy header: %w", err)
		}
		return parseHeader(buf[:n])
	}
	preLen, hlen := preamble(buf[:8])
	if preLen == 0 {
		return parseHeader(buf[:8]) // bad magic or version
	}
	if n, err = io.ReadFull(r, buf[8:preLen]); err != nil {
		if err != io.EOF && err != io.ErrUnexpectedEOF {
			return Header{}, fmt.Errorf("npy header: %w", err)
		}
		return parseHeader(buf[:8+n])
	}
	_, hlen = preamble(buf[:preLen])
	if hlen > MaxHeaderLen {
		return parseHeader(buf[:preLen])
	}
	buf = append(buf[:preLen], make([]byte, hlen)...)
	if n, err = io.ReadFull(r, buf[preLen:]); err != nil {
		if err != io.EOF && err != io.ErrUnexpectedEOF {
			return Header{}, fmt.Errorf("npy header: %w", err)
		}
		return parseHeader(buf[:preLen+n])
	}
	return parseHeader(buf)
}

// preamble returns the length of the preamble (magic, version, header
// length) of a header starting with b, 0 if b does not start one, and
// the header length if b holds the whole preamble (else -1).
func preamble(b []byte) (preLen, hlen int) {
	if len(b) < 8 || string(b[:len(magic)]) != magic || b[7] != 0 {
		return 0, -1
	}
	switch b[6] {
	case 1:
		if len(b) < 10 {
			return 10, -1
		}
		return 10, int(binary.LittleEndian.Uint16(b[8:10]))
	case 2, 3:
		if len(b) < 12 {
			return 12, -1
		}
		n := binary.LittleEndian.Uint32(b[8:12])
		return 12, int(min(n, MaxHeaderLen+1))
	}
	return 0, -1
}

// parseHeader parses the header at the start of b, which may hold more
// (the data) or less (then the error says so). The Header does not refer
// to b.
func parseHeader(b []byte) (Header, error) {
	if len(b) < len(magic) || string(b[:len(magic)]) != magic {
		return Header{}, errors.New("npy header: not a .npy file (bad magic)")
	}
	if len(b) < 8 {
		return Header{}, fmt.Errorf("npy header: %w", io.ErrUnexpectedEOF)
	}
	preLen, hlen := preamble(b)
	if preLen == 0 {
		return Header{}, fmt.Errorf("npy header: unsupported format version %d.%d", b[6], b[7])
	}
	if hlen < 0 {
		return Header{}, fmt.Errorf("npy header: %w", io.ErrUnexpectedEOF)
	}
	if hlen > MaxHeaderLen {
		return Header{}, fmt.Errorf("npy header: header length %d exceeds %d", binary.LittleEndian.Uint32(b[8:12]), MaxHeaderLen)
	}
	if len(b) < preLen+hlen {
		return Header{}, fmt.Errorf("npy header: dict of %d bytes: %w", hlen, io.ErrUnexpectedEOF)
	}
	h, err := parseDict(b[preLen : preLen+hlen])
	if err != nil {
		return Header{}, fmt.Errorf("npy header: %w", err)
	}
	h.DataOffset = int64(preLen + hlen)
	return h, nil
}

// noEOF turns a clean EOF inside a header into ErrUnexpectedEOF: the header
// was cut short.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// dtype is a parsed simple descr: byte order, kind and item size.
type dtype struct {
	order byte // '<', '>', '|' or '='
	kind  byte // 'b', 'i', 'u', 'f' or 'c'
	size  int
}

func parseDescr(descr string) (dtype, error) {
	bad := errUnsupportedDtype(descr)
	if len(descr) < 3 || !strings.ContainsRune("<>|=", rune(descr[0])) {
		return dtype{}, bad
	}
	d := dtype{order: descr[0], kind: descr[1]}
	size, err := strconv.Atoi(descr[2:])
	if err != nil || strconv.Itoa(size) != descr[2:] {
		return dtype{}, bad
	}
	d.size = size
	ok := false
	switch d.kind {
	case 'b':
		ok = size == 1
	case 'i', 'u':
		ok = size == 1 || size == 2 || size == 4 || size == 8
	case 'f':
		ok = size == 2 || size == 4 || size == 8
	case 'c':
		ok = size == 8 || size == 16
	}
	if !ok {
		return dtype{}, bad
	}
	return d, nil
}

// errUnsupportedDtype is the error of a descr this package cannot read.
// It is a type, not a formatted error, so that checking a good descr
// allocates nothing.
type errUnsupportedDtype string

func (e errUnsupportedDtype) Error() string {
	return fmt.Sprintf("dtype %q not supported (want a numeric dtype such as <f4 or |i1)", string(e))
}

// ItemSize is the size in bytes of one element of the header's dtype. It
// fails for dtypes other than bool, int, uint, float and complex.
func (h Header) ItemSize() (int, error) {
	d, err := parseDescr(h.Descr)
	return d.size, err
}

// Count is the number of elements, or -1 if it overflows int64.
func (h Header) Count() int64 {
	n := int64(1)
	for _, d := range h.Shape {
		if d != 0 && n > math.MaxInt64/int64(d) {
			return -1
		}
		n *= int64(d)
	}
	return n
}

// DataSize is the size in bytes of the array data, or -1 if the dtype is
// not supported (see ItemSize) or the size overflows int64.
func (h Header) DataSize() int64 {
	size, err := h.ItemSize()
	n := h.Count()
	if err != nil || n < 0 || n > math.MaxInt64/int64(size) {
		return -1
	}
	return n * int64(size)
}

// ShapeString prints the shape as Python does, e.g. "(1113, 1106, 128)".
func (h Header) ShapeString() string {
	var b strings.Builder
	b.WriteByte('(')
	for i, d := range h.Shape {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(d))
	}
	if len(h.Shape) == 1 {
		b.WriteByte(',')
	}
	b.WriteByte(')')
	return b.String()
}

// File is an open .npy file whose header has been checked against its
// size. Its methods read with pread and are safe for concurrent use.
type File struct {
	Header Header
	// Path is the name the file was opened with.
	Path string
	// Size and ModTime are the file's at Open: the input's fingerprint.
	Size    int64
	ModTime time.Time

	f        io.ReaderAt
	closer   io.Closer // nil: nothing to close
	itemSize int
	dataSize int64
}

// headProbe is how much of a file Open reads in one pread: enough for the
// header numpy.save writes for any array of up to a few dozen dimensions.
const headProbe = 256

// Open opens a .npy file for reading windows of its data. It fails, with an
// *fs.PathError naming path, if the file is not a regular file, its header
// is not valid, its dtype is not a little-endian numeric dtype, it is in
// Fortran order, or its size is not exactly DataOffset + DataSize (for
// example "truncated: want 1000 bytes, have 640").
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	nf, err := open(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	return nf, nil
}

func open(f *os.File, path string) (*File, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var info Info
	var d dtype
	if err := checkMode(fi.Mode()); err != nil {
		return nil, &fs.PathError{Op: "npy", Path: path, Err: err}
	}
	info.Size, info.ModTime = fi.Size(), fi.ModTime()
	if info.Header, d, err = checkFile(f, info.Size); err != nil {
		return nil, &fs.PathError{Op: "npy", Path: path, Err: err}
	}
	return &File{Header: info.Header, Path: path, Size: info.Size, ModTime: info.ModTime, f: f, closer: f, itemSize: d.size, dataSize: info.Header.DataSize()}, nil
}

// NewFile checks the .npy file read by r, of the given size, exactly as
// Open does, and reads it through r: the way to read a file that is not on
// a local disk (an HTTP or S3 object). Close closes r if it is an
// io.Closer. path names the file in errors.
func NewFile(r io.ReaderAt, size int64, modTime time.Time, path string) (*File, error) {
	h, d, err := checkFile(r, size)
	if err != nil {
		return nil, &fs.PathError{Op: "npy", Path: path, Err: err}
	}
	c, _ := r.(io.Closer)
	return &File{Header: h, Path: path, Size: size, ModTime: modTime, f: r, closer: c, itemSize: d.size, dataSize: h.DataSize()}, nil
}

// Info is what Stat learns of a .npy file.
type Info struct {
	Header  Header
	Size    int64
	ModTime time.Time
}

// Stat checks the .npy file at path exactly as Open does, without keeping
// it open: the cheap way to validate many files. On Linux it costs four
// system calls (open, fstat, pread, close).
func Stat(path string) (Info, error) { return stat(path) }

// CheckAt checks the .npy file r of the given size exactly as Open does
// (header, dtype, order, length), for files read through something other
// than the local file system; errors are *fs.PathError naming path.
func CheckAt(r io.ReaderAt, size int64, path string) (Header, error) {
	h, _, err := checkFile(r, size)
	if err != nil {
		return Header{}, &fs.PathError{Op: "npy", Path: path, Err: err}
	}
	return h, nil
}

// checkMode rejects what is not a regular file.
func checkMode(m fs.FileMode) error {
	switch {
	case m.IsDir():
		return errors.New("is a directory, not a file")
	case !m.IsRegular():
		return fmt.Errorf("not a regular file (mode %s)", m)
	}
	return nil
}

// checkFile reads the header of the file r of the given size and checks
// that this package can read it and that the size is what it says.
func checkFile(r io.ReaderAt, size int64) (Header, dtype, error) {
	h, err := headerAt(r)
	if err != nil {
		return Header{}, dtype{}, err
	}
	d, err := parseDescr(h.Descr)
	if err != nil {
		return Header{}, dtype{}, err
	}
	if d.order == '>' && d.size > 1 {
		return Header{}, dtype{}, fmt.Errorf("big-endian dtype %s not supported", h.Descr)
	}
	if h.FortranOrder {
		return Header{}, dtype{}, errors.New("Fortran-order array not supported (want C order)")
	}
	ds := h.DataSize()
	want := h.DataOffset + ds
	switch {
	case ds < 0 || want < 0: // overflow
		return Header{}, dtype{}, fmt.Errorf("shape %s of %s is too large", h.ShapeString(), h.Descr)
	case size < want:
		return Header{}, dtype{}, fmt.Errorf("truncated: want %d bytes, have %d", want, size)
	case size > want:
		return Header{}, dtype{}, fmt.Errorf("size mismatch: want %d bytes, have %d (%d trailing bytes)", want, size, size-want)
	}
	return h, d, nil
}

// headerAt parses the header at the start of r, reading it with one pread
// when it is no longer than headProbe bytes (numpy.save's always are, for
// a few dimensions), two otherwise.
func headerAt(r io.ReaderAt) (Header, error) {
	probe := probes.Get().(*[headProbe]byte)
	defer probes.Put(probe)
	n, err := r.ReadAt(probe[:], 0)
	if err != nil && err != io.EOF {
		return Header{}, err
	}
	b := probe[:n]
	if preLen, hlen := preamble(b); preLen > 0 && hlen >= 0 && preLen+min(hlen, MaxHeaderLen) > n && n == len(probe) {
		b = make([]byte, preLen+min(hlen, MaxHeaderLen))
		copy(b, probe[:])
		m, err := r.ReadAt(b[n:], int64(n))
		if err != nil && err != io.EOF {
			return Header{}, err
		}
		b = b[:n+m]
	}
	return parseHeader(b)
}

// probes are headerAt's read buffers: discovery reads 200,000 headers.
var probes = sync.Pool{New: func() any { return new([headProbe]byte) }}

// ItemSize is the size of one element in bytes.
func (f *File) ItemSize() int { return f.itemSize }

// ReadAt reads len(p) bytes of array data starting at data offset off (0 is
// the first element), as io.ReaderAt: at the end of the data it returns
// fewer bytes and io.EOF. A file that shrank after Open gives an error
// naming it.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	ds := f.dataSize
	if off < 0 {
		return 0, &fs.PathError{Op: "npy read", Path: f.Path, Err: fmt.Errorf("negative offset %d", off)}
	}
	if off >= ds {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	var eof error
	if rem := ds - off; int64(len(p)) > rem {
		p, eof = p[:rem], io.EOF
	}
	n, err := f.f.ReadAt(p, f.Header.DataOffset+off)
	if err != nil {
		if err == io.EOF {
			err = fmt.Errorf("file shrank to %d bytes after it was opened", f.Header.DataOffset+off+int64(n))
		}
		return n, &fs.PathError{Op: "npy read", Path: f.Path, Err: err}
	}
	return n, eof
}

// ReadWindow reads rows [r0, r1) and columns [c0, c1) of the first two axes
// of an array with at least two dimensions, with all of its trailing axes,
// into dst in C order: dst holds (r1−r0)·(c1−c0)·prod(Shape[2:]) elements,
// as raw little-endian bytes. Whole rows are read with one pread, partial
// rows with one pread each.
func (f *File) ReadWindow(dst []byte, r0, c0, r1, c1 int) error {
	sh := f.Header.Shape
	if len(sh) < 2 {
		return &fs.PathError{Op: "npy read", Path: f.Path, Err: fmt.Errorf("shape %s has no rows and columns", f.Header.ShapeString())}
	}
	if r0 < 0 || c0 < 0 || r1 > sh[0] || c1 > sh[1] || r0 > r1 || c0 > c1 {
		return &fs.PathError{Op: "npy read", Path: f.Path, Err: fmt.Errorf("window [%d,%d)×[%d,%d) outside shape %s", r0, r1, c0, c1, f.Header.ShapeString())}
	}
	px := int64(f.itemSize)
	for _, d := range sh[2:] {
		px *= int64(d)
	}
	rowBytes := px * int64(sh[1])
	winRow := px * int64(c1-c0)
	if need := winRow * int64(r1-r0); int64(len(dst)) < need {
		return &fs.PathError{Op: "npy read", Path: f.Path, Err: fmt.Errorf("buffer of %d bytes for a window of %d", len(dst), need)}
	}
	if winRow == 0 || r0 == r1 {
		return nil
	}
	readFull := func(p []byte, off int64) error {
		n, err := f.ReadAt(p, off)
		if err == io.EOF && n == len(p) {
			err = nil
		}
		return err
	}
	if c0 == 0 && c1 == sh[1] {
		return readFull(dst[:winRow*int64(r1-r0)], int64(r0)*rowBytes)
	}
	for r := r0; r < r1; r++ {
		o := int64(r-r0) * winRow
		if err := readFull(dst[o:o+winRow], int64(r)*rowBytes+int64(c0)*px); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the file.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	return f.closer.Close()
}

// parseDict parses the header dict, a Python literal such as
//
//	{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
//
// followed by padding (spaces, and a final newline).
func parseDict(b []byte) (Header, error) {
	p := &parser{b: b}
	var h Header
	p.ws()
	if !p.eat('{') {
		return h, p.errorf("want '{'")
	}
	var seen struct{ descr, fortran, shape bool }
	for {
		p.ws()
		if p.eat('}') {
			break
		}
		key, err := p.str()
		if err != nil {
			return h, err
		}
		p.ws()
		if !p.eat(':') {
			return h, p.errorf("want ':' after key %q", key)
		}
		p.ws()
		dup := false
		switch string(key) {
		case "descr":
			dup, seen.descr = seen.descr, true
		case "fortran_order":
			dup, seen.fortran = seen.fortran, true
		case "shape":
			dup, seen.shape = seen.shape, true
		default:
			return h, p.errorf("unexpected key %q", key)
		}
		if dup {
			return h, p.errorf("duplicate key %q", key)
		}
		switch string(key) {
		case "descr":
			if p.peek() == '[' {
				return h, p.errorf("structured dtypes are not supported")
			}
			d, err := p.str()
			if err != nil {
				return h, err
			}
			h.Descr = internDescr(d)
		case "fortran_order":
			switch {
			case p.word("True"):
				h.FortranOrder = true
			case p.word("False"):
				h.FortranOrder = false
			default:
				return h, p.errorf("fortran_order: want True or False")
			}
		case "shape":
			if h.Shape, err = p.tuple(); err != nil {
				return h, err
			}
		}
		p.ws()
		if p.eat('}') {
			break
		}
		if !p.eat(',') {
			return h, p.errorf("want ',' or '}'")
		}
	}
	p.ws()
	if p.i != len(p.b) {
		return h, p.errorf("trailing bytes after the dict")
	}
	switch {
	case !seen.descr:
		return h, errors.New(`dict has no "descr" key`)
	case !seen.fortran:
		return h, errors.New(`dict has no "fortran_order" key`)
	case !seen.shape:
		return h, errors.New(`dict has no "shape" key`)
	}
	if h.Count() < 0 {
		return h, fmt.Errorf("shape %s: element count overflows", h.ShapeString())
	}
	return h, nil
}

// internDescr returns d as a string, without allocating for the dtypes
// of source tiles.
func internDescr(d []byte) string {
	switch string(d) {
	case "|i1":
		return "|i1"
	case "<i1":
		return "<i1"
	case "<f4":
		return "<f4"
	}
	return string(d)
}

// parser is a cursor over the header dict.
type parser struct {
	b []byte
	i int
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("dict at byte %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *parser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *parser) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// word consumes the identifier w if it is next and not followed by more
// identifier characters.
func (p *parser) word(w string) bool {
	if !bytes.HasPrefix(p.b[p.i:], []byte(w)) {
		return false
	}
	if j := p.i + len(w); j < len(p.b) && isIdent(p.b[j]) {
		return false
	}
	p.i += len(w)
	return true
}

func isIdent(c byte) bool {
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// str parses a single- or double-quoted string without escapes, returning
// its bytes (a slice of the header: copy to keep).
func (p *parser) str() ([]byte, error) {
	q := p.peek()
	if q != '\'' && q != '"' {
		return nil, p.errorf("want a quoted string")
	}
	start := p.i + 1
	for j := start; j < len(p.b); j++ {
		switch p.b[j] {
		case q:
			p.i = j + 1
			return p.b[start:j], nil
		case '\\':
			p.i = j
			return nil, p.errorf("escape in string not supported")
		case '\n':
			p.i = j
			return nil, p.errorf("unterminated string")
		}
	}
	p.i = len(p.b)
	return nil, p.errorf("unterminated string")
}

// tuple parses a Python tuple of non-negative ints: (), (n,), (n, m) or
// (n, m,). A parenthesised int without a comma is not a tuple.
func (p *parser) tuple() ([]int, error) {
	if !p.eat('(') {
		return nil, p.errorf("shape: want a tuple")
	}
	shape := make([]int, 0, 3)
	comma := false
	for {
		p.ws()
		if p.eat(')') {
			break
		}
		if len(shape) > 0 && !comma {
			return nil, p.errorf("shape: want ',' or ')'")
		}
		v, err := p.uint()
		if err != nil {
			return nil, err
		}
		shape = append(shape, v)
		p.ws()
		comma = p.eat(',')
	}
	if len(shape) == 1 && !comma {
		return nil, p.errorf("shape: (%d) is an int, not a tuple", shape[0])
	}
	return shape, nil
}

// uint parses a decimal int as Python writes it: no sign, no leading zeros.
func (p *parser) uint() (int, error) {
	start := p.i
	v, overflow := 0, false
	for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
		d := int(p.b[p.i] - '0')
		if v > (math.MaxInt-d)/10 {
			overflow = true
		}
		v = v*10 + d
		p.i++
	}
	digits := p.b[start:p.i]
	switch {
	case len(digits) == 0:
		return 0, p.errorf("shape: want a non-negative integer")
	case len(digits) > 1 && digits[0] == '0':
		return 0, p.errorf("shape: %q has a leading zero", digits)
	case overflow:
		return 0, p.errorf("shape: dimension %s out of range", digits)
	case isIdent(p.peek()):
		return 0, p.errorf("shape: want a non-negative integer")
	}
	return v, nil
}
