package index

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tesserafs/tesserafs/internal/npy"
)

// A tile is checked once: at discovery (the default), or at its first use
// when discovery was Lazy. The check reads the two .npy headers through
// the Source, compares dtype and shape with the tile's grid from its
// coordinates and the sizes with the registry's, and takes the stamps of
// the files it opened (their own fstat, or the remote server's answer) as
// the tile's Inputs: the cache fingerprint of every chunk built from it.

// checker checks the tiles of one catalogue and keeps the problems found
// after discovery.
type checker struct {
	src Source
	log *slog.Logger

	mu   sync.Mutex
	late []Problem // guarded by mu
}

// tileCheck is the first-use check of one tile of a Lazy discovery.
type tileCheck struct {
	embSize, scalesSize int64      // the registry's; 0 unknown
	hashes              *[3]string // embeddings, scales, landmask sha256; nil when none is known

	mu  sync.Mutex
	err error // guarded by mu: nil unchecked, errPassed, or the *TileError
}

// Identity writes what discovery knew of the tile: its year and
// coordinates and, for a tile discovery checked, its files' stamps; for a
// tile of a Lazy discovery, the registry's sizes and sha256s when there is
// a registry. It does not change when a Lazy tile is checked later, so a
// fingerprint made of it is stable for a catalogue's life; a tile replaced
// under the same name, size and hash is caught by the check at first use
// and by every open (OpenStamp), not by the identity.
func (t *Tile) Identity(w io.Writer) {
	fmt.Fprintf(w, "tile %d %s\n", t.Year, t.Coord)
	if k := t.check; k != nil {
		fmt.Fprintf(w, " registry %d %d", k.embSize, k.scalesSize)
		if h := k.hashes; h != nil {
			fmt.Fprintf(w, " %s %s %s", h[0], h[1], h[2])
		}
		fmt.Fprintln(w)
		return
	}
	for _, in := range t.Inputs {
		fmt.Fprintf(w, " %s %d %d %q %s\n", in.Path, in.Size, in.ModTime.UnixNano(), in.ETag, in.SHA256)
	}
}

// errPassed is the check state of a tile that passed.
var errPassed = errors.New("tile passed its check")

// ErrUnavailable is wrapped by a Source's errors that a later attempt may
// not have: the server is down, answers 5xx, times out or drops the
// connection, after the Source's own retries. A tile that failed so is
// not bad: its check is not remembered, and front ends answer "try again"
// (EIO now, 503 with Retry-After) rather than a permanent error.
var ErrUnavailable = errors.New("tile source unavailable")

// TileError is the error of a tile that failed its check: every chunk the
// tile touches fails with it, naming the file and the reason. A
// Transient one (the source was unavailable) matches ErrUnavailable and
// is not remembered; any other is, for the catalogue's life.
type TileError struct {
	Coord TileCoord
	Problem
	Transient bool
}

// Unwrap is ErrUnavailable for a transient failure.
func (e *TileError) Unwrap() error {
	if e.Transient {
		return ErrUnavailable
	}
	return nil
}

func (e *TileError) Error() string {
	return fmt.Sprintf("tile %s: %s: %s", e.Coord, e.Path, e.Reason)
}

// TileReadError is a failure to read a tile's bytes while building a
// chunk (a file that changed, a connection that dropped): unlike a
// TileError it keeps its cause, so that errors.Is can tell an outage
// from a defect. Path names the file or URL when known.
type TileReadError struct {
	Coord TileCoord
	Path  string
	Err   error
}

func (e *TileReadError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("tile %s: %v", e.Coord, e.Err)
	}
	return fmt.Sprintf("tile %s: %s: %v", e.Coord, e.Path, e.Err)
}

func (e *TileReadError) Unwrap() error { return e.Err }

