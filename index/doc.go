// Package index is the catalogue of source tiles: it discovers the tiles
// of a tiles root by walking its layout once, computes every tile's grid
// from its coordinates alone (spec §2), groups tiles into per-zone grids,
// and answers "which tiles overlap this window of a zone" without scanning.
package index
