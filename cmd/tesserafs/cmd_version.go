package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
	"github.com/twpayne/go-proj/v11"
)

func init() { subcommands = append(subcommands, newVersionCmd) }

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the tesserafs version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "tesserafs %s (%s, PROJ %d.%d.%d)\n", version, runtime.Version(),
				proj.VersionMajor, proj.VersionMinor, proj.VersionPatch)
			return nil
		},
	}
}
