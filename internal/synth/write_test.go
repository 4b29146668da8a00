package synth

import (
	"bytes"
	"context"
	"encoding/binary"
	"image"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/image/tiff"

	"github.com/tesserafs/tesserafs/index"
)

// TestRowsMatchOracle checks the fast row generator against the oracle
// functions for every pixel of a few rows, north and south (negative
// northings) of the equator.
func TestRowsMatchOracle(t *testing.T) {
	tests := []struct {
		name string
		c    index.TileCoord
		fp   index.Footprint
	}{
		{"north", index.TileCoord{Lon100: -5, Lat100: 5205}, index.Footprint{OriginE: 702221.6, OriginN: 5770757.3, W: 37, H: 9}},
		{"south", index.TileCoord{Lon100: 2005, Lat100: -8495}, index.Footprint{OriginE: 490075.77, OriginN: -9428638.55, W: 23, H: 7}},
		{"half to even", index.TileCoord{Lon100: 5, Lat100: 5}, index.Footprint{OriginE: 25, OriginN: 35, W: 5, H: 3}},
		{"negative easting", index.TileCoord{Lon100: 5, Lat100: -5}, index.Footprint{OriginE: -4995, OriginN: -2005, W: 520, H: 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newRowGen(tc.c, tc.fp)
			emb := make([]byte, tc.fp.W*128)
			s2 := make([]byte, tc.fp.W*4)
			s3 := make([]byte, tc.fp.W*128*4)
			mask := g.mask()
			for i := range tc.fp.H {
				g.embeddings(emb, i)
				g.scales(s2, i, false)
				g.scales(s3, i, true)
				for j := range tc.fp.W {
					gE, gN := Global(tc.fp, i, j)
					for b := range 128 {
						if got, want := int8(emb[j*128+b]), TileEmbedding(tc.c, gE, gN, b); got != want {
							t.Fatalf("emb (%d,%d,%d) = %d, want %d", i, j, b, got, want)
						}
						if got, want := f32(s3[(j*128+b)*4:]), Scale3D(gE, gN, b); !sameFloat(got, want) {
							t.Fatalf("scale3d (%d,%d,%d) = %v, want %v", i, j, b, got, want)
						}
					}
					if got, want := f32(s2[j*4:]), Scale(gE, gN); !sameFloat(got, want) {
						t.Fatalf("scale (%d,%d) = %v, want %v", i, j, got, want)
					}
					if got, want := mask[i*tc.fp.W+j] == 0, Water(gE, gN); got != want {
						t.Fatalf("mask (%d,%d) water = %v, want %v", i, j, got, want)
					}
				}
			}
		})
	}
	if e, n := Global(index.Footprint{OriginE: 25, OriginN: 35}, 1, 2); e != 4 || n != 3 {
		t.Errorf("Global rounds half to even: got (%d, %d), want (4, 3)", e, n)
	}
}

func f32(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) }

func sameFloat(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
}

// npyFile is a .npy read with plain decoding, independent of package npy's
// reader.
type npyFile struct {
	descr string
	shape []int
	data  []byte
	off   int
}

func readNpy(t *testing.T, path string) npyFile {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseNpy(t, path, raw)
}

func parseNpy(t *testing.T, path string, raw []byte) npyFile {
	t.Helper()
	if !bytes.HasPrefix(raw, []byte("\x93NUMPY\x01\x00")) {
		t.Fatalf("%s: not a .npy 1.0 file", path)
	}
	off := 10 + int(binary.LittleEndian.Uint16(raw[8:]))
	if off%64 != 0 {
		t.Fatalf("%s: data offset %d not 64-aligned", path, off)
	}
	dict := string(raw[10:off])
	var f npyFile
	f.off = off
	_, rest, _ := strings.Cut(dict, "'descr': '")
	f.descr, _, _ = strings.Cut(rest, "'")
	if !strings.Contains(dict, "'fortran_order': False") {
		t.Fatalf("%s: not C order: %s", path, dict)
	}
	_, rest, _ = strings.Cut(dict, "'shape': (")
	dims, _, _ := strings.Cut(rest, ")")
	for _, d := range strings.Split(dims, ", ") {
		n, err := strconv.Atoi(strings.TrimSuffix(d, ","))
		if err != nil {
			t.Fatalf("%s: shape %q: %v", path, dims, err)
		}
		f.shape = append(f.shape, n)
	}
	f.data = raw[off:]
	return f
}

