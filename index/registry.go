package index

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
)

// Registry file names at the top of a tiles root, as geotessera publishes
// them.
const (
	RegistryName  = "registry.parquet"
	LandmasksName = "landmasks.parquet"
)

// RegistryRow is one row of registry.parquet in geotessera's schema: one
// tile of one year. Hashes are lowercase sha256 hex of the whole file; an
// empty hash means "not known" (tesserafs synth --sparse writes none).
type RegistryRow struct {
	Geometry   []byte    `parquet:"geometry"`
	Lat        float64   `parquet:"lat"`
	Lon        float64   `parquet:"lon"`
	Year       int64     `parquet:"year"`
	LonI       int32     `parquet:"lon_i"`
	LatI       int32     `parquet:"lat_i"`
	Hash       string    `parquet:"hash"`
	ScalesHash string    `parquet:"scales_hash"`
	MTime      time.Time `parquet:"mtime,timestamp(microsecond)"`
	FileSize   int64     `parquet:"file_size"`
	ScalesSize int64     `parquet:"scales_size"`
}

// LandmaskRow is one row of landmasks.parquet: one landmask TIFF that
// exists.
type LandmaskRow struct {
	Geometry []byte  `parquet:"geometry"`
	Lat      float64 `parquet:"lat"`
	Lon      float64 `parquet:"lon"`
	LonI     int32   `parquet:"lon_i"`
	LatI     int32   `parquet:"lat_i"`
	Hash     string  `parquet:"hash"`
	FileSize int64   `parquet:"file_size"`
}

// PointWKB is the ISO WKB encoding of Point(lon, lat), little endian: the
// GeoParquet geometry of a tile centre.
func PointWKB(lon, lat float64) []byte {
	b := make([]byte, 21)
	b[0] = 1 // little endian
	binary.LittleEndian.PutUint32(b[1:], 1)
	binary.LittleEndian.PutUint64(b[5:], math.Float64bits(lon))
	binary.LittleEndian.PutUint64(b[13:], math.Float64bits(lat))
	return b
}

