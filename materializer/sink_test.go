package materializer_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
	"github.com/tesserafs/tesserafs/internal/s3conf"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/testservers"
	"github.com/tesserafs/tesserafs/internal/testtiles"
	"github.com/tesserafs/tesserafs/materializer"
)

// TestSinks checks the write-once contract on a directory and on a real S3
// server (versitygw): a new key is written, the same bytes again are "done
// already", other bytes are a named conflict that leaves the key as it
// was, and of many concurrent writers of one key exactly one writes.
func TestSinks(t *testing.T) {
	sinks := map[string]func(t *testing.T) materializer.Sink{
		"dir": func(t *testing.T) materializer.Sink { return materializer.NewDirSink(t.TempDir()) },
		"s3": func(t *testing.T) materializer.Sink {
			srv := testservers.Versity(t)
			srv.CreateBucket(t, "sink-test")
			return &materializer.S3Sink{Client: srv.Client(), Loc: s3conf.Location{Bucket: "sink-test", Prefix: "p/q/"}}
		},
	}
	for name, mk := range sinks {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := mk(t)
			if c, ok := s.(interface{ Close() error }); ok {
				defer c.Close()
			}
			key := "2024.zarr/utm30/embeddings/c/1/2/0"
			data := bytes.Repeat([]byte("shard"), 100000)
			if _, ok, err := s.Get(ctx, key); ok || err != nil {
				t.Fatalf("Get of an absent key: ok %v, err %v", ok, err)
			}
			if wrote, err := s.Put(ctx, key, data); !wrote || err != nil {
				t.Fatalf("first Put: wrote %v, err %v", wrote, err)
			}
			if wrote, err := s.Put(ctx, key, data); wrote || err != nil {
				t.Fatalf("same bytes again: wrote %v, err %v; want not written, no error", wrote, err)
			}
			other := append([]byte("x"), data[1:]...)
			_, err := s.Put(ctx, key, other)
			var ce *materializer.ConflictError
			if !errors.As(err, &ce) || !errors.Is(err, materializer.ErrConflict) || ce.Key != key {
				t.Fatalf("other bytes: err %v, want a ConflictError naming %s", err, key)
			}
			if got, ok, err := s.Get(ctx, key); !ok || err != nil || !bytes.Equal(got, data) {
				t.Fatalf("after the conflict the key holds %d bytes (ok %v, err %v), want the first write", len(got), ok, err)
			}

			// Concurrent writers of one new key: one writes, the others
			// find it done; nobody errs.
			key2 := "2024.zarr/global_rgb/0/rgb/c/3/4/0"
			var mu sync.Mutex
			writes := 0
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					wrote, err := s.Put(ctx, key2, data)
					if err != nil {
						t.Errorf("writer %d: %v", i, err)
					}
					mu.Lock()
					if wrote {
						writes++
					}
					mu.Unlock()
				}()
			}
			wg.Wait()
			if writes != 1 {
				t.Errorf("%d concurrent writers wrote, want exactly 1", writes)
			}
			// A sink's own entry (a run's state key) is not listed, and
			// Delete removes it; deleting an absent key is no error.
			const own = ".tesserafs-materialize.json"
			if _, err := s.Put(ctx, own, []byte("{}")); err != nil {
				t.Fatal(err)
			}
			var keys []string
			if err := s.List(ctx, "", func(k string) error { keys = append(keys, k); return nil }); err != nil {
				t.Fatal(err)
			}
			if want := slices.Sorted(slices.Values([]string{key, key2})); !slices.Equal(keys, want) {
				t.Errorf("List = %v, want exactly %s and %s", keys, key, key2)
			}
			for range 2 {
				if err := s.Delete(ctx, own); err != nil {
					t.Fatalf("Delete %s: %v", own, err)
				}
			}
			if _, ok, err := s.Get(ctx, own); ok || err != nil {
				t.Errorf("after Delete: ok %v, err %v", ok, err)
			}
		})
	}
}

