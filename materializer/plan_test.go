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

// The tesserafs store is a materializer.Store.
var _ materializer.Store = (*store.Store)(nil)

// TestPlanSplit checks the partition split on a block of 16 tiles: every
// data key of the store (its own walk, probing which scales and rgb shards
// exist) belongs to exactly one partition; two plans made apart agree unit
// by unit; OwnerOf agrees with the units; the split follows the weights (no
// partition exceeds an equal share by more than the heaviest unit); and
// the summary counts what the partitions hold.
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
	var data []string
	if err := st.Walk(ctx, "", func(k string) error {
		if materializer.PhaseOf(k) != materializer.PhaseFinalize {
			data = append(data, k)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(data)
	// The finalize phase's keys: every other key, found without walking
	// the data chunk directories.
	var all, fin int
	st.Walk(ctx, "", func(string) error { all++; return nil })
	if err := materializer.FinalizeKeys(ctx, st, func(k string) error {
		if materializer.PhaseOf(k) != materializer.PhaseFinalize {
			t.Errorf("FinalizeKeys gives data key %s", k)
		}
		fin++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fin != all-len(data) {
		t.Errorf("FinalizeKeys gave %d keys, want %d (all %d, data %d)", fin, all-len(data), all, len(data))
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
		sum := p1.Summary(0)
		for pi, ph := range materializer.DataPhases {
			var total, heaviest uint64
			weights := make([]uint64, n)
			for i := range n {
				part := materializer.Partition{I: i, N: n}
				u1, err := p1.Units(ctx, ph, part)
				if err != nil {
					t.Fatal(err)
				}
				u2, _ := p2.Units(ctx, ph, part)
				if !slices.Equal(u1, u2) {
					t.Errorf("n=%d phase %s partition %d: two plans of the same tiles differ", n, ph, i)
				}
				keys := 0
				for _, u := range u1 {
					if u.Owner != i || u.Phase != ph {
						t.Errorf("n=%d: unit %+v given to partition %d of phase %s", n, u, i, ph)
					}
					weights[i] += u.Weight
					total += u.Weight
					heaviest = max(heaviest, u.Weight)
					for _, k := range u.Keys() {
						keys++
						if materializer.PhaseOf(k) != ph {
							t.Errorf("%s in phase %s", k, ph)
						}
						if kp, owner, ok := p1.OwnerOf(k); !ok || owner != i || kp != ph {
							t.Errorf("n=%d: OwnerOf(%s) = %s %d %v, want %s %d", n, k, kp, owner, ok, ph, i)
						}
						if st.Exists(k) {
							seen = append(seen, k)
						}
					}
				}
				if got := sum[pi].Partitions[i]; got.Keys != keys || got.Weight != weights[i] {
					t.Errorf("n=%d phase %s partition %d: summary %+v, units hold %d keys of weight %d", n, ph, i, got, keys, weights[i])
				}
			}
			for i, w := range weights {
				if w > total/uint64(n)+heaviest {
					t.Errorf("n=%d phase %s partition %d: weight %d, equal share %d, heaviest unit %d", n, ph, i, w, total/uint64(n), heaviest)
				}
			}
		}
		slices.Sort(seen)
		if !slices.Equal(seen, data) {
			t.Errorf("n=%d: partitions hold %d data keys, the store %d (or not the same)", n, len(seen), len(data))
		}
		if n == 4 {
			t.Logf("zones phase, 4 partitions: %+v", sum[0].Partitions)
		}
	}
}
