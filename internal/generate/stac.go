package generate

import (
	"fmt"
	"strconv"

	"github.com/twpayne/go-proj/v11"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/keyspace"
)

// STAC 1.1.0 documents of a static, self-contained catalog with relative
// links (spec §6). Plain structs: field order is the JSON key order.

const stacVersion = "1.1.0"

// ZarrMediaType is the registered media type of a Zarr v3 store.
const ZarrMediaType = "application/vnd.zarr; version=3"

// STACLink is a STAC link object.
type STACLink struct {
	Rel   string `json:"rel"`
	Href  string `json:"href"`
	Type  string `json:"type,omitempty"`
	Title string `json:"title,omitempty"`
}

// STACCatalog is catalog.json.
type STACCatalog struct {
	Type        string     `json:"type"`
	ID          string     `json:"id"`
	StacVersion string     `json:"stac_version"`
	Title       string     `json:"title"`
	Description string     `json:"description"`
	Links       []STACLink `json:"links"`
}

// STACCollection is geotessera-<year>/collection.json.
type STACCollection struct {
	Type        string     `json:"type"`
	ID          string     `json:"id"`
	StacVersion string     `json:"stac_version"`
	Title       string     `json:"title"`
	Description string     `json:"description"`
	License     string     `json:"license"`
	Extent      STACExtent `json:"extent"`
	Links       []STACLink `json:"links"`
}

// STACExtent is a collection's extent.
type STACExtent struct {
	Spatial struct {
		BBox [][4]float64 `json:"bbox"`
	} `json:"spatial"`
	Temporal struct {
		Interval [][2]string `json:"interval"`
	} `json:"temporal"`
}

// STACItem is one zone's item.
type STACItem struct {
	Type        string               `json:"type"`
	StacVersion string               `json:"stac_version"`
	ID          string               `json:"id"`
	Geometry    STACPolygon          `json:"geometry"`
	BBox        [4]float64           `json:"bbox"`
	Properties  STACItemProperties   `json:"properties"`
	Links       []STACLink           `json:"links"`
	Assets      map[string]STACAsset `json:"assets"`
	Collection  string               `json:"collection"`
}

// STACPolygon is a GeoJSON polygon.
type STACPolygon struct {
	Type        string         `json:"type"`
	Coordinates [][][2]float64 `json:"coordinates"`
}

// STACItemProperties are a zone item's properties (spec §6).
type STACItemProperties struct {
	Datetime       string `json:"datetime"`
	UTMZone        int    `json:"tessera:utm_zone"`
	ProjCode       string `json:"proj:code"`
	GridWidth      int    `json:"grid_width"`
	GridHeight     int    `json:"grid_height"`
	NBands         int    `json:"tessera:n_bands"`
	HasRGBPreview  bool   `json:"tessera:has_rgb_preview"`
	BuildVersion   string `json:"tessera:build_version"`
	DatasetVersion string `json:"tessera:dataset_version"`
	// RGBStretch is the stretch the zone's rgb bytes were made with (spec
	// §4): it depends on tile bytes, so it is recorded here and not in any
	// zarr.json.
	RGBStretch *STACStretch `json:"tessera:rgb_stretch,omitempty"`
}

// STACStretch is an item's tessera:rgb_stretch: per band (R, G, B = bands
// 0, 1, 2) the value mapped to 0 (p2) and to 255 (p98), and the mode,
// "zone" or "global". Each value is the float32 the stretch used, written
// as the shortest decimal that reads back to it.
type STACStretch struct {
	P2   []float64 `json:"p2"`
	P98  []float64 `json:"p98"`
	Mode string    `json:"mode"`
}

// NewSTACStretch returns the item property of stretch st made in mode.
func NewSTACStretch(st Stretch, mode string) *STACStretch {
	f32 := func(v [RGBBands]float32) []float64 {
		out := make([]float64, RGBBands)
		for b, x := range v {
			out[b], _ = strconv.ParseFloat(strconv.FormatFloat(float64(x), 'g', -1, 32), 64)
		}
		return out
	}
	return &STACStretch{P2: f32(st.Lo), P98: f32(st.Hi), Mode: mode}
}

// STACAsset is an item asset.
type STACAsset struct {
	Href  string   `json:"href"`
	Type  string   `json:"type"`
	Title string   `json:"title"`
	Roles []string `json:"roles"`
}

