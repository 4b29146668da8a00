package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
	"github.com/tesserafs/tesserafs/internal/keyspace"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/synth"
	"github.com/tesserafs/tesserafs/internal/testtiles"
	"github.com/tesserafs/tesserafs/zarr"
)

// oracleShards lists, row-major, the 256 × 256 shards that some placed
// tile's rectangle touches, from the placements alone.
func oracleShards(tiles []synth.PlacedTile) [][2]int {
	seen := map[[2]int]bool{}
	var out [][2]int
	for _, p := range tiles {
		for i := p.Row / 256; i <= (p.Row+p.Footprint.H-1)/256; i++ {
			for j := p.Col / 256; j <= (p.Col+p.Footprint.W-1)/256; j++ {
				if !seen[[2]int{i, j}] {
					seen[[2]int{i, j}] = true
					out = append(out, [2]int{i, j})
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b [2]int) int {
		if a[0] != b[0] {
			return a[0] - b[0]
		}
		return a[1] - b[1]
	})
	return out
}

// oracleSample is spec §4's sample of a zone's shards: all of them if at
// most 32, else the 32 at indices ⌊k·n/32⌋, k = 0 … 31.
func oracleSample(shards [][2]int) [][2]int {
	if len(shards) <= 32 {
		return shards
	}
	out := make([][2]int, 32)
	for k := range out {
		out[k] = shards[k*len(shards)/32]
	}
	return out
}

// oracleStretch computes, from the synthetic function alone, the stretch
// spec §4 defines over the sample shards given (oracleSample of each
// zone): in each shard the valid pixels row-major, all of them or 10,000
// evenly strided (index k·n/10000), values float32(emb)·scale; percentiles
// as numpy.percentile on float32.
func oracleStretch(sample [][2]int, window func(k, r0, c0 int) ([]int8, []float32)) (lo, hi [3]float32) {
	var vals [3][]float32
	for k, sh := range sample {
		emb, scale := window(k, sh[0]*256, sh[1]*256)
		var valid []int
		for p, s := range scale {
			if s == s {
				valid = append(valid, p)
			}
		}
		n := len(valid)
		for t := 0; t < min(n, 10000); t++ {
			p := valid[t]
			if n > 10000 {
				p = valid[t*n/10000]
			}
			for b := range 3 {
				vals[b] = append(vals[b], float32(emb[p*128+b])*scale[p])
			}
		}
	}
	if len(vals[0]) == 0 {
		return [3]float32{}, [3]float32{1, 1, 1}
	}
	for b := range 3 {
		v := vals[b]
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		lo[b], hi[b] = numpyPercentile(v, 2), numpyPercentile(v, 98)
		if hi[b] <= lo[b] {
			hi[b] = lo[b] + 1
		}
	}
	return lo, hi
}

// numpyPercentile is numpy.percentile(v, q) for a sorted float32 array
// (NumPy ≥ 2, method "linear"): gamma is cast to the array's dtype and
// the lerp runs in float32, switching form at gamma ≥ 0.5.
func numpyPercentile(v []float32, q float64) float32 {
	virtual := float64(len(v)-1) * (q / 100)
	prev := math.Floor(virtual)
	i := int(prev)
	next := min(i+1, len(v)-1)
	gamma := float32(virtual - prev)
	a, b := v[i], v[next]
	diff := b - a
	if gamma >= 0.5 {
		return b - float32(diff*(1-gamma))
	}
	return a + float32(diff*gamma)
}

// rgbByte is spec §4's channel: trunc(clip((x − p2)/(p98 − p2), 0, 1) ·
// 255) in float32.
func rgbByte(x, lo, hi float32) byte {
	t := (x - lo) / (hi - lo)
	t = float32(math.Max(0, math.Min(1, float64(t))))
	return byte(math.Trunc(float64(float32(t * 255))))
}

// TestRGBMatchesOracle checks every rgb shard of every zone, pixel by
// pixel, against the synthetic function and the stretch computed from it,
// and that each zone's stretch is computed once however many shards ask.
func TestRGBMatchesOracle(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, store.Options{Workers: 2})
	y := st.Catalogue().Year(year)
	const n = generate.InnerPerSide * generate.InnerPerSide
	for _, z := range y.Zones {
		tiles := placed(t, z)
		shards := oracleShards(tiles)
		window := func(r0, c0 int) ([]int8, []float32) { return synth.Window(tiles, r0, c0, r0+256, c0+256) }
		lo, hi := oracleStretch(oracleSample(shards), func(_, r0, c0 int) ([]int8, []float32) { return window(r0, c0) })

		// All shards of the zone at once: the stretch is shared.
		keys := make([]string, len(shards))
		got := make([][]byte, len(shards))
		errs := make([]error, len(shards))
		var wg sync.WaitGroup
		for k, sh := range shards {
			keys[k] = fmt.Sprintf("%d.zarr/utm%02d/rgb/c/%d/%d/0", year, z.Zone, sh[0], sh[1])
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[k], errs[k] = st.Get(ctx, keys[k])
			}()
		}
		wg.Wait()
		gotSt, err := st.Stretch(z)
		if err != nil {
			t.Fatal(err)
		}
		if gotSt.Lo != lo || gotSt.Hi != hi {
			t.Errorf("zone %d: stretch %v..%v, oracle %v..%v", z.Zone, gotSt.Lo, gotSt.Hi, lo, hi)
		}
		for k, sh := range shards {
			r0, c0 := sh[0]*256, sh[1]*256
			emb, scale := window(r0, c0)
			// Stored: the inner chunks with an opaque pixel, i.e. a finite
			// scale (spec §3); none stored: the shard is absent.
			_, stored := storedChunks(coverage(tiles, r0, c0), emb, scale)
			if !slices.Contains(stored, true) {
				if !errorsIsNotExist(errs[k]) {
					t.Errorf("%s: all transparent, err = %v, want not found", keys[k], errs[k])
				}
				continue
			}
			if errs[k] != nil {
				t.Fatal(errs[k])
			}
			chunks, err := zarr.DecodeShard(got[k], n)
			if err != nil {
				t.Fatalf("%s: %v", keys[k], err)
			}
			checkChunks(t, keys[k], chunks, stored, 4, func(r, c, b int) bool {
				p := r*256 + c
				g := chunks[(r/4)*64+c/4][((r%4)*4+c%4)*4+b]
				s := scale[p]
				if s != s {
					return g == 0
				}
				if b == 3 {
					return g == 255
				}
				return g == rgbByte(float32(emb[p*128+b])*s, lo[b], hi[b])
			})
		}
	}
	if c := st.StretchesComputed(); c != int64(len(y.Zones)) {
		t.Errorf("%d stretches computed for %d zones, want one each", c, len(y.Zones))
	}
}

