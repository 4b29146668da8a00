package main

import (
	"context"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tesserafs/tesserafs/internal/keyspace"
	"github.com/tesserafs/tesserafs/internal/preview"
)

func init() { subcommands = append(subcommands, newPreviewCmd) }

type previewOptions struct {
	storeOptions
	Level     int // -1: the finest that fits MaxPixels
	MaxPixels string
	BBox      string
	Zone      int
	Out       string
}

func newPreviewCmd() *cobra.Command {
	var o previewOptions
	cmd := &cobra.Command{
		Use:   "preview --tiles DIR|URL [--level N | --max-pixels 16M] --out FILE.png",
		Short: "Write a PNG quicklook of the global RGB preview (or of one zone's rgb)",
		Long: `Preview renders a year's global_rgb (EPSG:4326; level 0 is 0.0001° per pixel,
each level halves it) over a lon/lat box as a PNG, one image pixel per array
pixel, transparent where there is no data. With --zone it renders that UTM
zone's rgb array instead (10 m pixels, halved --level times).

The box defaults to all the tiles (or the whole zone). Without --level, the
finest level whose image fits --max-pixels is chosen, and named. The chunks
are generated from the tiles exactly as mount and materialize serve them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPreview(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	o.register(cmd.Flags())
	cmd.Flags().IntVar(&o.Level, "level", -1, "pyramid level (global: 0..9; zone: 0..8); default: the finest that fits --max-pixels")
	cmd.Flags().StringVar(&o.MaxPixels, "max-pixels", "16M", "largest image, in pixels (M = 2^20; at most 64M)")
	cmd.Flags().StringVar(&o.BBox, "bbox", "", "lon0,lat0,lon1,lat1 (default: all the data)")
	cmd.Flags().IntVar(&o.Zone, "zone", 0, "render this UTM zone's rgb instead of global_rgb")
	// --zone is what a preview asks for; --zones (restrict discovery)
	// still works but is not offered beside it.
	cmd.Flags().MarkHidden("zones")
	cmd.Flags().StringVar(&o.Out, "out", "", "PNG file to write")
	return cmd
}

// parseBBox parses "lon0,lat0,lon1,lat1" into (lonMin, latMin, lonMax,
// latMax).
func parseBBox(s string) (*[4]float64, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return nil, usageErrorf("--bbox %q: want lon0,lat0,lon1,lat1", s)
	}
	var v [4]float64
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return nil, usageErrorf("--bbox %q: %q is not a number", s, p)
		}
		v[i] = f
	}
	b := [4]float64{min(v[0], v[2]), min(v[1], v[3]), max(v[0], v[2]), max(v[1], v[3])}
	if b[0] < -180 || b[2] > 180 || b[1] < -90 || b[3] > 90 || b[0] == b[2] || b[1] == b[3] {
		return nil, usageErrorf("--bbox %q: want a non-empty box within -180..180, -90..90", s)
	}
	return &b, nil
}

func runPreview(ctx context.Context, o previewOptions, stdout io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	if o.Out == "" {
		return usageErrorf("--out is required")
	}
	if o.Zone != 0 && (o.Zone < 1 || o.Zone > 60) {
		return usageErrorf("--zone %d: not a UTM zone (1..60)", o.Zone)
	}
	if o.Level < -1 {
		return usageErrorf("--level %d: want 0 or more", o.Level)
	}
	maxPixels, err := parseMaxPixels(o.MaxPixels)
	if err != nil {
		return err
	}
	bbox, err := parseBBox(o.BBox)
	if err != nil {
		return err
	}
	if o.Zone != 0 && o.Stretch != "global" {
		o.Zones = []int{o.Zone} // a zone's stretch depends on that zone alone
	}
	st, err := o.open(ctx, storeWith{})
	if err != nil {
		return err
	}
	cat := st.Catalogue()
	if len(cat.Years) > 1 {
		return usageErrorf("the tiles hold %d years: choose one with --year", len(cat.Years))
	}
	t := preview.Target{Year: cat.Years[0].Year, Zone: o.Zone, BBox: bbox}
	level, chose := o.Level, ""
	if level < 0 {
		l, win, err := preview.Finest(st.Store, t, maxPixels)
		if err != nil {
			return userError{err}
		}
		w, h := win.Size()
		level = l
		chose = fmt.Sprintf("chose level %d, the finest whose image (%d × %d) fits --max-pixels %s", l, w, h, o.MaxPixels)
	}
	img, err := preview.Render(ctx, st.Store, t, level, preview.Options{Workers: o.Workers, MaxPixels: maxPixels})
	if err != nil {
		return userError{err}
	}
	if err := writePNG(o.Out, img); err != nil {
		return err
	}
	what := fmt.Sprintf("%d.zarr/global_rgb level %d", t.Year, level)
	if o.Zone != 0 {
		what = fmt.Sprintf("%d.zarr/%s/rgb level %d", t.Year, keyspace.ZoneGroup(o.Zone), level)
	}
	if chose != "" {
		fmt.Fprintf(stdout, "preview: %s\n", chose)
	}
	fmt.Fprintf(stdout, "wrote %s: %s, %d × %d pixels\n", o.Out, what, img.Rect.Dx(), img.Rect.Dy())
	if o.Zone != 0 {
		// The stretch the zone's rgb was made with, as its tessera:rgb_stretch records.
		sr, mode, err := st.RGBStretch(ctx, t.Year, o.Zone)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rgb stretch (%s): p2 %v, p98 %v\n", mode, sr.Lo, sr.Hi)
	}
	return nil
}

// parseMaxPixels parses --max-pixels: a count with an optional K, M or G
// (binary, as --cache-size).
func parseMaxPixels(s string) (int64, error) {
	n, err := parseSize(s)
	if err != nil {
		return 0, usageErrorf("--max-pixels %q: %v", s, err)
	}
	if n < 1 || n > preview.MaxPixels {
		return 0, usageErrorf("--max-pixels %q: want 1..%d", s, preview.MaxPixels)
	}
	return n, nil
}

// writePNG writes img to path atomically.
func writePNG(path string, img image.Image) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".preview-*.png")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Rename(f.Name(), path)
}
