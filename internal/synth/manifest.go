package synth

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/tesserafs/tesserafs/index"
)

// Manifest is <root>/synth.json: every synthetic tile under a tiles root,
// per year, with what it needs to recompute its values from the oracle
// functions independently (for example in Python tests). Write merges into
// it, so it covers every year and call.
type Manifest struct {
	Years []ManifestYear `json:"years"`
}

// ManifestYear lists the tiles of one year, sorted by (lon, lat).
type ManifestYear struct {
	Year  int            `json:"year"`
	Tiles []ManifestTile `json:"tiles"`
}

// Landmask kinds of a ManifestTile. The landmask file is shared by every
// year of a tile, so Write updates a tile's Landmask in all years.
const (
	LandmaskWater   = "water"    // Water(gE, gN) → 0, else 1
	LandmaskAllLand = "all_land" // every pixel 1 (sparse tiles)
	LandmaskNone    = "none"     // no file: all land
)

// ManifestTile is one tile of a year.
type ManifestTile struct {
	Name       string `json:"name"`
	Lon100     int    `json:"lon100"`
	Lat100     int    `json:"lat100"`
	Scales3D   bool   `json:"scales3d"`
	NoLandmask bool   `json:"no_landmask"`
	// Sparse tiles have holes for data: embeddings 0 and scales 0.0.
	Sparse   bool   `json:"sparse"`
	Landmask string `json:"landmask"`
}

// Spec is the TileSpec the entry was written from. A tile whose landmask
// is all land (LandmaskAllLand) has the values of NoLandmask.
func (t ManifestTile) Spec() TileSpec {
	return TileSpec{
		Coord:      index.TileCoord{Lon100: t.Lon100, Lat100: t.Lat100},
		Scales3D:   t.Scales3D,
		NoLandmask: t.Landmask != LandmaskWater,
	}
}

// ReadManifest reads <root>/synth.json.
func ReadManifest(root string) (Manifest, error) {
	path := filepath.Join(root, ManifestName)
	var m Manifest
	data, err := os.ReadFile(path)
	if err != nil {
		return m, fmt.Errorf("synth: manifest: %w", err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("synth: manifest %s: %w", path, err)
	}
	return m, nil
}

// manifestMu serialises manifest updates within the process; concurrent
// synth processes on one root are not supported.
var manifestMu sync.Mutex

// updateManifest merges the tiles written for year into root's manifest.
func updateManifest(root string, year int, tiles []TileSpec, sparse bool) error {
	manifestMu.Lock()
	defer manifestMu.Unlock()
	m, err := ReadManifest(root)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	y := slices.IndexFunc(m.Years, func(y ManifestYear) bool { return y.Year == year })
	if y < 0 {
		m.Years = append(m.Years, ManifestYear{Year: year})
		y = len(m.Years) - 1
	}
	yt := &m.Years[y].Tiles
	at := make(map[string]int, len(*yt))
	for i, t := range *yt {
		at[t.Name] = i
	}
	mask := map[string]string{}
	for _, t := range tiles {
		e := ManifestTile{
			Name:       t.Coord.Name(),
			Lon100:     t.Coord.Lon100,
			Lat100:     t.Coord.Lat100,
			Scales3D:   t.Scales3D,
			NoLandmask: t.NoLandmask,
			Sparse:     sparse,
			Landmask:   LandmaskWater,
		}
		switch {
		case t.NoLandmask:
			e.Landmask = LandmaskNone
		case sparse:
			e.Landmask = LandmaskAllLand
		}
		mask[e.Name] = e.Landmask
		if i, ok := at[e.Name]; ok {
			(*yt)[i] = e
		} else {
			at[e.Name] = len(*yt)
			*yt = append(*yt, e)
		}
	}
	for y := range m.Years {
		for i, t := range m.Years[y].Tiles {
			if k, ok := mask[t.Name]; ok {
				m.Years[y].Tiles[i].Landmask = k
				m.Years[y].Tiles[i].NoLandmask = k == LandmaskNone
			}
		}
		slices.SortFunc(m.Years[y].Tiles, func(a, b ManifestTile) int {
			if a.Lon100 != b.Lon100 {
				return a.Lon100 - b.Lon100
			}
			return a.Lat100 - b.Lat100
		})
	}
	slices.SortFunc(m.Years, func(a, b ManifestYear) int { return a.Year - b.Year })
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("synth: manifest: %w", err)
	}
	return writeFileAtomic(filepath.Join(root, ManifestName), append(data, '\n'))
}
