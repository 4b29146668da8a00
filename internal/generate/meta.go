package generate

import (
	"math"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/keyspace"
	"github.com/tesserafs/tesserafs/zarr"
)

// Shard and chunk shapes of the zone arrays (spec §3).
const (
	ShardSize  = keyspace.ShardSize // a shard is ShardSize × ShardSize pixels
	InnerSize  = keyspace.InnerSize // an inner chunk is InnerSize × InnerSize pixels
	Bands      = 128                // embedding bands
	CoordChunk = 1 << 16            // coordinate arrays are chunked in pieces of at most this many elements
	ZstdLevel  = 3
)

// InnerPerSide is the number of inner chunks along one side of a shard.
const InnerPerSide = ShardSize / InnerSize

// Build describes the store being built: what goes into every zone's
// attributes beyond geometry.
type Build struct {
	DatasetVersion string // tessera:dataset_version, default "v1"
	ModelVersion   string // tessera:model_version, default "1.0"
	BuildVersion   string // tessera:build_version: the tesserafs version
	RGB            bool   // zones carry an rgb preview array
	// Stretch is how the rgb previews are stretched: "" or "zone" (each
	// zone its own p2/p98, spec §4) or "global" (one stretch for all the
	// zones of a year, so that zones meet without a seam).
	Stretch string `json:",omitempty"`
	// GlobalLevels is the number of levels of global_rgb; 0 means
	// DefaultGlobalLevels.
	GlobalLevels int `json:",omitempty"`
}

func (b Build) datasetVersion() string {
	if b.DatasetVersion == "" {
		return "v1"
	}
	return b.DatasetVersion
}

func (b Build) modelVersion() string {
	if b.ModelVersion == "" {
		return "1.0"
	}
	return b.ModelVersion
}

// convention is a zarr_conventions registration entry (spec §3), keys in
// the order the spec gives.
func convention(name, uuid, schema, spec, description string) zarr.Attrs {
	return zarr.Attrs{
		{Key: "schema_url", Value: schema},
		{Key: "spec_url", Value: spec},
		{Key: "uuid", Value: uuid},
		{Key: "name", Value: name},
		{Key: "description", Value: description},
	}
}

// The conventions a store declares (spec §3 table).
var (
	ConventionTessera = convention("tessera:", "e7f90d5f-019e-4a38-802f-9fa695e26c71",
		"https://raw.githubusercontent.com/ucam-eo/zarr-convention-tessera/refs/tags/v1/schema.json",
		"https://github.com/ucam-eo/zarr-convention-tessera/blob/v1/README.md",
		"Quantised geospatial embedding vectors with per-pixel dequantisation scales")
	ConventionProj = convention("proj:", "f17cb550-5864-4468-aeb7-f3180cfb622f",
		"https://raw.githubusercontent.com/zarr-experimental/geo-proj/refs/tags/v1/schema.json",
		"https://github.com/zarr-experimental/geo-proj/blob/v1/README.md",
		"Coordinate reference system information for geospatial data")
	ConventionSpatial = convention("spatial:", "689b58e2-cf7b-45e0-9fff-9cfc0883d6b4",
		"https://raw.githubusercontent.com/zarr-conventions/spatial/refs/tags/v1/schema.json",
		"https://github.com/zarr-conventions/spatial/blob/v1/README.md",
		"Spatial coordinate information")
	ConventionMultiscales = convention("multiscales", "d35379db-88df-4056-af3a-620245f8e347",
		"https://raw.githubusercontent.com/zarr-conventions/multiscales/refs/tags/v1/schema.json",
		"https://github.com/zarr-conventions/multiscales/blob/v1/README.md",
		"Multiscale layout of zarr datasets")
)

// RootAttrs are the year store's root group attributes.
func RootAttrs(b Build, year int) zarr.Attrs {
	return zarr.Attrs{
		{Key: "zarr_conventions", Value: []zarr.Attrs{ConventionTessera}},
		{Key: "tessera:dataset_version", Value: b.datasetVersion()},
		{Key: "tessera:year", Value: year},
	}
}

