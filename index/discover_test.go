package index

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tesserafs/tesserafs/internal/landmask"
	"github.com/tesserafs/tesserafs/internal/npy"
)

var update = flag.Bool("update", false, "rewrite testdata/badtiles and its golden want.txt")

const badTiles = "../testdata/badtiles"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// The bad-tile corpus: every way a tile can be wrong, next to good tiles.
// Its .npy files are committed as headers only (a few hundred bytes);
// inflate.txt gives the length each must have, which the test sets with
// ftruncate (sparse files). makeBadTiles writes it; run
// go test ./index -run TestDiscoverBadTiles -update to regenerate it.
func makeBadTiles(t *testing.T, root string) {
	p := NewProjector()
	rep := filepath.Join(root, RepresentationDir)
	var inflate []string
	tileDir := func(year int, c TileCoord) string {
		return filepath.Join(rep, strconv.Itoa(year), c.Name())
	}
	// npyFile writes a header-only .npy, to be inflated to full+delta bytes.
	npyFile := func(path, descr string, shape []int, fortran bool, delta int64) {
		writeNpy(t, path, descr, shape, fortran, -1)
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		h, err := npy.ParseHeader(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, h.DataOffset); err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, path)
		inflate = append(inflate, fmt.Sprintf("%s %d", filepath.ToSlash(rel), h.DataOffset+h.DataSize()+delta))
	}
	good := func(year int, c TileCoord, scales3D, mask bool) {
		fp, err := p.Footprint(c)
		if err != nil {
			t.Fatal(err)
		}
		d := tileDir(year, c)
		npyFile(filepath.Join(d, c.Name()+".npy"), "|i1", []int{fp.H, fp.W, Bands}, false, 0)
		sh := []int{fp.H, fp.W}
		if scales3D {
			sh = append(sh, Bands)
		}
		npyFile(filepath.Join(d, c.Name()+"_scales.npy"), "<f4", sh, false, 0)
		if mask {
			writeMask(t, root, c, fp)
		}
	}
	// bad writes a tile whose embeddings (or, if scales, scales) file is
	// given by f, the other file being good.
	bad := func(c TileCoord, scales bool, f func(path string, fp Footprint)) {
		fp, err := p.Footprint(c)
		if err != nil {
			t.Fatal(err)
		}
		d := tileDir(2024, c)
		emb, sc := filepath.Join(d, c.Name()+".npy"), filepath.Join(d, c.Name()+"_scales.npy")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if scales {
			npyFile(emb, "|i1", []int{fp.H, fp.W, Bands}, false, 0)
			f(sc, fp)
		} else {
			f(emb, fp)
			npyFile(sc, "<f4", []int{fp.H, fp.W}, false, 0)
		}
	}
	mkfile := func(path, content string) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	good(2024, TileCoord{-5, 8505}, false, true)                       // zone 30, with a landmask
	good(2024, TileCoord{5, 8505}, false, false)                       // zone 31, no landmask: a warning
	good(2024, TileCoord{-75, 8505}, true, true)                       // 3-D scales
	good(2025, TileCoord{-5, 8505}, false, false)                      // another year, sharing the mask
	bad(TileCoord{-15, 8505}, false, func(path string, fp Footprint) { // truncated
		npyFile(path, "|i1", []int{fp.H, fp.W, Bands}, false, -1000)
	})
	bad(TileCoord{-25, 8505}, true, func(path string, fp Footprint) { // scales of float64
		npyFile(path, "<f8", []int{fp.H, fp.W}, false, 0)
	})
	bad(TileCoord{-35, 8505}, false, func(path string, fp Footprint) { // one row too many
		npyFile(path, "|i1", []int{fp.H + 1, fp.W, Bands}, false, 0)
	})
	bad(TileCoord{-45, 8505}, true, func(path string, fp Footprint) {}) // no scales
	bad(TileCoord{-55, 8505}, false, func(path string, fp Footprint) {  // a directory
		mkfile(filepath.Join(path, "README"), "the .npy is a directory\n")
	})
	bad(TileCoord{-65, 8505}, false, func(path string, fp Footprint) { // dangling symlink
		if err := os.Symlink("../nowhere.npy", path); err != nil {
			t.Fatal(err)
		}
	})
	bad(TileCoord{-85, 8505}, false, func(path string, fp Footprint) {
		npyFile(path, "|i1", []int{fp.H, fp.W, Bands}, true, 0)
	})
	bad(TileCoord{-95, 8505}, false, func(path string, fp Footprint) { // float embeddings
		npyFile(path, "<f4", []int{fp.H, fp.W, Bands}, false, 0)
	})
	bad(TileCoord{-105, 8505}, false, func(path string, fp Footprint) { // 64 bands
		npyFile(path, "|i1", []int{fp.H, fp.W, 64}, false, 0)
	})
	bad(TileCoord{-115, 8505}, true, func(path string, fp Footprint) { // trailing bytes
		npyFile(path, "<f4", []int{fp.H, fp.W}, false, 16)
	})
	bad(TileCoord{-135, 8505}, true, func(path string, fp Footprint) { // not .npy
		mkfile(path, "hello\n")
	})
	// Neither file.
	mkfile(filepath.Join(tileDir(2024, TileCoord{-125, 8505}), "README"), "an empty tile directory\n")
	// A landmask for a skipped tile: no warning about it.
	fp, _ := p.Footprint(TileCoord{-15, 8505})
	writeMask(t, root, TileCoord{-15, 8505}, fp)
	// A landmask without any tile: ignored silently.
	fp, _ = p.Footprint(TileCoord{505, 8505})
	writeMask(t, root, TileCoord{505, 8505}, fp)

	// Strays.
	mkfile(filepath.Join(rep, "README.md"), "stray file\n")
	mkfile(filepath.Join(rep, "latest", "README"), "not a year\n")
	mkfile(filepath.Join(rep, "2024", "notes.txt"), "stray file\n")
	mkfile(filepath.Join(rep, "2024", "tmp", "README"), "stray dir\n")
	mkfile(filepath.Join(rep, "2024", "grid_-0.5_85.05", "README"), "not canonical\n")
	mkfile(filepath.Join(root, LandmaskDir, "thumbs.db"), "stray\n")

	mkfile(filepath.Join(root, "inflate.txt"), strings.Join(inflate, "\n")+"\n")
}

