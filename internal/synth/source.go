package synth

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"sync"
)

// sources are this package's own Go files: what the tiles it writes are a
// function of, besides the presets' specs.
//
//go:embed *.go
var sources embed.FS

// SourceHash identifies the synth code: a hash of the package's Go sources,
// so that a cache of synthetic tiles keyed by it (internal/testtiles) is
// rebuilt whenever the code that writes them changes, without anyone
// having to remember to bump a version.
var SourceHash = sync.OnceValue(func() string {
	h := sha256.New()
	names, err := fs.Glob(sources, "*.go") // sorted
	if err != nil {
		panic(err)
	}
	for _, name := range names {
		b, err := sources.ReadFile(name)
		if err != nil {
			panic(err)
		}
		h.Write([]byte(name))
		h.Write([]byte{0})
		h.Write(b)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
})
