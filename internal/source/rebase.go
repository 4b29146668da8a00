package source

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/tesserafs/tesserafs/index"
)

// Rebase points a catalogue discovered from a local directory at src, a
// copy of the same tiles root elsewhere (an HTTP mirror, a bucket): every
// file name under cat.Root becomes src's name of the same relative path,
// and cat.Source becomes src. Stamps keep their sizes (checked on every
// remote read) and lose nothing else; a remote ETag is learnt on the first
// read. It lets a remote root be read with a local index, for tests and
// for a mirror whose registry is not at hand.
func Rebase(cat *index.Catalogue, src index.Source) error {
	root := filepath.Clean(cat.Root) + string(filepath.Separator)
	move := func(p string) (string, error) {
		if p == "" {
			return "", nil
		}
		rel, ok := strings.CutPrefix(p, root)
		if !ok {
			return "", fmt.Errorf("rebase: %s is not under %s", p, cat.Root)
		}
		return src.Path(filepath.ToSlash(rel)), nil
	}
	for _, y := range cat.Years {
		for _, z := range y.Zones {
			for _, p := range z.Placements {
				t := p.Tile
				if strings.HasPrefix(t.Embeddings, src.String()) {
					continue // a tile shared by zones or placements, done
				}
				var err error
				for _, f := range []*string{&t.Embeddings, &t.Scales, &t.Landmask} {
					if *f, err = move(*f); err != nil {
						return err
					}
				}
				for i := range t.Inputs {
					if t.Inputs[i].Path, err = move(t.Inputs[i].Path); err != nil {
						return err
					}
				}
			}
		}
	}
	cat.Root, cat.Source = src.String(), src
	return nil
}
