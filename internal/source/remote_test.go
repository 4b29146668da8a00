package source

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/testservers"
	"github.com/tesserafs/tesserafs/internal/testtiles"
)

// testOpts are fast retries (but a Retry-After of 1 s is honoured), a
// small block, so a file spans many blocks, and a short DownFor.
func testOpts() Options {
	return Options{BlockSize: 256 << 10, MaxRun: 8, Backoff: 5 * time.Millisecond, MaxBackoff: 1500 * time.Millisecond,
		IdleTimeout: 500 * time.Millisecond, HeaderTimeout: 2 * time.Second, DownFor: testDownFor}
}

// testDownFor is testOpts' DownFor: how long a file that failed
// transiently fails fast, before the server is tried again.
const testDownFor = 100 * time.Millisecond

// someFiles are a tile's embeddings and scales and a landmask of the test
// preset, relative to the root.
func someFiles(t *testing.T, root string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(root, index.RepresentationDir, "*", "*", "*.npy"))
	if err != nil || len(m) < 2 {
		t.Fatalf("no tiles under %s", root)
	}
	lm, _ := filepath.Glob(filepath.Join(root, index.LandmaskDir, "*.tiff"))
	files := append(m[:2:2], lm[:1]...)
	for i, f := range files {
		files[i], _ = filepath.Rel(root, f)
	}
	return files
}

// readAll reads rel through src in random pieces and compares it with the
// local file, the oracle.
// With indexed, the file is opened against its local size, as the
// generators open a tile against its index stamp.
func readAll(ctx context.Context, src index.Source, root, rel string, rng *rand.Rand, indexed bool) error {
	want, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		return err
	}
	var f index.SourceFile
	if name := src.Path(filepath.ToSlash(rel)); indexed {
		f, err = index.OpenStamp(ctx, src, index.FileStamp{Path: name, Size: int64(len(want))})
	} else {
		f, err = src.Open(ctx, name)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if f.Stamp().Size != int64(len(want)) {
		return errors.New("size differs")
	}
	got := make([]byte, len(want))
	for off := 0; off < len(want); {
		n := min(1+rng.IntN(700<<10), len(want)-off)
		if _, err := f.ReadAt(got[off:off+n], int64(off)); err != nil {
			return err
		}
		off += n
	}
	if !bytes.Equal(got, want) {
		return errors.New("bytes differ from the local file")
	}
	return nil
}

