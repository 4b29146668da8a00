package materializer_test

import (
	"bytes"
	"context"
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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

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
	st, err := store.New(cat, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if _, err := materializer.Run(ctx, st, out, materializer.Options{}); err != nil {
		t.Fatal(err)
	}
	return out
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
		c := srv.Client()
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("tiles"), Key: aws.String("v1/" + filepath.ToSlash(rel)), Body: f})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
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
