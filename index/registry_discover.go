package index

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// openedRegistry is the registry.parquet discovery reads, and where its
// landmasks.parquet is.
type openedRegistry struct {
	f         SourceFile
	name      string
	landmasks string
	src       Source // opens landmasks
}

// openRegistry opens the registry opts ask for; nil (and no error) when
// the root is to be listed.
func openRegistry(ctx context.Context, src Source, opts Options) (*openedRegistry, error) {
	name, from := "", src
	switch r := opts.Registry; {
	case r == "none":
		return nil, nil
	case r == "":
		name = src.Path(RegistryName)
	case strings.Contains(r, "://"):
		if opts.RegistrySource == nil {
			return nil, fmt.Errorf("registry %s: a remote registry needs a remote source", r)
		}
		name, from = r, opts.RegistrySource
	case filepath.IsAbs(r):
		name, from = r, DirSource{Root: filepath.Dir(r)}
	default:
		name = src.Path(filepath.ToSlash(r))
	}
	f, err := from.Open(ctx, name)
	if err != nil {
		if opts.Registry == "" && isNotExist(err) {
			return nil, nil // no registry: list the root
		}
		return nil, fmt.Errorf("registry: %w", err)
	}
	return &openedRegistry{f: f, name: name, landmasks: beside(name, LandmasksName), src: from}, nil
}

