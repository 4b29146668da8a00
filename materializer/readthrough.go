package materializer

import (
	"os"
	"path/filepath"
)

// outputCache serves the store the chunks already written to the output
// directory (see store.Store.SetReadThrough). A file there is complete
// (files are renamed into place) and was generated from the same inputs
// (checkState refuses a directory built from others), so its key alone
// identifies its content and the fingerprint is not needed.
type outputCache struct{ dir string }

func (c outputCache) path(key string) string { return filepath.Join(c.dir, filepath.FromSlash(key)) }

// Get implements store.Cache.
func (c outputCache) Get(key string, _ []byte) ([]byte, bool) {
	b, err := os.ReadFile(c.path(key))
	return b, err == nil
}

// Size implements store.Cache.
func (c outputCache) Size(key string, _ []byte) (int64, bool) {
	fi, err := os.Stat(c.path(key))
	if err != nil || !fi.Mode().IsRegular() {
		return 0, false
	}
	return fi.Size(), true
}

// Put implements store.Cache: the materializer writes files itself.
func (outputCache) Put(string, []byte, []byte) {}
