package httpserve

import (
	"context"
	"log/slog"
	"sync"
)

// AsyncHandler is a slog.Handler that hands records to another handler on
// a goroutine of its own, so that a request does not wait for its access
// log line to be formatted and written (to a terminal, a pipe, a journal).
// The queue is bounded: when it is full, Handle waits, so nothing is lost
// and memory stays bounded. Close delivers what is queued and stops.
type AsyncHandler struct {
	next slog.Handler
	q    *asyncQueue
}

type asyncQueue struct {
	ch     chan asyncRecord
	done   chan struct{}
	mu     sync.RWMutex // R: sending; W: closing
	closed bool
}

type asyncRecord struct {
	h slog.Handler
	r slog.Record
}

// NewAsyncHandler returns a handler that delivers to next, with up to
// queue records waiting (default 1024).
func NewAsyncHandler(next slog.Handler, queue int) *AsyncHandler {
	if queue <= 0 {
		queue = 1024
	}
	q := &asyncQueue{ch: make(chan asyncRecord, queue), done: make(chan struct{})}
	go func() {
		defer close(q.done)
		for ar := range q.ch {
			// The request the record is about has ended: its context
			// is gone, and writing the record must not depend on it.
			_ = ar.h.Handle(context.Background(), ar.r)
		}
	}()
	return &AsyncHandler{next: next, q: q}
}

// Enabled is next's.
func (a *AsyncHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return a.next.Enabled(ctx, l)
}

// Handle queues r for next; after Close it delivers at once.
func (a *AsyncHandler) Handle(ctx context.Context, r slog.Record) error {
	a.q.mu.RLock()
	defer a.q.mu.RUnlock()
	if a.q.closed {
		return a.next.Handle(ctx, r)
	}
	a.q.ch <- asyncRecord{h: a.next, r: r.Clone()}
	return nil
}

// WithAttrs and WithGroup derive from next; the derived handlers share
// the queue.
func (a *AsyncHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &AsyncHandler{next: a.next.WithAttrs(attrs), q: a.q}
}

func (a *AsyncHandler) WithGroup(name string) slog.Handler {
	return &AsyncHandler{next: a.next.WithGroup(name), q: a.q}
}

// Close delivers the queued records and returns when they are written.
// Records handled after Close are delivered synchronously.
func (a *AsyncHandler) Close() {
	a.q.mu.Lock()
	if !a.q.closed {
		a.q.closed = true
		close(a.q.ch)
	}
	a.q.mu.Unlock()
	<-a.q.done
}