// beside is the name of file in the directory of name (a path or a URL).
func beside(name, file string) string {
	return name[:strings.LastIndexAny(name, `/\`)+1] + file
}

// regTile is one good registry row.
type regTile struct {
	coord TileCoord
	want  expected
	row   int32
}

// rowName names registry row i in messages.
func rowName(file string, i int) string { return file + " row " + strconv.Itoa(i) }

// checkCoords checks a row's coordinates: a 0.1° tile centre (spec §1),
// with lat/lon agreeing with lat_i/lon_i. It returns the coordinate or a
// reason.
func checkCoords(lon, lat float64, lonI, latI int32) (TileCoord, string) {
	c := TileCoord{Lon100: int(lonI), Lat100: int(latI)}
	if mod(c.Lon100, 10) != 5 || mod(c.Lat100, 10) != 5 || c.Lon100 <= -18000 || c.Lon100 >= 18000 || c.Lat100 <= -9000 || c.Lat100 >= 9000 {
		return c, fmt.Sprintf("lon_i %d, lat_i %d: not a 0.1° tile centre (want ±x.x5 × 100 within ±180, ±90)", lonI, latI)
	}
	if !(math.Abs(lon*100-float64(lonI)) < 0.5) || !(math.Abs(lat*100-float64(latI)) < 0.5) {
		return c, fmt.Sprintf("lon %v, lat %v do not match lon_i %d, lat_i %d", lon, lat, lonI, latI)
	}
	return c, ""
}

// scanRegistry finds the tiles from the registry, and the landmasks from
// landmasks.parquet beside it (or, for a local root without one, the
// landmask directory's listing).
func scanRegistry(ctx context.Context, src Source, reg *openedRegistry, opts Options, cat *Catalogue) ([]*yearScan, landmasks, error) {
	wantYear := setOf(opts.Years)
	wantZone := setOf(opts.Zones)
	byYear := map[int][]regTile{}
	years := map[int]*Year{}
	yearOf := func(y int) *Year {
		if years[y] == nil {
			years[y] = &Year{Year: y}
		}
		return years[y]
	}
	row := 0
	err := ReadRegistryTiles(reg.f, reg.f.Stamp().Size, func(rows []RegistryTile) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, r := range rows {
			i := row
			row++
			if r.Year < 1000 || r.Year > 9999 {
				cat.Warnings = append(cat.Warnings, Problem{rowName(reg.name, i), fmt.Sprintf("year %d is not a year: row skipped", r.Year)})
				continue
			}
			y := int(r.Year)
			if wantYear != nil && !wantYear[y] {
				continue
			}
			c, bad := checkCoords(r.Lon, r.Lat, r.LonI, r.LatI)
			if bad != "" {
				yearOf(y).Problems = append(yearOf(y).Problems, Problem{rowName(reg.name, i), bad + ": row skipped"})
				continue
			}
			if wantZone != nil && !wantZone[c.Zone()] {
				continue
			}
			if r.FileSize < 0 || r.ScalesSize < 0 {
				yearOf(y).Problems = append(yearOf(y).Problems, Problem{rowName(reg.name, i), fmt.Sprintf("tile %s: negative file_size %d or scales_size %d: row skipped", c, r.FileSize, r.ScalesSize)})
				continue
			}
			if r.FileSize == 0 || r.ScalesSize == 0 {
				yearOf(y).Warnings = append(yearOf(y).Warnings, Problem{
					sourcePath(src, tileRel(y, c, ".npy")),
					fmt.Sprintf("not a tile (%s row %d: file_size %d, scales_size %d): ignored", RegistryName, i, r.FileSize, r.ScalesSize)})
				continue
			}
			yearOf(y)
			byYear[y] = append(byYear[y], regTile{coord: c, want: expected{r.FileSize, r.ScalesSize, r.Hash, r.ScalesHash}, row: int32(i)})
		}
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, landmasks{}, ctx.Err()
		}
		return nil, landmasks{}, fmt.Errorf("registry %s: %w", reg.name, err)
	}
	for _, y := range opts.Years {
		if years[y] == nil {
			return nil, landmasks{}, fmt.Errorf("year %d: no tiles in %s", y, reg.name)
		}
	}
	var scans []*yearScan
	for y, yr := range years {
		ts := byYear[y]
		// Sorted by coordinates, duplicates are neighbours: the first row
		// listed wins, as the registry's own order is its write order.
		slices.SortFunc(ts, func(a, b regTile) int {
			if c := cmp.Compare(a.coord.Lon100, b.coord.Lon100); c != 0 {
				return c
			}
			if c := cmp.Compare(a.coord.Lat100, b.coord.Lat100); c != 0 {
				return c
			}
			return cmp.Compare(a.row, b.row)
		})
		s := &yearScan{year: yr, jobs: make([]tileJob, 0, len(ts)), expect: make([]expected, 0, len(ts))}
		for k, t := range ts {
			if k > 0 && ts[k-1].coord == t.coord {
				yr.Problems = append(yr.Problems, Problem{rowName(reg.name, int(t.row)),
					fmt.Sprintf("tile %s of %d listed again (first in row %d): row skipped", t.coord, y, firstRow(ts, k))})
				continue
			}
			s.jobs = append(s.jobs, tileJob{coord: t.coord})
			s.expect = append(s.expect, t.want)
		}
		byYear[y] = nil
		scans = append(scans, s)
	}
	slices.SortFunc(scans, func(a, b *yearScan) int { return a.year.Year - b.year.Year })

	lms, err := registryLandmasks(ctx, src, reg, cat)
	return scans, lms, err
}

// firstRow is the row of the first of the run of equal coordinates that
// ends at ts[k].
func firstRow(ts []regTile, k int) int32 {
	for k > 0 && ts[k-1].coord == ts[k].coord {
		k--
	}
	return ts[k].row
}

// registryLandmasks reads landmasks.parquet beside the registry. Without
// one, a local root's landmask directory is listed; a root that cannot be
// listed has every tile treated as all land, with one warning.
func registryLandmasks(ctx context.Context, src Source, reg *openedRegistry, cat *Catalogue) (landmasks, error) {
	lms := landmasks{dir: src.Path(LandmaskDir)}
	f, err := reg.src.Open(ctx, reg.landmasks)
	if err != nil {
		if !isNotExist(err) {
			cat.Warnings = append(cat.Warnings, Problem{reg.landmasks, errReason(err) + ": every tile treated as all land"})
			return lms, nil
		}
		set, warnings, lerr := listLandmasks(ctx, src, lms.dir)
		if lerr != nil {
			cat.Warnings = append(cat.Warnings, Problem{reg.landmasks, "no " + LandmasksName + " and no landmask directory to list: every tile treated as all land"})
			return lms, nil
		}
		cat.Warnings = append(cat.Warnings, warnings...)
		lms.set, lms.ok = set, true
		return lms, nil
	}
	defer f.Close()
	set := newCoordSet()
	hash := map[TileCoord]string{}
	row := 0
	err = readParquet(f, f.Stamp().Size, func(rows []LandmaskTile) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, r := range rows {
			i := row
			row++
			c, bad := checkCoords(r.Lon, r.Lat, r.LonI, r.LatI)
			switch {
			case bad != "":
				cat.Warnings = append(cat.Warnings, Problem{rowName(reg.landmasks, i), bad + ": row skipped"})
			case r.FileSize <= 0:
				cat.Warnings = append(cat.Warnings, Problem{rowName(reg.landmasks, i), fmt.Sprintf("landmask %s: file_size %d: row skipped", c, r.FileSize)})
			default:
				set.add(c)
				if r.Hash != "" {
					hash[c] = r.Hash
				}
			}
		}
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return lms, ctx.Err()
		}
		cat.Warnings = append(cat.Warnings, Problem{reg.landmasks, errReason(err) + ": every tile treated as all land"})
		return lms, nil
	}
	lms.set, lms.hash, lms.ok = set, hash, true
	return lms, nil
}

// coordSet is a set of tile centres: one bit per cell of the 0.1° globe
// (3600 × 1800 bits, 810 KB), so that a million landmasks cost neither a
// map's memory nor its hashing.
type coordSet []uint64

const setCols, setRows = 3600, 1800

func newCoordSet() coordSet { return make(coordSet, (setCols*setRows+63)/64) }

// bit is c's cell, or −1 outside the globe (which ParseTileName and the
// registry's row checks already exclude).
func (c TileCoord) bit() int {
	col, row := (c.Lon100+18000)/10, (c.Lat100+9000)/10
	if col < 0 || col >= setCols || row < 0 || row >= setRows {
		return -1
	}
	return row*setCols + col
}

func (s coordSet) add(c TileCoord) {
	if b := c.bit(); b >= 0 {
		s[b>>6] |= 1 << (b & 63)
	}
}

func (s coordSet) has(c TileCoord) bool {
	b := c.bit()
	return s != nil && b >= 0 && s[b>>6]&(1<<(b&63)) != 0
}
