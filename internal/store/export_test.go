package store

import (
	"context"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
)

// Stretch returns the stretch the store uses for zone z's rgb.
func (s *Store) Stretch(z *index.ZoneGrid) (generate.Stretch, error) {
	return s.stretch(context.Background(), generate.NewWorker(), z)
}

// StretchesComputed counts the stretches computed from their sample.
func (s *Store) StretchesComputed() int64 { return s.stretches.computed.Load() }
