package materializer_test

import (
	"context"
	"slices"
	"testing"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/synth"
	"github.com/tesserafs/tesserafs/internal/testtiles"
	"github.com/tesserafs/tesserafs/materializer"
)

// TestPlanSplit checks the partition split on a block of 16 tiles: every
// data key belongs to exactly one partition, two plans made apart agree
// key by key, the split follows the weights (no partition exceeds an equal
// share by more than the heaviest key), and the walk's keys are all there.
func TestPlanSplit(t *testing.T) {
	tiles := testtiles.Tiles(t, "grid16", synth.Grid(16, 10.05, 84.05))
	ctx := context.Background()
	open := func() *store.Store {
		cat, err := index.Discover(ctx, tiles, index.Options{})
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.New(cat, store.Options{Workers: 1, Build: generate.Build{BuildVersion: "test"}})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := open()
	var all []string
	if err := st.Walk(ctx, "", func(k string) error { all = append(all, k); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2, 3, 4, 7} {
		p1, err := materializer.NewPlan(ctx, st, n)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := materializer.NewPlan(ctx, open(), n)
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		for _, ph := range materializer.Phases {
			if !slices.Equal(p1.Phases[ph], p2.Phases[ph]) {
				t.Errorf("n=%d phase %s: two plans of the same tiles differ", n, ph)
			}
			if ph == materializer.PhaseFinalize {
				for _, k := range p1.Phases[ph] {
					seen = append(seen, k.Key)
				}
				continue
			}
			var total, heaviest int64
			for _, k := range p1.Phases[ph] {
				total += k.Weight
				heaviest = max(heaviest, k.Weight)
				if materializer.PhaseOf(k.Key) != ph {
					t.Errorf("%s in phase %s", k.Key, ph)
				}
			}
			count := 0
			for i := range n {
				var w int64
				for _, k := range p1.Keys(ph, materializer.Partition{I: i, N: n}) {
					w += k.Weight
					seen = append(seen, k.Key)
					count++
				}
				if w > total/int64(n)+heaviest {
					t.Errorf("n=%d phase %s partition %d: weight %d, equal share %d, heaviest key %d", n, ph, i, w, total/int64(n), heaviest)
				}
			}
			if count != len(p1.Phases[ph]) {
				t.Errorf("n=%d phase %s: partitions hold %d keys, phase has %d", n, ph, count, len(p1.Phases[ph]))
			}
		}
		slices.Sort(seen)
		want := slices.Sorted(slices.Values(all))
		if !slices.Equal(seen, want) {
			t.Errorf("n=%d: partitions and finalize hold %d keys, the store %d (or not the same)", n, len(seen), len(want))
		}
		if n == 4 {
			zs := p1.Summary()[0]
			t.Logf("zones phase, 4 partitions: %+v", zs.Partitions)
		}
	}
}
