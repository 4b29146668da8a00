// Package generate computes the bytes of one key of a year store: a zone
// shard from the windows of the source tiles that overlap it, a coordinate
// chunk, a metadata document or a STAC file. Every function here is
// deterministic: the same tiles always give the same bytes, which is what
// lets the mount, the cache and the materializer agree byte for byte.
//
// Generation is per shard and per worker: a Worker holds the reusable
// buffers and encoder of one generation at a time, so memory is bounded by
// the number of workers, not by the number of tiles.
package generate
