package materializer

import (
	"context"
	"io/fs"

	"github.com/tesserafs/tesserafs/index"
)

// Store is what a publishing run needs of a store, in public terms: its
// tiles, its keys and their bytes, and the global_rgb chunk grid it plans
// from. The tesserafs store (internal/store) satisfies it; one that also
// reads derived chunks back through an OutputReadThrough (the store's
// Options.ReadThrough) lets a run build each pyramid level from the level
// it already wrote.
type Store interface {
	// Catalogue is the tiles the store is made of.
	Catalogue() *index.Catalogue
	// Fingerprint names everything the store's bytes depend on: an output
	// is claimed for one fingerprint, and a run with another is refused.
	Fingerprint() string
	// Get returns the bytes of key.
	Get(ctx context.Context, key string) ([]byte, error)
	// ReadDir lists directory key from the index alone.
	ReadDir(ctx context.Context, key string) ([]fs.DirEntry, error)
	// Exists reports whether key is a file of the store.
	Exists(key string) bool
	// GlobalGrid is year's global_rgb chunk grid.
	GlobalGrid(year int) (index.GlobalGrid, error)
	// StretchRecords are the bookkeeping keys (not keys of the store) the
	// store may record its rgb stretches under in the output; a finished
	// run deletes them.
	StretchRecords() []string
}
