package httpserve

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is an io.Writer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// TestAsyncHandler: every record of concurrent loggers arrives, whole and
// in each logger's order, with the attributes of derived loggers, through
// a queue much shorter than the records; after Close records are written
// at once.
func TestAsyncHandler(t *testing.T) {
	var buf lockedBuffer
	a := NewAsyncHandler(slog.NewTextHandler(&buf, nil), 4)
	const loggers, each = 4, 200
	var wg sync.WaitGroup
	for g := range loggers {
		l := slog.New(a).With("g", g)
		wg.Go(func() {
			for i := range each {
				l.Info("http", "i", i)
			}
		})
	}
	wg.Wait()
	a.Close()
	lines := strings.Split(strings.TrimSpace(buf.b.String()), "\n")
	if len(lines) != loggers*each {
		t.Fatalf("%d lines, want %d", len(lines), loggers*each)
	}
	next := make([]int, loggers)
	for _, line := range lines {
		var g, i int
		k := strings.Index(line, "msg=http g=")
		if k < 0 {
			t.Fatalf("line %q", line)
		}
		if _, err := fmt.Sscanf(line[k:], "msg=http g=%d i=%d", &g, &i); err != nil || g < 0 || g >= loggers {
			t.Fatalf("line %q: %v", line, err)
		}
		if i != next[g] {
			t.Fatalf("logger %d: record %d after %d", g, i, next[g]-1)
		}
		next[g]++
	}
	slog.New(a).Info("after close")
	if !strings.Contains(buf.b.String(), "after close") {
		t.Error("a record after Close was not written")
	}
	a.Close() // twice: no panic
}
