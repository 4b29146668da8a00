// Package source opens a tiles root wherever it is — a local directory, an
// HTTP(S) server or an S3 bucket — as an index.Source, so that discovery
// and the shard generators read remote tiles exactly as local ones.
//
// A remote file is read in fixed-size blocks through one bounded in-memory
// block cache shared by every file of the source: a shard's row band is
// fetched with one ranged GET per contiguous run of missing blocks, the
// runs of a shard's windows in parallel, and the neighbouring shards that
// need the same rows find them in the cache. Every response is checked
// before any of its bytes is cached or returned: its Content-Range must be
// the range asked for, its total and ETag those of the file as opened (or
// as indexed), and its body exactly as long as announced; a file fetched
// whole is checked against its known sha256. Transient faults (timeouts,
// resets, short bodies, 5xx, 429) are retried a bounded number of times
// with exponential backoff and jitter, honouring Retry-After; a file still
// failing afterwards fails the read with an error naming its URL.
package source