// writeMask writes an all-land landmask for c.
func writeMask(t *testing.T, root string, c TileCoord, fp Footprint) {
	pix := make([]uint8, fp.W*fp.H)
	for i := range pix {
		pix[i] = 1
	}
	dir := filepath.Join(root, LandmaskDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := landmask.Write(filepath.Join(dir, c.Name()+".tiff"), fp.W, fp.H, pix); err != nil {
		t.Fatal(err)
	}
}

// copyCorpus copies the corpus to a temporary root (keeping symlinks) and
// inflates its .npy files as inflate.txt says.
func copyCorpus(t *testing.T, src string) string {
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dst, "inflate.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rel, size, _ := strings.Cut(sc.Text(), " ")
		n, err := strconv.ParseInt(size, 10, 64)
		if err != nil {
			t.Fatalf("inflate.txt: %q", sc.Text())
		}
		if err := os.Truncate(filepath.Join(dst, filepath.FromSlash(rel)), n); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(filepath.Join(dst, "inflate.txt"))
	return dst
}

// report prints what Discover found, paths relative to root, for the
// golden file.
func report(root string, cat *Catalogue) string {
	var b strings.Builder
	rel := func(p string) string {
		r, err := filepath.Rel(root, p)
		if err != nil {
			return p
		}
		return filepath.ToSlash(r)
	}
	for _, w := range cat.Warnings {
		fmt.Fprintf(&b, "root warning  %s: %s\n", rel(w.Path), w.Reason)
	}
	for _, y := range cat.Years {
		for _, z := range y.Zones {
			for _, p := range z.Placements {
				t := p.Tile
				fmt.Fprintf(&b, "%d tile      %s zone %d %d × %d scales bands %d landmask %q inputs %d\n",
					y.Year, t.Coord, t.Zone, t.H, t.W, t.ScalesBands, rel(t.LandmaskPath()), len(t.Inputs))
			}
		}
		for _, p := range y.Problems {
			fmt.Fprintf(&b, "%d skipped   %s: %s\n", y.Year, rel(p.Path), p.Reason)
		}
		for _, w := range y.Warnings {
			fmt.Fprintf(&b, "%d warning   %s: %s\n", y.Year, rel(w.Path), w.Reason)
		}
	}
	return b.String()
}

// TestDiscoverBadTiles runs discovery over the bad-tile corpus: every bad
// tile is skipped with its file and reason, strays are warnings, and the
// good tiles, including those next to bad ones, are kept.
func TestDiscoverBadTiles(t *testing.T) {
	if *update {
		if err := os.RemoveAll(badTiles); err != nil {
			t.Fatal(err)
		}
		makeBadTiles(t, badTiles)
	}
	root := copyCorpus(t, badTiles)
	cat, err := Discover(context.Background(), root, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	got := report(root, cat)
	golden := filepath.Join(badTiles, "want.txt")
	if *update {
		// want.txt lives beside the corpus but is not part of it.
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("discovery of %s differs from want.txt:\n--- got\n%s--- want\n%s", badTiles, got, want)
	}

	// The same facts, independently of the golden file.
	y := cat.Year(2024)
	if y == nil || cat.Year(2025) == nil || len(cat.Years) != 2 {
		t.Fatalf("years %v", cat.Years)
	}
	if len(y.Problems) != 12 {
		t.Errorf("%d tiles skipped in 2024, want 12", len(y.Problems))
	}
	z30, z31 := y.Zone(30), y.Zone(31)
	if z30 == nil || z31 == nil || len(z30.Placements) != 2 || len(z31.Placements) != 1 || len(y.Zones) != 2 {
		t.Fatalf("zones %v", y.Zones)
	}
	for _, tc := range []struct{ substr, path string }{
		{"truncated: want ", "grid_-0.15_85.05/grid_-0.15_85.05.npy"},
		{"dtype <f8, want float32 (<f4)", "grid_-0.25_85.05/grid_-0.25_85.05_scales.npy"},
		{"does not match the tile grid", "grid_-0.35_85.05/grid_-0.35_85.05.npy"},
		{"missing grid_-0.45_85.05_scales.npy", "grid_-0.45_85.05/grid_-0.45_85.05_scales.npy"},
		{"is a directory", "grid_-0.55_85.05/grid_-0.55_85.05.npy"},
		{"broken symlink to ../nowhere.npy", "grid_-0.65_85.05/grid_-0.65_85.05.npy"},
		{"Fortran-order", "grid_-0.85_85.05/grid_-0.85_85.05.npy"},
		{"dtype <f4, want int8", "grid_-0.95_85.05/grid_-0.95_85.05.npy"},
		{", 64), want (", "grid_-1.05_85.05/grid_-1.05_85.05.npy"},
		{"(16 trailing bytes)", "grid_-1.15_85.05/grid_-1.15_85.05_scales.npy"},
		{"missing grid_-1.25_85.05.npy; also missing grid_-1.25_85.05_scales.npy", "grid_-1.25_85.05/grid_-1.25_85.05.npy"},
		{"not a .npy file (bad magic)", "grid_-1.35_85.05/grid_-1.35_85.05_scales.npy"},
	} {
		found := false
		for _, p := range y.Problems {
			if strings.HasSuffix(p.Path, filepath.FromSlash(tc.path)) && strings.Contains(p.Reason, tc.substr) {
				found = true
			}
		}
		if !found {
			t.Errorf("no problem for %s saying %q", tc.path, tc.substr)
		}
	}
	// Inputs and fingerprints of a good tile.
	tile := z30.Placements[1].Tile // (lon, lat) order: -0.75 then -0.05
	if tile.Coord != (TileCoord{-5, 8505}) || tile.LandmaskPath() == "" || len(tile.Inputs) != 3 {
		t.Fatalf("tile %+v", tile)
	}
	for _, in := range tile.Inputs {
		fi, err := os.Stat(in.Path)
		if err != nil || fi.Size() != in.Size || !fi.ModTime().Equal(in.ModTime) {
			t.Errorf("input %+v does not match the file (%v)", in, err)
		}
	}
	if z30.Placements[0].Tile.ScalesBands != Bands {
		t.Errorf("3-D scales tile has ScalesBands %d", z30.Placements[0].Tile.ScalesBands)
	}
}

func TestDiscoverErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := Discover(ctx, filepath.Join(dir, "nope"), Options{Logger: quiet}); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing root: %v", err)
	}
	_, err := Discover(ctx, dir, Options{Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "has no global_0.1_degree_representation directory") {
		t.Errorf("missing representation dir: %v", err)
	}
	os.MkdirAll(filepath.Join(dir, RepresentationDir, "2024"), 0o755)
	_, err = Discover(ctx, dir, Options{Years: []int{2023}, Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "year 2023: no directory") {
		t.Errorf("missing year: %v", err)
	}
	cat, err := Discover(ctx, dir, Options{Logger: quiet})
	if err != nil || len(cat.Years) != 0 {
		t.Errorf("empty year: %v, %v", cat, err)
	}
	// No landmask directory at all: one warning, not one per tile.
	writeTile(t, NewProjector(), dir, tileSpec{year: 2024, coord: TileCoord{-5, 8505}})
	cat, err = Discover(ctx, dir, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Warnings) != 1 || !strings.Contains(cat.Warnings[0].Reason, "no landmask directory: every tile treated as all land") {
		t.Errorf("warnings %v", cat.Warnings)
	}
	if len(cat.Year(2024).Warnings) != 0 {
		t.Errorf("per-tile warnings %v", cat.Year(2024).Warnings)
	}
}

// TestDiscoverZones checks zones and years selection, the split at a zone
// boundary and one continuous grid across the equator.
func TestDiscoverZones(t *testing.T) {
	root := t.TempDir()
	p := NewProjector()
	for _, s := range []tileSpec{
		{2024, TileCoord{-5, 5}, false, true},   // zone 30, north
		{2024, TileCoord{-5, -5}, true, true},   // zone 30, south
		{2024, TileCoord{5, 5}, false, true},    // zone 31
		{2024, TileCoord{5, -5}, false, false},  // zone 31
		{2023, TileCoord{-5, 5}, false, true},   // another year
		{2023, TileCoord{605, 5}, false, false}, // zone 32
	} {
		writeTile(t, p, root, s)
	}
	cat, err := Discover(context.Background(), root, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Years) != 2 || cat.Years[0].Year != 2023 || cat.Years[1].Year != 2024 {
		t.Fatalf("years %v", cat.Years)
	}
	y := cat.Year(2024)
	if len(y.Zones) != 2 || y.Zones[0].Zone != 30 || y.Zones[1].Zone != 31 {
		t.Fatalf("zones %v", y.Zones)
	}
	for _, z := range y.Zones {
		if len(z.Placements) != 2 {
			t.Fatalf("zone %d has %d tiles", z.Zone, len(z.Placements))
		}
		// (lon, lat) order: south first.
		south, north := z.Placements[0], z.Placements[1]
		if south.Tile.Coord.Lat100 != -5 || north.Tile.Coord.Lat100 != 5 {
			t.Fatalf("zone %d order %s, %s", z.Zone, south.Tile.Coord, north.Tile.Coord)
		}
		if d := south.Row - (north.Row + north.Tile.H); d < -1 || d > 1 {
			t.Errorf("zone %d: south tile at row %d, north ends at %d", z.Zone, south.Row, north.Row+north.Tile.H)
		}
		checkInside(t, z)
	}
	if len(y.Warnings) != 1 || !strings.HasSuffix(y.Warnings[0].Path, "grid_0.05_-0.05.tiff") {
		t.Errorf("warnings %v", y.Warnings)
	}

	cat, err = Discover(context.Background(), root, Options{Years: []int{2024}, Zones: []int{31, 32}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Years) != 1 || len(cat.Years[0].Zones) != 1 || cat.Years[0].Zones[0].Zone != 31 {
		t.Fatalf("selection: %v", cat.Years)
	}
}

func TestDiscoverCancelled(t *testing.T) {
	root := t.TempDir()
	writeTile(t, NewProjector(), root, tileSpec{year: 2024, coord: TileCoord{-5, 8505}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Discover(ctx, root, Options{Logger: quiet}); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}
