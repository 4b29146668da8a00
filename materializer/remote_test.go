package materializer_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/source"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/testservers"
	"github.com/tesserafs/tesserafs/internal/testtiles"
	"github.com/tesserafs/tesserafs/materializer"
)

// materializeFrom indexes the local root (zone 30 of the test preset),
// points the index at src unless src is nil, and materializes it.
func materializeFrom(t *testing.T, root string, src index.Source) string {
	t.Helper()
	out := t.TempDir()
	if _, err := materializeInto(t, root, src, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// materializeInto is materializeFrom into out, returning the run's result.
func materializeInto(t *testing.T, root string, src index.Source, out string) (materializer.Summary, error) {
	t.Helper()
	ctx := context.Background()
	cat, err := index.Discover(ctx, root, index.Options{Zones: []int{30}})
	if err != nil {
		t.Fatal(err)
	}
	if src != nil {
		if err := source.Rebase(cat, src); err != nil {
			t.Fatal(err)
		}
	}
	st, err := store.New(cat, store.Options{ReadThrough: materializer.NewOutputReadThrough(materializer.NewDirSink(out))})
	if err != nil {
		t.Fatal(err)
	}
	return materializer.Run(ctx, st, out, materializer.Options{})
}

// sameTree compares two materialized trees file for file (the run's own
// state file, which names its inputs, aside).
func sameFiles(t *testing.T, want, got string) int {
	t.Helper()
	files := map[string]bool{}
	walk := func(dir string) {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(dir, p)
			if !d.IsDir() && !strings.HasPrefix(rel, ".tesserafs-") {
				files[rel] = true
			}
			return nil
		})
	}
	walk(want)
	walk(got)
	for rel := range files {
		a, errA := os.ReadFile(filepath.Join(want, rel))
		b, errB := os.ReadFile(filepath.Join(got, rel))
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs (%v, %v)", rel, errA, errB)
		}
	}
	return len(files)
}

// TestMaterializeRemoteIsLocal materializes the same tiles from local disk,
// from nginx over HTTP (directly, and through a proxy that breaks the
// first attempt of a third of the requests), and from versitygw over S3:
// every tree must be byte-identical to the local one.
func TestMaterializeRemoteIsLocal(t *testing.T) {
	if testing.Short() {
		t.Skip("materializes four times")
	}
	root := testtiles.Root(t, "test")
	want := materializeFrom(t, root, nil)
	ctx := context.Background()

	t.Run("http", func(t *testing.T) {
		src, err := source.Open(ctx, testservers.Nginx(t, root))
		if err != nil {
			t.Fatal(err)
		}
		n := sameFiles(t, want, materializeFrom(t, root, src))
		st, _ := source.StatsOf(src)
		t.Logf("%d files identical; %d requests, %d bytes fetched", n, st.Requests, st.BytesFetched)
	})

	t.Run("http-faults", func(t *testing.T) {
		up, _ := url.Parse(testservers.Nginx(t, root))
		rp := httputil.NewSingleHostReverseProxy(up)
		var seen sync.Map
		var n, broken atomic.Int64
		proxy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			k := r.URL.Path + " " + r.Header.Get("Range")
			if _, again := seen.LoadOrStore(k, true); !again && n.Add(1)%3 == 0 {
				broken.Add(1)
				if broken.Load()%2 == 0 {
					w.Header().Set("Retry-After", "0")
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				panic(http.ErrAbortHandler) // the connection is dropped
			}
			rp.ServeHTTP(w, r)
		})
		srv := &http.Server{Handler: proxy}
		ln := testListen(t)
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		src, err := source.OpenWith(ctx, "http://"+ln.Addr().String()+"/", source.Options{Backoff: 5e6})
		if err != nil {
			t.Fatal(err)
		}
		files := sameFiles(t, want, materializeFrom(t, root, src))
		st, _ := source.StatsOf(src)
		if broken.Load() == 0 || st.Retries == 0 {
			t.Fatalf("no fault injected (%d) or retried (%d)", broken.Load(), st.Retries)
		}
		t.Logf("%d files identical; %d faults injected, %d retries", files, broken.Load(), st.Retries)
	})

	t.Run("s3", func(t *testing.T) {
		srv := testservers.Versity(t)
		srv.CreateBucket(t, "tiles")
		srv.Upload(t, root, "tiles", "v1/")
		srv.Setenv(t)
		src, err := source.Open(ctx, "s3://tiles/v1/")
		if err != nil {
			t.Fatal(err)
		}
		files := sameFiles(t, want, materializeFrom(t, root, src))
		st, _ := source.StatsOf(src)
		t.Logf("%d files identical; %d requests, %d bytes fetched", files, st.Requests, st.BytesFetched)
	})
}

func testListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestMaterializeSkipsFailingTile serves the tiles through a fault proxy
// that fails every request for one tile's embeddings (each fault kind in
// turn): the run must write every other file, byte-identical to a local
// materialize, leave out exactly files that the tile feeds, name the tile's
// URL in each failure, hold back the year's root zarr.json, and return
// ErrIncomplete; a rerun with the fault gone must finish the tree to the
// local one.
func TestMaterializeSkipsFailingTile(t *testing.T) {
	if testing.Short() {
		t.Skip("materializes several times")
	}
	root := testtiles.Root(t, "test")
	want := materializeFrom(t, root, nil)
	base := testservers.Nginx(t, root)
	ctx := context.Background()
	cat, err := index.Discover(ctx, root, index.Options{Zones: []int{30}})
	if err != nil {
		t.Fatal(err)
	}
	tile := cat.Years[0].Zones[0].Placements[0].Tile
	rel, err := filepath.Rel(root, tile.EmbeddingsPath())
	if err != nil {
		t.Fatal(err)
	}
	badPath := "/" + filepath.ToSlash(rel)

	for _, f := range []testservers.Fault{testservers.Status503, testservers.Reset, testservers.LieTotal, testservers.Status404} {
		t.Run(f.String(), func(t *testing.T) {
			var broken atomic.Bool
			broken.Store(true)
			p := &testservers.FaultProxy{Upstream: base, Plan: func(_ int64, r *http.Request) testservers.Fault {
				if broken.Load() && r.URL.Path == badPath {
					return f
				}
				return testservers.Pass
			}}
			src, err := source.OpenWith(ctx, testservers.StartFaultProxy(t, p), source.Options{Backoff: 2e6, MaxBackoff: 2e7, DownFor: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			url := src.Path(filepath.ToSlash(rel))
			out := t.TempDir()
			sum, err := materializeInto(t, root, src, out)
			if !errors.Is(err, materializer.ErrIncomplete) {
				t.Fatalf("run with %s broken: err = %v, want ErrIncomplete", url, err)
			}
			if sum.Failed == 0 || int(sum.Failed) != len(sum.Failures) {
				t.Fatalf("summary: %d failed, %d failures listed", sum.Failed, len(sum.Failures))
			}
			for _, fl := range sum.Failures {
				if !strings.Contains(fl.Err.Error(), url) || !strings.Contains(fl.Err.Error(), tile.Coord.String()) {
					t.Errorf("failure of %s does not name tile %s and %s: %v", fl.Key, tile.Coord, url, fl.Err)
				}
				if _, err := os.Stat(filepath.Join(out, fl.Key)); err == nil {
					t.Errorf("%s failed but was written", fl.Key)
				}
			}
			if len(sum.HeldBack) != 1 {
				t.Errorf("held back %v, want the year's root zarr.json", sum.HeldBack)
			}
			// Every file written equals the local one; the missing ones
			// are exactly the failures and the held-back root.
			missing := map[string]bool{}
			for _, fl := range sum.Failures {
				missing[filepath.FromSlash(fl.Key)] = true
			}
			for _, k := range sum.HeldBack {
				missing[filepath.FromSlash(k)] = true
			}
			filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
				rel, _ := filepath.Rel(want, p)
				if err != nil || d.IsDir() || strings.HasPrefix(rel, ".tesserafs-") {
					return err
				}
				a, _ := os.ReadFile(p)
				b, errB := os.ReadFile(filepath.Join(out, rel))
				switch {
				case missing[rel] && errB == nil:
					t.Errorf("%s is listed as left out but exists", rel)
				case !missing[rel] && errB != nil:
					t.Errorf("%s is missing but not listed as a failure: %v", rel, errB)
				case errB == nil && !bytes.Equal(a, b):
					t.Errorf("%s differs from the local materialize", rel)
				}
				return nil
			})
			t.Logf("%s: %d files written, %d left out, e.g. %s: %v", f, sum.Written, sum.Failed, sum.Failures[0].Key, sum.Failures[0].Err)

			broken.Store(false)
			time.Sleep(100 * time.Millisecond) // the source's DownFor of the failed tile
			sum2, err := materializeInto(t, root, src, out)
			if err != nil {
				t.Fatalf("rerun with the fault gone: %v", err)
			}
			if sum2.Written != sum.Failed+int64(len(sum.HeldBack)) {
				t.Errorf("rerun wrote %d files, want the %d left out + %d held back", sum2.Written, sum.Failed, len(sum.HeldBack))
			}
			sameFiles(t, want, out)
		})
	}
}
