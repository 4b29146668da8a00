package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tesserafs/tesserafs/internal/synth"
)

func init() { subcommands = append(subcommands, newSynthCmd) }

// synthOptions are the flags of `tesserafs synth`.
type synthOptions struct {
	Out     string
	Year    int
	Preset  string
	Region  string
	Tiles   int
	At      string
	Sparse  bool
	Workers int

	tilesSet bool // --count was given, even as 0
}

func (o *synthOptions) register(fs *pflag.FlagSet) {
	fs.StringVar(&o.Out, "out", "", "tiles root to write (created if missing)")
	fs.IntVar(&o.Year, "year", 0, "year of the tiles")
	fs.StringVar(&o.Preset, "preset", "", "named tile set: "+strings.Join(synth.PresetNames(), ", "))
	fs.StringVar(&o.Region, "region", "", "every tile centred in the box `lon0,lat0,lon1,lat1`, in degrees")
	fs.IntVar(&o.Tiles, "count", 0, "write `N` tiles in a compact block (with --at), for benchmarks")
	fs.StringVar(&o.At, "at", "-0.05,52.05", "`lon,lat` of the south-west tile of the --count block")
	fs.BoolVar(&o.Sparse, "sparse", false, "write sparse files: valid headers, no data blocks (reads as zeros)")
	fs.IntVar(&o.Workers, "workers", runtime.GOMAXPROCS(0), "tiles generated at once")
}

func newSynthCmd() *cobra.Command {
	var o synthOptions
	cmd := &cobra.Command{
		Use:   "synth --out DIR --year Y (--preset NAME | --region lon0,lat0,lon1,lat1 | --count N [--at lon,lat])",
		Short: "Write deterministic synthetic source tiles for tests, demos and benchmarks",
		Long: `Synth writes source tiles in the layout tesserafs reads (a tiles root), whose
values are a known function of position (see package synth): band b < 127 of
the embedding at 10 m pixel (e, n) is a hash of (e, n, b), band 127 is a stamp
of the tile, scales are a function of (e, n) with sparse +Inf pixels, and the
landmask has 200 x 200 px water squares. Tests compare what tesserafs builds
with that function. Every file is written atomically; <out>/synth.json lists
the tiles of every year written so far, and <out>/registry.parquet and
<out>/landmasks.parquet list them in geotessera's schema (sizes, mtimes,
sha256), so the root can also be served as a remote root over HTTP or S3.

Choose the tiles with exactly one of:
  --preset NAME                  a named set (below)
  --region lon0,lat0,lon1,lat1   every tile whose centre lies in the box
  --count N [--at lon,lat]       N tiles in a compact block, for benchmarks

Presets:
` + indent(synth.PresetHelp(), "  ") + `

--sparse writes each .npy as a header and a hole (no disk blocks; the data
reads as zeros, a valid scale of 0) and an all-land landmask of a few KB:
100,000 tiles take tens of seconds and almost no disk. Sparse tiles get no
.npy hashes in the registry (hashing 100 MB of zeros per tile is hours for a
million tiles); their landmasks are hashed.`,
		Example: `  tesserafs synth --out /tmp/tiles --year 2024 --preset test
  tesserafs synth --out /tmp/tiles --year 2024 --region 0,52,0.3,52.3
  tesserafs synth --out /tmp/big --year 2024 --count 100000 --at 0.05,40.05 --sparse`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.tilesSet = cmd.Flags().Changed("count")
			return runSynth(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	o.register(cmd.Flags())
	return cmd
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}

// tileSpecs turns the flags into the tiles to write.
func (o *synthOptions) tileSpecs() ([]synth.TileSpec, error) {
	n := 0
	for _, set := range []bool{o.Preset != "", o.Region != "", o.tilesSet || o.Tiles != 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, usageErrorf("give exactly one of --preset, --region, --count")
	}
	switch {
	case o.Preset != "":
		tiles, err := synth.Preset(o.Preset)
		if err != nil {
			return nil, usageErrorf("--preset %q: unknown (presets: %s)", o.Preset, strings.Join(synth.PresetNames(), ", "))
		}
		return tiles, nil
	case o.Region != "":
		v, err := parseFloats(o.Region, 4)
		if err != nil {
			return nil, usageErrorf("--region %q: %v (want lon0,lat0,lon1,lat1)", o.Region, err)
		}
		lon0, lat0, lon1, lat1 := v[0], v[1], v[2], v[3]
		switch {
		case lon0 < -180 || lon1 > 180 || lat0 < -90 || lat1 > 90:
			return nil, usageErrorf("--region %q: outside -180..180, -90..90", o.Region)
		case lon0 >= lon1:
			return nil, usageErrorf("--region %q: lon0 %v must be less than lon1 %v", o.Region, lon0, lon1)
		case lat0 >= lat1:
			return nil, usageErrorf("--region %q: lat0 %v must be less than lat1 %v", o.Region, lat0, lat1)
		}
		tiles := synth.Region(lon0, lat0, lon1, lat1)
		if len(tiles) == 0 {
			return nil, usageErrorf("--region %q: no tile centre (0.05 + k·0.1) lies in the box", o.Region)
		}
		return tiles, nil
	default:
		if o.Tiles <= 0 {
			return nil, usageErrorf("--count %d: want a positive number of tiles", o.Tiles)
		}
		v, err := parseFloats(o.At, 2)
		if err != nil {
			return nil, usageErrorf("--at %q: %v (want lon,lat)", o.At, err)
		}
		if v[0] < -180 || v[0] > 180 || v[1] < -90 || v[1] > 90 {
			return nil, usageErrorf("--at %q: outside -180..180, -90..90", o.At)
		}
		return synth.Grid(o.Tiles, v[0], v[1]), nil
	}
}

func parseFloats(s string, n int) ([]float64, error) {
	parts := strings.Split(s, ",")
	if len(parts) != n {
		return nil, fmt.Errorf("%d numbers, want %d", len(parts), n)
	}
	v := make([]float64, n)
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%q is not a number", p)
		}
		v[i] = f
	}
	return v, nil
}