func readMask(t *testing.T, path string) *image.Gray {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	img, err := tiff.Decode(fh)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	g, ok := img.(*image.Gray)
	if !ok {
		t.Fatalf("%s: decoded %T, want *image.Gray", path, img)
	}
	return g
}

// testPresetRoot writes the "test" preset for 2024 once for the tests that
// read it.
var testPresetRoot = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "synth-test-preset-")
	if err != nil {
		return "", err
	}
	tiles, err := Preset("test")
	if err != nil {
		return "", err
	}
	_, err = Write(context.Background(), dir, Options{Year: 2024, Tiles: tiles})
	return dir, err
})

func TestMain(m *testing.M) {
	code := m.Run()
	if dir, err := testPresetRoot(); err == nil && dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

func presetRoot(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("writes ~220 MB")
	}
	root, err := testPresetRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestWriteTestPreset reads the "test" preset back with plain decoding and
// checks shapes against Footprint and a sample of pixels against the oracle.
func TestWriteTestPreset(t *testing.T) {
	root := presetRoot(t)
	tiles, _ := Preset("test")
	p := index.NewProjector()
	rng := rand.New(rand.NewPCG(1, 2))
	infOnLand := 0
	for _, spec := range tiles {
		t.Run(spec.Coord.Name(), func(t *testing.T) {
			fp, err := p.Footprint(spec.Coord)
			if err != nil {
				t.Fatal(err)
			}
			emb := readNpy(t, EmbeddingsPath(root, 2024, spec.Coord))
			sc := readNpy(t, ScalesPath(root, 2024, spec.Coord))
			if emb.descr != "<i1" || !slices.Equal(emb.shape, []int{fp.H, fp.W, 128}) || len(emb.data) != fp.H*fp.W*128 {
				t.Fatalf("embeddings %s %v (%d bytes), want <i1 (%d, %d, 128)", emb.descr, emb.shape, len(emb.data), fp.H, fp.W)
			}
			nb := 1
			wantShape := []int{fp.H, fp.W}
			if spec.Scales3D {
				nb, wantShape = 128, []int{fp.H, fp.W, 128}
			}
			if sc.descr != "<f4" || !slices.Equal(sc.shape, wantShape) || len(sc.data) != fp.H*fp.W*nb*4 {
				t.Fatalf("scales %s %v (%d bytes), want <f4 %v", sc.descr, sc.shape, len(sc.data), wantShape)
			}
			var mask *image.Gray
			if spec.NoLandmask {
				if _, err := os.Stat(LandmaskPath(root, spec.Coord)); !os.IsNotExist(err) {
					t.Fatalf("NoLandmask tile has a landmask (stat: %v)", err)
				}
			} else {
				mask = readMask(t, LandmaskPath(root, spec.Coord))
				if mask.Rect.Dx() != fp.W || mask.Rect.Dy() != fp.H {
					t.Fatalf("landmask %v, want %d × %d", mask.Rect, fp.W, fp.H)
				}
			}
			// Every pixel's mask, scale (2-D) and band 127; a sample of whole vectors.
			water := 0
			for i := range fp.H {
				for j := range fp.W {
					gE, gN := Global(fp, i, j)
					k := i*fp.W + j
					if got, want := int8(emb.data[k*128+127]), Stamp(spec.Coord.Lon100, spec.Coord.Lat100); got != want {
						t.Fatalf("stamp at (%d,%d) = %d, want %d", i, j, got, want)
					}
					if mask != nil {
						if got, want := mask.Pix[i*mask.Stride+j], uint8(1); Water(gE, gN) {
							water++
							if got != 0 {
								t.Fatalf("mask at (%d,%d) = %d, want 0 (water)", i, j, got)
							}
						} else if got != want {
							t.Fatalf("mask at (%d,%d) = %d, want 1", i, j, got)
						}
					}
					var s float32
					if spec.Scales3D {
						s = f32(sc.data[(k*128+5)*4:])
					} else {
						s = f32(sc.data[k*4:])
					}
					if !sameFloat(s, Scale(gE, gN)) {
						t.Fatalf("scale at (%d,%d) = %v, want %v", i, j, s, Scale(gE, gN))
					}
					if math.IsInf(float64(s), 1) && !Water(gE, gN) {
						infOnLand++
					}
				}
			}
			if mask != nil && water == 0 {
				t.Errorf("tile has no water")
			}
			samples := [][2]int{{0, 0}, {0, fp.W - 1}, {fp.H - 1, 0}, {fp.H - 1, fp.W - 1}}
			for range 300 {
				samples = append(samples, [2]int{rng.IntN(fp.H), rng.IntN(fp.W)})
			}
			for _, s := range samples {
				i, j := s[0], s[1]
				gE, gN := Global(fp, i, j)
				k := i*fp.W + j
				for b := range 128 {
					if got, want := int8(emb.data[k*128+b]), TileEmbedding(spec.Coord, gE, gN, b); got != want {
						t.Fatalf("emb (%d,%d,%d) = %d, want %d", i, j, b, got, want)
					}
					if spec.Scales3D {
						if got, want := f32(sc.data[(k*128+b)*4:]), Scale3D(gE, gN, b); !sameFloat(got, want) {
							t.Fatalf("scale3d (%d,%d,%d) = %v, want %v", i, j, b, got, want)
						}
					}
				}
			}
		})
	}
	if infOnLand == 0 {
		t.Errorf("no tile of the test preset has a +Inf scale on land")
	}
	assertNoTemps(t, root)

	m, err := ReadManifest(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Years) != 1 || m.Years[0].Year != 2024 || len(m.Years[0].Tiles) != len(tiles) {
		t.Fatalf("manifest %+v, want 2024 with %d tiles", m, len(tiles))
	}
	for i, e := range m.Years[0].Tiles {
		if e.Spec() != tiles[i] || e.Sparse {
			t.Errorf("manifest tile %+v, want %+v", e, tiles[i])
		}
	}
}

// TestTestPresetZones checks the test preset covers what tests need: zones
// 30 and 31 north and zone 34 south with overlapping neighbours.
func TestTestPresetZones(t *testing.T) {
	tiles, err := Preset("test")
	if err != nil {
		t.Fatal(err)
	}
	epsg := map[string]int{}
	var three, noMask int
	for _, s := range tiles {
		epsg[s.Coord.TileEPSG()]++
		if s.Scales3D {
			three++
		}
		if s.NoLandmask {
			noMask++
		}
	}
	want := map[string]int{"EPSG:32630": 2, "EPSG:32631": 2, "EPSG:32734": 4}
	if len(epsg) != len(want) {
		t.Fatalf("tile CRSs %v, want %v", epsg, want)
	}
	for k, v := range want {
		if epsg[k] != v {
			t.Errorf("tile CRSs %v, want %v", epsg, want)
		}
	}
	if three != 1 || noMask != 1 {
		t.Errorf("%d tiles with 3-D scales and %d without landmask, want 1 and 1", three, noMask)
	}
}

func assertNoTemps(t *testing.T, root string) {
	t.Helper()
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Error(err)
			return nil
		}
		if strings.Contains(d.Name(), ".tmp") {
			t.Errorf("temporary file left behind: %s", path)
		}
		if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want 0644", path, fi.Mode().Perm())
		}
		return nil
	})
}

