package index

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tesserafs/tesserafs/internal/npy"
)

// The source layout (spec §1).
const (
	RepresentationDir = "global_0.1_degree_representation"
	LandmaskDir       = "global_0.1_degree_tiff_all"
	// Bands is the embedding length of every pixel.
	Bands = 128
)

// FileStamp identifies one version of an input file, for cache
// fingerprints: a changed file changes its size or modification time, a
// changed remote object its ETag (or Last-Modified, as ModTime).
type FileStamp struct {
	Path    string
	Size    int64
	ModTime time.Time
	// ETag is the server's entity tag of a remote file ("" for a local
	// one or a server that sends none).
	ETag string
	// SHA256 is the file's sha256 in hex when a registry gives it, "" when
	// unknown. A file fetched whole is checked against it.
	SHA256 string
}

// Tile is one source tile of one year whose files passed discovery's
// checks: both .npy files exist, have the right dtype, the shape of the
// tile's grid, and the length their header says.
type Tile struct {
	Year  int
	Coord TileCoord
	Zone  int
	// Footprint is the tile's grid, from its coordinates alone.
	Footprint
	// ScalesBands is 0 for (H, W) scales and 128 for (H, W, 128) scales,
	// which are reduced by NaN-aware max over bands.
	ScalesBands int
	// Inputs are the stamps of the tile's files that exist (EmbeddingsPath,
	// ScalesPath, LandmaskPath, in that order). A tile of a
	// Lazy discovery has them (and ScalesBands) only once Check has
	// returned nil.
	Inputs []FileStamp

	// files names the tile's files (EmbeddingsPath, ScalesPath,
	// LandmaskPath) from its root, year and coordinates: a million tiles
	// keep one pointer each instead of three path strings.
	files *checker
	// check is the state of the first-use check of a Lazy discovery's
	// tile; nil when discovery checked the tile.
	check *tileCheck
	// hasMask is whether the tile has a landmask file.
	hasMask bool
}

// Problem is a skipped tile or a warning: the file concerned and why.
type Problem struct {
	Path   string
	Reason string
}

func (p Problem) String() string { return p.Path + ": " + p.Reason }

// Year is the catalogue of one year's tiles, grouped by zone.
type Year struct {
	Year int
	// Zones are the year's zone grids, by ascending zone number.
	Zones []*ZoneGrid
	// Problems are the tiles skipped, one per tile, naming the offending
	// file.
	Problems []Problem
	// Warnings are things ignored or assumed: stray files and directories,
	// tiles without a landmask.
	Warnings []Problem
	// Unavailable are the tiles that could not be checked because their
	// source was unavailable (index.ErrUnavailable: a server down or
	// failing): not bad tiles, but not in the catalogue either. A run that
	// publishes must not finish without them.
	Unavailable []Problem
}

// Zone returns the grid of zone z, or nil.
func (y *Year) Zone(z int) *ZoneGrid {
	i, ok := slices.BinarySearchFunc(y.Zones, z, func(g *ZoneGrid, z int) int { return g.Zone - z })
	if !ok {
		return nil
	}
	return y.Zones[i]
}

// Catalogue is every tile of a tiles root that discovery kept.
type Catalogue struct {
	Root string
	// Source is where the tiles are read from; nil means the local paths
	// the tiles name (a DirSource).
	Source Source
	// Years are the years with at least one tile or problem, ascending.
	Years []*Year
	// Warnings concern the root rather than one year: stray entries in
	// the representation directory, the landmask directory itself,
	// registry rows that name no year.
	Warnings []Problem

	checker *checker
}

// Year returns year y, or nil.
func (c *Catalogue) Year(y int) *Year {
	i, ok := slices.BinarySearchFunc(c.Years, y, func(yr *Year, y int) int { return yr.Year - y })
	if !ok {
		return nil
	}
	return c.Years[i]
}

