package index

import (
	"path/filepath"
	"strconv"
)

// A tile's file names are not stored: they follow from the root, the year
// and the coordinates (spec §1), and are built when asked for. At a
// million tiles three stored paths per tile were 300 MB of a mount's
// memory.

// EmbeddingsPath is the name of the tile's embeddings .npy in its source
// (a local path, or a URL of a remote root).
func (t *Tile) EmbeddingsPath() string {
	return t.files.path(tileRel(t.Year, t.Coord, ".npy"))
}

// ScalesPath is the name of the tile's scales .npy in its source.
func (t *Tile) ScalesPath() string {
	return t.files.path(tileRel(t.Year, t.Coord, "_scales.npy"))
}

// LandmaskPath is the name of the tile's landmask GeoTIFF in its source,
// or "" when the tile has none (it is all land).
func (t *Tile) LandmaskPath() string {
	if !t.hasMask {
		return ""
	}
	return t.files.path(LandmaskDir + "/" + t.Coord.Name() + ".tiff")
}

// tileRel is the slash path under the root of a tile file of year y whose
// name ends in suffix (".npy" or "_scales.npy").
func tileRel(y int, c TileCoord, suffix string) string {
	name := c.Name()
	return RepresentationDir + "/" + strconv.Itoa(y) + "/" + name + "/" + name + suffix
}

// path is the source's name of a slash path under the root.
func (c *checker) path(rel string) string {
	if c == nil {
		return ""
	}
	return sourcePath(c.src, rel)
}

// sourcePath is src's name of rel. A local root's names are the clean root
// and rel joined by a slash (rel is built here, already clean), without
// filepath.Join's work.
func sourcePath(src Source, rel string) string {
	if d, ok := src.(DirSource); ok && filepath.Separator == '/' {
		return d.Root + "/" + rel
	}
	return src.Path(rel)
}

// SetSource points the catalogue, and the names of all its tiles, at src:
// a copy of the same tiles root elsewhere. See internal/source.Rebase.
func (c *Catalogue) SetSource(src Source) {
	c.Root, c.Source = src.String(), src
	if c.checker != nil {
		c.checker.src = src
	}
}