// TestRGBGlobalStretch checks that with Build.Stretch "global" every zone
// of the year shares one stretch, that of the year's sample: each zone's
// own sample, zones in ascending order.
func TestRGBGlobalStretch(t *testing.T) {
	st := openStore(t, store.Options{Build: generate.Build{Stretch: "global"}})
	y := st.Catalogue().Year(year)
	var sample [][2]int
	var tilesOf [][]synth.PlacedTile // per sample shard
	for _, z := range y.Zones {
		tiles := placed(t, z)
		for _, sh := range oracleSample(oracleShards(tiles)) {
			sample = append(sample, sh)
			tilesOf = append(tilesOf, tiles)
		}
	}
	lo, hi := oracleStretch(sample, func(k, r0, c0 int) ([]int8, []float32) {
		return synth.Window(tilesOf[k], r0, c0, r0+256, c0+256)
	})
	for _, z := range y.Zones {
		got, err := st.Stretch(z)
		if err != nil {
			t.Fatal(err)
		}
		if got.Lo != lo || got.Hi != hi {
			t.Errorf("zone %d: global stretch %v..%v, oracle %v..%v", z.Zone, got.Lo, got.Hi, lo, hi)
		}
	}
	if c := st.StretchesComputed(); c != 1 {
		t.Errorf("%d stretches computed, want 1 for the year", c)
	}
}

