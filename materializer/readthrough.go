package materializer

import (
	"context"
	"log/slog"
	"strings"
	"sync"

	"github.com/tesserafs/tesserafs/internal/keyspace"
	"github.com/tesserafs/tesserafs/internal/store"
)

// OutputReadThrough is the read-through source (store.Options.ReadThrough) of a
// store that a run writes to a sink: a derived chunk (a zone's rgb shard,
// a global_rgb level) is then built from the keys of the level below that
// this run, an earlier one or another partition has written, read back
// from the output (a file, an object), instead of being recomputed. It is
// the one read-through of the materializer, for every kind of sink, given
// to the store when it is opened.
//
// It serves nothing until a run into the same sink (compared by name) has
// claimed the output for the store's inputs: the output's state key names
// the same fingerprint (see RunTo), so a key there was written from the
// same inputs. A key is written atomically and never replaced, so after
// that its key alone identifies its content, and the fingerprint passed to
// Get is not needed. Keys that the run has not seen in the output (its
// listing, and what it wrote since) are not asked for, which saves a
// request per derived chunk on an object store.
type OutputReadThrough struct {
	sink Sink

	mu  sync.RWMutex // guards the fields below
	ctx context.Context
	has func(key string) bool // nil: not armed
	run Sink                  // the armed run's sink (its temporary files are its own)
}

// outputReadThrough is the OutputReadThrough st was opened with (the
// tesserafs store's Options.ReadThrough), if any.
func outputReadThrough(st Store) (*OutputReadThrough, bool) {
	rt, ok := st.(interface{ ReadThrough() store.Cache })
	if !ok {
		return nil, false
	}
	oc, ok := rt.ReadThrough().(*OutputReadThrough)
	return oc, ok
}

// NewOutputReadThrough returns the read-through source for runs writing to sink.
func NewOutputReadThrough(sink Sink) *OutputReadThrough { return &OutputReadThrough{sink: sink} }

// armed returns the run's context and key set, or ok false.
func (c *OutputReadThrough) armed() (context.Context, func(string) bool, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.ctx, c.has, c.has != nil
}

// Get implements store.Cache. A stretch record (store.StretchRecords),
// which listings leave out, is asked for without consulting them.
func (c *OutputReadThrough) Get(key string, _ []byte) ([]byte, bool) {
	ctx, has, ok := c.armed()
	if !ok || !(has(key) || strings.HasPrefix(key, keyspace.StretchRecordPrefix)) {
		return nil, false
	}
	b, ok, err := c.sink.Get(ctx, key)
	return b, ok && err == nil
}

// Size implements store.Cache: the size of a file of a directory sink
// (other sinks answer nothing; the store reads derived chunks with Get).
func (c *OutputReadThrough) Size(key string, _ []byte) (int64, bool) {
	_, has, ok := c.armed()
	if !ok || !has(key) {
		return 0, false
	}
	if d, isDir := c.sink.(*DirSink); isDir {
		return d.size(key)
	}
	return 0, false
}

// Put implements store.Cache: the materializer writes the store's keys
// itself; Put writes only a stretch record (written once; a failure costs
// the other partitions a recomputation, not a wrong byte).
func (c *OutputReadThrough) Put(key string, _ []byte, data []byte) {
	ctx, _, ok := c.armed()
	if !ok || !strings.HasPrefix(key, keyspace.StretchRecordPrefix) {
		return
	}
	c.mu.RLock()
	run := c.run
	c.mu.RUnlock()
	if run == nil {
		return
	}
	if _, err := run.Put(ctx, key, data); err != nil {
		slog.Debug("stretch record not written", "key", key, "out", c.sink.String(), "err", err)
	}
}

// arm lets c serve the keys of sink that has reports present, with ctx
// for its requests, once a run has claimed sink for the store's inputs; a
// source for another sink stays silent.
func (c *OutputReadThrough) arm(ctx context.Context, sink Sink, has func(string) bool) bool {
	if c.sink == nil || c.sink.String() != sink.String() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ctx, c.has, c.run = ctx, has, sink
	return true
}

// disarm ends a run's use of c.
func (c *OutputReadThrough) disarm() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ctx, c.has, c.run = nil, nil, nil
}