func TestParsePartition(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want materializer.Partition
		ok   bool
	}{
		{"0/1", materializer.Partition{I: 0, N: 1}, true},
		{"3/4", materializer.Partition{I: 3, N: 4}, true},
		{"4/4", materializer.Partition{}, false},
		{"-1/4", materializer.Partition{}, false},
		{"1/0", materializer.Partition{}, false},
		{"1", materializer.Partition{}, false},
		{"a/4", materializer.Partition{}, false},
	} {
		got, err := materializer.ParsePartition(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParsePartition(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestPhaseOf(t *testing.T) {
	for key, want := range map[string]string{
		"2024.zarr/utm30/embeddings/c/0/1/0":   materializer.PhaseZones,
		"2024.zarr/utm30/scales/c/0/1":         materializer.PhaseZones,
		"2024.zarr/utm30/rgb/c/0/1/0":          materializer.PhaseZones,
		"2024.zarr/utm30/easting/c/0":          materializer.PhaseFinalize,
		"2024.zarr/utm30/band/c/0":             materializer.PhaseFinalize,
		"2024.zarr/global_rgb/0/rgb/c/5/6/0":   materializer.PhaseGlobal0,
		"2024.zarr/global_rgb/3/rgb/c/5/6/0":   materializer.PhaseGlobal,
		"2024.zarr/global_rgb/3/band/c/0":      materializer.PhaseFinalize,
		"2024.zarr/zarr.json":                  materializer.PhaseFinalize,
		"2024.zarr/utm30/embeddings/zarr.json": materializer.PhaseFinalize,
		"catalog.json":                         materializer.PhaseFinalize,
	} {
		if got := materializer.PhaseOf(key); got != want {
			t.Errorf("PhaseOf(%s) = %s, want %s", key, got, want)
		}
	}
}

// TestPartitionsClaimOutput runs partitions into one directory: the first
// claims it for its store's inputs, a partition of a store of other inputs
// is refused before it writes anything, and the other partition of the
// same store reads the first one's zone rgb back (its read-through) rather
// than generating it.
func TestPartitionsClaimOutput(t *testing.T) {
	tiles := testtiles.Root(t, "test")
	ctx := context.Background()
	out := t.TempDir()
	open := func(zones []int) *store.Store {
		cat, err := index.Discover(ctx, tiles, index.Options{Zones: zones})
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.New(cat, store.Options{Workers: 1, Build: generate.Build{BuildVersion: "test"},
			ReadThrough: materializer.NewOutputReadThrough(materializer.NewDirSink(out))})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	part := func(i int) materializer.Options {
		return materializer.Options{Workers: 1, Partition: materializer.Partition{I: i, N: 2}}
	}
	st := open(nil)
	if _, err := materializer.RunTo(ctx, st, materializer.NewDirSink(out), withPhase(part(0), materializer.PhaseZones)); err != nil {
		t.Fatal(err)
	}
	before := tree(t, out)
	if _, err := materializer.RunTo(ctx, open([]int{34}), materializer.NewDirSink(out), part(1)); err == nil ||
		!strings.Contains(err.Error(), "other tiles or options") {
		t.Fatalf("partition of other inputs: err = %v, want refused", err)
	}
	if after := tree(t, out); len(after) != len(before) {
		t.Errorf("the refused partition wrote %d files", len(after)-len(before))
	}
	// global0 of the whole store: every level-0 chunk reads zone rgb, all
	// of it written above by partition 0 or below by partition 1.
	st2 := open(nil)
	if _, err := materializer.RunTo(ctx, st2, materializer.NewDirSink(out), withPhase(part(1), materializer.PhaseZones)); err != nil {
		t.Fatal(err)
	}
	zonesGen := st2.Stats().Generated
	st3 := open(nil)
	sum, err := materializer.RunTo(ctx, st3, materializer.NewDirSink(out), withPhase(materializer.Options{Workers: 1}, materializer.PhaseGlobal0))
	if err != nil {
		t.Fatal(err)
	}
	if gen := st3.Stats().Generated; gen != sum.Written {
		t.Errorf("global0 generated %d chunks for %d written: zone rgb was recomputed, not read back", gen, sum.Written)
	}
	t.Logf("partition 1 zones generated %d; global0 wrote %d", zonesGen, sum.Written)
}

func withPhase(o materializer.Options, ph string) materializer.Options {
	o.Phase = ph
	return o
}
