package materializer_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/testtiles"
	"github.com/tesserafs/tesserafs/materializer"
)

// A test binary started with these variables set materializes TILES into
// OUT and exits: the child process of the kill and RSS tests.
const (
	envTiles = "TESSERAFS_TEST_CHILD_TILES"
	envOut   = "TESSERAFS_TEST_CHILD_OUT"
)

func TestMain(m *testing.M) {
	if tiles := os.Getenv(envTiles); tiles != "" {
		if err := materialize(context.Background(), tiles, os.Getenv(envOut), 2); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func materialize(ctx context.Context, tiles, out string, workers int) error {
	cat, err := index.Discover(ctx, tiles, index.Options{})
	if err != nil {
		return err
	}
	st, err := store.New(cat, store.Options{Workers: workers, Build: generate.Build{BuildVersion: "test"},
		ReadThrough: materializer.NewOutputReadThrough(materializer.NewDirSink(out))})
	if err != nil {
		return err
	}
	_, err = materializer.Run(ctx, st, out, materializer.Options{Workers: workers, MemoryLimit: materializer.DefaultMemoryLimit(workers)})
	return err
}

// tree reads every regular file under dir, by relative path.
func tree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t *testing.T, a, b string) {
	t.Helper()
	ta, tb := tree(t, a), tree(t, b)
	for k, v := range ta {
		w, ok := tb[k]
		if !ok {
			t.Errorf("%s: missing from %s", k, b)
		} else if !bytes.Equal(v, w) {
			t.Errorf("%s: bytes differ", k)
		}
	}
	for k := range tb {
		if _, ok := ta[k]; !ok {
			t.Errorf("%s: extra file in %s", k, b)
		}
	}
	if len(ta) < 20 {
		t.Fatalf("only %d files in %s", len(ta), a)
	}
	// A finished run leaves the store and the catalog alone: no state,
	// lock or temporary files (nothing for a publisher to exclude).
	for _, tr := range []map[string][]byte{ta, tb} {
		for k := range tr {
			if strings.HasPrefix(k, ".") {
				t.Errorf("%s: bookkeeping left in a finished tree", k)
			}
		}
	}
}

func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, "/c/") {
			n++
		}
		return nil
	})
	return n
}