// Check makes sure the tile is usable, checking it on first use when
// discovery was Lazy (at most once per tile: the outcome is remembered for
// the catalogue's life, and a failure is logged once). It returns a
// *TileError for a bad tile. A cancelled ctx, or a source that was
// unavailable (a Transient TileError), leaves the tile unchecked, for the
// next caller. After Check returns nil, Inputs and
// ScalesBands are valid.
func (t *Tile) Check(ctx context.Context) error {
	k := t.check
	if k == nil {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.err == errPassed {
		return nil
	} else if k.err != nil {
		return k.err
	}
	want := expected{embSize: k.embSize, scalesSize: k.scalesSize}
	lmHash := ""
	if h := k.hashes; h != nil {
		want.embHash, want.scalesHash, lmHash = h[0], h[1], h[2]
	}
	c := t.files
	p, warn, transient := c.validate(ctx, t, want, lmHash)
	if err := ctx.Err(); err != nil {
		return err
	}
	if p != nil && transient {
		return &TileError{Coord: t.Coord, Problem: *p, Transient: true}
	}
	if warn != nil {
		c.log.Warn("tile warning", "year", t.Year, "path", warn.Path, "reason", warn.Reason)
	}
	if p == nil {
		k.err = errPassed
		return nil
	}
	k.err = &TileError{Coord: t.Coord, Problem: *p}
	c.mu.Lock()
	c.late = append(c.late, *p)
	c.mu.Unlock()
	c.log.Warn("tile failed its first-use check: its shards fail", "year", t.Year, "path", p.Path, "reason", p.Reason)
	return k.err
}

// CheckTiles checks the tiles not yet checked, a few at a time in
// parallel (a shard's tiles, or a global_rgb chunk's). It returns ctx's
// error only; a bad tile's error is what its Check returns.
func CheckTiles(ctx context.Context, tiles []*Tile) error {
	var todo []*Tile
	for _, t := range tiles {
		if t.check != nil {
			todo = append(todo, t)
		}
	}
	if len(todo) == 1 {
		todo[0].Check(ctx)
	} else if len(todo) > 1 {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range min(len(todo), checkParallel) {
			wg.Go(func() {
				for {
					i := int(next.Add(1) - 1)
					if i >= len(todo) || ctx.Err() != nil {
						return
					}
					todo[i].Check(ctx)
				}
			})
		}
		wg.Wait()
	}
	return ctx.Err()
}

// checkParallel bounds the tiles one CheckTiles checks at once: each check
// is a few small reads, which a remote root answers with latency.
const checkParallel = 8

// LateProblems are the tiles of a Lazy discovery that failed their check
// since, in the order found.
func (c *Catalogue) LateProblems() []Problem {
	if c.checker == nil {
		return nil
	}
	c.checker.mu.Lock()
	defer c.checker.mu.Unlock()
	return append([]Problem(nil), c.checker.late...)
}

// lazyTiles gives every tile of s its first-use check; only the warnings
// that need no I/O (no landmask listed) are made now.
func lazyTiles(s *yearScan, lms landmasks) {
	s.checks = make([]tileCheck, len(s.tiles))
	for i := range s.tiles {
		t := &s.tiles[i]
		k := &s.checks[i]
		var h [3]string
		if s.expect != nil {
			k.embSize, k.scalesSize = s.expect[i].embSize, s.expect[i].scalesSize
			h[0], h[1] = s.expect[i].embHash, s.expect[i].scalesHash
		}
		h[2] = lms.hash[t.Coord]
		if h != [3]string{} {
			k.hashes = &h
		}
		t.check = k
		if !t.hasMask && lms.ok {
			s.year.Warnings = append(s.year.Warnings, Problem{noLandmaskPath(lms, t.Coord), "no landmask: treated as all land"})
		}
	}
}

func noLandmaskPath(lms landmasks, c TileCoord) string {
	return lms.dir + string(filepath.Separator) + c.Name() + ".tiff"
}

// checkTiles checks every tile of s now with the given number of workers;
// a bad tile is dropped (its files nil) and reported in the year's
// problems.
func checkTiles(ctx context.Context, c *checker, s *yearScan, lms landmasks, workers int) error {
	problems := make([]*Problem, len(s.tiles))
	warnings := make([]*Problem, len(s.tiles))
	unavailable := make([]bool, len(s.tiles))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, len(s.tiles)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(s.tiles) || ctx.Err() != nil {
					return
				}
				t := &s.tiles[i]
				var want expected
				if s.expect != nil {
					want = s.expect[i]
				}
				hadMask := t.hasMask
				p, warn, transient := c.validate(ctx, t, want, lms.hash[t.Coord])
				unavailable[i] = p != nil && transient
				if p != nil {
					*t = Tile{}
				} else if warn == nil && !hadMask && lms.ok {
					warn = &Problem{noLandmaskPath(lms, t.Coord), "no landmask: treated as all land"}
				}
				problems[i], warnings[i] = p, warn
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for i := range s.tiles {
		if unavailable[i] {
			s.year.Unavailable = append(s.year.Unavailable, *problems[i])
		} else if problems[i] != nil {
			s.year.Problems = append(s.year.Problems, *problems[i])
		}
		if warnings[i] != nil {
			s.year.Warnings = append(s.year.Warnings, *warnings[i])
		}
	}
	return nil
}

// validate checks t's files. It sets t.Inputs and t.ScalesBands, or
// returns a problem naming the first offending file (and any other); warn
// is a landmask that cannot be used. A tile checked at discovery then has
// no Landmask; a lazily checked one keeps the name, and its reader warns
// and treats it as all land, as for any unreadable mask.
func (c *checker) validate(ctx context.Context, t *Tile, want expected, lmHash string) (problem, warn *Problem, transient bool) {
	embName, scName := t.EmbeddingsPath(), t.ScalesPath()
	embStamp, _, embBad, embErr := c.checkNpy(ctx, embName, t.Footprint, embeddingsShape, want.embSize)
	scStamp, bands, scBad, scErr := c.checkNpy(ctx, scName, t.Footprint, scalesShape, want.scalesSize)
	transient = errors.Is(embErr, ErrUnavailable) || errors.Is(scErr, ErrUnavailable)
	embStamp.SHA256, scStamp.SHA256 = want.embHash, want.scalesHash
	if embBad != "" || scBad != "" {
		p := &Problem{embName, embBad}
		if embBad == "" {
			p = &Problem{scName, scBad}
		} else if scBad != "" {
			if !strings.HasPrefix(scBad, "missing ") {
				scBad = baseName(scName) + ": " + scBad
			}
			p.Reason += "; also " + scBad
		}
		return p, nil, transient
	}
	inputs := make([]FileStamp, 2, 3)
	inputs[0], inputs[1] = embStamp, scStamp
	if lm := t.LandmaskPath(); lm != "" {
		st, err := c.stat(ctx, lm)
		if err != nil {
			warn = &Problem{lm, errReason(err) + ": treated as all land"}
			if t.check == nil {
				t.hasMask = false
			}
		} else {
			st.SHA256 = lmHash
			inputs = append(inputs, st)
		}
	}
	t.ScalesBands = bands
	t.Inputs = inputs
	return nil, warn, false
}

// baseName is the last element of a path or URL.
func baseName(name string) string {
	return name[strings.LastIndexAny(name, `/\`)+1:]
}

// stat is the stamp of a file of the source.
func (c *checker) stat(ctx context.Context, name string) (FileStamp, error) {
	if _, ok := c.src.(DirSource); ok {
		size, mtime, err := statFile(name)
		return FileStamp{Path: name, Size: size, ModTime: mtime}, err
	}
	f, err := c.src.Open(ctx, name)
	if err != nil {
		return FileStamp{}, err
	}
	defer f.Close()
	return f.Stamp(), nil
}

// checkNpy opens one .npy (which checks its header and length), and checks
// its shape against the grid and its size against the registry's (when
// known). It returns the file's stamp, or a reason and, when the file
// could not be read, the error.
func (c *checker) checkNpy(ctx context.Context, name string, fp Footprint, check shapeCheck, wantSize int64) (FileStamp, int, string, error) {
	var st FileStamp
	var h npy.Header
	if _, ok := c.src.(DirSource); ok {
		// The cheap way on a local disk: four system calls.
		info, err := npy.Stat(name)
		if err != nil {
			return FileStamp{}, 0, openReason(name, err), err
		}
		st, h = FileStamp{Path: name, Size: info.Size, ModTime: info.ModTime}, info.Header
	} else {
		f, err := c.src.Open(ctx, name)
		if err != nil {
			return FileStamp{}, 0, openReason(name, err), err
		}
		st = f.Stamp()
		h, err = npy.CheckAt(f, st.Size, name)
		f.Close()
		if err != nil {
			return FileStamp{}, 0, openReason(name, err), err
		}
	}
	bands, reason := check(h, fp)
	if reason != "" {
		return FileStamp{}, 0, reason, nil
	}
	if wantSize > 0 && st.Size != wantSize {
		return FileStamp{}, 0, fmt.Sprintf("size %d bytes, but %s says %d", st.Size, RegistryName, wantSize), nil
	}
	return st, bands, "", nil
}

// isNotExist is errors.Is(err, fs.ErrNotExist).
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