func TestRemoteReadsMatchDisk(t *testing.T) {
	root := testtiles.Root(t, "test")
	base := testservers.Nginx(t, root)
	files := someFiles(t, root)
	ctx := context.Background()

	// Every fault, on the first attempt of every distinct request: the
	// bytes must come out identical after retries.
	for _, f := range []testservers.Fault{testservers.Pass, testservers.Drop, testservers.Reset, testservers.Truncate, testservers.Status503, testservers.Status429, testservers.Stall} {
		t.Run("transient-"+f.String(), func(t *testing.T) {
			var seen sync.Map
			p := &testservers.FaultProxy{Upstream: base, Plan: func(_ int64, r *http.Request) testservers.Fault {
				if _, again := seen.LoadOrStore(r.URL.Path+" "+r.Header.Get("Range"), true); again {
					return testservers.Pass
				}
				if f == testservers.Status429 && !strings.HasSuffix(r.URL.Path, ".tiff") {
					return testservers.Pass // one Retry-After wait is enough to show it
				}
				return f
			}}
			src, err := OpenWith(ctx, testservers.StartFaultProxy(t, p), testOpts())
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			rng := rand.New(rand.NewPCG(1, 2))
			for _, rel := range files {
				if err := readAll(ctx, src, root, rel, rng, false); err != nil {
					t.Fatalf("%s: %v", rel, err)
				}
			}
			st, _ := StatsOf(src)
			t.Logf("%s: %d requests, %d retries, %d faults injected, %d bytes in %v", f, st.Requests, st.Retries, p.Count(f), st.BytesFetched, time.Since(start).Round(time.Millisecond))
			if f != testservers.Pass && (st.Retries == 0 || p.Count(f) == 0) {
				t.Fatalf("no fault was injected or retried")
			}
			if f == testservers.Status429 && time.Since(start) < time.Second {
				t.Fatalf("Retry-After: 1 not honoured (%v)", time.Since(start))
			}
		})
	}

	// A fault on every request of one file: that file fails by URL, the
	// others are read, and once the fault is gone the file reads right
	// (nothing wrong was cached).
	for _, f := range []testservers.Fault{testservers.Drop, testservers.Reset, testservers.Truncate, testservers.Status503, testservers.LieRange, testservers.LieTotal, testservers.IgnoreRange} {
		t.Run("persistent-"+f.String(), func(t *testing.T) {
			bad := "/" + filepath.ToSlash(files[0])
			var on sync.Mutex
			broken := true
			p := &testservers.FaultProxy{Upstream: base, Plan: func(_ int64, r *http.Request) testservers.Fault {
				on.Lock()
				defer on.Unlock()
				if broken && r.URL.Path == bad {
					return f
				}
				return testservers.Pass
			}}
			src, err := OpenWith(ctx, testservers.StartFaultProxy(t, p), testOpts())
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(3, 4))
			err = readAll(ctx, src, root, files[0], rng, true)
			if err == nil || !strings.Contains(err.Error(), src.Path(filepath.ToSlash(files[0]))) {
				t.Fatalf("reading %s through a proxy that always answers %s: err = %v, want an error naming the URL", bad, f, err)
			}
			integrity := f == testservers.LieRange || f == testservers.LieTotal || f == testservers.IgnoreRange
			if integrity != errors.Is(err, errIntegrity) {
				t.Fatalf("%s: error %v, integrity failure = %v", f, err, errors.Is(err, errIntegrity))
			}
			if integrity && p.Count(f) != 1 {
				t.Fatalf("%s answered %d times: an integrity failure must not be retried", f, p.Count(f))
			}
			t.Logf("%s: %v (%d answers)", f, err, p.Count(f))
			for _, rel := range files[1:] {
				if err := readAll(ctx, src, root, rel, rng, false); err != nil {
					t.Fatalf("%s: %v", rel, err)
				}
			}
			on.Lock()
			broken = false
			on.Unlock()
			time.Sleep(testDownFor) // a transient failure is not tried again before
			if err := readAll(ctx, src, root, files[0], rng, true); err != nil {
				t.Fatalf("%s after the fault cleared: %v", files[0], err)
			}
		})
	}
}

func TestRemoteChecksIndexedStamp(t *testing.T) {
	root := testtiles.Root(t, "test")
	base := testservers.Nginx(t, root)
	lm := someFiles(t, root)[2]
	data, err := os.ReadFile(filepath.Join(root, lm))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	good := hex.EncodeToString(sum[:])
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		want index.FileStamp
		ok   bool
	}{
		{"right size and sha256", index.FileStamp{Size: int64(len(data)), SHA256: good}, true},
		{"wrong sha256", index.FileStamp{Size: int64(len(data)), SHA256: strings.Repeat("0", 64)}, false},
		{"wrong size", index.FileStamp{Size: int64(len(data)) + 1}, false},
		{"wrong ETag", index.FileStamp{Size: int64(len(data)), ETag: `"nope"`}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := OpenWith(ctx, base, testOpts())
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Path = src.Path(filepath.ToSlash(lm))
			f, err := src.(*Remote).OpenStamp(ctx, tc.want)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, tc.want.Size)
			_, err = f.ReadAt(buf, 0)
			if tc.ok != (err == nil || err.Error() == "EOF") {
				t.Fatalf("err = %v, want ok = %v", err, tc.ok)
			}
			if !tc.ok {
				if !errors.Is(err, errIntegrity) || !strings.Contains(err.Error(), tc.want.Path) {
					t.Fatalf("err = %v, want an integrity error naming the URL", err)
				}
				if st := src.(*Remote).Stats(); st.CacheBytes != 0 {
					t.Fatalf("%d bytes cached after a failed check", st.CacheBytes)
				}
			} else if !bytes.Equal(buf, data) {
				t.Fatal("bytes differ")
			}
		})
	}
}

