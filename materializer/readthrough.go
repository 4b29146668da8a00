package materializer

import (
	"os"
	"path/filepath"
	"sync/atomic"
)

// OutputCache is the read-through source (store.Options.ReadThrough) of a
// store that Run writes to dir: a derived chunk (a global_rgb level, say)
// is then built from the files of the level below that this run, or the
// one it resumes, has written, instead of being recomputed.
//
// It serves nothing until Run has checked that dir was built from the same
// inputs as the store (Run refuses a directory built from others). After
// that, a file there is complete (files are renamed into place) and its key
// alone identifies its content, so the fingerprint is not needed.
type OutputCache struct {
	dir     string
	checked atomic.Bool
}

// NewOutputCache returns the read-through source for a run writing to dir.
func NewOutputCache(dir string) *OutputCache { return &OutputCache{dir: filepath.Clean(dir)} }

func (c *OutputCache) path(key string) string { return filepath.Join(c.dir, filepath.FromSlash(key)) }

// Get implements store.Cache.
func (c *OutputCache) Get(key string, _ []byte) ([]byte, bool) {
	if !c.checked.Load() {
		return nil, false
	}
	b, err := os.ReadFile(c.path(key))
	return b, err == nil
}

// Size implements store.Cache.
func (c *OutputCache) Size(key string, _ []byte) (int64, bool) {
	if !c.checked.Load() {
		return 0, false
	}
	fi, err := os.Stat(c.path(key))
	if err != nil || !fi.Mode().IsRegular() {
		return 0, false
	}
	return fi.Size(), true
}

// Put implements store.Cache: the materializer writes files itself.
func (*OutputCache) Put(string, []byte, []byte) {}

// arm lets c serve dir's files once Run has checked dir against store
// fingerprint; a source for another directory stays silent.
func (c *OutputCache) arm(dir string) bool {
	if c.dir != filepath.Clean(dir) {
		return false
	}
	c.checked.Store(true)
	return true
}
