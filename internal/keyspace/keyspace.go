// Package keyspace owns the key space of the per-year store layout
// (docs/format.md §3, §5, §6): it is the one place that spells a key and
// parses one back. A key is a slash path from the store's root, such as
// "2024.zarr/utm30/embeddings/c/3/4/0" or
// "geotessera-2024/utm30_2024/utm30_2024.json".
//
// [Parse] turns a key into a [Key], a typed node: a year's root, a zone
// group, an array's metadata, a chunk with its coordinates, a STAC
// document. [Key.String] formats it back, and [Key.Phase] says which phase
// of a publishing run writes it. The helpers below build the keys the rest
// of the code needs; nothing outside this package writes "utm%02d" or
// "/c/".
package keyspace

import (
	"fmt"
	"strconv"
	"strings"
)

// Chunk geometry of the layout (docs/format.md §3, §5).
const (
	ShardSize   = 256 // a zone array's shard is ShardSize × ShardSize pixels
	InnerSize   = 4   // an inner chunk of a shard is InnerSize × InnerSize pixels
	GlobalChunk = 512 // a global_rgb chunk is GlobalChunk × GlobalChunk pixels
)

// Array names.
const (
	Embeddings = "embeddings"
	Scales     = "scales"
	RGB        = "rgb"
	Easting    = "easting"
	Northing   = "northing"
	Band       = "band"
	GlobalRGB  = "global_rgb"
	MetaFile   = "zarr.json"
	Catalog    = "catalog.json"
)

// Kind is what a key names.
type Kind int

const (
	// Invalid is not a key of the layout.
	Invalid Kind = iota
	// YearMeta is <year>.zarr/zarr.json, with the consolidated metadata.
	YearMeta
	// ZoneMeta is <year>.zarr/utmNN/zarr.json.
	ZoneMeta
	// GlobalMeta is <year>.zarr/global_rgb/zarr.json (the multiscale group).
	GlobalMeta
	// LevelMeta is <year>.zarr/global_rgb/<level>/zarr.json.
	LevelMeta
	// ArrayMeta is an array's zarr.json: of a zone (Zone set) or of a
	// global_rgb level (Level ≥ 0).
	ArrayMeta
	// Chunk is a chunk of an array: Coords holds its chunk coordinates.
	Chunk
	// STACCatalog is catalog.json.
	STACCatalog
	// STACCollection is geotessera-<year>/collection.json.
	STACCollection
	// STACItem is geotessera-<year>/utmNN_<year>/utmNN_<year>.json.
	STACItem
)

var kindNames = [...]string{"invalid", "year metadata", "zone metadata", "global_rgb metadata",
	"level metadata", "array metadata", "chunk", "STAC catalog", "STAC collection", "STAC item"}

func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return "kind(" + strconv.Itoa(int(k)) + ")"
	}
	return kindNames[k]
}

// Key is a parsed key of the layout.
type Key struct {
	Kind Kind
	Year int
	// Zone is the UTM zone (1..60) of a key under a zone group or of a
	// zone's STAC item, else 0.
	Zone int
	// Level is the global_rgb level of a key under global_rgb/<level>/,
	// else -1.
	Level int
	// Array is the array's name for ArrayMeta and Chunk keys.
	Array string
	// Coords are a Chunk key's chunk coordinates (every dimension).
	Coords []int
}

// Phases of a publishing run, in order: zone data, global_rgb level 0,
// global_rgb levels ≥ 1, then everything else (metadata, coordinates,
// STAC, the year's root zarr.json last).
const (
	PhaseZones    = "zones"
	PhaseGlobal0  = "global0"
	PhaseGlobal   = "global"
	PhaseFinalize = "finalize"
)

// Phase is the phase of a publishing run that writes k.
func (k Key) Phase() string {
	if k.Kind != Chunk {
		return PhaseFinalize
	}
	switch {
	case k.Zone != 0 && IsZoneData(k.Array):
		return PhaseZones
	case k.Level == 0 && k.Array == RGB:
		return PhaseGlobal0
	case k.Level > 0 && k.Array == RGB:
		return PhaseGlobal
	}
	return PhaseFinalize // coordinate and band chunks
}

// ChunksPhase is the phase that writes the chunks of the array whose
// directory is arrayDir ("2024.zarr/utm30/embeddings"): a walk that skips
// the data phases' chunk directories asks it before entering c/. An
// arrayDir that is not an array of the layout is PhaseFinalize.
func ChunksPhase(arrayDir string) string {
	k, ok := Parse(arrayDir + "/" + MetaFile)
	if !ok || k.Kind != ArrayMeta {
		return PhaseFinalize
	}
	k.Kind = Chunk
	return k.Phase()
}