// TestRGBSampleIsBounded checks the sample rule on a zone with more than
// 32 tile-touched shards: exactly 32 are read, at the spaced indices, and
// the stretch equals the oracle's from those shards alone.
func TestRGBSampleIsBounded(t *testing.T) {
	// Two tiles side by side on the equator: about 9 × 5 shards.
	specs := synth.Grid(2, -2.95, 0.05)
	st := storeAt(t, testtiles.Tiles(t, "bounded-sample", specs), store.Options{Workers: 2})
	z := st.Catalogue().Years[0].Zones[0]
	tiles := placedSpecs(specs, z)
	shards := oracleShards(tiles)
	if len(shards) <= 32 {
		t.Fatalf("%d shards: the test needs more than 32", len(shards))
	}
	var read [][2]int
	for _, zs := range generate.StretchSample([]*index.ZoneGrid{z}) {
		read = append(read, [2]int{zs.Shard.Row, zs.Shard.Col})
	}
	if want := oracleSample(shards); !slices.Equal(read, want) {
		t.Fatalf("sample shards %v, want %v", read, want)
	}
	lo, hi := oracleStretch(oracleSample(shards), func(_, r0, c0 int) ([]int8, []float32) {
		return synth.Window(tiles, r0, c0, r0+256, c0+256)
	})
	got, err := st.Stretch(z)
	if err != nil {
		t.Fatal(err)
	}
	if got.Lo != lo || got.Hi != hi {
		t.Errorf("stretch %v..%v, oracle %v..%v (%d shards, 32 sampled)", got.Lo, got.Hi, lo, hi, len(shards))
	}
}

// TestRGBZeroScale checks that a scale of 0 is valid (alpha 255), on sparse
// tiles whose embeddings and scales all read as 0: the stretch is then
// [0, 1] (p98 ≤ p2) and every pixel (0, 0, 0, 255).
func TestRGBZeroScale(t *testing.T) {
	ctx := context.Background()
	specs := []synth.TileSpec{{Coord: index.TileCoord{Lon100: 2005, Lat100: 5}, NoLandmask: true}}
	root := t.TempDir()
	if _, err := synth.Write(ctx, root, synth.Options{Year: year, Tiles: specs, Sparse: true}); err != nil {
		t.Fatal(err)
	}
	st := storeAt(t, root, store.Options{})
	cat := st.Catalogue()
	z := cat.Years[0].Zones[0]
	sh := z.Shards(256)[0]
	b, err := st.Get(ctx, fmt.Sprintf("%d.zarr/utm%02d/rgb/c/%d/%d/0", cat.Years[0].Year, z.Zone, sh.Row, sh.Col))
	if err != nil {
		t.Fatal(err)
	}
	chunks, err := zarr.DecodeShard(b, 64*64)
	if err != nil {
		t.Fatal(err)
	}
	pl := z.Placements[0]
	seen := 0
	for k, ch := range chunks {
		for p := 0; p < len(ch); p += 4 {
			r := sh.Row*256 + (k/64)*4 + p/16
			c := sh.Col*256 + (k%64)*4 + (p/4)%4
			want := [4]byte{}
			if r >= pl.Row && r < pl.Row+pl.Tile.H && c >= pl.Col && c < pl.Col+pl.Tile.W {
				want[3] = 255
				seen++
			}
			if [4]byte(ch[p:p+4]) != want {
				t.Fatalf("pixel (%d, %d) = %v, want %v", r, c, ch[p:p+4], want)
			}
		}
	}
	if seen == 0 {
		t.Fatal("no tile pixel in the shard")
	}
}

