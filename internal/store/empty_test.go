package store_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
	"github.com/tesserafs/tesserafs/internal/npy"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/synth"
	"github.com/tesserafs/tesserafs/internal/testtiles"
	"github.com/tesserafs/tesserafs/zarr"
)

// nanScales overwrites every scale of the tile's _scales.npy with NaN,
// keeping its header: a tile of no-data.
func nanScales(t *testing.T, root string, c index.TileCoord) {
	t.Helper()
	path := synth.ScalesPath(root, year, c)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := npy.ParseHeader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	data := b[int64(len(b))-h.DataSize():]
	for k := 0; k+4 <= len(data); k += 4 {
		binary.LittleEndian.PutUint32(data[k:], math.Float32bits(float32(math.NaN())))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestEmptyChunksAbsent checks spec §3 on zone 34 of the test preset with
// the scales of three of its four tiles all NaN (written last, so their
// whole rectangles are no-data): every stored inner chunk holds a value other than
// the fill value, every shard whose chunks would all be fill is absent
// (scales and rgb where no scale is finite; embeddings stay wherever a tile
// touches, its values being kept under water), listing agrees with lookup
// for every shard of the grid, and listing and lookup generate nothing.
// The expectation comes from the synth oracle, not from the store.
func TestEmptyChunksAbsent(t *testing.T) {
	ctx := context.Background()
	root := testtiles.Copy(t, testTiles(t))
	noData := []index.TileCoord{{Lon100: 2045, Lat100: -8485}, {Lon100: 2055, Lat100: -8495}, {Lon100: 2055, Lat100: -8485}}
	for _, c := range noData {
		nanScales(t, root, c)
	}
	cat, err := index.Discover(ctx, root, index.Options{Zones: []int{34}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.New(cat, store.Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	z := cat.Year(year).Zones[0]
	tiles := placed(t, z)
	nd := tiles[len(tiles)-len(noData):]
	for k, c := range noData {
		if nd[k].Coord != c {
			t.Fatalf("the no-data tiles %v are not written last (%v)", noData, nd[k].Coord)
		}
	}
	prefix := fmt.Sprintf("%d.zarr/utm%02d", year, z.Zone)

	// Expected presence, from the oracle.
	type want struct{ emb, scale []bool }
	expect := map[index.ShardIndex]want{}
	for _, sh := range z.Shards(generate.ShardSize) {
		r0, c0 := sh.Row*generate.ShardSize, sh.Col*generate.ShardSize
		emb, scale := synth.Window(tiles, r0, c0, r0+generate.ShardSize, c0+generate.ShardSize)
		for r := range generate.ShardSize {
			for c := range generate.ShardSize {
				for _, p := range nd {
					if r0+r >= p.Row && r0+r < p.Row+p.Footprint.H && c0+c >= p.Col && c0+c < p.Col+p.Footprint.W {
						scale[r*generate.ShardSize+c] = float32(math.NaN())
					}
				}
			}
		}
		e, s := storedChunks(coverage(tiles, r0, c0), emb, scale)
		expect[sh] = want{e, s}
	}

	// Listing and lookup, before anything is generated.
	listed := func(array string) map[index.ShardIndex]bool {
		out := map[index.ShardIndex]bool{}
		rows, err := st.ReadDir(ctx, prefix+"/"+array+"/c")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			cols, err := st.ReadDir(ctx, prefix+"/"+array+"/c/"+r.Name())
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cols {
				i, _ := strconv.Atoi(r.Name())
				j, _ := strconv.Atoi(c.Name())
				out[index.ShardIndex{Row: i, Col: j}] = true
			}
		}
		return out
	}
	absentScales := 0
	for _, array := range []string{"embeddings", "scales", "rgb"} {
		got := listed(array)
		rows, cols := z.ShardGrid(generate.ShardSize)
		for i := range rows {
			for j := range cols {
				sh := index.ShardIndex{Row: i, Col: j}
				w, touched := expect[sh]
				present := touched && (array == "embeddings" || slices.Contains(w.scale, true))
				if array == "scales" && touched && !present {
					absentScales++
				}
				key := fmt.Sprintf("%s/%s/c/%d/%d", prefix, array, i, j)
				if array != "scales" {
					key += "/0"
				}
				if got[sh] != present {
					t.Errorf("%s: listed=%v, want %v", key, got[sh], present)
				}
			}
		}
	}
	if absentScales == 0 {
		t.Fatal("no scales shard is all NaN: the test checks nothing")
	}
	if g := st.Stats().Generated; g != 0 {
		t.Errorf("listing generated %d chunks, want 0", g)
	}

	// Lookup agrees with listing, and every stored inner chunk holds a
	// value other than the fill value, exactly where the oracle says.
	const n = generate.InnerPerSide * generate.InnerPerSide
	for sh, w := range expect {
		for _, array := range []string{"embeddings", "scales", "rgb"} {
			key := fmt.Sprintf("%s/%s/c/%d/%d", prefix, array, sh.Row, sh.Col)
			wantChunks := w.scale
			if array != "scales" {
				key += "/0"
			}
			if array == "embeddings" {
				wantChunks = w.emb
			}
			b, err := st.Get(ctx, key)
			if array != "embeddings" && !slices.Contains(w.scale, true) {
				if !errorsIsNotExist(err) {
					t.Errorf("%s: all fill, Get err = %v, want not found", key, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			chunks, err := zarr.DecodeShard(b, n)
			if err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			for k, ch := range chunks {
				if (ch != nil) != wantChunks[k] {
					t.Errorf("%s: inner chunk %d stored=%v, want %v", key, k, ch != nil, wantChunks[k])
					break
				}
				if ch != nil && allFill(array, ch) {
					t.Errorf("%s: inner chunk %d stored but all fill value", key, k)
				}
			}
		}
	}
}

// allFill reports whether a decoded inner chunk holds only the array's
// fill value (NaN for scales, 0 otherwise).
func allFill(array string, ch []byte) bool {
	if array == "scales" {
		for k := 0; k+4 <= len(ch); k += 4 {
			if v := math.Float32frombits(binary.LittleEndian.Uint32(ch[k:])); v == v {
				return false
			}
		}
		return true
	}
	return !slices.ContainsFunc(ch, func(b byte) bool { return b != 0 })
}

// TestLookupDecidesFewShards: looking up one scales or rgb chunk, or its
// chunk directories, decides the existence of that chunk's row at most (a
// lookup of c/<i> stops at the first shard of row i that exists), never
// every shard of the zone as a listing of c/ does.
func TestLookupDecidesFewShards(t *testing.T) {
	ctx := context.Background()
	specs := synth.Grid(2, -2.95, 0.05)
	root := testtiles.Tiles(t, "bounded-sample", specs)
	for _, tc := range []struct {
		key  string
		most func(z *index.ZoneGrid, i int) int
	}{
		{"scales/c/%d", func(z *index.ZoneGrid, i int) int { return len(z.ShardCols(256, i)) }},
		{"scales/c/%d/%d", func(*index.ZoneGrid, int) int { return 1 }},
		{"rgb/c/%d/%d", func(*index.ZoneGrid, int) int { return 1 }},
		{"rgb/c/%d/%d/0", func(*index.ZoneGrid, int) int { return 1 }},
	} {
		st := storeAt(t, root, store.Options{Workers: 2})
		z := st.Catalogue().Years[0].Zones[0]
		shards := z.Shards(256)
		sh := shards[len(shards)/2]
		key := fmt.Sprintf("%d.zarr/utm%02d/", year, z.Zone) + tc.key
		if strings.Count(tc.key, "%d") == 1 {
			key = fmt.Sprintf(key, sh.Row)
		} else {
			key = fmt.Sprintf(key, sh.Row, sh.Col)
		}
		if _, err := st.Stat(ctx, key); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if n, most := st.Stats().Probed, tc.most(z, sh.Row); n > int64(most) || n == 0 {
			t.Errorf("%s: decided %d shards, want 1..%d of the zone's %d", key, n, most, len(shards))
		}
	}
	// A listing of c/ decides every shard: what the lookups must not do.
	st := storeAt(t, root, store.Options{Workers: 2})
	z := st.Catalogue().Years[0].Zones[0]
	if _, err := st.ReadDir(ctx, fmt.Sprintf("%d.zarr/utm%02d/scales/c", year, z.Zone)); err != nil {
		t.Fatal(err)
	}
	if n := st.Stats().Probed; n != int64(len(z.Shards(256))) {
		t.Errorf("listing c/ decided %d shards of %d", n, len(z.Shards(256)))
	}
}