// IsZoneData reports whether array is one of a zone's sharded data arrays
// (embeddings, scales, rgb), whose chunks are built from tile bytes.
func IsZoneData(array string) bool {
	return array == Embeddings || array == Scales || array == RGB
}

// zoneArrayDims is the chunk-grid rank of each zone array.
var zoneArrayDims = map[string]int{Embeddings: 3, Scales: 2, RGB: 3, Easting: 1, Northing: 1, Band: 1}

// levelArrayDims is the chunk-grid rank of each global_rgb level array.
var levelArrayDims = map[string]int{RGB: 3, Band: 1}

// Parse parses key (a slash path from the store's root, without a leading
// or trailing slash). ok is false for anything that is not a file key of
// the layout as it is spelled: the layout's keys only, in canonical form
// (no leading zeros, no empty or dot segments). Whether a parsed key
// exists in a given store is for the store to say (its zones, shards,
// levels).
func Parse(key string) (Key, bool) {
	parts := strings.Split(key, "/")
	bad := Key{Kind: Invalid, Level: -1}
	if key == Catalog {
		return Key{Kind: STACCatalog, Level: -1}, true
	}
	if y, ok := strings.CutPrefix(parts[0], "geotessera-"); ok {
		year, ok := parseInt(y)
		if !ok {
			return bad, false
		}
		switch {
		case len(parts) == 2 && parts[1] == "collection.json":
			return Key{Kind: STACCollection, Year: year, Level: -1}, true
		case len(parts) == 3 && parts[2] == parts[1]+".json":
			zone, yr, ok := parseItemID(parts[1])
			if !ok || yr != year {
				return bad, false
			}
			return Key{Kind: STACItem, Year: year, Zone: zone, Level: -1}, true
		}
		return bad, false
	}
	y, ok := strings.CutSuffix(parts[0], ".zarr")
	if !ok {
		return bad, false
	}
	year, ok := parseInt(y)
	if !ok || len(parts) < 2 {
		return bad, false
	}
	k := Key{Year: year, Level: -1}
	rest := parts[1:]
	if len(rest) == 1 && rest[0] == MetaFile {
		k.Kind = YearMeta
		return k, true
	}
	var dims map[string]int
	switch {
	case rest[0] == GlobalRGB:
		rest = rest[1:]
		if len(rest) == 1 && rest[0] == MetaFile {
			k.Kind = GlobalMeta
			return k, true
		}
		if len(rest) < 2 {
			return bad, false
		}
		l, ok := parseInt(rest[0])
		if !ok {
			return bad, false
		}
		k.Level = l
		rest = rest[1:]
		if len(rest) == 1 && rest[0] == MetaFile {
			k.Kind = LevelMeta
			return k, true
		}
		dims = levelArrayDims
	default:
		z, ok := ParseZoneGroup(rest[0])
		if !ok {
			return bad, false
		}
		k.Zone = z
		rest = rest[1:]
		if len(rest) == 1 && rest[0] == MetaFile {
			k.Kind = ZoneMeta
			return k, true
		}
		dims = zoneArrayDims
	}
	// <array>/zarr.json or <array>/c/<i>/<j>/...
	if len(rest) < 2 {
		return bad, false
	}
	n, ok := dims[rest[0]]
	if !ok {
		return bad, false
	}
	k.Array = rest[0]
	if len(rest) == 2 && rest[1] == MetaFile {
		k.Kind = ArrayMeta
		return k, true
	}
	if rest[1] != "c" || len(rest) != 2+n {
		return bad, false
	}
	k.Coords = make([]int, n)
	for d, p := range rest[2:] {
		if k.Coords[d], ok = parseInt(p); !ok {
			return bad, false
		}
	}
	k.Kind = Chunk
	return k, true
}

// String formats k back into its key; Parse(k.String()) == k for every
// key Parse accepts.
func (k Key) String() string {
	switch k.Kind {
	case STACCatalog:
		return Catalog
	case STACCollection:
		return CollectionDir(k.Year) + "/collection.json"
	case STACItem:
		return ItemKey(k.Year, k.Zone)
	case YearMeta:
		return YearDir(k.Year) + "/" + MetaFile
	case ZoneMeta:
		return ZoneDir(k.Year, k.Zone) + "/" + MetaFile
	case GlobalMeta:
		return YearDir(k.Year) + "/" + GlobalRGB + "/" + MetaFile
	case LevelMeta:
		return LevelDir(k.Year, k.Level) + "/" + MetaFile
	case ArrayMeta:
		return k.arrayDir() + "/" + MetaFile
	case Chunk:
		var b strings.Builder
		b.WriteString(k.arrayDir())
		b.WriteString("/c")
		for _, c := range k.Coords {
			b.WriteByte('/')
			b.WriteString(strconv.Itoa(c))
		}
		return b.String()
	}
	return ""
}

