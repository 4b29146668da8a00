package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tesserafs/tesserafs/internal/synth"
)

func TestSynthBadFlags(t *testing.T) {
	out := t.TempDir()
	ok := synthOptions{Out: out, Year: 2024, Workers: 1, At: "0.05,52.05"}
	with := func(f func(o *synthOptions)) synthOptions { o := ok; f(&o); return o }
	tests := []struct {
		name string
		o    synthOptions
		want string
	}{
		{"no out", with(func(o *synthOptions) { o.Out = ""; o.Preset = "test" }), "--out is required"},
		{"no year", with(func(o *synthOptions) { o.Year = 0; o.Preset = "test" }), "--year 0"},
		{"zero workers", with(func(o *synthOptions) { o.Workers = 0; o.Preset = "test" }), "--workers 0"},
		{"no source", ok, "exactly one of --preset, --region, --count"},
		{"two sources", with(func(o *synthOptions) { o.Preset = "test"; o.Region = "0,0,1,1" }), "exactly one of"},
		{"unknown preset", with(func(o *synthOptions) { o.Preset = "big" }), "presets: test, equator, demo"},
		{"region lon0 >= lon1", with(func(o *synthOptions) { o.Region = "1,0,0,1" }), "lon0 1 must be less than lon1 0"},
		{"region lat0 >= lat1", with(func(o *synthOptions) { o.Region = "0,1,1,1" }), "lat0 1 must be less than lat1 1"},
		{"region three numbers", with(func(o *synthOptions) { o.Region = "0,0,1" }), "3 numbers, want 4"},
		{"region not a number", with(func(o *synthOptions) { o.Region = "0,x,1,1" }), `"x" is not a number`},
		{"region off the globe", with(func(o *synthOptions) { o.Region = "170,0,190,1" }), "outside"},
		{"region holds no centre", with(func(o *synthOptions) { o.Region = "0.06,0,0.14,1" }), "no tile centre"},
		{"tiles zero", with(func(o *synthOptions) { o.tilesSet = true }), "--count 0"},
		{"tiles negative", with(func(o *synthOptions) { o.Tiles = -3 }), "--count -3"},
		{"at one number", with(func(o *synthOptions) { o.Tiles = 1; o.At = "1" }), "--at"},
		{"at off the globe", with(func(o *synthOptions) { o.Tiles = 1; o.At = "0,95" }), "outside"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout bytes.Buffer
			err := runSynth(context.Background(), tc.o, &stdout)
			var ue userError
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &ue) {
				t.Fatalf("err = %v, want a user error containing %q", err, tc.want)
			}
		})
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("bad flags wrote %d entries to --out", len(entries))
	}
}

// TestSynthCommand runs the command through cobra: flags parse, tiles are
// written, and one summary line is printed.
func TestSynthCommand(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantTiles int
		wantLine  string
	}{
		{"region", []string{"--region", "20.4,-85,20.5,-84.8"}, 2, "wrote 2 tiles for 2024"},
		{"sparse block", []string{"--count", "5", "--at", "20.45,-84.95", "--sparse", "--workers", "3"}, 5, "wrote 5 sparse tiles for 2024"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			root := newRootCmd()
			var stdout bytes.Buffer
			root.SetOut(&stdout)
			root.SetArgs(append([]string{"synth", "--out", out, "--year", "2024"}, tc.args...))
			if err := root.ExecuteContext(context.Background()); err != nil {
				t.Fatal(err)
			}
			if lines := strings.Split(strings.TrimSpace(stdout.String()), "\n"); len(lines) != 1 || !strings.Contains(lines[0], tc.wantLine) || !strings.Contains(lines[0], out) {
				t.Errorf("output %q, want one line with %q and %s", stdout.String(), tc.wantLine, out)
			}
			m, err := synth.ReadManifest(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Years) != 1 || len(m.Years[0].Tiles) != tc.wantTiles {
				t.Fatalf("manifest %+v, want %d tiles", m, tc.wantTiles)
			}
			for _, e := range m.Years[0].Tiles {
				if _, err := os.Stat(filepath.Join(out, "global_0.1_degree_representation", "2024", e.Name, e.Name+".npy")); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestSynthTilesZeroThroughCobra(t *testing.T) {
	root := newRootCmd()
	root.SetOut(&bytes.Buffer{})
	root.SetArgs([]string{"synth", "--out", t.TempDir(), "--year", "2024", "--count", "0"})
	err := root.ExecuteContext(context.Background())
	if err == nil || !strings.Contains(err.Error(), "--count 0: want a positive number") {
		t.Fatalf("err = %v, want the --count rejected", err)
	}
}
