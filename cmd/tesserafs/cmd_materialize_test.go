package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/testtiles"
	"github.com/tesserafs/tesserafs/materializer"
)

func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMaterializeBadTiles corrupts some tiles of the test preset in every
// way the spec names, materializes, and checks that each bad tile is
// reported with its file and reason, the exit status says so, and the
// output is exactly what the good tiles alone give: nothing wrong is
// written, no good neighbour is lost.
func TestMaterializeBadTiles(t *testing.T) {
	good := testtiles.Root(t, "test")
	bad := testtiles.Copy(t, good)
	ref := testtiles.Copy(t, good)
	rep := func(root, name, file string) string {
		return filepath.Join(root, "global_0.1_degree_representation", "2024", name, file)
	}
	mask := func(root, name string) string {
		return filepath.Join(root, "global_0.1_degree_tiff_all", name+".tiff")
	}
	type corruption struct {
		tile, reason string
		do           func(root string) error
	}
	cases := []corruption{
		{"grid_-0.05_84.95", "truncated", func(r string) error {
			p := rep(r, "grid_-0.05_84.95", "grid_-0.05_84.95.npy")
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, fi.Size()-1000)
		}},
		{"grid_20.45_-84.95", "dtype", func(r string) error {
			// Rewrite the scales header's dtype: same size, other type.
			p := rep(r, "grid_20.45_-84.95", "grid_20.45_-84.95_scales.npy")
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(p, bytes.Replace(b, []byte("'<f4'"), []byte("'<i4'"), 1), 0o644)
		}},
		{"grid_20.45_-84.85", "missing", func(r string) error {
			return os.Remove(rep(r, "grid_20.45_-84.85", "grid_20.45_-84.85_scales.npy"))
		}},
	}
	for _, c := range cases {
		if err := c.do(bad); err != nil {
			t.Fatal(err)
		}
		// The reference simply does not have the tile.
		if err := os.RemoveAll(filepath.Dir(rep(ref, c.tile, "x"))); err != nil {
			t.Fatal(err)
		}
	}
	// The reference is listed, not read from the registry it was copied
	// with, which still names the tiles it no longer has.
	for _, f := range []string{"registry.parquet", "landmasks.parquet"} {
		if err := os.Remove(filepath.Join(ref, f)); err != nil {
			t.Fatal(err)
		}
	}
	// An unreadable landmask means all land plus a warning: the same as no
	// landmask at all.
	if err := os.WriteFile(mask(bad, "grid_-0.05_85.05"), []byte("II*\x00garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(mask(ref, "grid_-0.05_85.05")); err != nil {
		t.Fatal(err)
	}
	// Stray files and directories are ignored.
	os.WriteFile(filepath.Join(bad, "global_0.1_degree_representation", "2024", "notes.txt"), []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(bad, "global_0.1_degree_representation", "2024", "tmp"), 0o755)

	var logs bytes.Buffer
	setLogger(&logs)
	defer setLogger(os.Stderr)
	ctx := context.Background()
	outBad, outRef := t.TempDir(), t.TempDir()
	var stdout bytes.Buffer
	err := runMaterialize(ctx, materializeOptions{storeOptions: storeOptions{tileOptions: tileOptions{Tiles: bad, Workers: 2}}, Out: outBad}, &stdout)
	var se skippedError
	if !errors.As(err, &se) || se.n != len(cases) || se.ExitCode() != 3 {
		t.Fatalf("err = %v, want %d skipped tiles and exit status 3", err, len(cases))
	}
	for _, c := range cases {
		if !strings.Contains(logs.String(), c.tile) || !strings.Contains(logs.String(), c.reason) {
			t.Errorf("log does not name %s with reason %q:\n%s", c.tile, c.reason, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "grid_-0.05_85.05.tiff") || !strings.Contains(logs.String(), "all land") {
		t.Errorf("no warning for the unreadable landmask:\n%s", logs.String())
	}
	if !strings.Contains(stdout.String(), "3 tile(s) skipped") {
		t.Errorf("summary does not count skipped tiles: %s", stdout.String())
	}
	if err := runMaterialize(ctx, materializeOptions{storeOptions: storeOptions{tileOptions: tileOptions{Tiles: ref, Workers: 2}}, Out: outRef}, &stdout); err != nil {
		t.Fatal(err)
	}
	got, want := readTree(t, outBad), readTree(t, outRef)
	if len(got) != len(want) || len(want) < 20 {
		t.Errorf("%d files, want %d", len(got), len(want))
	}
	for k, v := range want {
		if !bytes.Equal(got[k], v) {
			t.Errorf("%s differs from the store of the good tiles alone", k)
		}
	}
}

func TestMaterializeBadFlags(t *testing.T) {
	tiles := testtiles.Root(t, "test")
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o644)
	tests := []struct {
		name string
		o    materializeOptions
		want string
	}{
		{"no tiles", materializeOptions{storeOptions: storeOptions{tileOptions: tileOptions{Workers: 1}}, Out: t.TempDir()}, "--tiles is required"},
		{"missing tiles", materializeOptions{storeOptions: storeOptions{tileOptions: tileOptions{Tiles: "/nonexistent", Workers: 1}}, Out: t.TempDir()}, "no such file"},
		{"tiles not a dir", materializeOptions{storeOptions: storeOptions{tileOptions: tileOptions{Tiles: notDir, Workers: 1}}, Out: t.TempDir()}, "not a directory"},
		{"no out", materializeOptions{storeOptions: storeOptions{tileOptions: tileOptions{Tiles: tiles, Workers: 1}}}, "--out is required"},
		{"zero workers", materializeOptions{storeOptions: storeOptions{tileOptions: tileOptions{Tiles: tiles}}, Out: t.TempDir()}, "--workers 0"},
		{"bad zone", materializeOptions{storeOptions: storeOptions{tileOptions: tileOptions{Tiles: tiles, Workers: 1, Zones: []int{61}}}, Out: t.TempDir()}, "not a UTM zone"},
		{"bad year", materializeOptions{storeOptions: storeOptions{tileOptions: tileOptions{Tiles: tiles, Workers: 1, Years: []int{24}}}, Out: t.TempDir()}, "not a plausible year"},
		{"no such year", materializeOptions{storeOptions: storeOptions{tileOptions: tileOptions{Tiles: tiles, Workers: 1, Years: []int{2019}}}, Out: t.TempDir()}, "year 2019: no tiles"},
		{"out inside tiles", materializeOptions{storeOptions: storeOptions{tileOptions: tileOptions{Tiles: tiles, Workers: 1}},
			Out: filepath.Join(tiles, "global_0.1_degree_representation", "out")}, "inside the tiles root"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := runMaterialize(context.Background(), tc.o, io_discard{})
			var ue userError
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &ue) {
				t.Fatalf("err = %v, want a user error containing %q", err, tc.want)
			}
		})
	}
}

