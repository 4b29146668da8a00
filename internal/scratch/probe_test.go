package scratch

import (
	"context"
	"testing"
	"time"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/testtiles"
	"github.com/tesserafs/tesserafs/store"
)

func TestProbe(t *testing.T) {
	t0 := time.Now()
	root := testtiles.Root(t, "test")
	t.Log("tiles", time.Since(t0), root)
	cat, err := index.Discover(context.Background(), root, index.Options{})
	if err != nil { t.Fatal(err) }
	st, err := store.New(cat, store.Options{Workers: 2})
	if err != nil { t.Fatal(err) }
	var n, total int64
	var maxSz int
	t0 = time.Now()
	st.Walk(context.Background(), "", func(k string) error {
		b, err := st.Get(context.Background(), k)
		if err != nil { t.Fatal(k, err) }
		n++; total += int64(len(b)); maxSz = max(maxSz, len(b))
		if len(b) > 1<<20 { t.Log(k, len(b)) }
		return nil
	})
	t.Log(n, total, maxSz, time.Since(t0), st.Stats())
}
