package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
	"github.com/tesserafs/tesserafs/internal/keyspace"
	"github.com/tesserafs/tesserafs/internal/testtiles"
)

// TestMetadataWithoutTileBytes proves spec §4's rule through a real mount
// and a real serve: with every tile's .npy files gone (the registry still
// lists them), both answer every zarr.json — root with its consolidated
// metadata, zones, arrays, global_rgb — with the same bytes as over the
// intact tiles; only chunk reads fail, and the failure names the tile.
func TestMetadataWithoutTileBytes(t *testing.T) {
	requireFUSE(t)
	tiles := testtiles.Copy(t, testtiles.Root(t, "test"))
	cacheArgs := func() []string {
		return []string{"--cache", filepath.Join(t.TempDir(), "cache"), "--workers", "2"}
	}

	// Every zarr.json of the tree, found through a mount of the intact
	// tiles (chunk directories are not entered), and its bytes from the
	// mount and from serve.
	mount := func() (string, *mountProc) {
		mp := filepath.Join(t.TempDir(), "mnt")
		os.Mkdir(mp, 0o755)
		return mp, startMount(t, append([]string{"--tiles", tiles, mp}, cacheArgs()...)...)
	}
	mp, mproc := mount()
	var keys []string
	err := filepath.WalkDir(mp, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "c" {
			return fs.SkipDir
		}
		if d.Name() == "zarr.json" {
			rel, _ := filepath.Rel(mp, p)
			keys = append(keys, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var sproc *mountProc
	var base string
	read := func(mp, base string) map[string][]byte {
		out := map[string][]byte{}
		for _, k := range keys {
			b, err := os.ReadFile(filepath.Join(mp, k))
			if err != nil {
				t.Errorf("mount: %s: %v", k, err)
			}
			resp, err := http.Get(base + "/" + k)
			if err != nil {
				t.Fatalf("%v\n%s", err, sproc.out.String())
			}
			hb, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Equal(hb, b) {
				t.Errorf("serve: %s: %d, %d bytes; the mount has %d", k, resp.StatusCode, len(hb), len(b))
			}
			out[k] = b
		}
		return out
	}
	base, sproc = startServe(t, append([]string{"--tiles", tiles}, cacheArgs()...)...)
	want := read(mp, base)
	for _, k := range []string{"2024.zarr/zarr.json", "2024.zarr/utm30/zarr.json", "2024.zarr/utm30/rgb/zarr.json", "2024.zarr/global_rgb/zarr.json", "2024.zarr/global_rgb/0/rgb/zarr.json"} {
		if len(want[k]) == 0 {
			t.Fatalf("%s not found among %d zarr.json", k, len(keys))
		}
	}
	stop := func() {
		for _, p := range []*mountProc{mproc, sproc} {
			p.cmd.Process.Signal(syscall.SIGTERM)
			p.wait(t)
		}
	}
	stop()

	// The .npy files go; landmasks and the registry stay.
	cat, err := index.Discover(context.Background(), tiles, index.Options{Lazy: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	z := cat.Years[0].Zones[0]
	for _, zz := range cat.Years[0].Zones {
		for _, pl := range zz.Placements {
			for _, f := range []string{pl.Tile.EmbeddingsPath(), pl.Tile.ScalesPath()} {
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	sh := z.Shards(generate.ShardSize)[0]
	ov := z.Overlapping(sh.Row*generate.ShardSize, sh.Col*generate.ShardSize, (sh.Row+1)*generate.ShardSize, (sh.Col+1)*generate.ShardSize)
	victim := ov[0].Tile.Coord.Name()
	chunk := "2024.zarr/" + keyspace.ZoneGroup(z.Zone) + "/embeddings/c/" + strconv.Itoa(sh.Row) + "/" + strconv.Itoa(sh.Col) + "/0"

	mp, mproc = mount()
	base, sproc = startServe(t, append([]string{"--tiles", tiles}, cacheArgs()...)...)
	defer stop()
	got := read(mp, base)
	same := 0
	for _, k := range keys {
		if bytes.Equal(got[k], want[k]) {
			same++
		} else {
			t.Errorf("%s differs without the .npy files", k)
		}
	}
	t.Logf("%d of %d zarr.json identical through mount and serve without the tiles' .npy files", same, len(keys))

	// Only chunk reads fail, naming the tile.
	if _, err := os.ReadFile(filepath.Join(mp, chunk)); !errors.Is(err, syscall.EIO) {
		t.Errorf("mount: %s without its tile: err = %v, want EIO", chunk, err)
	}
	resp, err := http.Get(base + "/" + chunk)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 500 || !strings.Contains(string(body), victim) {
		t.Errorf("serve: %s without its tile: %d %q, want a 5xx naming %s", chunk, resp.StatusCode, body, victim)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(mproc.out.String(), victim) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(mproc.out.String(), victim) {
		t.Errorf("the mount's log does not name %s:\n%s", victim, mproc.out.String())
	}
}