func (k Key) arrayDir() string {
	if k.Zone != 0 {
		return ZoneDir(k.Year, k.Zone) + "/" + k.Array
	}
	return LevelDir(k.Year, k.Level) + "/" + k.Array
}

// ChunkRow is the chunk directory of row i of a Chunk key's array ("…/c/i/"):
// the prefix under which a listing finds that row's chunks.
func (k Key) ChunkRow() string {
	return k.arrayDir() + "/c/" + strconv.Itoa(k.Coords[0]) + "/"
}

// YearDir is a year's store, "2024.zarr".
func YearDir(year int) string { return strconv.Itoa(year) + ".zarr" }

// ZoneGroup is a zone's group name, "utm30".
func ZoneGroup(zone int) string { return fmt.Sprintf("utm%02d", zone) }

// ZoneDir is a zone's group in a year's store, "2024.zarr/utm30".
func ZoneDir(year, zone int) string { return YearDir(year) + "/" + ZoneGroup(zone) }

// LevelDir is a global_rgb level's group, "2024.zarr/global_rgb/3".
func LevelDir(year, level int) string {
	return YearDir(year) + "/" + GlobalRGB + "/" + strconv.Itoa(level)
}

// ParseZoneGroup parses a zone group name, "utm30" → 30 (1..60, two digits).
func ParseZoneGroup(name string) (int, bool) {
	d, ok := strings.CutPrefix(name, "utm")
	if !ok || len(d) != 2 || d[0] < '0' || d[0] > '9' || d[1] < '0' || d[1] > '9' {
		return 0, false
	}
	z := int(d[0]-'0')*10 + int(d[1]-'0')
	return z, z >= 1 && z <= 60
}

// ZoneShard is the key of shard (i, j) of a zone data array (embeddings,
// scales or rgb): embeddings and rgb have a trailing band-axis chunk 0.
func ZoneShard(year, zone int, array string, i, j int) string {
	c := []int{i, j}
	if zoneArrayDims[array] == 3 {
		c = append(c, 0)
	}
	return Key{Kind: Chunk, Year: year, Zone: zone, Level: -1, Array: array, Coords: c}.String()
}

// GlobalRGBChunk is the key of chunk (i, j) of level l of a year's
// global_rgb rgb array.
func GlobalRGBChunk(year, level, i, j int) string {
	return Key{Kind: Chunk, Year: year, Level: level, Array: RGB, Coords: []int{i, j, 0}}.String()
}

// CollectionDir is the folder of a year's STAC collection, "geotessera-2024".
func CollectionDir(year int) string { return "geotessera-" + strconv.Itoa(year) }

// ItemID is a zone's STAC item id, "utm30_2024": viewers rely on the suffix.
func ItemID(zone, year int) string { return ZoneGroup(zone) + "_" + strconv.Itoa(year) }

// ItemKey is the key of a zone's STAC item.
func ItemKey(year, zone int) string {
	id := ItemID(zone, year)
	return CollectionDir(year) + "/" + id + "/" + id + ".json"
}

func parseItemID(id string) (zone, year int, ok bool) {
	g, y, found := strings.Cut(id, "_")
	if !found {
		return 0, 0, false
	}
	zone, ok1 := ParseZoneGroup(g)
	year, ok2 := parseInt(y)
	return zone, year, ok1 && ok2
}

// StretchRecordPrefix starts the name of an rgb stretch's record in a
// publishing run's output: bookkeeping beside the tree, not a key of it
// (a sink's listing leaves it out, a finished run deletes it).
const StretchRecordPrefix = ".tesserafs-stretch-"

// StretchRecord is the output's name of the record of year's rgb stretch
// of zone (0: the year's global stretch): one flat name at the output's
// root, so that removing it leaves no directory.
func StretchRecord(year, zone int) string {
	if zone == 0 {
		return StretchRecordPrefix + strconv.Itoa(year) + ".json"
	}
	return StretchRecordPrefix + strconv.Itoa(year) + "-" + ZoneGroup(zone) + ".json"
}

// IsChunk reports whether key is under an array's chunk directory (c/).
func IsChunk(key string) bool {
	k, ok := Parse(key)
	return ok && k.Kind == Chunk
}

// parseInt parses a canonical non-negative decimal: no sign, no leading
// zero (except "0"), at most 9 digits.
func parseInt(s string) (int, bool) {
	if s == "" || len(s) > 9 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
