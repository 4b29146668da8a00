package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/s3conf"
	"github.com/tesserafs/tesserafs/materializer"
)

func init() { subcommands = append(subcommands, newMaterializeCmd) }

type materializeOptions struct {
	storeOptions
	Out        string
	Partition  string // I/N
	Partitions int    // N, with the index from JOB_COMPLETION_INDEX or Slurm
	Phase      string
	Finalize   bool
}

func newMaterializeCmd() *cobra.Command {
	var o materializeOptions
	cmd := &cobra.Command{
		Use:   "materialize --tiles DIR|URL --out DIR|s3://bucket/prefix/",
		Short: "Write the year stores and the STAC catalog to a directory or an S3 prefix",
		Long: `Materialize writes <out>/<year>.zarr/ for every year (or those given) and the
STAC catalog (<out>/catalog.json and below), generating every shard from the
source tiles in parallel. Every file is written atomically; a run that was
interrupted is finished by running the same command again.

Tiles that cannot be used (truncated, wrong dtype or shape, missing scales)
are skipped with a warning naming the file; the rest is built, and the exit
status is 3 so that skipped tiles cannot go unnoticed. Tiles whose server is
unavailable (down, 5xx, timeouts after retries) are not bad: the run writes
nothing and exits 75 (try again later), so an outage never builds another
store.

--out s3://bucket/prefix/ writes objects with the standard AWS configuration
(AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or a
profile). Every object is written once, with If-None-Match: *.

Partitioned runs (one machine of many): --partition I/N writes partition I
(0-based) of N of the data keys. --partitions N takes I from
JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs) or SLURM_ARRAY_TASK_ID (a
Slurm array task: submit with --array=0-(N-1), and resubmit a subset such
as --array=2,5 with the same --partitions N: the array index is the
partition index, so it must be below N). --phase NAME runs one phase
(zones, global0, global; see "tesserafs plan"); run every phase's
partitions in that order, then --finalize once, which checks that every
data key exists and writes the metadata and the STAC catalog. Without
--phase a partition runs its share of every data phase. Rerunning any of
them skips what is already written.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMaterialize(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	o.register(cmd.Flags())
	cmd.Flags().StringVar(&o.Out, "out", "", "output directory or s3://bucket/prefix/")
	cmd.Flags().StringVar(&o.Partition, "partition", "", "write partition I/N of the data keys (0-based)")
	cmd.Flags().IntVar(&o.Partitions, "partitions", 0, "number of partitions N; the index comes from JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID")
	cmd.Flags().StringVar(&o.Phase, "phase", "", "run one phase: zones, global0 or global")
	cmd.Flags().BoolVar(&o.Finalize, "finalize", false, "check every data key exists, then write metadata, consolidated metadata and STAC")
	return cmd
}

func runMaterialize(ctx context.Context, o materializeOptions, stdout io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	if o.Out == "" {
		return usageErrorf("--out is required")
	}
	toS3 := s3conf.IsURL(o.Out)
	if abs, _ := filepath.Abs(o.Out); !toS3 && strings.HasPrefix(abs+"/", mustAbs(o.Tiles)+"/global_0.1_degree") {
		return usageErrorf("--out %s is inside the tiles root", o.Out)
	}
	part, err := resolvePartition(o.Partition, o.Partitions, o.Finalize, os.Getenv)
	if err != nil {
		return err
	}
	phase := o.Phase
	switch {
	case o.Finalize && phase != "" && phase != materializer.PhaseFinalize:
		return usageErrorf("--finalize and --phase %s: choose one", phase)
	case o.Finalize:
		phase = materializer.PhaseFinalize
	case phase == materializer.PhaseFinalize:
	case phase != "" && !slices.Contains(materializer.DataPhases, phase):
		return usageErrorf("--phase %q: want one of %s (or --finalize)", phase, strings.Join(materializer.DataPhases, ", "))
	}
	// The sink is where keys go, and where the store reads derived
	// chunks back from (its read-through, armed by the run once the output
	// is known to hold this store's keys). A whole run into a directory
	// goes through materializer.Run, which also locks it.
	wholeDir := !toS3 && part.Whole() && phase == ""
	var sink materializer.Sink = materializer.NewDirSink(o.Out)
	if toS3 {
		loc, err := s3conf.ParseURL(o.Out)
		if err != nil {
			return userError{err}
		}
		client, err := s3conf.NewClient(ctx)
		if err != nil {
			return userError{err}
		}
		sink = &materializer.S3Sink{Client: client, Loc: loc}
	}
	log := slog.Default()
	st, err := o.open(ctx, storeWith{ReadThrough: materializer.NewOutputReadThrough(sink), Logger: log})
	if err != nil {
		return err
	}
	// A tile whose source was unavailable at discovery is not a bad tile:
	// a store built without it would be another store. Nothing is written.
	var unavailable []index.Problem
	for _, y := range st.Catalogue().Years {
		unavailable = append(unavailable, y.Unavailable...)
	}
	if len(unavailable) > 0 {
		reportProblems(log, "tile source unavailable", unavailable)
		return unavailableError{len(unavailable)}
	}
	plan, err := materializer.NewPlan(ctx, st.Store, part.N)
	if err != nil {
		return err
	}
	cat, skipped := st.Catalogue(), st.Skipped
	srcBytes := sourceBytes(cat)
	prog, finish := progressReporter(log, stdout)
	mopts := materializer.Options{Workers: o.Workers, Progress: prog, Logger: log,
		MemoryLimit: materializer.DefaultMemoryLimit(o.Workers), Partition: part, Phase: phase, Plan: plan}
	var sum materializer.Summary
	if wholeDir {
		sum, err = materializer.Run(ctx, st.Store, o.Out, mopts)
	} else {
		sum, err = materializer.RunTo(ctx, st.Store, sink, mopts)
	}
	finish()
	if err != nil && !errors.Is(err, materializer.ErrIncomplete) {
		var missing *materializer.MissingError
		if errors.As(err, &missing) {
			return userError{err}
		}
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
	what := o.Out
	if !part.Whole() {
		what += " partition " + part.String()
	}
	if phase != "" {
		what += " phase " + phase
	}
	secs := sum.Elapsed.Seconds()
	fmt.Fprintf(stdout, "materialized %s: %d files (%d written, %d already there), %.1f MiB written in %.1fs",
		what, sum.Files, sum.Written, sum.Existing, float64(sum.Bytes)/(1<<20), secs)
	if sum.Written == sum.Files && secs > 0 && part.Whole() && phase == "" {
		fmt.Fprintf(stdout, ", %.0f MB/s of source tiles", float64(srcBytes)/1e6/secs)
	}
	fmt.Fprint(stdout, "\nphases:")
	for _, ph := range sum.Phases {
		fmt.Fprintf(stdout, " %s %.1fs", ph.Name, ph.Elapsed.Seconds())
	}
	mine := ownSkipped(plan, cat, skipped, part, phase)
	fmt.Fprintf(stdout, "\n%d tiles in %d zone(s); %d tile(s) skipped", countTiles(cat), countZones(cat), len(skipped))
	if len(mine) != len(skipped) {
		fmt.Fprintf(stdout, " (%d reported by this partition)", len(mine))
	}
	fmt.Fprintf(stdout, ", %d warning(s)\n", warnings)
	if ss, ok := sourceStats(cat); ok {
		fmt.Fprintf(stdout, "source %s: %s\n", o.Tiles, fmtSourceStats(ss))
	}
	if sum.Failed > 0 {
		reportFailures(stdout, sum)
		return incompleteError{sum.Failed}
	}
	if len(mine) > 0 {
		return skippedError{len(mine)}
	}
	return nil
}

// ownSkipped are the skipped tiles this run answers for with exit status 3:
// all of them for a whole run or a finalize; for a partition, those in its
// area (materializer.Plan.OwnerOfTile) and only in the zones phase, so that
// one bad tile fails one task of a job array, not all of them.
func ownSkipped(plan *materializer.Plan, cat *index.Catalogue, skipped []index.Problem, part materializer.Partition, phase string) []index.Problem {
	if part.Whole() || phase == materializer.PhaseFinalize {
		return skipped
	}
	if phase != "" && phase != materializer.PhaseZones {
		return nil
	}
	pr := index.NewProjector()
	var mine []index.Problem
	for _, p := range skipped {
		if plan.OwnerOfTile(cat, pr, p.Path) == part.I {
			mine = append(mine, p)
		}
	}
	return mine
}

// resolvePartition decides which partition this process is: --partition
// I/N; or --partitions N with I from JOB_COMPLETION_INDEX (Kubernetes) or
// SLURM_ARRAY_TASK_ID (Slurm). The array index is the partition index, so
// that resubmitting some tasks of an array (--array=2,5) redoes those
// partitions; N is never taken from the array's task count, which is that
// of the subset. A finalize takes N only, to name the partitions that own
// missing keys.
func resolvePartition(flag string, n int, finalize bool, getenv func(string) string) (materializer.Partition, error) {
	envInt := func(name string) (int, bool, error) {
		v := getenv(name)
		if v == "" {
			return 0, false, nil
		}
		i, err := strconv.Atoi(v)
		if err != nil || i < 0 {
			return 0, false, usageErrorf("%s=%q: want a non-negative integer", name, v)
		}
		return i, true, nil
	}
	check := func(p materializer.Partition, from string) (materializer.Partition, error) {
		if p.N < 1 || p.I < 0 || p.I >= p.N {
			return materializer.Partition{}, usageErrorf("partition %d/%d (from %s): want 0 ≤ I < N", p.I, p.N, from)
		}
		return p, nil
	}
	switch {
	case flag != "" && n != 0:
		return materializer.Partition{}, usageErrorf("--partition and --partitions: choose one")
	case flag != "":
		if finalize {
			return materializer.Partition{}, usageErrorf("--finalize runs once for all partitions: give --partitions N (to name the owners of missing keys), not --partition")
		}
		p, err := materializer.ParsePartition(flag)
		if err != nil {
			return p, userError{err}
		}
		return p, nil
	case n < 0:
		return materializer.Partition{}, usageErrorf("--partitions %d: want ≥ 1", n)
	case finalize:
		return materializer.Partition{I: 0, N: max(n, 1)}, nil
	case n > 0:
		for _, name := range []string{"JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"} {
			i, ok, err := envInt(name)
			if err != nil {
				return materializer.Partition{}, err
			}
			if ok {
				return check(materializer.Partition{I: i, N: n}, name)
			}
		}
		return materializer.Partition{}, usageErrorf("--partitions %d: the partition index comes from JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID, and neither is set (or give --partition I/%d)", n, n)
	}
	if getenv("SLURM_ARRAY_TASK_ID") != "" {
		return materializer.Partition{}, usageErrorf("SLURM_ARRAY_TASK_ID is set: give --partitions N (the partition index is the array index, 0 to N-1; " +
			"N is not taken from the array, whose task count is that of a resubmitted subset)")
	}
	return materializer.Partition{}, nil
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
	var te *index.TileError
	if errors.As(err, &te) {
		return te.Error()
	}
	var re *index.TileReadError
	if errors.As(err, &re) {
		return re.Error()
	}
	return err.Error()
}

// unavailableError ends a run that found tiles it could not read because
// their source was unavailable, before anything was written, with exit
// status 75 (EX_TEMPFAIL: try again later).
type unavailableError struct{ n int }

func (e unavailableError) Error() string {
	return fmt.Sprintf("%d tile(s) could not be read, their source unavailable (see above): nothing was written, "+
		"so the store is not built without them; run the same command again when the source is back", e.n)
}
func (e unavailableError) ExitCode() int { return 75 }

// incompleteError makes a run that left files out end with exit status 3,
// after writing everything else.
type incompleteError struct{ n int64 }

func (e incompleteError) Error() string {
	return fmt.Sprintf("%d file(s) were left out (see above); everything else was written, and a rerun finishes them", e.n)
}
func (e incompleteError) ExitCode() int { return 3 }