// ZoneAttrs are a zone group's attributes, in the order of spec §3.
func ZoneAttrs(b Build, z *index.ZoneGrid) zarr.Attrs {
	oe, on := z.OriginE, z.OriginN
	return zarr.Attrs{
		{Key: "zarr_conventions", Value: []zarr.Attrs{ConventionTessera, ConventionProj, ConventionSpatial}},
		{Key: "proj:code", Value: index.ZoneEPSG(z.Zone)},
		{Key: "spatial:dimensions", Value: []string{"northing", "easting"}},
		// JSON floats, as Python writes them (spec §3): 10.0, not 10.
		{Key: "spatial:transform", Value: []zarr.Float{index.PixelSize, 0, zarr.Float(oe), 0, -index.PixelSize, zarr.Float(on)}},
		{Key: "spatial:shape", Value: []int{z.H, z.W}},
		{Key: "spatial:bbox", Value: []zarr.Float{zarr.Float(oe), zarr.Float(on - index.PixelSize*float64(z.H)), zarr.Float(oe + index.PixelSize*float64(z.W)), zarr.Float(on)}},
		{Key: "spatial:registration", Value: "pixel"},
		{Key: "tessera:dataset_version", Value: b.datasetVersion()},
		{Key: "tessera:year", Value: z.Year},
		{Key: "tessera:utm_zone", Value: z.Zone},
		{Key: "tessera:n_bands", Value: Bands},
		{Key: "tessera:n_tiles", Value: len(z.Placements)},
		{Key: "tessera:model_version", Value: b.modelVersion()},
		{Key: "tessera:build_version", Value: b.BuildVersion},
		{Key: "tessera:has_rgb_preview", Value: b.RGB},
	}
}

func sharded(dtype zarr.DataType, shape, shard, inner []int, fill any, dims []string) zarr.ArrayMetadata {
	return zarr.ArrayMetadata{
		Shape:      shape,
		DataType:   dtype,
		ChunkShape: shard,
		FillValue:  fill,
		Codecs: []zarr.Codec{zarr.ShardingCodec(inner,
			[]zarr.Codec{zarr.BytesCodec(dtype), zarr.ZstdCodec(ZstdLevel)},
			[]zarr.Codec{zarr.BytesCodec(zarr.DataType("uint64")), zarr.Crc32cCodec()})},
		DimensionNames: dims,
	}
}

// EmbeddingsMeta is the metadata of utmNN/embeddings.
func EmbeddingsMeta(z *index.ZoneGrid) zarr.ArrayMetadata {
	return sharded("int8", []int{z.H, z.W, Bands}, []int{ShardSize, ShardSize, Bands},
		[]int{InnerSize, InnerSize, Bands}, 0, []string{"northing", "easting", "band"})
}

// ScalesMeta is the metadata of utmNN/scales.
func ScalesMeta(z *index.ZoneGrid) zarr.ArrayMetadata {
	return sharded("float32", []int{z.H, z.W}, []int{ShardSize, ShardSize},
		[]int{InnerSize, InnerSize}, math.NaN(), []string{"northing", "easting"})
}

// RGBMeta is the metadata of utmNN/rgb.
func RGBMeta(z *index.ZoneGrid) zarr.ArrayMetadata {
	return sharded("uint8", []int{z.H, z.W, 4}, []int{ShardSize, ShardSize, 4},
		[]int{InnerSize, InnerSize, 4}, 0, []string{"northing", "easting", "rgba"})
}

// CoordMeta is the metadata of a 1-D coordinate array of n elements.
func CoordMeta(dtype zarr.DataType, n int, dim string) zarr.ArrayMetadata {
	return zarr.ArrayMetadata{
		Shape:          []int{n},
		DataType:       dtype,
		ChunkShape:     []int{min(n, CoordChunk)},
		FillValue:      0,
		Codecs:         []zarr.Codec{zarr.BytesCodec(dtype)},
		DimensionNames: []string{dim},
	}
}

// Easting is the pixel-centre easting of column i: origin_e + (i + 0.5)·10.
func Easting(z *index.ZoneGrid, i int) float64 {
	return z.OriginE + (float64(i)+0.5)*index.PixelSize
}

// Northing is the pixel-centre northing of row i: origin_n − (i + 0.5)·10.
func Northing(z *index.ZoneGrid, i int) float64 {
	return z.OriginN - (float64(i)+0.5)*index.PixelSize
}
