package main

import (
	"context"
	"log/slog"

	"github.com/spf13/pflag"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
	"github.com/tesserafs/tesserafs/internal/store"
)

// storeOptions are the flags of every command that opens a store (mount,
// materialize, preview, cache warm, and those to come): registered here
// once, turned into a store here once, so that a flag means the same thing
// in every command.
type storeOptions struct {
	tileOptions
	// Stretch is how the rgb previews are stretched: "zone" or "global".
	Stretch string
}

// register adds --tiles, --year, --zones, --workers and --stretch.
func (o *storeOptions) register(fs *pflag.FlagSet) {
	o.tileOptions.register(fs)
	fs.StringVar(&o.Stretch, "stretch", "zone", `rgb preview stretch: "zone" (per UTM zone) or "global" (one per year, no seams between zones)`)
}

func (o *storeOptions) validate() error {
	if err := o.tileOptions.validate(); err != nil {
		return err
	}
	if o.Stretch != "zone" && o.Stretch != "global" && o.Stretch != "" {
		return usageErrorf("--stretch %q: want zone or global", o.Stretch)
	}
	return nil
}

// build is what the store's bytes depend on besides the tiles.
func (o *storeOptions) build() generate.Build {
	b := generate.Build{BuildVersion: version}
	if o.Stretch == "global" {
		b.Stretch = "global"
	}
	return b
}

// storeWith is what a command gives the store besides its flags.
type storeWith struct {
	Cache       store.Cache // mount, cache warm: the chunk cache
	ReadThrough store.Cache // materialize: the files already written
	Logger      *slog.Logger
}

// openedStore is a store opened from the flags, with what discovery
// skipped (already logged; commands report the count).
type openedStore struct {
	*store.Store
	Skipped []index.Problem
}

// open validates the flags, indexes the tiles and opens the store. It is
// the one way a command gets a store.
func (o *storeOptions) open(ctx context.Context, with storeWith) (*openedStore, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	cat, skipped, err := o.discover(ctx)
	if err != nil {
		return nil, err
	}
	log := with.Logger
	if log == nil {
		log = slog.Default()
	}
	st, err := store.New(cat, store.Options{
		Workers:     o.Workers,
		Build:       o.build(),
		Cache:       with.Cache,
		ReadThrough: with.ReadThrough,
		Logger:      log,
	})
	if err != nil {
		return nil, err
	}
	return &openedStore{Store: st, Skipped: skipped}, nil
}
