// Package landmask reads and writes a source tile's landmask: a
// single-band uint8 GeoTIFF on the tile's own pixel grid, 0 = water.
//
// Reading decodes with golang.org/x/image/tiff (striped or tiled; none,
// DEFLATE, LZW or PackBits; horizontal predictor) after a check of the
// first IFD that turns what it cannot or must not decode — BigTIFF, ZSTD
// and other codecs, more than one band, samples that are not unsigned
// 8-bit, a size other than the tile's — into a clear error instead of a
// wrong mask. Values are returned as stored, as GDAL and rasterio read
// them: no photometric inversion, palette indices as they are. The GeoTIFF
// georeferencing is not read: a tile's grid comes from its name.
package landmask
