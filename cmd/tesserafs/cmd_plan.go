package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/tesserafs/tesserafs/materializer"
)

func init() { subcommands = append(subcommands, newPlanCmd) }

type planOptions struct {
	storeOptions
	Partitions int
	JSON       bool
}

func newPlanCmd() *cobra.Command {
	var o planOptions
	cmd := &cobra.Command{
		Use:   "plan --tiles DIR|URL --partitions N [--json]",
		Short: "Print the phases of a partitioned materialize, with keys and estimated bytes per partition",
		Long: `Plan prints, in order, the phases of a materialize split into N partitions:
zones (embeddings, scales and rgb shards), global0 (global_rgb level 0),
global (levels 1 and up) and finalize (metadata and STAC, one worker), each
with its key count and estimated uncompressed bytes, and for the data
phases the share of every partition. It reads the index only: no tile
data. Zone keys count three per shard that a tile touches, an upper bound
(the scales and rgb of a shard without a finite scale, open sea in every
tile, are absent). The weight of a partition is its estimated work.

Run "materialize --phase NAME --partition I/N" for every partition of each
phase in this order, then "materialize --finalize".

--json prints {"partitions": N, "phases": [{"name", "keys", "bytes",
"partitions": [{"partition", "keys", "bytes", "weight"}]}]}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPlan(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	o.register(cmd.Flags())
	cmd.Flags().IntVar(&o.Partitions, "partitions", 1, "number of partitions N")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print JSON")
	return cmd
}

// planJSON is the document plan --json prints.
type planJSON struct {
	Partitions int                         `json:"partitions"`
	Phases     []materializer.PhaseSummary `json:"phases"`
}

func runPlan(ctx context.Context, o planOptions, stdout io.Writer) error {
	if o.Partitions < 1 {
		return usageErrorf("--partitions %d: want ≥ 1", o.Partitions)
	}
	st, err := o.open(ctx, storeWith{})
	if err != nil {
		return err
	}
	plan, err := materializer.NewPlan(ctx, st.Store, o.Partitions)
	if err != nil {
		return err
	}
	fin := 0
	if err := materializer.FinalizeKeys(ctx, st.Store, func(string) error { fin++; return nil }); err != nil {
		return err
	}
	phases := plan.Summary(fin)
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(planJSON{Partitions: o.Partitions, Phases: phases})
	}
	for _, ph := range phases {
		fmt.Fprintf(stdout, "%-9s %8d keys  %10.1f MiB\n", ph.Name, ph.Keys, float64(ph.Bytes)/(1<<20))
		for _, p := range ph.Partitions {
			fmt.Fprintf(stdout, "  %4d/%d %8d keys  %10.1f MiB\n", p.Partition, o.Partitions, p.Keys, float64(p.Bytes)/(1<<20))
		}
	}
	return nil
}