func TestWriteSparse(t *testing.T) {
	root := t.TempDir()
	tiles := Grid(6, 0.05, 84.95)
	sum, err := Write(context.Background(), root, Options{Year: 2023, Tiles: tiles, Sparse: true, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Tiles != len(tiles) {
		t.Fatalf("summary %+v, want %d tiles", sum, len(tiles))
	}
	p := index.NewProjector()
	var total int64
	for _, spec := range tiles {
		fp, _ := p.Footprint(spec.Coord)
		for _, f := range []struct {
			path  string
			descr string
			shape []int
			size  int
		}{
			{EmbeddingsPath(root, 2023, spec.Coord), "<i1", []int{fp.H, fp.W, 128}, fp.H * fp.W * 128},
			{ScalesPath(root, 2023, spec.Coord), "<f4", []int{fp.H, fp.W}, fp.H * fp.W * 4},
		} {
			fi, err := os.Stat(f.path)
			if err != nil {
				t.Fatal(err)
			}
			total += fi.Size()
			// Apparent size is the full array; disk use is the header's block.
			if blocks := fi.Sys().(*syscall.Stat_t).Blocks * 512; blocks > 64<<10 {
				t.Errorf("%s uses %d bytes of disk, want a sparse file", f.path, blocks)
			}
			n := readNpy(t, f.path)
			if n.descr != f.descr || !slices.Equal(n.shape, f.shape) || len(n.data) != f.size {
				t.Fatalf("%s: %s %v %d bytes, want %s %v %d", f.path, n.descr, n.shape, len(n.data), f.descr, f.shape, f.size)
			}
			if !bytes.Equal(n.data, make([]byte, len(n.data))) {
				t.Errorf("%s: sparse data is not all zeros", f.path)
			}
		}
		mask := readMask(t, LandmaskPath(root, spec.Coord))
		if mask.Rect.Dx() != fp.W || mask.Rect.Dy() != fp.H || bytes.ContainsAny(mask.Pix, "\x00") {
			t.Errorf("sparse landmask %v: want %d × %d all land", mask.Rect, fp.W, fp.H)
		}
		fi, _ := os.Stat(LandmaskPath(root, spec.Coord))
		total += fi.Size()
	}
	if sum.Bytes != total {
		t.Errorf("summary bytes %d, want %d", sum.Bytes, total)
	}
	m, err := ReadManifest(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range m.Years[0].Tiles {
		if !e.Sparse || e.Landmask != LandmaskAllLand {
			t.Errorf("manifest tile %+v: want sparse, all_land", e)
		}
	}
	assertNoTemps(t, root)
}

// TestWriteCancelled cancels Write part-way: whatever is left under a
// tile's name is whole, and no temporary file remains.
func TestWriteCancelled(t *testing.T) {
	if testing.Short() {
		t.Skip("writes up to ~320 MB")
	}
	tiles, _ := Preset("equator")
	for _, delay := range []time.Duration{0, 50 * time.Millisecond, 300 * time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			root := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), delay)
			defer cancel()
			sum, err := Write(ctx, root, Options{Year: 2024, Tiles: tiles, Workers: 1})
			if err == nil && sum.Tiles != len(tiles) {
				t.Fatalf("no error but %d tiles written", sum.Tiles)
			}
			assertNoTemps(t, root)
			p := index.NewProjector()
			for _, spec := range tiles {
				fp, _ := p.Footprint(spec.Coord)
				for path, size := range map[string]int{
					EmbeddingsPath(root, 2024, spec.Coord): fp.H * fp.W * 128,
					ScalesPath(root, 2024, spec.Coord):     fp.H * fp.W * 4,
				} {
					fi, err := os.Stat(path)
					if os.IsNotExist(err) {
						continue
					}
					if err != nil {
						t.Fatal(err)
					}
					if fi.Size() != int64(128+size) {
						t.Errorf("%s: %d bytes, want %d or absent", path, fi.Size(), 128+size)
					}
				}
			}
		})
	}
}

