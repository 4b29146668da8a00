package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tesserafs/tesserafs/internal/httpserve"
	"github.com/tesserafs/tesserafs/internal/keyspace"
	"github.com/tesserafs/tesserafs/internal/source"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/viewer"
)

func init() { subcommands = append(subcommands, newServeCmd) }

type serveOptions struct {
	storeOptions
	cacheOptions
	refreshOptions
	Addr       string
	CORSOrigin []string
	Queue      int
	QueueWait  time.Duration
	// Shutdown bounds how long in-flight requests may take to finish.
	Shutdown time.Duration
	// Assets is served at "/" (index.html) and beside the keys: the
	// viewer. Tests may set another; nil there means a plain index page.
	Assets   fs.FS
	NoViewer bool

	// onReady, if set (tests), is called with the listening address.
	onReady func(addr string, st *store.Store)
}

func newServeCmd() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve --tiles DIR|URL --cache DIR [--cache-size 20GiB] [--addr 127.0.0.1:8080]",
		Short: "Serve the year stores over HTTP (read-only, for remote Zarr readers)",
		Long: `Serve answers HTTP GET and HEAD for every key of the tree that materialize
writes (/2024.zarr/..., /catalog.json, /geotessera-2024/...), with the same
bytes, generating each shard on first request and keeping it in the cache
(--cache, bounded by --cache-size; one cache cannot be used by a mount and a
server at once). Byte ranges (a-b, a-, -N), strong ETags, If-None-Match,
CORS (--cors-origin) are supported; writes are refused (405). The map
viewer is at / (--no-viewer: a plain index page).

At most --workers chunks are generated at once; the others wait their turn
(up to --queue keys, each at most --queue-wait), and only beyond that do
requests get 503 with Retry-After. /healthz answers "ok", /metrics
gives Prometheus metrics. It listens on 127.0.0.1 unless --addr says
otherwise, and runs until interrupted (Ctrl-C, SIGTERM): requests in flight
finish, then the cache is closed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Assets == nil && !o.NoViewer {
				o.Assets = viewer.FS()
			}
			return runServe(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	o.storeOptions.register(cmd.Flags())
	o.cacheOptions.register(cmd.Flags(), "cache budget: disk the cache may use, e.g. 20GiB (default: the cache's last, or 20GiB)")
	o.refreshOptions.register(cmd.Flags())
	cmd.Flags().StringVar(&o.Addr, "addr", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
	cmd.Flags().StringSliceVar(&o.CORSOrigin, "cors-origin", nil, `origins allowed to read from a browser: "*" or e.g. https://example.org (default: none, same origin only)`)
	cmd.Flags().IntVar(&o.Queue, "queue", httpserve.DefaultQueue, "chunk keys that may wait for a worker before requests get 503")
	cmd.Flags().DurationVar(&o.QueueWait, "queue-wait", httpserve.DefaultQueueWait, "longest a key waits for a worker before its requests get 503")
	cmd.Flags().BoolVar(&o.NoViewer, "no-viewer", false, "serve a plain index page at / instead of the map viewer")
	cmd.Flags().DurationVar(&o.Shutdown, "shutdown-timeout", 30*time.Second, "on SIGTERM/SIGINT, how long requests in flight may take to finish")
	return cmd
}