type io_discard struct{}

func (io_discard) Write(p []byte) (int, error) { return len(p), nil }

func TestReportFailures(t *testing.T) {
	const url = "http://127.0.0.1:1/global_0.1_degree_representation/2024/grid_0.15_52.05/grid_0.15_52.05.npy"
	tileErr := &index.TileReadError{Coord: index.TileCoord{Lon100: 15, Lat100: 5205}, Err: errors.New("npy " + url + ": bytes 0-1048575: 503 Service Unavailable")}
	cause := "tile grid_0.15_52.05: npy " + url + ": bytes 0-1048575: 503 Service Unavailable"
	sum := materializer.Summary{Failed: 3, HeldBack: []string{"2024.zarr/zarr.json"}, Failures: []materializer.Failure{
		{Key: "2024.zarr/utm30/embeddings/c/4/0/0", Err: fmt.Errorf("2024.zarr/utm30/embeddings/c/4/0/0: %w", tileErr)},
		{Key: "2024.zarr/global_rgb/1/rgb/c/48/1756/0", Err: fmt.Errorf("2024.zarr/global_rgb/1/rgb/c/48/1756/0: 2024.zarr/global_rgb/0/rgb/c/97/3512/0: zone 30: %w", tileErr)},
		{Key: "2024.zarr/utm31/embeddings/c/0/0/0", Err: errors.New("2024.zarr/utm31/embeddings/c/0/0/0: disk on fire")},
	}}
	var buf bytes.Buffer
	reportFailures(&buf, sum)
	out := buf.String()
	for _, want := range []string{
		"3 file(s) left out", "2024.zarr/zarr.json held back", "run the same command again",
		"  " + cause + "\n    (2 file(s), e.g. 2024.zarr/utm30/embeddings/c/4/0/0)",
		"disk on fire\n    (1 file(s), e.g. 2024.zarr/utm31/embeddings/c/0/0/0)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, url) != 1 {
		t.Errorf("the failing URL should be named once (one cause):\n%s", out)
	}
	var ie incompleteError
	if !errors.As(error(incompleteError{3}), &ie) || ie.ExitCode() != 3 {
		t.Error("an incomplete run must exit 3")
	}
}
