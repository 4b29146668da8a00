package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/materializer"
)

func init() { subcommands = append(subcommands, newMaterializeCmd) }

type materializeOptions struct {
	storeOptions
	Out string
}

func newMaterializeCmd() *cobra.Command {
	var o materializeOptions
	cmd := &cobra.Command{
		Use:   "materialize --tiles DIR --out DIR",
		Short: "Write the year stores and the STAC catalog to disk",
		Long: `Materialize writes <out>/<year>.zarr/ for every year (or those given) and the
STAC catalog (<out>/catalog.json and below), generating every shard from the
source tiles in parallel. Every file is written atomically; a run that was
interrupted is finished by running the same command again.

Tiles that cannot be used (truncated, wrong dtype or shape, missing scales)
are skipped with a warning naming the file; the rest is built, and the exit
status is 3 so that skipped tiles cannot go unnoticed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMaterialize(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	o.register(cmd.Flags())
	cmd.Flags().StringVar(&o.Out, "out", "", "output directory")
	return cmd
}

func runMaterialize(ctx context.Context, o materializeOptions, stdout io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	if o.Out == "" {
		return usageErrorf("--out is required")
	}
	if abs, _ := filepath.Abs(o.Out); strings.HasPrefix(abs+"/", mustAbs(o.Tiles)+"/global_0.1_degree") {
		return usageErrorf("--out %s is inside the tiles root", o.Out)
	}
	log := slog.Default()
	st, err := o.open(ctx, storeWith{ReadThrough: materializer.NewOutputCache(o.Out), Logger: log})
	if err != nil {
		return err
	}
	cat, skipped := st.Catalogue(), st.Skipped
	srcBytes := sourceBytes(cat)
	prog, finish := progressReporter(log, stdout)
	sum, err := materializer.Run(ctx, st.Store, o.Out, materializer.Options{Workers: o.Workers, Progress: prog, Logger: log,
		MemoryLimit: materializer.DefaultMemoryLimit(o.Workers)})
	finish()
	if err != nil && !errors.Is(err, materializer.ErrIncomplete) {
		return err
	}
	// Discover logged the tiles' warnings; these are the ones found while
	// building (an unreadable landmask, say).
	built := st.Problems()
	reportProblems(log, "warning", built)
	warnings := len(built)
	for _, y := range cat.Years {
		warnings += len(y.Warnings)
	}
	secs := sum.Elapsed.Seconds()
	fmt.Fprintf(stdout, "materialized %s: %d files (%d written, %d already there), %.1f MiB written in %.1fs",
		o.Out, sum.Files, sum.Written, sum.Existing, float64(sum.Bytes)/(1<<20), secs)
	if sum.Written == sum.Files && secs > 0 {
		fmt.Fprintf(stdout, ", %.0f MB/s of source tiles", float64(srcBytes)/1e6/secs)
	}
	fmt.Fprint(stdout, "\nphases:")
	for _, ph := range sum.Phases {
		fmt.Fprintf(stdout, " %s %.1fs", ph.Name, ph.Elapsed.Seconds())
	}
	fmt.Fprintf(stdout, "\n%d tiles in %d zone(s); %d tile(s) skipped, %d warning(s)\n",
		countTiles(cat), countZones(cat), len(skipped), warnings)
	if ss, ok := sourceStats(cat); ok {
		fmt.Fprintf(stdout, "source %s: %s\n", o.Tiles, fmtSourceStats(ss))
	}
	if sum.Failed > 0 {
		reportFailures(stdout, sum)
		return incompleteError{sum.Failed}
	}
	if len(skipped) > 0 {
		return skippedError{len(skipped)}
	}
	return nil
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

func countTiles(cat *index.Catalogue) (n int) {
	for _, y := range cat.Years {
		for _, z := range y.Zones {
			n += len(z.Placements)
		}
	}
	return n
}

func countZones(cat *index.Catalogue) (n int) {
	for _, y := range cat.Years {
		n += len(y.Zones)
	}
	return n
}

func sourceBytes(cat *index.Catalogue) (n int64) {
	for _, y := range cat.Years {
		for _, z := range y.Zones {
			for _, p := range z.Placements {
				for _, in := range p.Tile.Inputs {
					n += in.Size
				}
			}
		}
	}
	return n
}

// progressReporter shows a progress bar on a terminal and a log line every
// ten seconds otherwise.
func progressReporter(log *slog.Logger, stdout io.Writer) (func(materializer.Progress), func()) {
	if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		var bar *progressbar.ProgressBar
		return func(p materializer.Progress) {
				if bar == nil {
					bar = progressbar.NewOptions64(p.Total, progressbar.OptionSetWriter(f),
						progressbar.OptionSetDescription("materialize"), progressbar.OptionShowCount(),
						progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
				}
				bar.Set64(p.Done)
			}, func() {
				if bar != nil {
					bar.Finish()
				}
			}
	}
	last := time.Now()
	return func(p materializer.Progress) {
		if time.Since(last) >= 10*time.Second || p.Done == p.Total {
			last = time.Now()
			log.Info("materialize", "files", fmt.Sprintf("%d/%d", p.Done, p.Total), "written", p.Written,
				"MiB", p.Bytes>>20)
		}
	}, func() {}
}

// failuresShown is how many distinct causes of left-out files are printed.
const failuresShown = 20

// reportFailures prints why files were left out, one line per distinct
// cause (a tile, its URL and the reason) with how many files it took and
// one of them.
func reportFailures(w io.Writer, sum materializer.Summary) {
	type group struct {
		cause, key string
		n          int
	}
	var groups []*group
	byCause := map[string]*group{}
	for _, f := range sum.Failures {
		c := failureCause(f.Err)
		g := byCause[c]
		if g == nil {
			g = &group{cause: c, key: f.Key}
			byCause[c] = g
			groups = append(groups, g)
		}
		g.n++
	}
	fmt.Fprintf(w, "%d file(s) left out because their tiles failed", sum.Failed)
	if len(sum.HeldBack) > 0 {
		fmt.Fprintf(w, " (and %s held back until they are written)", strings.Join(sum.HeldBack, ", "))
	}
	fmt.Fprintln(w, "; run the same command again to finish them:")
	for i, g := range groups {
		if i == failuresShown {
			fmt.Fprintf(w, "  … and %d more causes\n", len(groups)-failuresShown)
			break
		}
		fmt.Fprintf(w, "  %s\n    (%d file(s), e.g. %s)\n", g.cause, g.n, g.key)
	}
	if int64(len(sum.Failures)) < sum.Failed {
		fmt.Fprintf(w, "  (only the first %d failures are listed)\n", len(sum.Failures))
	}
}

// failureCause is the part of a generation error that names the tile and
// what failed with it ("tile <coord>: <file or URL>: <reason>"), without
// the chain of keys that were derived from it; the whole error when it
// names no tile.
func failureCause(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "tile "); i == 0 || (i >= 2 && msg[i-2:i] == ": ") {
		return msg[i:]
	}
	return msg
}

// incompleteError makes a run that left files out end with exit status 3,
// after writing everything else.
type incompleteError struct{ n int64 }

func (e incompleteError) Error() string {
	return fmt.Sprintf("%d file(s) were left out (see above); everything else was written, and a rerun finishes them", e.n)
}
func (e incompleteError) ExitCode() int { return 3 }