// Options select what Discover indexes.
type Options struct {
	// Years and Zones restrict discovery; empty means all. A year asked
	// for that has no directory (or no registry row) is an error; a zone
	// without tiles is not.
	Years []int
	Zones []int
	// Workers bounds the files opened concurrently; 0 means 4 × GOMAXPROCS
	// (discovery waits on I/O more than it computes).
	Workers int
	// Logger receives warnings, aggregated; nil means slog.Default().
	Logger *slog.Logger
	// LogLimit is how many skipped tiles and warnings of each kind are
	// logged in full before the rest are only counted; 0 means 5.
	LogLimit int
	// Registry is the registry.parquet to discover from: "" means the
	// root's own if it has one (otherwise the root is listed); "none"
	// means list the root even if it has one; a relative name is under
	// the root; an absolute path or a URL is opened with RegistrySource
	// (a DirSource for a local path when nil). landmasks.parquet is read
	// from beside the registry.
	Registry string
	// RegistrySource opens an absolute Registry name that is not under the
	// root (an http:// or s3:// URL); nil means local files only.
	RegistrySource Source
	// Lazy leaves every tile's header and size checks to its first use
	// (Tile.Check), so discovery opens no tile file: what a mount wants,
	// to be ready at once. Without it every tile is checked now and the
	// bad ones are skipped, as materialize, inspect and cache warm want
	// (a publishing run reports every bad tile before it starts).
	Lazy bool
}

// Discover indexes the tiles under the local directory root: DiscoverSource
// over a DirSource.
func Discover(ctx context.Context, root string, opts Options) (*Catalogue, error) {
	return DiscoverSource(ctx, DirSource{Root: filepath.Clean(root)}, opts)
}