// geoMetadata is the GeoParquet 1.1 "geo" file metadata for a table of
// WKB points in OGC:CRS84 (the default CRS when "crs" is absent: lon/lat
// on WGS 84, i.e. EPSG:4326 in lon/lat order).
func geoMetadata(bbox [4]float64) string {
	m := map[string]any{
		"version":        "1.1.0",
		"primary_column": "geometry",
		"columns": map[string]any{
			"geometry": map[string]any{
				"encoding":       "WKB",
				"geometry_types": []string{"Point"},
				"bbox":           bbox,
			},
		},
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// registryRowGroup is how many rows a row group holds: a reader of a
// 1.5 M-row registry decodes it a row group at a time.
const registryRowGroup = 128 * 1024

// WriteRegistry writes rows as registry.parquet (GeoParquet, zstd) to w.
func WriteRegistry(w io.Writer, rows []RegistryRow) error {
	bbox := bboxOf(len(rows), func(i int) (float64, float64) { return rows[i].Lon, rows[i].Lat })
	return writeParquet(w, rows, bbox)
}

// WriteLandmasks writes rows as landmasks.parquet (GeoParquet, zstd) to w.
func WriteLandmasks(w io.Writer, rows []LandmaskRow) error {
	bbox := bboxOf(len(rows), func(i int) (float64, float64) { return rows[i].Lon, rows[i].Lat })
	return writeParquet(w, rows, bbox)
}

func writeParquet[T any](w io.Writer, rows []T, bbox [4]float64) error {
	pw := parquet.NewGenericWriter[T](w,
		parquet.Compression(&zstd.Codec{Level: zstd.SpeedDefault}),
		parquet.KeyValueMetadata("geo", geoMetadata(bbox)),
		parquet.MaxRowsPerRowGroup(registryRowGroup))
	for len(rows) > 0 {
		n, err := pw.Write(rows[:min(len(rows), 4096)])
		if err != nil {
			return err
		}
		rows = rows[n:]
	}
	return pw.Close()
}

func bboxOf(n int, at func(int) (lon, lat float64)) [4]float64 {
	if n == 0 {
		return [4]float64{}
	}
	b := [4]float64{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
	for i := range n {
		lon, lat := at(i)
		b[0], b[1] = min(b[0], lon), min(b[1], lat)
		b[2], b[3] = max(b[2], lon), max(b[3], lat)
	}
	return b
}

// ReadRegistry reads registry.parquet from r (size bytes), calling fn with
// each batch of rows in file order; the slice is reused between calls.
// Columns of another integer or float width are converted; a missing
// column reads as zero values, which the row checks then reject.
func ReadRegistry(r io.ReaderAt, size int64, fn func([]RegistryRow) error) error {
	return readParquet(r, size, fn)
}

// RegistryTile is the part of a registry row that discovery uses: what
// it reads, leaving out the geometry and mtime columns (a third of the
// decoding of a million rows).
type RegistryTile struct {
	Lat        float64 `parquet:"lat"`
	Lon        float64 `parquet:"lon"`
	Year       int64   `parquet:"year"`
	LonI       int32   `parquet:"lon_i"`
	LatI       int32   `parquet:"lat_i"`
	Hash       string  `parquet:"hash"`
	ScalesHash string  `parquet:"scales_hash"`
	FileSize   int64   `parquet:"file_size"`
	ScalesSize int64   `parquet:"scales_size"`
}

// ReadRegistryTiles is ReadRegistry for the columns of RegistryTile.
func ReadRegistryTiles(r io.ReaderAt, size int64, fn func([]RegistryTile) error) error {
	return readParquet(r, size, fn)
}

// LandmaskTile is the part of a landmasks.parquet row discovery uses.
type LandmaskTile struct {
	Lat      float64 `parquet:"lat"`
	Lon      float64 `parquet:"lon"`
	LonI     int32   `parquet:"lon_i"`
	LatI     int32   `parquet:"lat_i"`
	Hash     string  `parquet:"hash"`
	FileSize int64   `parquet:"file_size"`
}

func readParquet[T any](r io.ReaderAt, size int64, fn func([]T) error) (err error) {
	// parquet-go panics on some malformed files and on schemas it cannot
	// convert; this is a parser of outside bytes: make that an error.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("not a readable parquet file: %v", p)
		}
	}()
	if err := checkFooter(r, size); err != nil {
		return fmt.Errorf("not a readable parquet file: %w", err)
	}
	// The page index and bloom filters are not used, and their offsets
	// and lengths are more claims to trust.
	f, err := parquet.OpenFile(r, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return fmt.Errorf("not a parquet file: %w", err)
	}
	if err := checkBounds(f); err != nil {
		return err
	}
	if err := checkPages(r, size, f); err != nil {
		return err
	}
	pr := parquet.NewGenericReader[T](f)
	defer pr.Close()
	buf := make([]T, 4096)
	for {
		n, err := pr.Read(buf)
		if n > 0 {
			if ferr := fn(buf[:n]); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Bounds on what a registry's metadata may claim, checked before any page
// is decoded, so that a corrupt or hostile file costs an error, not
// gigabytes: the real registry is about 1.5 M rows per year.
const (
	maxRegistryRows  = 1 << 27 // 134 M rows
	maxColumnChunk   = 1 << 30 // 1 GiB uncompressed per column chunk
	maxValuesPerByte = 1 << 12 // values per stored byte of a column chunk
)

func checkBounds(f *parquet.File) error {
	md := f.Metadata()
	if md.NumRows < 0 || md.NumRows > maxRegistryRows {
		return fmt.Errorf("claims %d rows (at most %d)", md.NumRows, maxRegistryRows)
	}
	var rows int64
	for i, rg := range md.RowGroups {
		if rg.NumRows < 0 || rg.NumRows > maxRegistryRows {
			return fmt.Errorf("row group %d claims %d rows", i, rg.NumRows)
		}
		rows += rg.NumRows
		for _, c := range rg.Columns {
			m := c.MetaData
			if m.TotalUncompressedSize < 0 || m.TotalUncompressedSize > maxColumnChunk ||
				m.TotalCompressedSize < 0 || m.NumValues < 0 ||
				m.NumValues > maxValuesPerByte*max(m.TotalCompressedSize, 1) {
				return fmt.Errorf("row group %d: column %v: implausible sizes (%d values, %d bytes, %d uncompressed)",
					i, m.PathInSchema, m.NumValues, m.TotalCompressedSize, m.TotalUncompressedSize)
			}
		}
	}
	if rows != md.NumRows {
		return fmt.Errorf("row groups hold %d rows, the footer says %d", rows, md.NumRows)
	}
	return nil
}
