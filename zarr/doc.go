// Package zarr turns Zarr v3 values into bytes and back: metadata documents
// (zarr.json), chunk keys, and the chunk and shard encodings of the codec chain
// bytes → zstd, with sharding_indexed (index at the end, bytes + crc32c).
//
// Its one idea is that a Zarr store is nothing but keys and their bytes, so
// this package is pure values and functions: it never opens a file, knows no
// store layout and nothing about the data it carries. Callers decide which key
// holds which bytes; this package only says what those bytes are.
//
// Metadata is written with a stable key order and ordered attributes ([Attrs]),
// so the same value always gives the same bytes. [Encode] renders any metadata
// value as the content of a zarr.json file: indented with two spaces, like
// zarr-python, and ending in a newline.
//
// Shards are built by a [ShardEncoder], one per worker: it reuses a single
// zstd encoder and appends every compressed inner chunk to one output buffer,
// so building a shard allocates nothing once the buffers have grown.
// [DecodeShard] is the strict inverse, meant for tests and for reading bytes
// from elsewhere: it verifies the index checksum and every index entry.
package zarr