func runServe(ctx context.Context, o serveOptions, stdout io.Writer) error {
	start := time.Now()
	if err := o.storeOptions.validate(); err != nil {
		return err
	}
	if _, err := o.budget(); err != nil {
		return err
	}
	every, err := o.interval(o.Tiles)
	if err != nil {
		return err
	}
	if o.Queue < 1 || o.Queue > 1<<20 {
		return usageErrorf("--queue %d: want 1..%d", o.Queue, 1<<20)
	}
	if o.QueueWait <= 0 {
		return usageErrorf("--queue-wait %v: want a positive duration", o.QueueWait)
	}
	for _, c := range o.CORSOrigin {
		if c != "*" && !strings.HasPrefix(c, "http://") && !strings.HasPrefix(c, "https://") {
			return usageErrorf("--cors-origin %q: want * or an origin such as https://example.org", c)
		}
	}
	log := slog.Default()
	c, err := o.cacheOptions.open(log)
	if err != nil {
		return err
	}
	defer func() {
		if err := c.Close(); err != nil {
			log.Error("closing the cache", "err", err)
		}
	}()
	// Like the mount, serve is ready without opening a tile: each tile is
	// checked the first time a chunk needs it, and a bad one fails its
	// chunks (no zarr.json depends on tile bytes, spec §4).
	o.lazy = true
	opened, err := o.storeOptions.open(ctx, storeWith{Cache: c, Logger: log})
	if err != nil {
		return err
	}
	debug.FreeOSMemory()
	cat, skipped := opened.Catalogue(), opened.Skipped
	attachSourceStats(c, cat)
	// The store follows its tiles (--refresh, SIGHUP); each request is
	// answered from one generation, and ETags change with the tiles.
	fctx, stopFollowing := context.WithCancel(ctx)
	defer stopFollowing()
	st, follow := followTiles(fctx, &o.storeOptions, storeWith{Cache: c, Logger: log}, opened.Store, every, log)
	follow()
	// The access log is written off the requests' path.
	access := httpserve.NewAsyncHandler(log.Handler(), 0)
	defer access.Close()
	h := httpserve.New(st, httpserve.Options{
		CORSOrigins: o.CORSOrigin, Workers: o.Workers, Queue: o.Queue, QueueWait: o.QueueWait,
		SourceRetryAfter: int(source.DefaultDownFor / time.Second), Assets: o.Assets, Logger: log,
		AccessLog: slog.New(access),
	})
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return userError{fmt.Errorf("--addr %s: %w", o.Addr, err)}
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// A cold shard is generated before its first byte is written; a
		// slow reader of a large one needs time too.
		WriteTimeout:   5 * time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:    func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	addr := ln.Addr().String()
	if ta, ok := ln.Addr().(*net.TCPAddr); ok && !ta.IP.IsLoopback() {
		log.Warn("listening beyond this machine: anyone who can reach this address can read the store", "addr", addr)
	}
	fmt.Fprintf(stdout, "tesserafs: serving http://%s/ (ready in %.2fs)\n", addr, time.Since(start).Seconds())
	fmt.Fprintf(stdout, "  %s and the STAC catalog: %d tiles in %d zone(s), %d tile(s) skipped\n",
		yearStores(cat), countTiles(cat), countZones(cat), len(skipped))
	printCacheLine(stdout, o.Cache, c.Stats())
	fmt.Fprintf(stdout, "  %s\n", refreshLine(every))
	if len(cat.Years) > 0 {
		fmt.Fprintf(stdout, "  e.g. xr.open_zarr(\"http://%s/%s\", group=\"%s\", consolidated=True)\n",
			addr, keyspace.YearDir(cat.Years[0].Year), keyspace.ZoneGroup(cat.Years[0].Zones[0].Zone))
	}
	if o.onReady != nil {
		o.onReady(addr, opened.Store)
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: waiting for requests in flight", "timeout", o.Shutdown)
	sctx, cancel := context.WithTimeout(context.Background(), o.Shutdown)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("requests still in flight at the shutdown timeout were cut", "err", err)
		srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("http server", "err", err)
	}
	hs, ss, cs2 := h.Stats(), st.Stats(), c.Stats()
	fmt.Fprintf(stdout, "tesserafs: stopped serving http://%s/ after %s: %d requests, %s sent, %d chunks generated (%s), %d from the cache, %d refused as busy; cache %d entries, %s\n",
		addr, time.Since(start).Round(time.Second), hs.Requests, fmtBytes(hs.Bytes), ss.Generated, fmtBytes(ss.Bytes),
		hs.CacheHits, hs.Busy, cs2.Entries, fmtBytes(cs2.Bytes))
	reportAtExit(stdout, log, o.Tiles, cat)
	return nil
}