func runSynth(ctx context.Context, o synthOptions, stdout io.Writer) error {
	if o.Out == "" {
		return usageErrorf("--out is required")
	}
	if o.Year < 1900 || o.Year > 2999 {
		return usageErrorf("--year %d: want a year in 1900..2999", o.Year)
	}
	if o.Workers < 1 || o.Workers > 1024 {
		return usageErrorf("--workers %d: want 1..1024", o.Workers)
	}
	tiles, err := o.tileSpecs()
	if err != nil {
		return err
	}
	start := time.Now()
	sum, err := synth.Write(ctx, o.Out, synth.Options{Year: o.Year, Tiles: tiles, Sparse: o.Sparse, Workers: o.Workers})
	if err != nil {
		return fmt.Errorf("synth: wrote %d of %d tiles: %w", sum.Tiles, len(tiles), err)
	}
	secs := max(time.Since(start).Seconds(), 1e-9)
	if o.Sparse {
		fmt.Fprintf(stdout, "synth: wrote %d sparse tiles for %d to %s: %s apparent, in %.1fs (%.0f tiles/s)\n",
			sum.Tiles, o.Year, o.Out, synthSize(sum.Bytes), secs, float64(sum.Tiles)/secs)
		return nil
	}
	fmt.Fprintf(stdout, "synth: wrote %d tiles for %d to %s: %s in %.1fs (%.0f MB/s)\n",
		sum.Tiles, o.Year, o.Out, synthSize(sum.Bytes), secs, float64(sum.Bytes)/1e6/secs)
	return nil
}

// synthSize prints n bytes in decimal units: "217.2 MB", "9.57 TB".
func synthSize(n int64) string {
	switch v := float64(n); {
	case v >= 1e12:
		return fmt.Sprintf("%.2f TB", v/1e12)
	case v >= 1e9:
		return fmt.Sprintf("%.2f GB", v/1e9)
	default:
		return fmt.Sprintf("%.1f MB", v/1e6)
	}
}
