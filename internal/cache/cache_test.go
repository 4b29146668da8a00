package cache

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func fp(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

// pool is random bytes that values are cut from (badger does not
// compress, so a value's content matters only to check it comes back).
var pool = func() []byte {
	b := make([]byte, 4<<20)
	rand.NewChaCha8([32]byte{1}).Read(b)
	return b
}()

// value is deterministic bytes for a seed: the seed, then pool bytes from
// an offset that depends on it.
func value(seed uint64, n int) []byte {
	b := make([]byte, n)
	off := int(seed*7919) % (len(pool) / 2)
	for i := 0; i < n; {
		i += copy(b[i:], pool[off:])
		off = 0
	}
	var s [8]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	copy(b, s[:])
	return b
}

func open(t testing.TB, dir string, budget int64) *Cache {
	t.Helper()
	c, err := Open(dir, Options{Budget: budget, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestGetPutSize(t *testing.T) {
	c := open(t, t.TempDir(), 64<<20)
	pieceSize := int(c.pieceSize)
	tests := []struct {
		name string
		key  string
		fp   []byte
		n    int
	}{
		{"empty", "a/zarr.json", fp("1"), 0},
		{"small", "2024.zarr/utm30/scales/c/0/0", fp("1"), 100},
		{"one piece exactly", "2024.zarr/utm30/embeddings/c/0/0/0", fp("1"), pieceSize},
		{"several pieces", "2024.zarr/utm30/embeddings/c/0/1/0", fp("1"), 3*pieceSize + 17},
		{"same key other fingerprint", "2024.zarr/utm30/embeddings/c/0/1/0", fp("2"), 1000},
		{"short fingerprint", "k", []byte{1}, 10},
		{"fingerprint prefix of another", "k", []byte{1, 2}, 11},
	}
	for i, tt := range tests {
		want := value(uint64(i), tt.n)
		c.Put(tt.key, tt.fp, want)
		t.Run(tt.name, func(t *testing.T) {
			got, ok := c.Get(tt.key, tt.fp)
			if !ok || !bytes.Equal(got, want) {
				t.Fatalf("Get = %d bytes, %v; want %d bytes", len(got), ok, len(want))
			}
			if n, ok := c.Size(tt.key, tt.fp); !ok || n != int64(tt.n) {
				t.Fatalf("Size = %d, %v; want %d", n, ok, tt.n)
			}
		})
	}
	// Every value is still there: no later Put overwrote an earlier one.
	for i, tt := range tests {
		if got, ok := c.Get(tt.key, tt.fp); !ok || !bytes.Equal(got, value(uint64(i), tt.n)) {
			t.Errorf("%s: value changed", tt.name)
		}
	}
	misses := []struct {
		name, key string
		fp        []byte
	}{
		{"unknown key", "nope", fp("1")},
		{"other fingerprint", "2024.zarr/utm30/scales/c/0/0", fp("3")},
		{"no fingerprint", "k", nil},
		{"key prefix", "2024.zarr/utm30/scales/c/0", fp("1")},
	}
	for _, tt := range misses {
		t.Run("miss/"+tt.name, func(t *testing.T) {
			if _, ok := c.Get(tt.key, tt.fp); ok {
				t.Error("Get hit")
			}
			if _, ok := c.Size(tt.key, tt.fp); ok {
				t.Error("Size hit")
			}
		})
	}
	st := c.Stats()
	if st.Entries != int64(len(tests)) || st.Hits != 2*int64(len(tests)) || st.Misses != int64(len(misses)) {
		t.Errorf("stats %+v: want %d entries, %d hits, %d misses", st, len(tests), 2*len(tests), len(misses))
	}
}

// TestPin reads ranges of a value of several pieces (64 MiB budget:
// 512 KiB pieces) and checks them against the value itself.
func TestPin(t *testing.T) {
	c := open(t, t.TempDir(), 64<<20)
	ps := int(c.pieceSize)
	size := 3*ps + 17
	want := value(42, size)
	c.Put("2024.zarr/utm30/embeddings/c/0/0/0", fp("1"), want)
	c.Put("empty", fp("1"), nil)
	tests := []struct {
		name    string
		off, n  int
		wantLen int
	}{
		{"start", 0, 100, 100},
		{"inside a piece", 1000, 4096, 4096},
		{"up to a piece end", ps - 10, 10, 10},
		{"across one boundary", ps - 10, 20, 20},
		{"across two boundaries", ps - 1, ps + 2, ps + 2},
		{"the short last piece", 3 * ps, 17, 17},
		{"clipped at the end", size - 5, 100, 5},
		{"whole value", 0, size, size},
		{"at the end", size, 10, 0},
		{"past the end", size + 10, 10, 0},
		{"empty buffer", 5, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			slices, release, ok := c.Pin("2024.zarr/utm30/embeddings/c/0/0/0", fp("1"), int64(tt.off), tt.n)
			if !ok {
				t.Fatal("Pin missed")
			}
			got := bytes.Join(slices, nil)
			release()
			if len(got) != tt.wantLen {
				t.Fatalf("Pin gave %d bytes in %d slices, want %d", len(got), len(slices), tt.wantLen)
			}
			if from := min(tt.off, size); !bytes.Equal(got, want[from:from+len(got)]) {
				t.Fatal("Pin bytes differ from the value")
			}
		})
	}
	if slices, release, ok := c.Pin("empty", fp("1"), 0, 4); !ok || len(slices) != 0 {
		t.Errorf("empty value: Pin = %d slices, %v; want none, true", len(slices), ok)
	} else {
		release()
	}
	for _, miss := range []struct{ key, fp string }{{"2024.zarr/utm30/embeddings/c/0/0/0", "2"}, {"nope", "1"}} {
		if _, release, ok := c.Pin(miss.key, fp(miss.fp), 0, 4); ok || release != nil {
			t.Errorf("Pin(%s, fp %s) hit", miss.key, miss.fp)
		}
	}
	if st := c.Stats(); st.Hits != int64(len(tests)+1) || st.Misses != 2 {
		t.Errorf("stats %+v: want %d hits and 2 misses", st, len(tests)+1)
	}
	// Clear waits for pins to be released, then the entry is gone.
	slices, release, ok := c.Pin("2024.zarr/utm30/embeddings/c/0/0/0", fp("1"), 0, 10)
	if !ok || len(slices) != 1 {
		t.Fatalf("Pin = %d slices, %v", len(slices), ok)
	}
	cleared := make(chan error)
	go func() { cleared <- c.Clear() }()
	select {
	case err := <-cleared:
		t.Fatalf("Clear returned (%v) while a pin was held", err)
	case <-time.After(50 * time.Millisecond):
	}
	release()
	if err := <-cleared; err != nil {
		t.Fatal(err)
	}
	if _, _, ok := c.Pin("2024.zarr/utm30/embeddings/c/0/0/0", fp("1"), 0, 10); ok {
		t.Error("Pin hit after Clear")
	}
}

// TestReadAt copies ranges of a value of several pieces (64 MiB budget:
// 512 KiB pieces) and checks them against the value itself.
func TestReadAt(t *testing.T) {
	c := open(t, t.TempDir(), 64<<20)
	ps := int(c.pieceSize)
	size := 3*ps + 17
	want := value(43, size)
	const key = "2024.zarr/utm30/embeddings/c/0/0/0"
	c.Put(key, fp("1"), want)
	c.Put("empty", fp("1"), nil)
	tests := []struct {
		name    string
		off, n  int
		wantLen int
	}{
		{"start", 0, 100, 100},
		{"inside a piece", 1000, 4096, 4096},
		{"up to a piece end", ps - 10, 10, 10},
		{"from a piece start", ps, 10, 10},
		{"across one boundary", ps - 10, 20, 20},
		{"across two boundaries", ps - 1, ps + 2, ps + 2},
		{"the short last piece", 3 * ps, 17, 17},
		{"clipped at the end", size - 5, 100, 5},
		{"whole value", 0, size, size},
		{"at the end", size, 10, 0},
		{"past the end", size + 10, 10, 0},
		{"empty buffer", 5, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := bytes.Repeat([]byte{0xEE}, tt.n+8)
			n, ok := c.ReadAt(key, fp("1"), buf[:tt.n], int64(tt.off))
			if !ok {
				t.Fatal("ReadAt missed")
			}
			if n != tt.wantLen {
				t.Fatalf("ReadAt gave %d bytes, want %d", n, tt.wantLen)
			}
			if from := min(tt.off, size); !bytes.Equal(buf[:n], want[from:from+n]) {
				t.Fatal("ReadAt bytes differ from the value")
			}
			if !bytes.Equal(buf[tt.n:], bytes.Repeat([]byte{0xEE}, 8)) {
				t.Fatal("ReadAt wrote past the buffer it was given")
			}
		})
	}
	if n, ok := c.ReadAt("empty", fp("1"), make([]byte, 4), 0); !ok || n != 0 {
		t.Errorf("empty value: ReadAt = %d, %v; want 0, true", n, ok)
	}
	for _, miss := range []struct{ key, fp string }{{key, "2"}, {"nope", "1"}} {
		if n, ok := c.ReadAt(miss.key, fp(miss.fp), make([]byte, 4), 0); ok || n != 0 {
			t.Errorf("ReadAt(%s, fp %s) hit", miss.key, miss.fp)
		}
	}
	if _, ok := c.ReadAt(key, fp("1"), make([]byte, 4), -1); ok {
		t.Error("ReadAt at a negative offset hit")
	}
	if st := c.Stats(); st.Hits != int64(len(tests)+1) || st.Misses != 2 {
		t.Errorf("stats %+v: want %d hits and 2 misses", st, len(tests)+1)
	}
}

func TestRestartKeepsEntriesAndOrder(t *testing.T) {
	dir := t.TempDir()
	const budget = 64 << 20
	c, err := Open(dir, Options{Budget: budget, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := range n {
		c.Put(fmt.Sprint("k", i), fp("x"), value(uint64(i), 1<<20))
	}
	// Read the first half again: the second half is now least recent.
	for i := range n / 2 {
		if _, ok := c.Get(fmt.Sprint("k", i), fp("x")); !ok {
			t.Fatalf("k%d missing", i)
		}
	}
	before := c.Stats()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c = open(t, dir, budget)
	after := c.Stats()
	if after.Entries != n || after.Bytes != before.Bytes || after.Hits != before.Hits {
		t.Fatalf("after restart %+v, before %+v", after, before)
	}
	for i := range n {
		if got, ok := c.Get(fmt.Sprint("k", i), fp("x")); !ok || !bytes.Equal(got, value(uint64(i), 1<<20)) {
			t.Fatalf("k%d: lost or changed after restart", i)
		}
	}
	// Reading everything in order made k0 the least recent again; read
	// the second half once more and fill the cache: the first half goes.
	for i := n / 2; i < n; i++ {
		c.Get(fmt.Sprint("k", i), fp("x"))
	}
	c.Close()
	c = open(t, dir, budget)
	for i := range 200 {
		c.Put(fmt.Sprint("new", i), fp("x"), value(uint64(1000+i), 1<<19))
		if st := c.Stats(); st.Evictions >= n/2 {
			break
		}
	}
	for i := range n {
		_, ok := c.Size(fmt.Sprint("k", i), fp("x"))
		if want := i >= n/2; ok != want {
			t.Errorf("k%d cached = %v after eviction, want %v (least recently read go first)", i, ok, want)
		}
	}
}

func TestBudget(t *testing.T) {
	dir := t.TempDir()
	const budget = 64 << 20
	c, err := Open(dir, Options{Budget: budget, Logger: testLogger(t), MaintainInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := rand.New(rand.NewPCG(1, 2))
	var written, maxDisk, maxBytes int64
	var keys []string
	for i := 0; written < 3*budget; i++ {
		// Mostly new entries, sometimes a re-read of a recent one.
		if len(keys) > 4 && r.IntN(4) == 0 {
			k := keys[len(keys)-1-r.IntN(4)]
			c.Get(k, fp("x"))
		}
		k := fmt.Sprint("key", i)
		n := 256<<10 + r.IntN(1<<20)
		c.Put(k, fp("x"), value(uint64(i), n))
		keys = append(keys, k)
		written += int64(n)
		st := c.Stats()
		maxDisk = max(maxDisk, st.Disk)
		maxBytes = max(maxBytes, st.Bytes)
	}
	// Let the last round finish, then measure once more.
	c.Maintain()
	final := c.Stats()
	maxDisk = max(maxDisk, final.Disk)
	t.Logf("budget %d MiB, written %d MiB in %d entries: live max %.1f MiB, disk max %.1f MiB (%.3f× budget), final disk %.1f MiB, %d evictions",
		budget>>20, written>>20, len(keys), float64(maxBytes)/(1<<20), float64(maxDisk)/(1<<20),
		float64(maxDisk)/budget, float64(final.Disk)/(1<<20), final.Evictions)
	if maxBytes > budget {
		t.Errorf("live bytes reached %d > budget %d", maxBytes, budget)
	}
	if limit := budget + budget/10; maxDisk > int64(limit) {
		t.Errorf("disk use reached %d > budget + 10%% = %d", maxDisk, limit)
	}
	// The most recent entries are there and intact.
	for i := len(keys) - 3; i < len(keys); i++ {
		if _, ok := c.Get(keys[i], fp("x")); !ok {
			t.Errorf("recent %s evicted", keys[i])
		}
	}
}

func TestClear(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, 64<<20)
	for i := range 10 {
		c.Put(fmt.Sprint("k", i), fp("x"), value(uint64(i), 1<<20))
	}
	c.Get("k1", fp("x"))
	if err := c.Clear(); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Entries != 0 || st.Bytes != 0 || st.Hits != 0 {
		t.Fatalf("after Clear: %+v", st)
	}
	if _, ok := c.Get("k1", fp("x")); ok {
		t.Fatal("hit after Clear")
	}
	c.Put("after", fp("x"), []byte("v"))
	c.Close()
	c = open(t, dir, 64<<20)
	if st := c.Stats(); st.Entries != 1 {
		t.Fatalf("after Clear and restart: %+v", st)
	}
	if st := c.Stats(); st.Disk > 8<<20 {
		t.Errorf("after Clear the directory still uses %d bytes", st.Disk)
	}
}

func TestConcurrent(t *testing.T) {
	c := open(t, t.TempDir(), 32<<20)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 60 {
				k := fmt.Sprint("k", (i*7+w)%40)
				want := value(uint64((i*7+w)%40), 300<<10)
				if got, ok := c.Get(k, fp("x")); ok {
					if !bytes.Equal(got, want) {
						t.Errorf("%s: wrong bytes", k)
						return
					}
					continue
				}
				c.Put(k, fp("x"), want)
			}
		})
	}
	wg.Wait()
	if st := c.Stats(); st.Bytes > c.liveCap {
		t.Errorf("live %d > cap %d", st.Bytes, c.liveCap)
	}
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, 64<<20)
	_, err := Open(dir, Options{Budget: 64 << 20, Logger: quietLogger()})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}

func TestBudgetRemembered(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, 100<<20)
	c.Close()
	c2, err := Open(dir, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got := c2.Stats().Budget; got != 100<<20 {
		t.Errorf("reopened without a budget: %d, want the remembered 100 MiB", got)
	}
}

func TestBudgetTooSmall(t *testing.T) {
	if _, err := Open(t.TempDir(), Options{Budget: 1 << 20}); err == nil {
		t.Fatal("Open with a 1 MiB budget succeeded")
	}
}

// TestKill9 writes entries in a child process, kills it with SIGKILL
// without any Close, and reopens the cache.
func TestKill9(t *testing.T) {
	if os.Getenv("TESSERAFS_CACHE_CHILD") != "" {
		t.Skip("child")
	}
	dir := t.TempDir()
	const n = 12
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9Child$", "-test.v")
	cmd.Env = append(os.Environ(), "TESSERAFS_CACHE_CHILD="+dir, "TESSERAFS_CACHE_CHILD_N="+strconv.Itoa(n))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "READY" {
				ready <- true
			}
		}
		close(ready)
	}()
	select {
	case ok := <-ready:
		if !ok {
			cmd.Wait()
			t.Fatal("child exited before it was ready")
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("child not ready after 60 s")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v", err)
	}

	c := open(t, dir, 64<<20)
	st := c.Stats()
	t.Logf("after kill -9: %+v", st)
	if st.Entries != n {
		t.Fatalf("%d entries after kill -9, want %d", st.Entries, n)
	}
	for i := range n {
		got, ok := c.Get(fmt.Sprint("k", i), fp("x"))
		if !ok || !bytes.Equal(got, value(uint64(i), 700<<10)) {
			t.Fatalf("k%d lost or corrupt after kill -9", i)
		}
	}
	// And it keeps working.
	c.Put("after", fp("x"), []byte("v"))
	if _, ok := c.Get("after", fp("x")); !ok {
		t.Fatal("Put after recovery lost")
	}
}

// TestKill9Child is the child of TestKill9: it writes entries, says READY
// and waits to be killed.
func TestKill9Child(t *testing.T) {
	dir := os.Getenv("TESSERAFS_CACHE_CHILD")
	if dir == "" {
		t.Skip("run by TestKill9")
	}
	n, _ := strconv.Atoi(os.Getenv("TESSERAFS_CACHE_CHILD_N"))
	c, err := Open(dir, Options{Budget: 64 << 20, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		c.Put(fmt.Sprint("k", i), fp("x"), value(uint64(i), 700<<10))
		c.Get(fmt.Sprint("k", i/2), fp("x"))
	}
	fmt.Println("READY")
	time.Sleep(time.Minute)
	t.Fatal("not killed")
}