// TestRGBStretchInSTAC: no zarr.json carries the stretch (spec §4: no
// Zarr metadata depends on tile bytes), so reading every zarr.json, the
// root's consolidated metadata included, computes no stretch; the zone's
// STAC item records the stretch its rgb bytes are made with
// (tessera:rgb_stretch), computed once on the item's first read.
func TestRGBStretchInSTAC(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, store.Options{Workers: 2})
	if err := st.Walk(ctx, "", func(key string) error {
		if strings.HasSuffix(key, "zarr.json") {
			b, err := st.Get(ctx, key)
			if err != nil {
				return err
			}
			if bytes.Contains(b, []byte("rgb_stretch")) {
				t.Errorf("%s records a stretch", key)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := st.StretchesComputed(); n != 0 {
		t.Fatalf("listing and reading every zarr.json computed %d stretches, want 0", n)
	}
	type item struct {
		Properties struct {
			Stretch *struct {
				P2, P98 []float64
				Mode    string
			} `json:"tessera:rgb_stretch"`
		} `json:"properties"`
	}
	zones := st.Catalogue().Year(year).Zones
	for _, z := range zones {
		key := fmt.Sprintf("geotessera-%d/utm%02d_%d/utm%02d_%d.json", year, z.Zone, year, z.Zone, year)
		b, err := st.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		want, err := st.Stretch(z)
		if err != nil {
			t.Fatal(err)
		}
		var it item
		if err := json.Unmarshal(b, &it); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		s := it.Properties.Stretch
		if s == nil || s.Mode != "zone" || len(s.P2) != 3 || len(s.P98) != 3 {
			t.Fatalf("%s: tessera:rgb_stretch %+v", key, s)
		}
		for b := range 3 {
			if float32(s.P2[b]) != want.Lo[b] || float32(s.P98[b]) != want.Hi[b] {
				t.Errorf("%s: band %d recorded %v..%v, used %v..%v", key, b, s.P2[b], s.P98[b], want.Lo[b], want.Hi[b])
			}
		}
	}
	if n := st.StretchesComputed(); n != int64(len(zones)) {
		t.Errorf("computed %d stretches for %d zones, want one each", n, len(zones))
	}
}

// recordCache is a ReadThrough that keeps what is Put, as the
// materializer's output keeps a stretch record.
type recordCache struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (c *recordCache) Get(key string, _ []byte) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.m[key]
	return b, ok
}
func (c *recordCache) Size(string, []byte) (int64, bool) { return 0, false }
func (c *recordCache) Put(key string, _ []byte, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[key] = b
}

// TestStretchRecord: a store records each stretch it computes in its
// ReadThrough (under StretchRecords' keys), and another store with that
// ReadThrough (another partition) uses the records instead of reading the
// sample again; a record that does not parse is recomputed, not used.
func TestStretchRecord(t *testing.T) {
	rt := &recordCache{m: map[string][]byte{}}
	a := openStore(t, store.Options{Workers: 1, ReadThrough: rt})
	zones := a.Catalogue().Year(year).Zones
	want := map[int]generate.Stretch{}
	for _, z := range zones {
		s, err := a.Stretch(z)
		if err != nil {
			t.Fatal(err)
		}
		want[z.Zone] = s
	}
	keys := a.StretchRecords()
	if len(rt.m) != len(zones) || len(keys) != len(zones) {
		t.Fatalf("%d records, %d record keys, for %d zones", len(rt.m), len(keys), len(zones))
	}
	for _, k := range keys {
		if _, ok := rt.m[k]; !ok || !strings.HasPrefix(k, keyspace.StretchRecordPrefix) {
			t.Errorf("record %s not written", k)
		}
	}

	b := openStore(t, store.Options{Workers: 1, ReadThrough: rt})
	for _, z := range zones {
		if s, err := b.Stretch(z); err != nil || s != want[z.Zone] {
			t.Errorf("zone %d from the record: %v %v, want %v", z.Zone, s, err, want[z.Zone])
		}
	}
	if n := b.StretchesComputed(); n != 0 {
		t.Errorf("computed %d stretches with every record present, want 0", n)
	}

	for _, bad := range []string{`{}`, `not json`, `{"lo":[1,2,3],"hi":[0,0,0]}`, `{"lo":[0,0],"hi":[1,1]}`} {
		for _, k := range keys {
			rt.m[k] = []byte(bad)
		}
		c := openStore(t, store.Options{Workers: 1, ReadThrough: rt})
		for _, z := range zones {
			if s, err := c.Stretch(z); err != nil || s != want[z.Zone] {
				t.Errorf("record %s: zone %d: %v %v, want %v", bad, z.Zone, s, err, want[z.Zone])
			}
		}
		if n := c.StretchesComputed(); n != int64(len(zones)) {
			t.Errorf("record %s: computed %d stretches, want %d", bad, n, len(zones))
		}
	}
}
