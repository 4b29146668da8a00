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
	"strings"
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
	// Embeddings, Scales and Landmask are the files' paths; Landmask is ""
	// when the tile has none (all land).
	Embeddings, Scales, Landmask string
	// ScalesBands is 0 for (H, W) scales and 128 for (H, W, 128) scales,
	// which are reduced by NaN-aware max over bands.
	ScalesBands int
	// Inputs are the stamps of every file above that exists.
	Inputs []FileStamp
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
	// the representation directory, the landmask directory itself.
	Warnings []Problem
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
	// for that has no directory is an error; a zone without tiles is not.
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
}

// Discover indexes the tiles under root (spec §1). It lists the
// representation directory, each year directory and the landmask directory
// once, computes every tile's grid from its name, then opens the two .npy
// headers of each tile in parallel and checks them against that grid.
// A tile that fails a check is skipped and reported in its year's
// Problems; it never stops the others. Stray entries and missing landmasks
// are Warnings. Only a missing or unreadable root or representation
// directory, an asked-for year that is absent, or ctx's cancellation is an
// error. Landmasks are not opened: they are decoded when needed.
func Discover(ctx context.Context, root string, opts Options) (*Catalogue, error) {
	start := time.Now()
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	root = filepath.Clean(root)
	if fi, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("tiles root: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("tiles root %s: not a directory", root)
	}
	repDir := filepath.Join(root, RepresentationDir)
	repEntries, err := os.ReadDir(repDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("tiles root %s has no %s directory: is it a tiles root?", root, RepresentationDir)
		}
		return nil, fmt.Errorf("tiles root: %w", err)
	}
	cat := &Catalogue{Root: root, Source: DirSource{Root: root}}
	sep := string(filepath.Separator)

	// Years.
	wantYear := setOf(opts.Years)
	wantZone := setOf(opts.Zones)
	var scans []*yearScan
	found := map[int]bool{}
	for _, e := range repEntries {
		path := repDir + sep + e.Name()
		y, ok := parseYear(e.Name())
		if !ok || !isDir(e, path) {
			what := "not a year directory"
			if !isDir(e, path) {
				what = "stray file"
			}
			cat.Warnings = append(cat.Warnings, Problem{path, what + ": ignored"})
			continue
		}
		found[y] = true
		if wantYear != nil && !wantYear[y] {
			continue
		}
		scans = append(scans, &yearScan{year: &Year{Year: y}, dir: path})
	}
	for _, y := range opts.Years {
		if !found[y] {
			return nil, fmt.Errorf("year %d: no directory %s", y, filepath.Join(repDir, strconv.Itoa(y)))
		}
	}

	// Tile directories of each year.
	for _, s := range scans {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		entries, err := readDirUnsorted(s.dir)
		if err != nil {
			s.year.Problems = append(s.year.Problems, Problem{s.dir, "cannot list year directory: " + errReason(err)})
			continue
		}
		for _, e := range entries {
			path := s.dir + sep + e.Name()
			c, err := ParseTileName(e.Name())
			if err != nil || !isDir(e, path) {
				reason := "stray file: ignored"
				if isDir(e, path) {
					reason = "not a tile directory (want grid_<lon>_<lat>): ignored"
				}
				s.year.Warnings = append(s.year.Warnings, Problem{path, reason})
				continue
			}
			if wantZone != nil && !wantZone[c.Zone()] {
				continue
			}
			s.jobs = append(s.jobs, tileJob{coord: c, dir: path})
		}
	}

	// Landmasks: one listing, shared by all years.
	lmDir := filepath.Join(root, LandmaskDir)
	landmasks, lmWarnings, lmErr := listLandmasks(lmDir)
	cat.Warnings = append(cat.Warnings, lmWarnings...)
	if lmErr != nil {
		cat.Warnings = append(cat.Warnings, Problem{lmDir, errReason(lmErr) + ": every tile treated as all land"})
	}

	// Footprints, from names alone.
	if err := footprints(ctx, scans); err != nil {
		return nil, err
	}

	// Headers.
	workers := opts.Workers
	if workers <= 0 {
		workers = 4 * runtime.GOMAXPROCS(0)
	}
	for _, s := range scans {
		if err := checkTiles(ctx, s, landmasks, lmErr == nil, lmDir, workers); err != nil {
			return nil, err
		}
		y := s.year
		byZone := map[int][]*Tile{}
		for i := range s.tiles {
			if t := &s.tiles[i]; t.Embeddings != "" {
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
	}
	slices.SortFunc(cat.Years, func(a, b *Year) int { return a.Year - b.Year })
	sortProblems(cat.Warnings)
	cat.log(log, opts.LogLimit, time.Since(start))
	return cat, nil
}

// yearScan is one year being discovered.
type yearScan struct {
	year  *Year
	dir   string
	jobs  []tileJob
	fps   []Footprint // one per job
	tiles []Tile      // one per job; Embeddings == "" for a skipped tile
}

type tileJob struct {
	coord TileCoord
	dir   string
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

// readDirUnsorted is os.ReadDir without the sort: a year directory can
// hold 100,000 tiles, and the tiles are sorted by coordinates later.
func readDirUnsorted(dir string) ([]fs.DirEntry, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}

// isDir reports whether e is a directory, following a symlink.
func isDir(e fs.DirEntry, path string) bool {
	if e.IsDir() {
		return true
	}
	if e.Type()&fs.ModeSymlink != 0 {
		fi, err := os.Stat(path)
		return err == nil && fi.IsDir()
	}
	return false
}

// listLandmasks lists the landmask directory once, by name only (no stat
// of 100,000 files): the set of tiles that have a mask, and warnings for
// names that are not masks.
func listLandmasks(dir string) (map[TileCoord]bool, []Problem, error) {
	f, err := os.Open(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, errors.New("no landmask directory")
		}
		return nil, nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, nil, err
	}
	set := make(map[TileCoord]bool, len(names))
	var warnings []Problem
	sep := string(filepath.Separator)
	for _, name := range names {
		var c TileCoord
		base, ok := trimSuffix(name, ".tiff")
		if ok {
			c, err = ParseTileName(base)
			ok = err == nil
		}
		if !ok {
			warnings = append(warnings, Problem{dir + sep + name, "not a landmask (want grid_<lon>_<lat>.tiff): ignored"})
			continue
		}
		set[c] = true
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

// checkTiles opens and checks every tile of s with the given number of
// workers, filling s.tiles and the year's problems and warnings.
func checkTiles(ctx context.Context, s *yearScan, landmasks map[TileCoord]bool, haveLandmaskDir bool, lmDir string, workers int) error {
	s.tiles = make([]Tile, len(s.jobs))
	problems := make([]*Problem, len(s.jobs))
	warnings := make([]*Problem, len(s.jobs))
	var next atomic.Int64
	var wg sync.WaitGroup
	sep := string(filepath.Separator)
	for range min(workers, len(s.jobs)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(s.jobs) || ctx.Err() != nil {
					return
				}
				j := s.jobs[i]
				name := j.coord.Name()
				lm := ""
				if landmasks[j.coord] {
					lm = lmDir + sep + name + ".tiff"
				}
				var warn *Problem
				s.tiles[i], problems[i], warn = checkTile(s.year.Year, j, name, s.fps[i], lm)
				if warn == nil && lm == "" && haveLandmaskDir && problems[i] == nil {
					warn = &Problem{lmDir + sep + name + ".tiff", "no landmask: treated as all land"}
				}
				warnings[i] = warn
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for i := range s.jobs {
		if problems[i] != nil {
			s.year.Problems = append(s.year.Problems, *problems[i])
		}
		if warnings[i] != nil {
			s.year.Warnings = append(s.year.Warnings, *warnings[i])
		}
	}
	return nil
}

// checkTile checks one tile's files. It returns the tile, or a problem
// naming the first offending file (and any other), and maybe a warning.
func checkTile(year int, j tileJob, name string, fp Footprint, landmask string) (Tile, *Problem, *Problem) {
	sep := string(filepath.Separator)
	t := Tile{
		Year: year, Coord: j.coord, Zone: j.coord.Zone(), Footprint: fp,
		Embeddings: j.dir + sep + name + ".npy",
		Scales:     j.dir + sep + name + "_scales.npy",
	}
	embStamp, _, embBad := checkNpy(t.Embeddings, fp, embeddingsShape)
	scStamp, bands, scBad := checkNpy(t.Scales, fp, scalesShape)
	if embBad != "" || scBad != "" {
		p := &Problem{t.Embeddings, embBad}
		if embBad == "" {
			p = &Problem{t.Scales, scBad}
		} else if scBad != "" {
			if !strings.HasPrefix(scBad, "missing ") {
				scBad = filepath.Base(t.Scales) + ": " + scBad
			}
			p.Reason += "; also " + scBad
		}
		return Tile{}, p, nil
	}
	inputs := make([]FileStamp, 2, 3)
	inputs[0], inputs[1] = embStamp, scStamp
	var warn *Problem
	if landmask != "" {
		size, mtime, err := statFile(landmask)
		if err != nil {
			warn = &Problem{landmask, errReason(err) + ": treated as all land"}
		} else {
			t.Landmask = landmask
			inputs = append(inputs, FileStamp{Path: landmask, Size: size, ModTime: mtime})
		}
	}
	t.ScalesBands = bands
	t.Inputs = inputs
	return t, nil, warn
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

// checkNpy opens one .npy (which checks its header and length) and its
// shape against the grid. It returns the file's stamp, or a reason.
func checkNpy(path string, fp Footprint, check shapeCheck) (FileStamp, int, string) {
	info, err := npy.Stat(path)
	if err != nil {
		return FileStamp{}, 0, openReason(path, err)
	}
	bands, reason := check(info.Header, fp)
	if reason != "" {
		return FileStamp{}, 0, reason
	}
	return FileStamp{Path: path, Size: info.Size, ModTime: info.ModTime}, bands, ""
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