// DiscoverSource indexes the tiles of src (spec §1). The tiles come from
// its registry.parquet (see Options.Registry) when there is one, without
// listing anything; otherwise it lists the representation directory, each
// year directory and the landmask directory once. Every tile's grid is
// computed from its coordinates alone (spec §2). Unless opts.Lazy, the two
// .npy headers of each tile are then read in parallel and checked against
// that grid (and against the registry's sizes), and a tile that fails a
// check is skipped and reported in its year's Problems; it never stops the
// others. Registry rows that are not tiles or are malformed are skipped
// with a Problem or Warning naming the row. Stray entries and missing
// landmasks are Warnings. Only a missing or unreadable root, representation
// directory or registry, an asked-for year that is absent, or ctx's
// cancellation is an error. Landmasks are not opened: they are decoded
// when needed.
func DiscoverSource(ctx context.Context, src Source, opts Options) (*Catalogue, error) {
	start := time.Now()
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if d, ok := src.(DirSource); ok {
		if fi, err := os.Stat(d.Root); err != nil {
			return nil, fmt.Errorf("tiles root: %w", err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("tiles root %s: not a directory", d.Root)
		}
	}
	cat := &Catalogue{Root: src.String(), Source: src, checker: &checker{src: src, log: log}}

	reg, err := openRegistry(ctx, src, opts)
	if err != nil {
		return nil, err
	}
	var (
		scans []*yearScan
		lms   landmasks
	)
	if reg != nil {
		scans, lms, err = scanRegistry(ctx, src, reg, opts, cat)
		reg.f.Close()
	} else {
		scans, lms, err = scanListing(ctx, src, opts, cat)
	}
	if err != nil {
		return nil, err
	}

	// Footprints, from coordinates alone.
	if err := footprints(ctx, scans); err != nil {
		return nil, err
	}

	workers := opts.Workers
	if workers <= 0 {
		workers = 4 * runtime.GOMAXPROCS(0)
	}
	for _, s := range scans {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s.tiles = make([]Tile, len(s.jobs))
		for i, j := range s.jobs {
			s.tiles[i] = Tile{Year: s.year.Year, Coord: j.coord, Zone: j.coord.Zone(), Footprint: s.fps[i],
				files: cat.checker, hasMask: lms.set.has(j.coord)}
		}
		if opts.Lazy {
			lazyTiles(s, lms)
		} else if err := checkTiles(ctx, cat.checker, s, lms, workers); err != nil {
			return nil, err
		}
		y := s.year
		byZone := map[int][]*Tile{}
		for i := range s.tiles {
			if t := &s.tiles[i]; t.files != nil {
				byZone[t.Zone] = append(byZone[t.Zone], t)
			}
		}
		for zone, tiles := range byZone {
			y.Zones = append(y.Zones, NewZoneGrid(y.Year, zone, tiles))
		}
		slices.SortFunc(y.Zones, func(a, b *ZoneGrid) int { return a.Zone - b.Zone })
		sortProblems(y.Problems)
		sortProblems(y.Warnings)
		if len(y.Zones) > 0 || len(y.Problems) > 0 {
			cat.Years = append(cat.Years, y)
		}
		s.jobs, s.fps, s.expect = nil, nil, nil
	}
	slices.SortFunc(cat.Years, func(a, b *Year) int { return a.Year - b.Year })
	sortProblems(cat.Warnings)
	cat.log(log, opts.LogLimit, time.Since(start))
	return cat, nil
}

// yearScan is one year being discovered.
type yearScan struct {
	year *Year
	jobs []tileJob
	// expect is what the registry says of each job's files (nil without
	// a registry); fps is each job's grid.
	expect []expected
	fps    []Footprint
	tiles  []Tile      // one per job; files == nil for a skipped tile
	checks []tileCheck // one per tile when Lazy, or with a registry
}

type tileJob struct {
	coord TileCoord
}

// expected is what a registry says of a tile's files: sizes (0 unknown)
// and sha256 hex ("" unknown), which go into the stamps.
type expected struct {
	embSize, scalesSize int64
	embHash, scalesHash string
}

// landmasks are the tiles that have a landmask: from landmasks.parquet or
// a listing. ok is false when neither exists (every tile is all land,
// with one warning for the root, not one per tile).
type landmasks struct {
	set  coordSet
	hash map[TileCoord]string // sha256 hex from landmasks.parquet, when given
	ok   bool
	dir  string // the landmask directory's name, for warnings
}

func setOf(xs []int) map[int]bool {
	if len(xs) == 0 {
		return nil
	}
	m := make(map[int]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// parseYear accepts four digits.
func parseYear(name string) (int, bool) {
	if len(name) != 4 {
		return 0, false
	}
	for _, c := range name {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	y, _ := strconv.Atoi(name)
	return y, true
}

// scanListing finds the tiles by listing: the representation directory,
// each year directory and the landmask directory, once each, by name.
func scanListing(ctx context.Context, src Source, opts Options, cat *Catalogue) ([]*yearScan, landmasks, error) {
	repDir := src.Path(RepresentationDir)
	repEntries, err := src.ReadDir(ctx, repDir)
	if err != nil {
		switch {
		case errors.Is(err, ErrNoListing):
			return nil, landmasks{}, fmt.Errorf("tiles root %s has no %s and cannot be listed: %w", src, RegistryName, err)
		case errors.Is(err, fs.ErrNotExist):
			return nil, landmasks{}, fmt.Errorf("tiles root %s has no %s directory: is it a tiles root?", src, RepresentationDir)
		}
		return nil, landmasks{}, fmt.Errorf("tiles root: %w", err)
	}
	wantYear := setOf(opts.Years)
	wantZone := setOf(opts.Zones)
	var scans []*yearScan
	var dirs []string
	found := map[int]bool{}
	for _, e := range repEntries {
		path := src.Path(RepresentationDir + "/" + e.Name)
		y, ok := parseYear(e.Name)
		if !ok || !e.IsDir {
			what := "not a year directory"
			if !e.IsDir {
				what = "stray file"
			}
			cat.Warnings = append(cat.Warnings, Problem{path, what + ": ignored"})
			continue
		}
		found[y] = true
		if wantYear != nil && !wantYear[y] {
			continue
		}
		scans = append(scans, &yearScan{year: &Year{Year: y}})
		dirs = append(dirs, path)
	}
	for _, y := range opts.Years {
		if !found[y] {
			return nil, landmasks{}, fmt.Errorf("year %d: no directory %s", y, src.Path(RepresentationDir+"/"+strconv.Itoa(y)))
		}
	}

	// Tile directories of each year.
	for si, s := range scans {
		if err := ctx.Err(); err != nil {
			return nil, landmasks{}, err
		}
		entries, err := src.ReadDir(ctx, dirs[si])
		if err != nil {
			s.year.Problems = append(s.year.Problems, Problem{dirs[si], "cannot list year directory: " + errReason(err)})
			continue
		}
		for _, e := range entries {
			c, err := ParseTileName(e.Name)
			if err != nil || !e.IsDir {
				reason := "stray file: ignored"
				if e.IsDir {
					reason = "not a tile directory (want grid_<lon>_<lat>): ignored"
				}
				s.year.Warnings = append(s.year.Warnings, Problem{dirs[si] + string(filepath.Separator) + e.Name, reason})
				continue
			}
			if wantZone != nil && !wantZone[c.Zone()] {
				continue
			}
			s.jobs = append(s.jobs, tileJob{coord: c})
		}
	}

	// Landmasks: one listing, shared by all years.
	lms := landmasks{dir: src.Path(LandmaskDir)}
	set, lmWarnings, lmErr := listLandmasks(ctx, src, lms.dir)
	cat.Warnings = append(cat.Warnings, lmWarnings...)
	if lmErr != nil {
		cat.Warnings = append(cat.Warnings, Problem{lms.dir, errReason(lmErr) + ": every tile treated as all land"})
	} else {
		lms.set, lms.ok = set, true
	}
	return scans, lms, nil
}

// listLandmasks lists the landmask directory once, by name only (no stat
// of 100,000 files): the set of tiles that have a mask, and warnings for
// names that are not masks.
func listLandmasks(ctx context.Context, src Source, dir string) (coordSet, []Problem, error) {
	entries, err := src.ReadDir(ctx, dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, errors.New("no landmask directory")
		}
		return nil, nil, err
	}
	set := newCoordSet()
	var warnings []Problem
	sep := string(filepath.Separator)
	for _, e := range entries {
		var c TileCoord
		base, ok := trimSuffix(e.Name, ".tiff")
		if ok {
			c, err = ParseTileName(base)
			ok = err == nil
		}
		if !ok {
			warnings = append(warnings, Problem{dir + sep + e.Name, "not a landmask (want grid_<lon>_<lat>.tiff): ignored"})
			continue
		}
		set.add(c)
	}
	return set, warnings, nil
}

func trimSuffix(s, suffix string) (string, bool) {
	if len(s) > len(suffix) && s[len(s)-len(suffix):] == suffix {
		return s[:len(s)-len(suffix)], true
	}
	return s, false
}

// footprints computes the grid of every tile of the scans, once per
// distinct tile. Tiles are grouped by their own CRS, each group projected
// in one call by one of GOMAXPROCS workers (PROJ contexts are not safe to
// share), with Projectors and their transformations reused across calls.
func footprints(ctx context.Context, scans []*yearScan) error {
	// Distinct tiles: those of the one year, or of all years merged.
	var uniq []TileCoord
	var where [][]int32 // where[s][j]: index in uniq of job j of scan s
	if len(scans) == 1 {
		for _, j := range scans[0].jobs {
			uniq = append(uniq, j.coord) // names are canonical: distinct
		}
	} else {
		at := map[TileCoord]int32{}
		where = make([][]int32, len(scans))
		for si, s := range scans {
			where[si] = make([]int32, len(s.jobs))
			for k, j := range s.jobs {
				i, ok := at[j.coord]
				if !ok {
					i = int32(len(uniq))
					at[j.coord] = i
					uniq = append(uniq, j.coord)
				}
				where[si][k] = i
			}
		}
	}
	type crs struct {
		zone  int
		south bool
	}
	byCRS := map[crs][]int32{}
	for i, c := range uniq {
		k := crs{c.Zone(), c.Lat100 < 0}
		byCRS[k] = append(byCRS[k], int32(i))
	}
	groups := make([][]int32, 0, len(byCRS))
	for _, g := range byCRS {
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b []int32) int { return len(b) - len(a) }) // big first
	fps := make([]Footprint, len(uniq))
	errs := make([]error, len(groups))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(groups)) {
		wg.Go(func() {
			p := getProjector()
			defer putProjector(p)
			var cs []TileCoord
			for {
				gi := int(next.Add(1) - 1)
				if gi >= len(groups) || ctx.Err() != nil {
					return
				}
				cs = cs[:0]
				for _, i := range groups[gi] {
					cs = append(cs, uniq[i])
				}
				res, err := p.Footprints(cs)
				if err != nil {
					errs[gi] = err
					continue
				}
				for k, i := range groups[gi] {
					fps[i] = res[k]
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, err := range errs {
		if err != nil {
			return err // PROJ is broken (no proj.db?): nothing would work
		}
	}
	for si, s := range scans {
		if where == nil {
			s.fps = fps
			continue
		}
		s.fps = make([]Footprint, len(s.jobs))
		for k, i := range where[si] {
			s.fps[k] = fps[i]
		}
	}
	return nil
}

// projectors are idle Projectors kept for the next Discover: each holds
// the PROJ transformations it has created.
var projectors struct {
	mu   sync.Mutex
	idle []*Projector
}

func getProjector() *Projector {
	projectors.mu.Lock()
	defer projectors.mu.Unlock()
	if n := len(projectors.idle); n > 0 {
		p := projectors.idle[n-1]
		projectors.idle = projectors.idle[:n-1]
		return p
	}
	return NewProjector()
}

func putProjector(p *Projector) {
	projectors.mu.Lock()
	defer projectors.mu.Unlock()
	projectors.idle = append(projectors.idle, p)
}

// A shapeCheck checks a header against the tile grid; it returns the
// number of bands of 3-D scales (0 for 2-D) or a reason.
type shapeCheck func(h npy.Header, fp Footprint) (bands int, reason string)

func embeddingsShape(h npy.Header, fp Footprint) (int, string) {
	switch h.Descr {
	case "|i1", "<i1", "=i1", ">i1":
	default:
		return 0, fmt.Sprintf("dtype %s, want int8 (|i1)", h.Descr)
	}
	s := h.Shape
	if len(s) != 3 || s[2] != Bands {
		return 0, fmt.Sprintf("shape %s, want (%d, %d, %d)", h.ShapeString(), fp.H, fp.W, Bands)
	}
	if s[0] != fp.H || s[1] != fp.W {
		return 0, gridMismatch(h, fp)
	}
	return 0, ""
}

func scalesShape(h npy.Header, fp Footprint) (int, string) {
	if h.Descr != "<f4" && h.Descr != "=f4" {
		return 0, fmt.Sprintf("dtype %s, want float32 (<f4)", h.Descr)
	}
	s := h.Shape
	if !(len(s) == 2 || len(s) == 3 && s[2] == Bands) {
		return 0, fmt.Sprintf("shape %s, want (%d, %d) or (%d, %d, %d)", h.ShapeString(), fp.H, fp.W, fp.H, fp.W, Bands)
	}
	if s[0] != fp.H || s[1] != fp.W {
		return 0, gridMismatch(h, fp)
	}
	if len(s) == 3 {
		return Bands, ""
	}
	return 0, ""
}

func gridMismatch(h npy.Header, fp Footprint) string {
	return fmt.Sprintf("shape %s does not match the tile grid %d × %d from its coordinates", h.ShapeString(), fp.H, fp.W)
}

// openReason says why npy.Open failed, without repeating the path.
func openReason(path string, err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		if target, lerr := os.Readlink(path); lerr == nil {
			return "broken symlink to " + target
		}
		return "missing " + filepath.Base(path)
	}
	return errReason(err)
}

// errReason is err's message without the path an *fs.PathError carries.
func errReason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		if pe.Op == "npy" {
			return pe.Err.Error()
		}
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

func sortProblems(ps []Problem) {
	slices.SortFunc(ps, func(a, b Problem) int {
		if a.Path < b.Path {
			return -1
		}
		if a.Path > b.Path {
			return 1
		}
		return 0
	})
}

// defaultLogLimit is how many problems and warnings of each kind are
// logged in full unless Options.LogLimit says otherwise; the rest are
// counted.
const defaultLogLimit = 5

func (c *Catalogue) log(log *slog.Logger, limit int, took time.Duration) {
	if limit <= 0 {
		limit = defaultLogLimit
	}
	logSome := func(msg string, ps []Problem, attrs ...any) {
		for i, p := range ps {
			if i == limit {
				log.Warn(fmt.Sprintf("%s: %d more not shown", msg, len(ps)-limit), attrs...)
				break
			}
			log.Warn(msg, append(attrs, "path", p.Path, "reason", p.Reason)...)
		}
	}
	logSome("tiles root", c.Warnings)
	tiles, skipped := 0, 0
	for _, y := range c.Years {
		logSome("tile skipped", y.Problems, "year", y.Year)
		logSome("tile warning", y.Warnings, "year", y.Year)
		for _, z := range y.Zones {
			tiles += len(z.Placements)
		}
		skipped += len(y.Problems)
	}
	log.Info("tiles indexed", "root", c.Root, "years", len(c.Years), "tiles", tiles, "skipped", skipped, "took", took.Round(time.Millisecond))
}

// GlobalGrid is the chunk grid of a year's global_rgb pyramid, from the
// tiles' footprints alone: which chunks of each level exist, and how many
// inputs each is made from (a publishing plan's weights).
type GlobalGrid interface {
	// LevelCount is the number of pyramid levels.
	LevelCount() int
	// Rows lists, ascending, the chunk rows of level that hold a chunk.
	Rows(level int) []int
	// Cols lists, ascending, the chunk columns of row i of level.
	Cols(level, i int) []int
	// Inputs is how many tiles (level 0) or chunks of the level below
	// (level ≥ 1) chunk (i, j) of level is made from.
	Inputs(level, i, j int) int
}