// TestRemoteReplacedFile replaces a file on the server by another of the
// same size (no sha256 known, no ETag indexed) while its first half is in
// the block cache. A read that needs both halves must fail as an
// integrity error naming the URL rather than mix the versions, the stale
// blocks must be dropped, and the next read must give the new file whole.
func TestRemoteReplacedFile(t *testing.T) {
	dir := t.TempDir()
	const size = 1 << 20
	old, now := make([]byte, size), make([]byte, size)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range old {
		old[i], now[i] = byte(rng.Uint32()), byte(rng.Uint32())
	}
	path := filepath.Join(dir, "f.npy")
	if err := os.WriteFile(path, old, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	src, err := OpenWith(ctx, testservers.Nginx(t, dir), testOpts()) // 256 KiB blocks
	if err != nil {
		t.Fatal(err)
	}
	r := src.(*Remote)
	stamp := index.FileStamp{Path: src.Path("f.npy"), Size: size}
	read := func(off, n int64) ([]byte, error) {
		f, err := r.OpenStamp(ctx, stamp)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, n)
		_, err = f.ReadAt(buf, off)
		return buf, err
	}
	if b, err := read(0, size/2); err != nil || !bytes.Equal(b, old[:size/2]) {
		t.Fatalf("first half of the old file: err %v, equal %v", err, bytes.Equal(b, old[:size/2]))
	}
	// nginx's ETag is mtime and size: give the new version another mtime.
	if err := os.WriteFile(path, now, 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	_, err = read(0, size)
	if !errors.Is(err, errIntegrity) || !strings.Contains(err.Error(), stamp.Path) {
		t.Fatalf("reading across the cached old half and the new rest: err = %v, want an integrity error naming %s", err, stamp.Path)
	}
	t.Logf("mixed read: %v", err)
	if b, err := read(0, size); err != nil || !bytes.Equal(b, now) {
		t.Fatalf("the next read: err %v, new file %v, old file %v", err, bytes.Equal(b, now), bytes.Equal(b, old))
	}
	// Only the new version's blocks are cached now.
	if st := r.Stats(); st.CacheBytes != size {
		t.Errorf("%d bytes cached, want the new file's %d", st.CacheBytes, size)
	}
}

// TestRemoteOutageIsTransient: a file whose every request fails (503, or
// the server unreachable) fails after the retries with an error matching
// index.ErrUnavailable; while DownFor lasts, reads of it fail at once,
// without a request; once the server is back and DownFor has passed, the
// same read returns the file's bytes. A missing file (404) is not
// transient.
func TestRemoteOutageIsTransient(t *testing.T) {
	ctx := context.Background()
	root := testtiles.Root(t, "test")
	rel := someFiles(t, root)[0]
	var down sync.Map // path → fault
	p := &testservers.FaultProxy{Upstream: testservers.Nginx(t, root), Plan: func(_ int64, r *http.Request) testservers.Fault {
		if f, ok := down.Load(r.URL.Path); ok {
			return f.(testservers.Fault)
		}
		return testservers.Pass
	}}
	opts := testOpts()
	opts.DownFor = 300 * time.Millisecond // longer than a failing read's retries
	src, err := OpenWith(ctx, testservers.StartFaultProxy(t, p), opts)
	if err != nil {
		t.Fatal(err)
	}
	name := src.Path(filepath.ToSlash(rel))
	urlPath := "/" + filepath.ToSlash(rel)
	for _, fault := range []testservers.Fault{testservers.Status503, testservers.Drop} {
		t.Run(fault.String(), func(t *testing.T) {
			time.Sleep(opts.DownFor) // the previous case's entry expires
			down.Store(urlPath, fault)
			if _, err := src.Open(ctx, name); !errors.Is(err, index.ErrUnavailable) {
				t.Fatalf("with %s: %v, want an error matching ErrUnavailable", fault, err)
			}
			before := p.Requests()
			start := time.Now()
			_, err := src.Open(ctx, name)
			if !errors.Is(err, index.ErrUnavailable) || p.Requests() != before || time.Since(start) > 50*time.Millisecond {
				t.Errorf("second read while down: %v after %v, %d requests; want ErrUnavailable at once, none", err, time.Since(start), p.Requests()-before)
			}
			down.Delete(urlPath)
			time.Sleep(opts.DownFor + 50*time.Millisecond)
			if err := readAll(ctx, src, root, rel, rand.New(rand.NewPCG(1, 2)), false); err != nil {
				t.Errorf("after the server is back: %v", err)
			}
		})
	}
	down.Store(urlPath, testservers.Status404)
	time.Sleep(opts.DownFor)
	if _, err := src.Open(ctx, name); err == nil || errors.Is(err, index.ErrUnavailable) {
		t.Errorf("a missing file: %v, want an error that is not ErrUnavailable", err)
	}
}
