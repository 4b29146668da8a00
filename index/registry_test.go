package index_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/synth"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// synthRoot writes n sparse tiles (plus registry.parquet and
// landmasks.parquet, as synth always does) and returns the root and the
// tiles.
func synthRoot(t *testing.T, n int) (string, []synth.TileSpec) {
	t.Helper()
	root := t.TempDir()
	tiles := synth.Grid(n, -0.25, 52.05) // straddles zones 30 and 31
	if _, err := synth.Write(context.Background(), root, synth.Options{Year: 2024, Tiles: tiles, Sparse: true}); err != nil {
		t.Fatal(err)
	}
	return root, tiles
}

// tilesOf flattens a catalogue to its tiles, sorted by coordinates.
func tilesOf(cat *index.Catalogue) []*index.Tile {
	var out []*index.Tile
	for _, y := range cat.Years {
		for _, z := range y.Zones {
			for _, p := range z.Placements {
				out = append(out, p.Tile)
			}
		}
	}
	slices.SortFunc(out, func(a, b *index.Tile) int {
		if a.Coord.Less(b.Coord) {
			return -1
		}
		if b.Coord.Less(a.Coord) {
			return 1
		}
		return 0
	})
	return out
}

// TestRegistryDiscovery checks discovery from the registry synth writes
// against the tiles synth was asked for, their grids computed here from
// coordinates, and the files' own stat: with eager checks, with Lazy ones
// (Inputs only after Check), and against a listing of the same root.
func TestRegistryDiscovery(t *testing.T) {
	root, specs := synthRoot(t, 12)
	ctx := context.Background()
	p := index.NewProjector()
	for _, tc := range []struct {
		name string
		opts index.Options
	}{
		{"registry", index.Options{}},
		{"registry lazy", index.Options{Lazy: true}},
		{"listing", index.Options{Registry: "none"}},
		{"listing lazy", index.Options{Registry: "none", Lazy: true}},
		{"registry by path", index.Options{Registry: filepath.Join(root, index.RegistryName)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Logger = quietLog
			cat, err := index.Discover(ctx, root, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(cat.Warnings) > 0 {
				t.Errorf("warnings: %v", cat.Warnings)
			}
			got := tilesOf(cat)
			if len(got) != len(specs) {
				t.Fatalf("%d tiles, want %d", len(got), len(specs))
			}
			for k, tile := range got {
				s := specs[k]
				if tile.Coord != s.Coord || tile.Year != 2024 {
					t.Fatalf("tile %d: %v %d, want %v 2024", k, tile.Coord, tile.Year, s.Coord)
				}
				fp, err := p.Footprint(s.Coord)
				if err != nil {
					t.Fatal(err)
				}
				if tile.Footprint != fp {
					t.Errorf("%v: footprint %+v, want %+v", s.Coord, tile.Footprint, fp)
				}
				if tile.EmbeddingsPath() != synth.EmbeddingsPath(root, 2024, s.Coord) || tile.ScalesPath() != synth.ScalesPath(root, 2024, s.Coord) ||
					tile.LandmaskPath() != synth.LandmaskPath(root, s.Coord) {
					t.Errorf("%v: names %q %q %q", s.Coord, tile.EmbeddingsPath(), tile.ScalesPath(), tile.LandmaskPath())
				}
				if tc.opts.Lazy {
					if tile.Inputs != nil {
						t.Fatalf("%v: a lazy discovery has stamps before Check", s.Coord)
					}
					if err := tile.Check(ctx); err != nil {
						t.Fatal(err)
					}
				}
				if len(tile.Inputs) != 3 {
					t.Fatalf("%v: inputs %v", s.Coord, tile.Inputs)
				}
				for _, in := range tile.Inputs {
					fi, err := os.Stat(in.Path)
					if err != nil {
						t.Fatal(err)
					}
					if fi.Size() != in.Size || !fi.ModTime().Equal(in.ModTime) {
						t.Errorf("%s: stamp %d %v, stat says %d %v", in.Path, in.Size, in.ModTime, fi.Size(), fi.ModTime())
					}
				}
			}
		})
	}
}

// writeRegistry writes rows as root's registry.parquet.
func writeRegistry(t *testing.T, root string, rows []index.RegistryRow) {
	t.Helper()
	var buf bytes.Buffer
	if err := index.WriteRegistry(&buf, rows); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, index.RegistryName), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readRegistry reads root's registry.parquet.
func readRegistry(t *testing.T, root string) []index.RegistryRow {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, index.RegistryName))
	if err != nil {
		t.Fatal(err)
	}
	var rows []index.RegistryRow
	if err := index.ReadRegistry(bytes.NewReader(data), int64(len(data)), func(rs []index.RegistryRow) error {
		rows = append(rows, rs...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestRegistryBadRows: rows that are not tiles or are malformed are
// skipped, each named by its row; the good ones are kept.
func TestRegistryBadRows(t *testing.T) {
	root, _ := synthRoot(t, 4)
	rows := readRegistry(t, root)
	if len(rows) != 4 {
		t.Fatalf("synth wrote %d rows, want 4", len(rows))
	}
	good := rows[0]
	notTile := rows[1]
	notTile.FileSize = 0
	badCoord := rows[2]
	badCoord.LonI = 12 // not x.x5
	mismatch := rows[3]
	mismatch.Lat += 0.1
	dup := rows[0]
	noYear := rows[3]
	noYear.Year = 0
	negative := rows[3]
	negative.ScalesSize = -1
	writeRegistry(t, root, []index.RegistryRow{good, notTile, badCoord, mismatch, dup, noYear, negative})

	cat, err := index.Discover(context.Background(), root, index.Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tilesOf(cat)); n != 1 {
		t.Errorf("%d tiles kept, want 1", n)
	}
	reg := filepath.Join(root, index.RegistryName)
	y := cat.Year(2024)
	all := append(append(append([]index.Problem{}, y.Problems...), y.Warnings...), cat.Warnings...)
	for _, want := range []struct{ path, reason string }{
		{synth.EmbeddingsPath(root, 2024, index.TileCoord{Lon100: int(notTile.LonI), Lat100: int(notTile.LatI)}), "not a tile"},
		{reg + " row 2", "not a 0.1° tile centre"},
		{reg + " row 3", "do not match"},
		{reg + " row 4", "listed again (first in row 0)"},
		{reg + " row 5", "year 0 is not a year"},
		{reg + " row 6", "negative"},
	} {
		if !slices.ContainsFunc(all, func(p index.Problem) bool {
			return p.Path == want.path && strings.Contains(p.Reason, want.reason)
		}) {
			t.Errorf("no problem %s: …%s… in %v", want.path, want.reason, all)
		}
	}
}

// TestLazyBadTile: a tile whose file does not match the registry's size,
// or whose header does not match its grid, is kept by a Lazy discovery,
// fails its Check by name, and stays failed; an eager discovery skips it.
func TestLazyBadTile(t *testing.T) {
	root, specs := synthRoot(t, 4)
	ctx := context.Background()
	short := synth.EmbeddingsPath(root, 2024, specs[1].Coord)
	fi, err := os.Stat(short)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(short, fi.Size()-1); err != nil {
		t.Fatal(err)
	}
	cat, err := index.Discover(ctx, root, index.Options{Lazy: true, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	tiles := tilesOf(cat)
	if len(tiles) != 4 {
		t.Fatalf("lazy: %d tiles, want 4", len(tiles))
	}
	if err := index.CheckTiles(ctx, tiles); err != nil {
		t.Fatal(err)
	}
	var te *index.TileError
	err = tiles[1].Check(ctx)
	if !errors.As(err, &te) || te.Path != short || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("bad tile's check: %v", err)
	}
	for _, k := range []int{0, 2, 3} {
		if err := tiles[k].Check(ctx); err != nil {
			t.Errorf("good tile %v: %v", tiles[k].Coord, err)
		}
	}
	// Mended, it stays bad for the life of the catalogue.
	if err := os.Truncate(short, fi.Size()); err != nil {
		t.Fatal(err)
	}
	if err := tiles[1].Check(ctx); err == nil {
		t.Error("a failed tile passed its check on a second try")
	}
	if late := cat.LateProblems(); len(late) != 1 || late[0].Path != short {
		t.Errorf("late problems %v", late)
	}

	// A file of the right length for its header but not the registry's.
	if err := os.Truncate(short, fi.Size()+100); err != nil {
		t.Fatal(err)
	}
	for _, lazy := range []bool{true, false} {
		cat, err := index.Discover(ctx, root, index.Options{Lazy: lazy, Logger: quietLog})
		if err != nil {
			t.Fatal(err)
		}
		if lazy {
			err = tilesOf(cat)[1].Check(ctx)
			if err == nil || !strings.Contains(err.Error(), short) {
				t.Errorf("lazy check of a grown tile: %v", err)
			}
			continue
		}
		if n := len(tilesOf(cat)); n != 3 {
			t.Errorf("eager: %d tiles, want 3", n)
		}
		if ps := cat.Year(2024).Problems; len(ps) != 1 || ps[0].Path != short {
			t.Errorf("eager problems %v", ps)
		}
	}
}

// FuzzReadRegistry: any bytes give rows or an error, never a panic.
func FuzzReadRegistry(f *testing.F) {
	var buf bytes.Buffer
	rows := []index.RegistryRow{{Geometry: index.PointWKB(0.05, 52.05), Lat: 52.05, Lon: 0.05, Year: 2024, LonI: 5, LatI: 5205,
		Hash: strings.Repeat("a", 64), FileSize: 10, ScalesSize: 10}}
	if err := index.WriteRegistry(&buf, rows); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte("PAR1PAR1"))
	f.Add([]byte("PAR1\x00\x00\x00\x00\xff\xff\xff\x7fPAR1")) // claims a 2 GiB footer
	f.Fuzz(func(t *testing.T, data []byte) {
		index.ReadRegistry(bytes.NewReader(data), int64(len(data)), func([]index.RegistryRow) error { return nil })
	})
}
