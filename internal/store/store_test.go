package store_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/synth"
	"github.com/tesserafs/tesserafs/internal/testtiles"
	"github.com/tesserafs/tesserafs/zarr"
)

const year = 2024

// testTiles returns the shared "test" preset tiles root.
func testTiles(t testing.TB) string { return testtiles.Root(t, "test") }

func openStore(t testing.TB, opts store.Options) *store.Store {
	t.Helper()
	return storeAt(t, testTiles(t), opts)
}

// storeAt indexes the tiles under root and returns their store.
func storeAt(t testing.TB, root string, opts store.Options) *store.Store {
	t.Helper()
	cat, err := index.Discover(context.Background(), root, index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.New(cat, opts)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// placed returns the oracle's view of a zone: each tile's spec placed on
// the zone grid.
func placed(t *testing.T, z *index.ZoneGrid) []synth.PlacedTile {
	t.Helper()
	specs, err := synth.Preset("test")
	if err != nil {
		t.Fatal(err)
	}
	return placedSpecs(specs, z)
}

// placedSpecs places the tiles of z, written from specs, on its grid.
func placedSpecs(specs []synth.TileSpec, z *index.ZoneGrid) []synth.PlacedTile {
	byCoord := map[index.TileCoord]synth.TileSpec{}
	for _, s := range specs {
		byCoord[s.Coord] = s
	}
	var out []synth.PlacedTile
	for _, p := range z.Placements {
		out = append(out, synth.Place(byCoord[p.Tile.Coord], p.Tile.Footprint, z.OriginE, z.OriginN))
	}
	return out
}

// TestShardsMatchOracle decodes every shard of every zone and compares
// each pixel with the synthetic tiles' known function.
func TestShardsMatchOracle(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, store.Options{Workers: 2})
	y := st.Catalogue().Year(year)
	if y == nil || len(y.Zones) != 3 {
		t.Fatalf("want zones 30, 31, 34 in %d, got %+v", year, y)
	}
	const n = generate.InnerPerSide * generate.InnerPerSide
	for _, z := range y.Zones {
		tiles := placed(t, z)
		shards := z.Shards(generate.ShardSize)
		if len(shards) == 0 {
			t.Fatalf("zone %d: no shards", z.Zone)
		}
		for _, sh := range shards {
			r0, c0 := sh.Row*generate.ShardSize, sh.Col*generate.ShardSize
			wantEmb, wantScale := synth.Window(tiles, r0, c0, r0+generate.ShardSize, c0+generate.ShardSize)
			covered := coverage(tiles, r0, c0)
			// Spec §3: an inner chunk is stored iff some value differs
			// from the fill value (0 for embeddings, NaN for scales).
			embStored, scaleStored := storedChunks(covered, wantEmb, wantScale)

			key := fmt.Sprintf("%d.zarr/utm%02d/embeddings/c/%d/%d/0", year, z.Zone, sh.Row, sh.Col)
			b, err := st.Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			chunks, err := zarr.DecodeShard(b, n)
			if err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			checkChunks(t, key, chunks, embStored, 128, func(r, c, k int) bool {
				got := int8(chunks[(r/4)*64+c/4][((r%4)*4+c%4)*128+k])
				return got == wantEmb[(r*generate.ShardSize+c)*128+k]
			})

			key = fmt.Sprintf("%d.zarr/utm%02d/scales/c/%d/%d", year, z.Zone, sh.Row, sh.Col)
			b, err = st.Get(ctx, key)
			if !slices.Contains(scaleStored, true) {
				// No finite scale: the shard is absent (spec §3).
				if !errorsIsNotExist(err) {
					t.Errorf("%s: no finite scale, Get err = %v, want not found", key, err)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			chunks, err = zarr.DecodeShard(b, n)
			if err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			checkChunks(t, key, chunks, scaleStored, 1, func(r, c, _ int) bool {
				raw := chunks[(r/4)*64+c/4][((r%4)*4+c%4)*4:]
				got := math.Float32frombits(binary.LittleEndian.Uint32(raw))
				want := wantScale[r*generate.ShardSize+c]
				return got == want || (got != got && want != want)
			})
		}
	}
}

// storedChunks says which inner chunks of a shard must be stored, from the
// oracle's values (ShardSize² pixels): the covered ones holding some value
// other than the fill value, 0 for embeddings and NaN for scales (and rgb,
// whose pixels are transparent exactly where the scale is NaN).
func storedChunks(covered []bool, emb []int8, scale []float32) (embStored, scaleStored []bool) {
	const side, bands = generate.ShardSize, 128
	embStored = make([]bool, len(covered))
	scaleStored = make([]bool, len(covered))
	for r := range side {
		for c := range side {
			k := (r/4)*generate.InnerPerSide + c/4
			if !covered[k] {
				continue
			}
			px := r*side + c
			if v := scale[px]; v == v {
				scaleStored[k] = true
			}
			for _, e := range emb[px*bands : (px+1)*bands] {
				if e != 0 {
					embStored[k] = true
					break
				}
			}
		}
	}
	return embStored, scaleStored
}

// coverage marks the inner chunks of the shard at (r0, c0) that some tile
// covers: exactly those must be present.
func coverage(tiles []synth.PlacedTile, r0, c0 int) []bool {
	cov := make([]bool, generate.InnerPerSide*generate.InnerPerSide)
	for r := range generate.ShardSize {
		for c := range generate.ShardSize {
			for _, tl := range tiles {
				if r0+r >= tl.Row && r0+r < tl.Row+tl.Footprint.H && c0+c >= tl.Col && c0+c < tl.Col+tl.Footprint.W {
					cov[(r/4)*64+c/4] = true
					break
				}
			}
		}
	}
	return cov
}

func checkChunks(t *testing.T, key string, chunks [][]byte, covered []bool, depth int, ok func(r, c, k int) bool) {
	t.Helper()
	bad := 0
	for i, ch := range chunks {
		if (ch != nil) != covered[i] {
			t.Errorf("%s: inner chunk %d present=%v, want %v", key, i, ch != nil, covered[i])
			return
		}
		if ch == nil {
			continue
		}
		ci, cj := i/64, i%64
		for r := ci * 4; r < ci*4+4; r++ {
			for c := cj * 4; c < cj*4+4; c++ {
				for k := range depth {
					if !ok(r, c, k) {
						if bad++; bad < 5 {
							t.Errorf("%s: pixel (%d, %d) band %d differs from the oracle", key, r, c, k)
						}
					}
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d values differ from the oracle", key, bad)
	}
}

// TestAbsentShards checks that only shards some tile touches exist, and
// that listing and looking them up generates nothing.
func TestAbsentShards(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, store.Options{})
	for _, z := range st.Catalogue().Year(year).Zones {
		tiles := placed(t, z)
		rows, cols := z.ShardGrid(generate.ShardSize)
		for i := range rows {
			for j := range cols {
				touched := false
				for _, tl := range tiles {
					if tl.Row < (i+1)*256 && tl.Row+tl.Footprint.H > i*256 && tl.Col < (j+1)*256 && tl.Col+tl.Footprint.W > j*256 {
						touched = true
					}
				}
				key := fmt.Sprintf("%d.zarr/utm%02d/embeddings/c/%d/%d", year, z.Zone, i, j)
				entries, err := st.ReadDir(ctx, key)
				if touched != (err == nil) {
					t.Errorf("%s: touched=%v, ReadDir err=%v", key, touched, err)
				}
				if err == nil && (len(entries) != 1 || entries[0].Name() != "0" || entries[0].IsDir()) {
					t.Errorf("%s: entries %+v, want one file 0", key, entries)
				}
				if _, err := st.Get(ctx, key+"/1"); !errorsIsNotExist(err) {
					t.Errorf("%s/1: err = %v, want not found", key, err)
				}
			}
		}
	}
	if g := st.Stats().Generated; g != 0 {
		t.Errorf("listing generated %d chunks, want 0", g)
	}
}

func errorsIsNotExist(err error) bool { return err != nil && errorsIs(err, fs.ErrNotExist) }

// TestFS runs the standard library's file system conformance test over
// one zone of the store (the smallest, with the southern and 3-D scales
// tiles) and over the STAC catalog.
func TestFS(t *testing.T) {
	st := openStore(t, store.Options{Cache: store.NewMemCache(512 << 20)})
	fsys := st.FS(context.Background())
	for _, tc := range []struct {
		dir  string
		want []string
	}{
		{"2024.zarr/utm34", []string{"zarr.json", "embeddings/zarr.json", "scales/c/0/0", "easting/c/0"}},
		{"geotessera-2024", []string{"collection.json", "utm30_2024/utm30_2024.json"}},
	} {
		sub, err := fs.Sub(fsys, tc.dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := fstest.TestFS(sub, tc.want...); err != nil {
			t.Errorf("%s: %v", tc.dir, err)
		}
	}
}

// TestDeterministic checks that the same shard generated by two stores
// with different worker counts is the same bytes.
func TestDeterministic(t *testing.T) {
	ctx := context.Background()
	a := openStore(t, store.Options{Workers: 1})
	b := openStore(t, store.Options{Workers: 3})
	n := 0
	err := a.Walk(ctx, "2024.zarr/utm34", func(key string) error {
		x, err := a.Get(ctx, key)
		if err != nil {
			return err
		}
		y, err := b.Get(ctx, key)
		if err != nil {
			return err
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two stores", key)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("walked %d keys, want more", n)
	}
}

// TestMetadata checks the zone group attributes against the spec and the
// consolidated metadata against every node's own zarr.json.
func TestMetadata(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, store.Options{Build: generate.Build{BuildVersion: "test"}})
	root, err := st.Get(ctx, "2024.zarr/zarr.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Attributes map[string]any `json:"attributes"`
		CM         struct {
			Kind     string                     `json:"kind"`
			Metadata map[string]json.RawMessage `json:"metadata"`
		} `json:"consolidated_metadata"`
	}
	if err := json.Unmarshal(root, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.CM.Kind != "inline" || doc.Attributes["tessera:year"] != float64(year) {
		t.Fatalf("root: %s", root)
	}
	for path, raw := range doc.CM.Metadata {
		own, err := st.Get(ctx, "2024.zarr/"+path+"/zarr.json")
		if err != nil {
			t.Fatalf("consolidated entry %s: %v", path, err)
		}
		var a, b any
		json.Unmarshal(raw, &a)
		json.Unmarshal(own, &b)
		if m, ok := a.(map[string]any); ok && m["node_type"] == "group" {
			delete(m, "consolidated_metadata")
		}
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("consolidated %s differs from its zarr.json:\n%s\n%s", path, raw, own)
		}
	}
	for _, z := range st.Catalogue().Year(year).Zones {
		b, err := st.Get(ctx, fmt.Sprintf("2024.zarr/utm%02d/zarr.json", z.Zone))
		if err != nil {
			t.Fatal(err)
		}
		var g struct {
			Attributes zarr.Attrs `json:"attributes"`
		}
		if err := json.Unmarshal(b, &g); err != nil {
			t.Fatal(err)
		}
		wantOrder := []string{"zarr_conventions", "proj:code", "spatial:dimensions", "spatial:transform",
			"spatial:shape", "spatial:bbox", "spatial:registration", "tessera:dataset_version", "tessera:year",
			"tessera:utm_zone", "tessera:n_bands", "tessera:n_tiles", "tessera:model_version",
			"tessera:build_version", "tessera:has_rgb_preview"}
		if len(g.Attributes) != len(wantOrder) {
			t.Fatalf("zone %d: %d attributes, want %d", z.Zone, len(g.Attributes), len(wantOrder))
		}
		for i, kv := range g.Attributes {
			if kv.Key != wantOrder[i] {
				t.Errorf("zone %d: attribute %d is %s, want %s", z.Zone, i, kv.Key, wantOrder[i])
			}
		}
		// Spec §3: every number of the transform and the bbox is a JSON
		// float as Python writes it (10.0, 285010.0): a reader in a typed
		// language sees floats, never integers.
		for _, k := range []string{"spatial:transform", "spatial:bbox"} {
			v, _ := g.Attributes.Get(k)
			arr, _ := v.([]any)
			if len(arr) == 0 {
				t.Fatalf("zone %d: %s = %v", z.Zone, k, v)
			}
			for _, x := range arr {
				n, _ := x.(json.Number)
				if !strings.ContainsAny(string(n), ".e") {
					t.Errorf("zone %d: %s element %q is not written as a float", z.Zone, k, n)
				}
			}
		}
		if z.H%256 != 0 || z.W%256 != 0 || math.Mod(z.OriginE, 10) != 0 || math.Mod(z.OriginN, 10) != 0 {
			t.Errorf("zone %d grid %+v not padded/snapped", z.Zone, z)
		}
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// TestTileChangedAfterIndexing: a store serves the tiles as they were when
// indexed. A tile rewritten afterwards makes the shards that read it fail,
// naming the file, instead of mixing old geometry with new bytes.
func TestTileChangedAfterIndexing(t *testing.T) {
	ctx := context.Background()
	st := storeAt(t, testtiles.Copy(t, testTiles(t)), store.Options{})
	z := st.Catalogue().Year(year).Zones[0]
	p := z.Placements[0]
	tl := p.Tile
	key := fmt.Sprintf("%d.zarr/utm%02d/embeddings/c/%d/%d/0", year, z.Zone,
		p.Row/generate.ShardSize, p.Col/generate.ShardSize)
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(tl.EmbeddingsPath(), later, later); err != nil {
		t.Fatal(err)
	}
	_, err := st.Get(ctx, key)
	if err == nil || !strings.Contains(err.Error(), tl.EmbeddingsPath()) || !strings.Contains(err.Error(), "changed since") {
		t.Fatalf("Get(%s) after %s changed: err = %v, want an error naming the file", key, tl.EmbeddingsPath(), err)
	}
}
