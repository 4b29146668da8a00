// Package testtiles gives tests a synthetic tiles root of a named preset,
// written once and shared by every test binary of a run: the tiles are a
// pure function of the preset, so they are kept in the temporary directory
// under a name that changes whenever the synthetic function could.
package testtiles

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tesserafs/tesserafs/internal/synth"
)

// Year is the year the presets are written for.
const Year = 2024

var (
	mu    sync.Mutex
	roots = map[string]string{}
)

// version names the tiles' format beyond the synth code itself (whose
// source hash is part of every key, see synth.SourceHash): bump it when
// something synth calls (npy, landmask, registry writers) changes what it
// writes, so stale tiles of an earlier run are not reused.
const version = "synth-3"

// Root returns a tiles root holding the named preset for Year. Tests must
// treat it as read-only; one that changes tiles copies them first.
func Root(t testing.TB, preset string) string {
	t.Helper()
	specs, err := synth.Preset(preset)
	if err != nil {
		t.Fatal(err)
	}
	return Tiles(t, preset, specs)
}

// Tiles returns a tiles root holding the given tiles for Year, written once
// under a name made of name and the specs.
func Tiles(t testing.TB, name string, specs []synth.TileSpec) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	sum := sha256.Sum256(fmt.Appendf(nil, "%s %s %s %d %+v", version, synth.SourceHash(), name, Year, specs))
	dir := filepath.Join(os.TempDir(), "tesserafs-testtiles-"+name+"-"+hex.EncodeToString(sum[:6]))
	if r, ok := roots[dir]; ok {
		return r
	}
	if _, err := os.Stat(filepath.Join(dir, synth.ManifestName)); err != nil {
		// Write into a private directory and rename it into place, so a
		// concurrent or killed test binary never sees half a tiles root.
		tmp, err := os.MkdirTemp(os.TempDir(), "tesserafs-testtiles-tmp-")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := synth.Write(context.Background(), tmp, synth.Options{Year: Year, Tiles: specs}); err != nil {
			os.RemoveAll(tmp)
			t.Fatal(err)
		}
		if err := os.Rename(tmp, dir); err != nil {
			os.RemoveAll(tmp) // another binary won the race: use its tiles
			if _, err := os.Stat(filepath.Join(dir, synth.ManifestName)); err != nil {
				t.Fatalf("test tiles: %v", err)
			}
		}
	}
	roots[dir] = dir
	return dir
}

// Copy copies a tiles root to a new temporary directory that the test may
// change.
func Copy(t testing.TB, root string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}