// TestKillAndResume kills materialize with SIGKILL at several points, then
// reruns it; the result must be byte-identical to an uninterrupted run.
func TestKillAndResume(t *testing.T) {
	tiles := testtiles.Root(t, "test")
	want := t.TempDir()
	if err := materialize(context.Background(), tiles, want, 2); err != nil {
		t.Fatal(err)
	}
	total := countFiles(want)
	for _, frac := range []float64{0, 0.3, 0.7} {
		t.Run(fmt.Sprintf("kill-at-%.0f%%", frac*100), func(t *testing.T) {
			out := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), envTiles+"="+tiles, envOut+"="+out)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			deadline := time.After(2 * time.Minute)
		wait:
			for countFiles(out) < int(frac*float64(total)) || (frac == 0 && !exists(filepath.Join(out, ".tesserafs-materialize.json"))) {
				select {
				case err := <-exited:
					t.Fatalf("child exited before the kill: %v", err)
				case <-deadline:
					break wait
				case <-time.After(5 * time.Millisecond):
				}
			}
			cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			t.Logf("killed after %d of %d chunk files", countFiles(out), total)
			if err := materialize(context.Background(), tiles, out, 2); err != nil {
				t.Fatalf("rerun after kill: %v", err)
			}
			sameTree(t, want, out)
			if exists(filepath.Join(out, ".tesserafs-tmp")) {
				t.Errorf("temporary directory left behind")
			}
		})
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestResumeReadsBack removes the global_rgb levels above 0 from a
// materialized tree and finishes it again. With the output directory as
// the store's read-through, only the removed chunks are generated (level 1
// is built from the level-0 files on disk, and so on up); with the
// read-through of another directory, nothing is read from there and the
// zone rgb shards and level 0 are generated again. Both give the same
// bytes as the first run.
//
// A finished tree keeps no bookkeeping, so the copy is made an unfinished
// run's by adding the state file of a run of the same inputs stopped
// part-way.
func TestResumeReadsBack(t *testing.T) {
	tiles := testtiles.Root(t, "test")
	ctx := context.Background()
	want := t.TempDir()
	if err := materialize(ctx, tiles, want, 2); err != nil {
		t.Fatal(err)
	}
	cat, err := index.Discover(ctx, tiles, index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	state := unfinishedState(t, cat)
	for _, tc := range []struct {
		name        string
		readThrough func(out string) string
		reads       bool
	}{
		{"own output", func(out string) string { return out }, true},
		{"other directory", func(string) string { return want }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			if err := os.CopyFS(out, os.DirFS(want)); err != nil {
				t.Fatal(err)
			}
			removed := 0
			levels, _ := filepath.Glob(filepath.Join(out, "2024.zarr", "global_rgb", "*", "rgb", "c"))
			for _, lc := range levels {
				if strings.Contains(lc, "/global_rgb/0/") {
					continue
				}
				removed += countFiles(lc)
				if err := os.RemoveAll(lc); err != nil {
					t.Fatal(err)
				}
			}
			if removed == 0 {
				t.Fatal("no global_rgb chunk above level 0 to remove")
			}
			for name, b := range state {
				if err := os.WriteFile(filepath.Join(out, name), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			st, err := store.New(cat, store.Options{Workers: 2, Build: generate.Build{BuildVersion: "test"},
				ReadThrough: materializer.NewOutputReadThrough(materializer.NewDirSink(tc.readThrough(out)))})
			if err != nil {
				t.Fatal(err)
			}
			sum, err := materializer.Run(ctx, st, out, materializer.Options{Workers: 2})
			if err != nil {
				t.Fatal(err)
			}
			gen := st.Stats().Generated
			if sum.Written != int64(removed) {
				t.Errorf("wrote %d files, want the %d removed", sum.Written, removed)
			}
			if tc.reads && gen != int64(removed) {
				t.Errorf("generated %d chunks, want only the %d removed ones", gen, removed)
			}
			if !tc.reads && gen <= int64(removed) {
				t.Errorf("generated %d chunks: the read-through of another directory was used", gen)
			}
			t.Logf("%d chunks removed, %d generated", removed, gen)
			sameTree(t, want, out)
		})
	}
}

// unfinishedState returns the bookkeeping files (by name) that a run of
// cat's store stopped after a few files leaves at the top of its output.
func unfinishedState(t *testing.T, cat *index.Catalogue) map[string][]byte {
	t.Helper()
	dir := t.TempDir()
	st, err := store.New(cat, store.Options{Workers: 1, Build: generate.Build{BuildVersion: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	if _, err := materializer.Run(ctx, st, dir, materializer.Options{Workers: 1, Progress: func(p materializer.Progress) {
		if p.Done >= 1 {
			stop()
		}
	}}); err == nil {
		t.Fatal("run stopped part-way reported success")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") && e.Type().IsRegular() {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = b
		}
	}
	if len(out) == 0 {
		t.Fatal("a stopped run left no state file")
	}
	return out
}

// TestRefusesOtherInputs checks that a directory built from some tiles is
// not resumed with different ones, and that a directory of other files is
// not written into.
func TestRefusesOtherInputs(t *testing.T) {
	tiles := testtiles.Root(t, "test")
	ctx := context.Background()
	out := t.TempDir()
	cat, err := index.Discover(ctx, tiles, index.Options{Zones: []int{34}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.New(cat, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// An unfinished run: stopped after a few files.
	stopCtx, stop := context.WithCancel(ctx)
	_, err = materializer.Run(stopCtx, st, out, materializer.Options{Workers: 1, Progress: func(p materializer.Progress) {
		if p.Done >= 5 {
			stop()
		}
	}})
	if err == nil {
		t.Fatal("run stopped part-way reported success")
	}
	// Same tiles, more zones: a different store.
	if err := materialize(ctx, tiles, out, 2); err == nil || !strings.Contains(err.Error(), "other tiles or options") {
		t.Fatalf("resume with other inputs: err = %v", err)
	}
	// The same inputs finish it, and a finished tree is not written into
	// again: it holds no state to check new inputs against.
	if _, err := materializer.Run(ctx, st, out, materializer.Options{}); err != nil {
		t.Fatalf("resume with the same inputs: %v", err)
	}
	if err := materialize(ctx, tiles, out, 2); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("run into a finished tree: err = %v", err)
	}
	stranger := t.TempDir()
	os.WriteFile(filepath.Join(stranger, "notes.txt"), []byte("mine"), 0o644)
	if err := materialize(ctx, tiles, stranger, 2); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("non-empty directory: err = %v", err)
	}
}

// TestDiskFull materializes onto a small tmpfs: the run must fail with an
// error naming the file and the reason, leave no partial file under a
// final name, and finish after space is made.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("DISK-FULL TEST SKIPPED: mounting a small tmpfs needs root")
	}
	tiles := testtiles.Root(t, "test")
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=40m"); err != nil {
		t.Skipf("DISK-FULL TEST SKIPPED: cannot mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	out := filepath.Join(mnt, "out")
	err := materialize(context.Background(), tiles, out, 2)
	if err == nil || !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), out) {
		t.Fatalf("err = %v, want ENOSPC naming a file under %s", err, out)
	}
	t.Log(err)
	// Every file under a final name is complete: compare with a full run.
	want := t.TempDir()
	if err := materialize(context.Background(), tiles, want, 2); err != nil {
		t.Fatal(err)
	}
	full := tree(t, want)
	for k, v := range tree(t, out) {
		if strings.HasPrefix(k, ".tesserafs-") {
			continue
		}
		if !bytes.Equal(full[k], v) {
			t.Errorf("%s: partial or wrong bytes after ENOSPC", k)
		}
	}
	// Make room (remount bigger) and resume.
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", syscall.MS_REMOUNT, "size=400m"); err != nil {
		t.Fatal(err)
	}
	if err := materialize(context.Background(), tiles, out, 2); err != nil {
		t.Fatalf("resume after making room: %v", err)
	}
	sameTree(t, want, out)
}
