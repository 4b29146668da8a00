package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
)

func init() { subcommands = append(subcommands, newInspectCmd) }

type inspectOptions struct {
	tileOptions
	JSON bool
}

func newInspectCmd() *cobra.Command {
	var o inspectOptions
	cmd := &cobra.Command{
		Use:   "inspect --tiles DIR|URL",
		Short: "Dry run: what a store built from these tiles would hold",
		Long: `Inspect indexes the tiles (reading only file headers) and prints, per year and
UTM zone, the tile count, the zone grid's origin and shape, its shards and how
many of them hold data, and an estimate of the output size. Skipped tiles are
listed with the reason.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInspect(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	o.register(cmd.Flags())
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print JSON")
	return cmd
}

// zoneReport is one zone of the inspect output.
type zoneReport struct {
	Year           int     `json:"year"`
	Zone           int     `json:"zone"`
	CRS            string  `json:"crs"`
	Tiles          int     `json:"tiles"`
	OriginE        float64 `json:"origin_e"`
	OriginN        float64 `json:"origin_n"`
	Height         int     `json:"height"`
	Width          int     `json:"width"`
	Shards         int     `json:"shards"`
	NonEmptyShards int     `json:"non_empty_shards"`
	EstimatedBytes int64   `json:"estimated_bytes"`
}

type inspectReport struct {
	Tiles    string          `json:"tiles"`
	Zones    []zoneReport    `json:"zones"`
	Skipped  []index.Problem `json:"skipped"`
	Warnings []index.Problem `json:"warnings"`
	// Unavailable are tiles whose source did not answer (not bad tiles:
	// the estimate leaves them out, and materialize would not start).
	Unavailable []index.Problem `json:"unavailable"`
}

// Bytes per covered pixel of the output, measured on synthetic tiles with
// real-like int8 statistics: embeddings compress by about 1.15×, scales and
// rgb by about 2× (they are smooth), plus shard indexes.
const estBytesPerPixel = 128/1.15 + 4/2.0 + 4/2.0

func runInspect(ctx context.Context, o inspectOptions, stdout io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	cat, skipped, err := o.discover(ctx)
	if err != nil {
		return err
	}
	rep := inspectReport{Tiles: o.Tiles, Skipped: skipped}
	for _, y := range cat.Years {
		rep.Warnings = append(rep.Warnings, y.Warnings...)
		rep.Unavailable = append(rep.Unavailable, y.Unavailable...)
		for _, z := range y.Zones {
			rows, cols := z.ShardGrid(generate.ShardSize)
			var px int64
			for _, p := range z.Placements {
				px += int64(p.Tile.W) * int64(p.Tile.H)
			}
			rep.Zones = append(rep.Zones, zoneReport{
				Year: y.Year, Zone: z.Zone, CRS: index.ZoneEPSG(z.Zone), Tiles: len(z.Placements),
				OriginE: z.OriginE, OriginN: z.OriginN, Height: z.H, Width: z.W,
				Shards: rows * cols, NonEmptyShards: len(z.Shards(generate.ShardSize)),
				EstimatedBytes: int64(float64(px) * estBytesPerPixel),
			})
		}
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "year\tzone\tcrs\ttiles\torigin_e\torigin_n\theight\twidth\tshards\tnon-empty\test. size\t")
	var total int64
	for _, z := range rep.Zones {
		total += z.EstimatedBytes
		fmt.Fprintf(tw, "%d\t%d\t%s\t%d\t%.0f\t%.0f\t%d\t%d\t%d\t%d\t%s\t\n", z.Year, z.Zone, z.CRS, z.Tiles,
			z.OriginE, z.OriginN, z.Height, z.Width, z.Shards, z.NonEmptyShards, humanBytes(z.EstimatedBytes))
	}
	tw.Flush()
	fmt.Fprintf(stdout, "estimated output: %s; %d tile(s) skipped, %d warning(s)", humanBytes(total), len(skipped), len(rep.Warnings))
	if n := len(rep.Unavailable); n > 0 {
		fmt.Fprintf(stdout, "; %d tile(s) unavailable (their source did not answer: not counted, and materialize would not start)", n)
	}
	fmt.Fprintln(stdout)
	for _, p := range rep.Unavailable {
		fmt.Fprintf(stdout, "unavailable %s: %s\n", p.Path, p.Reason)
	}
	for _, p := range skipped {
		fmt.Fprintf(stdout, "skipped %s: %s\n", p.Path, p.Reason)
	}
	for _, p := range rep.Warnings {
		fmt.Fprintf(stdout, "warning %s: %s\n", p.Path, p.Reason)
	}
	return nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
