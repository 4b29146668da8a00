package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tesserafs/tesserafs/fusefs"
	"github.com/tesserafs/tesserafs/internal/cache"
	"github.com/tesserafs/tesserafs/internal/store"
)

func init() { subcommands = append(subcommands, newMountCmd) }

// cacheOptions are the flags of every command that opens a cache.
type cacheOptions struct {
	Cache     string
	CacheSize string // parsed by budget
}

func (o *cacheOptions) register(fs *pflag.FlagSet, sizeUsage string) {
	fs.StringVar(&o.Cache, "cache", "", "cache directory (created if needed)")
	fs.StringVar(&o.CacheSize, "cache-size", "", sizeUsage)
}

// budget is --cache-size in bytes; 0 means the cache's remembered budget
// (or the default for a new cache).
func (o *cacheOptions) budget() (int64, error) {
	if o.CacheSize == "" {
		return 0, nil
	}
	n, err := parseSize(o.CacheSize)
	if err != nil {
		return 0, usageErrorf("--cache-size %q: %v", o.CacheSize, err)
	}
	if n < cache.MinBudget {
		return 0, usageErrorf("--cache-size %s: at least %d MiB", o.CacheSize, cache.MinBudget>>20)
	}
	return n, nil
}

// open opens the cache, turning "in use" into a clear user error.
func (o *cacheOptions) open(log *slog.Logger) (*cache.Cache, error) {
	if o.Cache == "" {
		return nil, usageErrorf("--cache is required")
	}
	budget, err := o.budget()
	if err != nil {
		return nil, err
	}
	c, err := cache.Open(o.Cache, cache.Options{Budget: budget, Logger: log})
	if errors.Is(err, cache.ErrLocked) {
		return nil, usageErrorf("cache %s is in use by %s: one cache serves one process at a time (mount, serve, "+
			"materialize or cache warm); stop that process first (unmount, or Ctrl-C the server), or give this command another --cache",
			o.Cache, lockHolder(o.Cache))
	}
	return c, err
}

// lockHolder describes the process holding a cache directory's lock: badger
// writes the holder's pid to LOCK in the directory.
func lockHolder(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "LOCK"))
	if err != nil {
		return "another process"
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return "another process"
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(cmdline) == 0 {
		return fmt.Sprintf("process %d", pid)
	}
	args := strings.Fields(strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " "))
	if len(args) > 1 {
		args[0] = filepath.Base(args[0])
	}
	cmd := strings.Join(args, " ")
	if len(cmd) > 160 {
		cmd = cmd[:160] + "…"
	}
	return fmt.Sprintf("process %d (%s)", pid, cmd)
}

// parseSize parses a byte size: a number with an optional unit, binary
// (K, M, G, T, KiB, MiB, GiB, TiB) or decimal (KB, MB, GB, TB); "20GiB",
// "512M", "1.5G", "100000000".
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsDigit(r) && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("not a size (want e.g. 20GiB, 500MB)")
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
		"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("unknown unit %q (want KiB, MiB, GiB, TiB or KB, MB, GB, TB)", unit)
	}
	return int64(v * mult), nil
}

// sizeValue is a byte-size flag that takes units as parseSize does and
// shows its value with one ("512MiB").
type sizeValue int64

func (v *sizeValue) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*v = sizeValue(n)
	return nil
}

func (v *sizeValue) Type() string { return "size" }

