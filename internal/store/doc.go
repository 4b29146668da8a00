// Package store is the virtual year store: every key of every
// <year>.zarr/ tree and of the STAC catalog, answered from the tile index
// by Stat, Get and ReadDir. A year store is a function from a key to
// bytes; this package is that function's dispatcher.
//
// Listing a directory never generates data: names come from the index.
// Get of a chunk generates it on a bounded pool of workers, once per key
// at a time (single flight), through an optional Cache. The FUSE mount and
// the materializer are thin clients of a Store, so the bytes they serve
// and write are the same by construction.
package store