// TestManifestMerge writes one tile in two years, the second time without
// a landmask: the manifest lists both years, and since the landmask is
// shared, the first year's entry now says "none" too.
func TestManifestMerge(t *testing.T) {
	root := t.TempDir()
	a := TileSpec{Coord: index.TileCoord{Lon100: 2045, Lat100: -8495}}
	b := TileSpec{Coord: index.TileCoord{Lon100: 2055, Lat100: -8495}}
	ctx := context.Background()
	if _, err := Write(ctx, root, Options{Year: 2024, Tiles: []TileSpec{a, b}, Sparse: true}); err != nil {
		t.Fatal(err)
	}
	a.NoLandmask = true
	if _, err := Write(ctx, root, Options{Year: 2025, Tiles: []TileSpec{a}, Sparse: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(LandmaskPath(root, a.Coord)); !os.IsNotExist(err) {
		t.Errorf("landmask of %s still there after NoLandmask (stat: %v)", a.Coord, err)
	}
	m, err := ReadManifest(root)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]map[string]string{}
	for _, y := range m.Years {
		got[y.Year] = map[string]string{}
		for _, e := range y.Tiles {
			got[y.Year][e.Name] = e.Landmask
			if e.NoLandmask != (e.Landmask == LandmaskNone) {
				t.Errorf("%d %s: no_landmask %v but landmask %q", y.Year, e.Name, e.NoLandmask, e.Landmask)
			}
		}
	}
	want := map[int]map[string]string{
		2024: {a.Coord.Name(): LandmaskNone, b.Coord.Name(): LandmaskAllLand},
		2025: {a.Coord.Name(): LandmaskNone},
	}
	if len(got) != len(want) || len(got[2024]) != 2 || len(got[2025]) != 1 {
		t.Fatalf("manifest %v, want %v", got, want)
	}
	for y, tiles := range want {
		for name, k := range tiles {
			if got[y][name] != k {
				t.Errorf("manifest %d %s landmask %q, want %q", y, name, got[y][name], k)
			}
		}
	}
}

func TestWriteErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	ok := []TileSpec{{Coord: index.TileCoord{Lon100: 5, Lat100: 8505}}}
	tests := []struct {
		name string
		root string
		opts Options
		want string
	}{
		{"year", t.TempDir(), Options{Year: 0, Tiles: ok}, "year"},
		{"no tiles", t.TempDir(), Options{Year: 2024}, "no tiles"},
		{"twice", t.TempDir(), Options{Year: 2024, Tiles: append(slices.Clone(ok), ok...)}, "twice"},
		{"off grid", t.TempDir(), Options{Year: 2024, Tiles: []TileSpec{{Coord: index.TileCoord{Lon100: 10, Lat100: 5}}}}, "grid"},
		{"root is a file", file, Options{Year: 2024, Tiles: ok}, file},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Write(context.Background(), tc.root, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// BenchmarkWriteTile writes one equatorial tile (~160 MB: embeddings,
// scales, landmask) per iteration ("synth"), against two floors measured in
// the same run: generating the same rows without writing them
// ("generate", the CPU cost), and writing as many zero bytes through the
// same atomic path ("zeros", the file system's cost).
func BenchmarkWriteTile(b *testing.B) {
	spec := TileSpec{Coord: index.TileCoord{Lon100: 2005, Lat100: 5}}
	fp, err := index.NewProjector().Footprint(spec.Coord)
	if err != nil {
		b.Fatal(err)
	}
	data := int64(fp.H) * int64(fp.W) * (128 + 4)
	b.Run("synth", func(b *testing.B) {
		root := b.TempDir()
		var sum Summary
		for b.Loop() {
			var err error
			if sum, err = Write(context.Background(), root, Options{Year: 2024, Tiles: []TileSpec{spec}}); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(sum.Bytes)
	})
	b.Run("generate", func(b *testing.B) {
		g := newRowGen(spec.Coord, fp)
		emb, sc := make([]byte, fp.W*128), make([]byte, fp.W*4)
		for b.Loop() {
			for i := range fp.H {
				g.embeddings(emb, i)
				g.scales(sc, i, false)
			}
			g.mask()
		}
		b.SetBytes(data)
	})
	b.Run("zeros", func(b *testing.B) {
		dir := b.TempDir()
		nop := func([]byte, int) {}
		for b.Loop() {
			for _, f := range []struct {
				name, descr string
				shape       []int
				row         int
			}{{"e.npy", "<i1", []int{fp.H, fp.W, 128}, fp.W * 128}, {"s.npy", "<f4", []int{fp.H, fp.W}, fp.W * 4}} {
				if _, err := writeNpy(context.Background(), filepath.Join(dir, f.name), f.descr, f.shape, f.row, false, nop); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.SetBytes(data)
	})
}

// BenchmarkWriteSparse writes 100 sparse tiles per iteration.
func BenchmarkWriteSparse(b *testing.B) {
	tiles := Grid(100, 0.05, 52.05)
	root := b.TempDir()
	for b.Loop() {
		if _, err := Write(context.Background(), root, Options{Year: 2024, Tiles: tiles, Sparse: true}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(tiles)), "ns/tile")
}
