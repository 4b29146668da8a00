// Command tesserafs serves and publishes TESSERA embeddings as Zarr v3: a
// virtual year store built from source tiles on demand (mount), written to
// disk (materialize), and the tools around it (synth, inspect, cache,
// preview, version).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"
)

// version is the tesserafs version, written into tessera:build_version.
// Release builds set it with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// userError is an error caused by what the user asked for (bad flags, a
// missing directory): printed as one clear line, without usage or stack.
type userError struct{ err error }

func (e userError) Error() string { return e.err.Error() }
func (e userError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return userError{fmt.Errorf(format, args...)}
}

// exitCoder lets a command choose its exit status (for example 3 when some
// tiles were skipped) while still returning an error to print.
type exitCoder interface{ ExitCode() int }

func newRootCmd() *cobra.Command {
	var verbose bool
	root := &cobra.Command{
		Use:           "tesserafs",
		Short:         "Serve and publish TESSERA embeddings as Zarr v3 stores",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			logLevel.Set(slog.LevelInfo)
			if verbose {
				logLevel.Set(slog.LevelDebug)
			}
		},
	}
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "log debug detail")
	for _, add := range subcommands {
		root.AddCommand(add())
	}
	return root
}

var logLevel = new(slog.LevelVar)

// setLogger sends the log to w (stderr in the program, a buffer in tests).
func setLogger(w io.Writer) {
	slog.SetDefault(slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: logLevel})))
}

func init() { setLogger(os.Stderr) }

// subcommands is filled by the init functions of the cmd_*.go files, one
// per command.
var subcommands []func() *cobra.Command

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := startCPUProfile(os.Getenv("TESSERAFS_CPUPROFILE"))
	err := newRootCmd().ExecuteContext(ctx)
	stopProfile()
	stop()
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "tesserafs:", err)
	var ec exitCoder
	if errors.As(err, &ec) {
		os.Exit(ec.ExitCode())
	}
	var ue userError
	if errors.As(err, &ue) {
		os.Exit(2)
	}
	os.Exit(1)
}

// startCPUProfile writes a CPU profile of the command to path, if set (the
// environment variable TESSERAFS_CPUPROFILE, for measuring one phase of
// one partition as a worker machine runs it), and returns its stop.
func startCPUProfile(path string) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "tesserafs: cpu profile %s: %v\n", path, err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