func (v *sizeValue) String() string {
	n := int64(*v)
	for _, u := range []struct {
		name  string
		shift uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

type mountOptions struct {
	storeOptions
	cacheOptions
	refreshOptions
	ForceUnmount bool
	AllowOther   bool
	Debug        bool

	// onReady, if set (tests), is called once the mount serves.
	onReady func(*fusefs.Server, *store.Store)
}

func newMountCmd() *cobra.Command {
	var o mountOptions
	cmd := &cobra.Command{
		Use:   "mount --tiles DIR|URL --cache DIR [--cache-size 20GiB] MOUNTPOINT",
		Short: "Serve the year stores as a read-only file system (FUSE)",
		Long: `Mount serves the tree that materialize writes (<year>.zarr/ and the STAC
catalog) as a read-only FUSE file system at MOUNTPOINT, which must be an
existing directory. Every shard is generated from the source tiles when it is
first looked up or read, and kept in a cache (--cache) bounded by
--cache-size; the cache survives restarts. Readers (zarr-python, xarray,
tensorstore, zarrita.js) open the mount point like any directory.

It runs in the foreground until interrupted (Ctrl-C, SIGTERM), then unmounts.
A mount left behind by a killed tesserafs ("transport endpoint is not
connected") is reported with the way out; --force-unmount clears it.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("mount takes one MOUNTPOINT (an empty directory), got %d argument(s)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMount(cmd.Context(), o, args[0], cmd.OutOrStdout())
		},
	}
	o.storeOptions.register(cmd.Flags())
	o.cacheOptions.register(cmd.Flags(), "cache budget: disk the cache may use, e.g. 20GiB (default: the cache's last, or 20GiB)")
	o.refreshOptions.register(cmd.Flags())
	cmd.Flags().BoolVar(&o.ForceUnmount, "force-unmount", false, "detach a stale mount left at MOUNTPOINT by a killed tesserafs, then mount")
	cmd.Flags().BoolVar(&o.AllowOther, "allow-other", false, "let other users read the mount (needs user_allow_other in /etc/fuse.conf unless root)")
	cmd.Flags().BoolVar(&o.Debug, "debug-fuse", false, "log every FUSE request")
	return cmd
}

// within reports whether path is dir or inside it (both absolute, clean).
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

// realAbs is the absolute path with symlinks resolved where it exists.
func realAbs(p string) string {
	a := mustAbs(p)
	if r, err := filepath.EvalSymlinks(a); err == nil {
		return r
	}
	return filepath.Clean(a)
}

// checkMountpoint refuses mount points that would hide or loop into the
// mount's own data, and explains stale and existing mounts.
func checkMountpoint(o mountOptions, mp string, log *slog.Logger) error {
	tiles, cdir := realAbs(o.Tiles), realAbs(o.Cache)
	switch {
	case within(mp, tiles):
		return usageErrorf("mount point %s is inside the tiles root %s", mp, tiles)
	case within(mp, cdir):
		return usageErrorf("mount point %s is inside the cache directory %s", mp, cdir)
	case within(tiles, mp):
		return usageErrorf("the tiles root %s is inside the mount point %s: the mount would hide it", tiles, mp)
	case within(cdir, mp):
		return usageErrorf("the cache directory %s is inside the mount point %s: the mount would hide it", cdir, mp)
	}
	err := fusefs.CheckMountpoint(mp)
	if errors.Is(err, fusefs.ErrStaleMount) {
		if !o.ForceUnmount {
			return usageErrorf("%s is a stale mount left by a tesserafs that did not unmount "+
				"(transport endpoint is not connected).\nClear it with:  fusermount3 -u %s   (as root: umount -l %s)\n"+
				"or run this command again with --force-unmount", mp, mp, mp)
		}
		log.Warn("detaching the stale mount", "mountpoint", mp)
		if err := fusefs.LazyUnmount(mp); err != nil {
			return fmt.Errorf("--force-unmount: %w", err)
		}
		err = fusefs.CheckMountpoint(mp)
	}
	if errors.Is(err, os.ErrNotExist) {
		return usageErrorf("mount point %s does not exist: create it first (mkdir -p %s)", mp, mp)
	}
	if err != nil {
		return userError{err}
	}
	if fusefs.IsMounted(mp) {
		return usageErrorf("%s is already a mount point (another tesserafs?): unmount it first (fusermount3 -u %s)", mp, mp)
	}
	return nil
}

func runMount(ctx context.Context, o mountOptions, mountpoint string, stdout io.Writer) error {
	start := time.Now()
	if err := o.validate(); err != nil {
		return err
	}
	if o.Cache == "" {
		return usageErrorf("--cache is required")
	}
	if _, err := o.budget(); err != nil {
		return err
	}
	every, err := o.interval(o.Tiles)
	if err != nil {
		return err
	}
	log := slog.Default()
	mp := realAbs(mountpoint)
	if err := checkMountpoint(o, mp, log); err != nil {
		return err
	}
	c, err := o.cacheOptions.open(log)
	if err != nil {
		return err
	}
	defer func() {
		if err := c.Close(); err != nil {
			log.Error("closing the cache", "err", err)
		}
	}()
	// The mount is ready without opening a tile: each tile is checked the
	// first time a shard needs it, and a bad one fails its shards.
	o.lazy = true
	st, err := o.storeOptions.open(ctx, storeWith{Cache: c, Logger: log})
	if err != nil {
		return err
	}
	// Discovery's garbage (registry pages, listings: hundreds of MB for a
	// million tiles) goes back to the OS before the mount settles in.
	debug.FreeOSMemory()
	cat, skipped := st.Catalogue(), st.Skipped
	attachSourceStats(c, cat)
	// The store follows its tiles (--refresh, SIGHUP): readers see one
	// generation or the next, and the kernel is told to drop its caches
	// at each swap. A name cached as absent is looked up again within a
	// minute, so new chunks appear even where nobody listed.
	fctx, stopFollowing := context.WithCancel(ctx)
	defer stopFollowing()
	ls, follow := followTiles(fctx, &o.storeOptions, storeWith{Cache: c, Logger: log}, st.Store, every, log)
	srv, err := fusefs.Mount(ctx, ls, mp, fusefs.Options{AllowOther: o.AllowOther, Debug: o.Debug, Logger: log, NegativeTimeout: time.Minute})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w\n(is FUSE available? /dev/fuse must exist; without root, fusermount3 from the fuse3 package is needed)", err)
	}
	// SIGHUP is handled (and the swap hook registered) before the mount
	// says it is ready.
	ls.OnSwap(func(_, now *store.Store) {
		n := srv.Invalidate(fctx)
		log.Info("mount: the kernel was told to drop its caches of the old tiles", "entries", n, "tiles", countTiles(now.Catalogue()))
	})
	follow()
	fmt.Fprintf(stdout, "tesserafs: mounted at %s (ready in %.2fs)\n", mp, time.Since(start).Seconds())
	fmt.Fprintf(stdout, "  serving %s and the STAC catalog: %d tiles in %d zone(s), %d tile(s) skipped; each tile is checked when first read\n",
		yearStores(cat), countTiles(cat), countZones(cat), len(skipped))
	printCacheLine(stdout, o.Cache, c.Stats())
	fmt.Fprintf(stdout, "  to unmount: Ctrl-C or kill %d here, or  fusermount3 -u %s  (as root: umount %s)\n", os.Getpid(), mp, mp)
	fmt.Fprintf(stdout, "  %s\n", refreshLine(every))
	if o.onReady != nil {
		o.onReady(srv, st.Store)
	}

	served := make(chan struct{})
	go func() { srv.Wait(); close(served) }()
	select {
	case <-ctx.Done():
		log.Info("unmounting", "mountpoint", mp)
		if err := srv.Unmount(); err != nil {
			return err
		}
	case <-served:
		log.Info("unmounted from outside", "mountpoint", mp)
	}
	s, cs := ls.Stats(), c.Stats()
	fmt.Fprintf(stdout, "tesserafs: unmounted %s: %d chunks generated (%s), %d served from the cache; cache %d entries, %s\n",
		mp, s.Generated, fmtBytes(s.Bytes), s.CacheHits, cs.Entries, fmtBytes(cs.Bytes))
	reportAtExit(stdout, log, o.Tiles, cat)
	return nil
}

// fmtBytes prints a byte count with a binary unit.
func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
