package index

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// TestReadRegistryPyarrow reads registries written by pyarrow (an
// independent writer; testdata/registry/make.py) in several page layouts:
// the page checks must let every real layout through, and every row must
// be the one the script's formula says.
func TestReadRegistryPyarrow(t *testing.T) {
	for _, name := range []string{"pages-v1.parquet", "pages-v2.parquet", "one-page.parquet"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("..", "testdata", "registry", name))
			if err != nil {
				t.Fatal(err)
			}
			var got []RegistryRow
			err = ReadRegistry(bytes.NewReader(data), int64(len(data)), func(rows []RegistryRow) error {
				for _, r := range rows {
					r.Geometry = append([]byte(nil), r.Geometry...)
					got = append(got, r)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("ReadRegistry: %v", err)
			}
			if len(got) != 1000 {
				t.Fatalf("%d rows, want 1000", len(got))
			}
			hexOf := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
			for i, r := range got {
				lonI, latI := int32(-17995+10*i), int32(5005+10*(i%7))
				want := RegistryRow{Geometry: PointWKB(float64(lonI)/100, float64(latI)/100), Lat: float64(latI) / 100, Lon: float64(lonI) / 100,
					Year: int64(2020 + i%3), LonI: lonI, LatI: latI, Hash: hexOf(fmt.Sprint("e", i)), ScalesHash: hexOf(fmt.Sprint("s", i)),
					FileSize: int64(1000 + i), ScalesSize: int64(2000 + i)}
				r.MTime = want.MTime
				if !bytes.Equal(r.Geometry, want.Geometry) || fmt.Sprint(r) != fmt.Sprint(want) {
					t.Fatalf("row %d: %+v, want %+v", i, r, want)
				}
			}
		})
	}
}

// header encodes h with parquet-go's own Thrift encoder (the oracle for
// the bytes a page header is) and appends body bytes of data.
func header(t *testing.T, h format.PageHeader, body int) []byte {
	t.Helper()
	b, err := thrift.Marshal(new(thrift.CompactProtocol), &h)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, make([]byte, body)...)
}

func dataPage(uncompressed, compressed, values int32) format.PageHeader {
	return format.PageHeader{Type: format.DataPage, UncompressedPageSize: uncompressed, CompressedPageSize: compressed,
		DataPageHeader: thrift.New(format.DataPageHeader{NumValues: values})}
}

// TestPageHeaderBounds: page headers that claim more than their bytes can
// hold are rejected before anything is allocated for them; real ones pass.
func TestPageHeaderBounds(t *testing.T) {
	const rows = 1000
	withStats := dataPage(100, 100, 10)
	withStats.DataPageHeader.V.Statistics = format.Statistics{MinValue: []byte("aaaa"), MaxValue: []byte("zzzz"), NullCount: 0}
	v2 := format.PageHeader{Type: format.DataPageV2, UncompressedPageSize: 100, CompressedPageSize: 100,
		DataPageHeaderV2: thrift.New(format.DataPageHeaderV2{NumValues: 10, NumRows: 10, DefinitionLevelsByteLength: 60, RepetitionLevelsByteLength: 50})}
	dict := format.PageHeader{Type: format.DictionaryPage, UncompressedPageSize: 100, CompressedPageSize: 100,
		DictionaryPageHeader: thrift.New(format.DictionaryPageHeader{NumValues: 5000})}
	// A statistics value that claims a gigabyte: the header runs past the
	// chunk, and nothing of that size is allocated.
	huge := header(t, withStats, 0)
	huge = bytes.Replace(huge, []byte("\x04aaaa"), []byte("\x80\x80\x80\x80\x04a"), 1)
	tests := []struct {
		name string
		page []byte
		want string // "" for a good page
	}{
		{"data page", header(t, dataPage(100, 100, 10), 100), ""},
		{"with statistics", header(t, withStats, 100), ""},
		{"dictionary", header(t, format.PageHeader{Type: format.DictionaryPage, UncompressedPageSize: 100, CompressedPageSize: 100,
			DictionaryPageHeader: thrift.New(format.DictionaryPageHeader{NumValues: 10})}, 100), ""},
		{"highly compressed", header(t, dataPage(4<<20, 10, rows), 10), ""},
		{"uncompressed 1 GiB", header(t, dataPage(1<<30, 100, 10), 100), "uncompressed size 1073741824"},
		{"uncompressed over the ratio", header(t, dataPage(64<<20, 100, 10), 100), "uncompressed size 67108864"},
		{"uncompressed over 256 MiB", header(t, dataPage(300<<20, 1<<20, 10), 1<<20), "uncompressed size 314572800"},
		{"large page of a large file", header(t, dataPage(12<<20, 300, 10), 1<<20), ""},
		{"compressed past the chunk", header(t, dataPage(100, 1<<30, 10), 100), "compressed size 1073741824, but 100 bytes remain"},
		{"negative compressed", header(t, dataPage(100, -1, 10), 100), "compressed size -1"},
		{"values over rows", header(t, dataPage(100, 100, rows+1), 100), "1001 values in a row group of 1000 rows"},
		{"dictionary values over rows", header(t, dict, 100), "5000 values"},
		{"negative values", header(t, dataPage(100, 100, -5), 100), "-5 values"},
		{"v2 levels past the page", header(t, v2, 100), "level lengths 110 exceed"},
		{"index page", header(t, format.PageHeader{Type: format.IndexPage, UncompressedPageSize: 10, CompressedPageSize: 10}, 10), "page type 1"},
		{"no page type header", header(t, format.PageHeader{Type: format.DataPage, UncompressedPageSize: 10, CompressedPageSize: 10}, 10), "without its header"},
		{"statistics claim 1 GiB", huge, "runs past the column chunk"},
		{"truncated", header(t, dataPage(100, 100, 10), 100)[:3], "runs past"},
		{"nested too deep", bytes.Repeat([]byte{0x9c}, 40), "nested too deep"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf []byte
			h, n, err := readPageHeader(bytes.NewReader(tc.page), 0, int64(len(tc.page)), &buf)
			if err == nil {
				err = h.check(rows, 1<<20, 16*int64(len(tc.page)), int64(len(tc.page))-n)
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("good page rejected: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if cap(buf) > 1<<20 {
				t.Errorf("read buffer grew to %d bytes", cap(buf))
			}
		})
	}
}

