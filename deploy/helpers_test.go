package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tesserafs/tesserafs/internal/testservers"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// tesserafsBin builds cmd/tesserafs once per test binary: the scripts and
// manifests run the real command, as a cluster would.
func tesserafsBin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			binErr = fmt.Errorf("the go command is not on PATH: %w", err)
			return
		}
		if binDir, binErr = os.MkdirTemp("", "tfs-deploy-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "tesserafs")
		cmd := exec.Command(goBin, "build", "-o", binPath, "./cmd/tesserafs")
		cmd.Dir = testservers.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/tesserafs: %w\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// run runs a command with env (and nothing else of the test's own
// environment when clean is set) and returns its exit status and output.
func run(t *testing.T, ctx context.Context, env []string, clean bool, name string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	if clean {
		cmd.Env = env
	} else {
		cmd.Env = append(os.Environ(), env...)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	}
	t.Fatalf("%s %v: %v", name, args, err)
	return 0, ""
}

// localRun materializes tiles with one local process into a new directory
// and returns its files: the reference a partitioned run must equal.
func localRun(t *testing.T, bin, tiles string) map[string][]byte {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if code, out := run(t, ctx, nil, false, bin, "materialize", "--tiles", tiles, "--out", dir, "--workers", "2"); code != 0 {
		t.Fatalf("local materialize: exit %d\n%s", code, out)
	}
	return readTree(t, dir)
}

// readTree reads every regular file under dir, by slash path.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// The lock and the state file of a local run are not part of the store.
	for k := range files {
		if strings.HasPrefix(k, ".tesserafs") {
			delete(files, k)
		}
	}
	return files
}

// sameStore reports every key missing from got, different in it, or in
// it but not in want.
func sameStore(t *testing.T, what string, got, want map[string][]byte) {
	t.Helper()
	if len(want) == 0 {
		t.Fatalf("%s: the reference run wrote nothing", what)
	}
	bad := 0
	for k, v := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s: %s missing", what, k)
			bad++
		case !bytes.Equal(g, v):
			t.Errorf("%s: %s differs from the local run's file (%d vs %d bytes)", what, k, len(g), len(v))
			bad++
		}
		if bad > 10 {
			t.Fatalf("%s: more than 10 differences", what)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s is not in the local run", what, k)
		}
	}
}
