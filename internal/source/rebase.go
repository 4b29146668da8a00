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
	seen := map[*index.Tile]bool{}
	for _, y := range cat.Years {
		for _, z := range y.Zones {
			for _, p := range z.Placements {
				t := p.Tile
				if seen[t] || len(t.Inputs) == 0 {
					continue // a tile shared by zones or placements, or not checked yet
				}
				seen[t] = true
				for i := range t.Inputs {
					var err error
					if t.Inputs[i].Path, err = move(t.Inputs[i].Path); err != nil {
						return err
					}
				}
			}
		}
	}
	cat.SetSource(src) // the tiles' own names follow the catalogue's source
	return nil
}