// TestReadRegistryCorruptPage: a registry whose first data page claims more
// values than its row group has, or more bytes than its column chunk, is a
// clear error from ReadRegistry, before parquet-go decodes the page.
func TestReadRegistryCorruptPage(t *testing.T) {
	rows := []RegistryRow{{Geometry: PointWKB(0.05, 52.05), Lat: 52.05, Lon: 0.05, Year: 2024, LonI: 5, LatI: 5205, FileSize: 10, ScalesSize: 10}}
	var file bytes.Buffer
	if err := WriteRegistry(&file, rows); err != nil {
		t.Fatal(err)
	}
	data := file.Bytes()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	m := f.Metadata().RowGroups[0].Columns[1].MetaData // lat
	off := m.DataPageOffset
	if m.DictionaryPageOffset > 0 {
		off = m.DictionaryPageOffset
	}
	// Decode the page header with parquet-go's decoder, and check that its
	// encoder gives the same bytes back, so a patched header can be spliced
	// in at the same length.
	var h format.PageHeader
	dec := thrift.NewDecoder(new(thrift.CompactProtocol).NewReader(bytes.NewReader(data[off:])))
	if err := dec.Decode(&h); err != nil {
		t.Fatal(err)
	}
	orig, err := thrift.Marshal(new(thrift.CompactProtocol), &h)
	if err != nil || !bytes.Equal(orig, data[off:off+int64(len(orig))]) {
		t.Fatalf("re-encoded header differs from the file's (%v): cannot patch", err)
	}
	tests := []struct {
		name  string
		patch func(*format.PageHeader)
		want  string
	}{
		{"values", func(h *format.PageHeader) {
			switch {
			case h.DataPageHeader.Valid:
				h.DataPageHeader.V.NumValues = 50
			case h.DataPageHeaderV2.Valid:
				h.DataPageHeaderV2.V.NumValues = 50
			case h.DictionaryPageHeader.Valid:
				h.DictionaryPageHeader.V.NumValues = 50
			}
		}, "50 values in a row group of 1 rows"},
		{"compressed size", func(h *format.PageHeader) { h.CompressedPageSize += 40 }, "bytes remain in the column chunk"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := h
			tc.patch(&p)
			b, err := thrift.Marshal(new(thrift.CompactProtocol), &p)
			if err != nil || len(b) != len(orig) {
				t.Fatalf("patched header is %d bytes, was %d (%v)", len(b), len(orig), err)
			}
			bad := bytes.Clone(data)
			copy(bad[off:], b)
			readHostile(t, bad, tc.want)
		})
	}
}

// readHostile reads a registry that must be rejected with an error
// containing want, and checks that rejecting it cost little memory.
func readHostile(t *testing.T, data []byte, want string) {
	t.Helper()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	err := ReadRegistry(bytes.NewReader(data), int64(len(data)), func([]RegistryRow) error { return nil })
	runtime.ReadMemStats(&m1)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want one containing %q", err, want)
	}
	if a := m1.TotalAlloc - m0.TotalAlloc; a > 16<<20 {
		t.Errorf("rejecting it allocated %d MB", a>>20)
	}
}

// TestReadRegistryHostileFooter: footers whose lengths claim gigabytes are
// rejected before parquet-go allocates what they claim.
func TestReadRegistryHostileFooter(t *testing.T) {
	rows := []RegistryRow{{Geometry: PointWKB(0.05, 52.05), Lat: 52.05, Lon: 0.05, Year: 2024, LonI: 5, LatI: 5205, FileSize: 10, ScalesSize: 10}}
	var file bytes.Buffer
	if err := WriteRegistry(&file, rows); err != nil {
		t.Fatal(err)
	}
	good := file.Bytes()
	// The key "geo" of the key-value metadata, its length made to claim
	// 1 GiB (a 5-byte varint), the footer's length adjusted.
	i := bytes.Index(good, []byte("\x03geo"))
	if i < 0 {
		t.Fatal("no geo key in the footer")
	}
	longKey := append(append(bytes.Clone(good[:i]), 0x80, 0x80, 0x80, 0x80, 0x04), good[i+1:]...)
	n := binary.LittleEndian.Uint32(longKey[len(longKey)-8:])
	binary.LittleEndian.PutUint32(longKey[len(longKey)-8:], n+4)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"footer of 2 GiB", []byte("PAR1\x00\x00\x00\x00\xff\xff\xff\x7fPAR1"), "footer of 2147483647 bytes in a file of 16"},
		{"footer past the start", append(bytes.Clone(good[:len(good)-8]), 0xff, 0xff, 0, 0, 'P', 'A', 'R', '1'), "footer of 65535 bytes"},
		{"key of 1 GiB", longKey, "runs past the footer"},
		{"no magic", append([]byte("XXXX"), good[4:]...), "want PAR1"},
		{"too short", []byte("PAR1PAR1"), "too short"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { readHostile(t, tc.data, tc.want) })
	}
}
