package httpserve

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/keyspace"
	"github.com/tesserafs/tesserafs/internal/source"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/testservers"
	"github.com/tesserafs/tesserafs/internal/testtiles"
)

// TestSourceOutage: serve over HTTP tiles (checked on first use, as
// `tesserafs serve` runs) whose server answers 503 for one tile: a chunk
// that needs the tile is 503 with Retry-After — readers that retry come
// back — not a 500; once the tile server answers again and the source's
// DownFor has passed, the same chunk is 200 with the materialized bytes.
func TestSourceOutage(t *testing.T) {
	ctx := context.Background()
	tiles := testtiles.Root(t, "test")
	out := materializedTree(t)
	outage := testservers.StartTileOutage(t, tiles)
	log := testLogger(t, slog.LevelError)
	const downFor = 500 * time.Millisecond
	src, err := source.OpenWith(ctx, outage.URL, source.Options{Backoff: 2e6, MaxBackoff: 2e7, DownFor: downFor, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := index.DiscoverSource(ctx, src, index.Options{Lazy: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	y := cat.Years[0]
	z := y.Zones[0]
	pl := z.Placements[0]
	outage.Fail(t, pl.Tile.EmbeddingsPath())
	st, err := store.New(cat, store.Options{Workers: 2, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, New(st, Options{Logger: log}))
	key := keyspace.ZoneShard(y.Year, z.Zone, keyspace.Embeddings, max(pl.Row, 0)/keyspace.ShardSize, max(pl.Col, 0)/keyspace.ShardSize)

	for i := range 2 {
		resp, body := get(t, srv.URL+"/"+key, nil)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || resp.Header.Get("ETag") != "" {
			t.Fatalf("read %d with the tile server failing: %d, Retry-After %q, ETag %q (%s); want 503 with Retry-After, no ETag",
				i+1, resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("ETag"), body)
		}
	}
	outage.Recover()
	time.Sleep(downFor + 100*time.Millisecond)
	resp, got := get(t, srv.URL+"/"+key, nil)
	want, _ := os.ReadFile(filepath.Join(out, key))
	if resp.StatusCode != 200 || !bytes.Equal(got, want) || len(want) == 0 {
		t.Fatalf("%s after the server is back: %d, %d bytes; want 200 and the %d materialized bytes", key, resp.StatusCode, len(got), len(want))
	}
}
