package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tesserafs/tesserafs/fusefs"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/testtiles"
)

// TestStoreFlagsSameEverywhere checks that every command that opens a
// store has the store flags, with the same meaning (usage) and default.
func TestStoreFlagsSameEverywhere(t *testing.T) {
	var ref storeOptions
	want := pflag.NewFlagSet("ref", pflag.ContinueOnError)
	ref.register(want)
	names := []string{"tiles", "year", "zones", "workers", "stretch"}
	cmds := map[string]func() *cobra.Command{
		"mount": newMountCmd, "materialize": newMaterializeCmd, "preview": newPreviewCmd, "cache warm": newCacheWarmCmd,
	}
	for name, mk := range cmds {
		t.Run(name, func(t *testing.T) {
			fs := mk().Flags()
			for _, f := range names {
				got, w := fs.Lookup(f), want.Lookup(f)
				if w == nil {
					t.Fatalf("storeOptions does not register --%s", f)
				}
				if got == nil {
					t.Errorf("no --%s", f)
					continue
				}
				if got.Usage != w.Usage || got.DefValue != w.DefValue || got.Value.Type() != w.Value.Type() {
					t.Errorf("--%s: %q (default %q), want %q (default %q)", f, got.Usage, got.DefValue, w.Usage, w.DefValue)
				}
			}
		})
	}
}

// TestMaterializeEqualsMount runs the materialize and mount commands with
// the same flags, for each --stretch, and compares the materialized tree
// with the mount file by file, byte for byte. The zone and global trees
// must differ in their rgb previews: otherwise --stretch was ignored.
func TestMaterializeEqualsMount(t *testing.T) {
	requireFUSE(t)
	if testing.Short() {
		t.Skip("generates every key of two zones, twice per stretch")
	}
	tiles := testtiles.Root(t, "test")
	trees := map[string]map[string][]byte{}
	for _, stretch := range []string{"zone", "global"} {
		t.Run(stretch, func(t *testing.T) {
			so := storeOptions{tileOptions: tileOptions{Tiles: tiles, Workers: 2, Zones: []int{30, 31}}, Stretch: stretch}
			out := t.TempDir()
			if err := runMaterialize(context.Background(), materializeOptions{storeOptions: so, Out: out}, io_discard{}); err != nil {
				t.Fatal(err)
			}
			want := readTree(t, out)
			trees[stretch] = want

			mp := filepath.Join(t.TempDir(), "mnt")
			os.Mkdir(mp, 0o755)
			t.Cleanup(func() {
				if fusefs.IsMounted(mp) {
					fusefs.LazyUnmount(mp)
				}
			})
			ctx, cancel := context.WithCancel(context.Background())
			ready := make(chan *store.Store, 1)
			o := mountOptions{storeOptions: so,
				cacheOptions: cacheOptions{Cache: filepath.Join(t.TempDir(), "cache"), CacheSize: "1GiB"},
				onReady:      func(_ *fusefs.Server, st *store.Store) { ready <- st }}
			done := make(chan error, 1)
			go func() { done <- runMount(ctx, o, mp, io_discard{}) }()
			select {
			case <-ready:
			case err := <-done:
				t.Fatalf("mount returned early: %v", err)
			case <-time.After(30 * time.Second):
				t.Fatal("not ready after 30 s")
			}
			got := readTree(t, mp)
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			names := func(m map[string][]byte) []string {
				var k []string
				for n := range m {
					k = append(k, n)
				}
				slices.Sort(k)
				return k
			}
			if !slices.Equal(names(got), names(want)) {
				t.Fatalf("file lists differ: mount %d files, materialized %d", len(got), len(want))
			}
			for k, v := range want {
				if !bytes.Equal(got[k], v) {
					t.Errorf("%s: mount has %d bytes, materialized %d, contents differ", k, len(got[k]), len(v))
				}
			}
			t.Logf("--stretch %s: %d files byte-identical", stretch, len(want))
		})
	}
	zone, global := trees["zone"], trees["global"]
	if zone == nil || global == nil {
		return
	}
	rgbDiffer, metaDiffer := 0, 0
	for k, v := range zone {
		if bytes.Equal(v, global[k]) {
			continue
		}
		switch {
		case strings.Contains(k, "/rgb/c/"):
			rgbDiffer++
		case strings.HasPrefix(k, "geotessera-") && strings.HasSuffix(k, ".json") && sameBarStretch(t, v, global[k]):
			metaDiffer++ // the zone items' tessera:rgb_stretch (no zarr.json carries it)
		default:
			t.Errorf("%s differs between --stretch zone and global, but is neither an rgb chunk nor a STAC item's tessera:rgb_stretch", k)
		}
	}
	if rgbDiffer == 0 {
		t.Error("--stretch global gave the same rgb chunks as --stretch zone")
	}
	if metaDiffer == 0 {
		t.Error("--stretch global recorded the same tessera:rgb_stretch as --stretch zone")
	}
	t.Logf("%d rgb chunks and %d STAC items (tessera:rgb_stretch) differ between the stretches", rgbDiffer, metaDiffer)
}

// sameBarStretch reports whether two JSON documents are equal once
// every tessera:rgb_stretch attribute is removed from both.
func sameBarStretch(t *testing.T, a, b []byte) bool {
	t.Helper()
	var strip func(v any) any
	strip = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			delete(v, "tessera:rgb_stretch")
			for k, x := range v {
				v[k] = strip(x)
			}
		case []any:
			for i, x := range v {
				v[i] = strip(x)
			}
		}
		return v
	}
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(strip(va), strip(vb))
}
