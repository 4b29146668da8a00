// Package cache keeps generated chunks on disk in a badger v4 database,
// bounded by a byte budget.
//
// An entry is identified by its key and its input fingerprint (the format
// version and the path, size and modification time of every source file),
// so a changed tile changes the fingerprint and stale bytes are never
// found. Entries that nobody reads any more are evicted least recently
// read first; the space their values held in badger's value log is
// reclaimed in the background (DropPrefix, so that compaction records the
// discarded bytes, then RunValueLogGC), and the whole directory stays
// within the budget plus 10 %.
//
// Badger keeps no access times, so the cache keeps its own: an in-memory
// index of every entry (key, fingerprint, size, access sequence) answers
// Size without touching the database and orders evictions. The index is
// persisted as one small record per entry, written with the entry in the
// same transaction, and its access sequence is refreshed in batches (a
// coarse order that survives restarts). At open, the index is rebuilt from
// those records alone.
//
// Values are written in pieces no larger than a value-log file, so that
// small budgets can use small value-log files: the space a file holds
// beyond its live entries is what bounds the disk overhead.
//
// A killed process loses at most the access order since the last flush:
// badger replays its write-ahead log, and a value and its index record are
// committed together.
package cache