// Catalog returns catalog.json for the given years.
func Catalog(years []int) STACCatalog {
	c := STACCatalog{
		Type: "Catalog", ID: "geotessera", StacVersion: stacVersion,
		Title:       "Geotessera Embedding Stores",
		Description: "Static STAC catalog of Geotessera Zarr v3 embedding stores",
		Links:       []STACLink{{Rel: "root", Href: "./catalog.json", Type: "application/json"}},
	}
	for _, y := range years {
		c.Links = append(c.Links, STACLink{Rel: "child", Href: "./" + keyspace.CollectionDir(y) + "/collection.json",
			Type: "application/json", Title: fmt.Sprintf("Geotessera %d", y)})
	}
	return c
}

// ZoneBBox is a zone's [W, S, E, N] in degrees: the zone's longitude band,
// and the latitudes of the grid's bottom and top edges on the central
// meridian (easting 500000) of EPSG:326NN.
func ZoneBBox(p *index.Projector, z *index.ZoneGrid) ([4]float64, error) {
	pts := []proj.Coord{
		{500000, z.OriginN - index.PixelSize*float64(z.H)},
		{500000, z.OriginN},
	}
	if err := p.Transform(index.ZoneEPSG(z.Zone), "OGC:CRS84", pts); err != nil {
		return [4]float64{}, fmt.Errorf("zone %d bbox: %w", z.Zone, err)
	}
	west := float64((z.Zone-1)*6 - 180)
	return [4]float64{west, pts[0][1], west + 6, pts[1][1]}, nil
}

// Item returns the zone's STAC item, given its bbox from ZoneBBox.
func Item(b Build, z *index.ZoneGrid, bbox [4]float64) STACItem {
	w, s, e, n := bbox[0], bbox[1], bbox[2], bbox[3]
	return STACItem{
		Type: "Feature", StacVersion: stacVersion, ID: keyspace.ItemID(z.Zone, z.Year),
		Geometry: STACPolygon{Type: "Polygon", Coordinates: [][][2]float64{{{w, s}, {e, s}, {e, n}, {w, n}, {w, s}}}},
		BBox:     bbox,
		Properties: STACItemProperties{
			Datetime:       fmt.Sprintf("%d-01-01T00:00:00Z", z.Year),
			UTMZone:        z.Zone,
			ProjCode:       index.ZoneEPSG(z.Zone),
			GridWidth:      z.W,
			GridHeight:     z.H,
			NBands:         Bands,
			HasRGBPreview:  b.RGB,
			BuildVersion:   b.BuildVersion,
			DatasetVersion: b.datasetVersion(),
		},
		Links: []STACLink{
			{Rel: "root", Href: "../../catalog.json", Type: "application/json"},
			{Rel: "parent", Href: "../collection.json", Type: "application/json"},
			{Rel: "collection", Href: "../collection.json", Type: "application/json"},
		},
		Assets: map[string]STACAsset{"zarr": {
			Href:  fmt.Sprintf("../../%d.zarr/%s", z.Year, keyspace.ZoneGroup(z.Zone)),
			Type:  ZarrMediaType,
			Title: "Zarr v3 embedding store",
			Roles: []string{"data"},
		}},
		Collection: fmt.Sprintf("geotessera-%d", z.Year),
	}
}

// Collection returns a year's collection.json, given its zones' bboxes in
// zone order.
func Collection(year int, zones []*index.ZoneGrid, bboxes [][4]float64) STACCollection {
	c := STACCollection{
		Type: "Collection", ID: keyspace.CollectionDir(year), StacVersion: stacVersion,
		Title:       fmt.Sprintf("Geotessera %d", year),
		Description: fmt.Sprintf("Geotessera embedding stores for %d", year),
		License:     "other",
		Links:       []STACLink{{Rel: "root", Href: "../catalog.json", Type: "application/json"}},
	}
	var union [4]float64
	for i, bb := range bboxes {
		if i == 0 {
			union = bb
			continue
		}
		union = [4]float64{min(union[0], bb[0]), min(union[1], bb[1]), max(union[2], bb[2]), max(union[3], bb[3])}
	}
	if len(bboxes) == 0 {
		union = [4]float64{-180, -90, 180, 90}
	}
	c.Extent.Spatial.BBox = [][4]float64{union}
	c.Extent.Temporal.Interval = [][2]string{{fmt.Sprintf("%d-01-01T00:00:00Z", year), fmt.Sprintf("%d-12-31T23:59:59Z", year)}}
	for _, z := range zones {
		id := keyspace.ItemID(z.Zone, year)
		c.Links = append(c.Links, STACLink{Rel: "item", Href: "./" + id + "/" + id + ".json", Type: "application/geo+json"})
	}
	c.Links = append(c.Links, STACLink{Rel: "parent", Href: "../catalog.json", Type: "application/json"})
	return c
}
