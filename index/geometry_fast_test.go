package index

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/twpayne/go-proj/v11"
)

// TestTileCRSPipelineIsCRSToCRS checks that the pipeline footprints use is
// the operation PROJ picks for OGC:CRS84 → EPSG:326NN/327NN, for every
// zone and hemisphere, and that it gives the same numbers, bit for bit,
// on tile corners across the zone and beyond its edges.
func TestTileCRSPipelineIsCRSToCRS(t *testing.T) {
	ctx := proj.NewContext()
	p := NewProjector()
	rng := rand.New(rand.NewPCG(1, 1))
	perCRS := 300
	if testing.Short() {
		perCRS = 20
	}
	for zone := 1; zone <= 60; zone++ {
		for _, south := range []bool{false, true} {
			epsg := fmt.Sprintf("EPSG:326%02d", zone)
			if south {
				epsg = fmt.Sprintf("EPSG:327%02d", zone)
			}
			ref, err := ctx.NewCRSToCRS("OGC:CRS84", epsg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := utmPipeline(zone, south), ref.Info().Definition; got != want {
				t.Fatalf("%s: pipeline %q, PROJ resolves %q", epsg, got, want)
			}
			// Tiles of this zone and hemisphere, and their Footprints in one batch.
			var cs []TileCoord
			for range perCRS {
				lon100 := -18000 + (zone-1)*600 + 10*rng.IntN(60) + 5
				lat100 := 10*rng.IntN(900) + 5
				if south {
					lat100 = -lat100
				}
				cs = append(cs, TileCoord{lon100, lat100})
			}
			batch, err := p.Footprints(cs)
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range cs {
				corners := tileCorners(c, nil)
				if err := ref.ForwardArray(corners); err != nil {
					t.Fatal(err)
				}
				want, err := footprintOf(c, corners)
				if err != nil {
					t.Fatal(err)
				}
				got, err := p.Footprint(c)
				if err != nil {
					t.Fatal(err)
				}
				if got != want || batch[i] != want {
					t.Fatalf("%s: Footprint %+v, batch %+v, crs_to_crs %+v", c, got, batch[i], want)
				}
			}
		}
	}
}

func TestNameMatchesFormat(t *testing.T) {
	for _, c := range []TileCoord{{-5, 5}, {5, -5}, {-17995, 8995}, {17995, -8995}, {-105, 5205}, {1005, -1005}, {-995, 95}} {
		want := fmt.Sprintf("grid_%.2f_%.2f", float64(c.Lon100)/100, float64(c.Lat100)/100)
		if got := c.Name(); got != want {
			t.Errorf("Name(%v) = %q, want %q", c, got, want)
		}
	}
}
