package selfcontained

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// insideClone is set in the environment of the go test run inside the
// clone, so that run does not clone again.
const insideClone = "TESSERAFS_INSIDE_CLONE_TEST"

// clonePackages are the packages whose tests run in the fresh clone: each
// reads committed fixtures of another kind (zarr golden files and
// fuzz corpora, the bad-tile corpus, GDAL fixtures, npy and GeoTIFF
// samples, the vendored JSON schemas) or owns the key space, and together
// they take under a minute. The whole suite already runs in the checkout;
// what the clone adds is the proof that nothing it needs is uncommitted
// or beside the repository, which `go vet ./...` and `go build ./...`
// over every package, these tests and TestNoPathOutside give.
var clonePackages = []string{"./zarr", "./index", "./internal/keyspace", "./internal/generate",
	"./internal/landmask", "./internal/npy", "./internal/synth"}

// TestFreshClone clones the committed HEAD of this repository into an empty
// directory and runs `go vet ./...`, `go build ./...` and `go test -count=1`
// of clonePackages there, with
// the module proxy off (only the module cache may supply dependencies) and
// a private TMPDIR (no synthetic tiles reused from this run); installed
// software that make deps puts inside the checkout (.tools/bin, the
// viewer's node_modules) is borrowed from the original checkout, and the
// viewer bundle is built in the clone as make's go-test does. Anything the
// tests need that is not committed — a file beside the repository, a
// schema fetched from the network, an untracked fixture — makes it fail.
//
// It tests what is committed, not the working tree: uncommitted changes are
// reported but not included. TESSERAFS_CLONE_TEST_PKGS=./... runs the
// whole suite in the clone instead. Skipped under -short.
func TestFreshClone(t *testing.T) {
	if os.Getenv(insideClone) != "" {
		t.Skip("inside the fresh-clone run: not cloning again")
	}
	if testing.Short() {
		t.Skip("-short: the fresh-clone test builds everything again")
	}
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git not found: cannot clone the repository")
	}
	top, err := output(t.Context(), "", git, "rev-parse", "--show-toplevel")
	if err != nil {
		t.Skipf("not in a git checkout (%v): nothing to clone", err)
	}
	head, err := output(t.Context(), top, git, "rev-parse", "HEAD")
	if err != nil {
		t.Fatalf("git rev-parse HEAD in %s: %v", top, err)
	}
	if st, err := output(t.Context(), top, git, "status", "--porcelain", "--untracked-files=no"); err == nil && st != "" {
		t.Logf("note: %s has uncommitted changes; testing the committed HEAD %s only", top, head)
	}

	// Leave half a minute of the test binary's own deadline for cleanup;
	// without a deadline (-timeout 0), allow 30 minutes.
	deadline := time.Now().Add(30 * time.Minute)
	if d, ok := t.Deadline(); ok {
		deadline = d.Add(-30 * time.Second)
	}
	ctx, cancel := context.WithDeadline(t.Context(), deadline)
	defer cancel()

	base := t.TempDir()
	clone := filepath.Join(base, "repo")
	tmp := filepath.Join(base, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := output(ctx, "", git, "clone", "--quiet", "--no-hardlinks", "--no-checkout", top, clone); err != nil {
		t.Fatalf("git clone %s: %v", top, err)
	}
	if _, err := output(ctx, clone, git, "checkout", "--quiet", "--detach", head); err != nil {
		t.Fatalf("git checkout %s in the clone: %v", head, err)
	}

	env := append(os.Environ(),
		insideClone+"=1",
		"TMPDIR="+tmp,
		"GOPROXY=off",
		"GOFLAGS=-mod=readonly",
	)
	// Tools that `make deps` builds into the checkout (.tools, ignored by
	// git) are installed software, like the apt packages: the clone uses
	// the original checkout's, as it would use /usr/sbin/nginx.
	if os.Getenv("TESSERAFS_VERSITYGW") == "" {
		if p := filepath.Join(top, ".tools", "bin", "versitygw"); fileExists(p) {
			env = append(env, "TESSERAFS_VERSITYGW="+p)
		}
	}
	buildViewer(ctx, t, top, clone)

	// TESSERAFS_CLONE_TEST_PKGS sets the packages tested (default
	// clonePackages; ./... for everything).
	pkgs := strings.Fields(os.Getenv("TESSERAFS_CLONE_TEST_PKGS"))
	if len(pkgs) == 0 {
		pkgs = clonePackages
	}
	goBin := filepath.Join(runtimeGOROOT(t), "bin", "go")
	for _, args := range [][]string{
		{"vet", "./..."},
		{"build", "./..."},
		append([]string{"test", "-count=1"}, pkgs...),
	} {
		start := time.Now()
		cmd := exec.CommandContext(ctx, goBin, args...)
		cmd.Dir = clone
		cmd.Env = env
		cmd.WaitDelay = 10 * time.Second
		out, err := cmd.CombinedOutput()
		t.Logf("go %s in the clone: %.0fs", strings.Join(args, " "), time.Since(start).Seconds())
		if err != nil {
			t.Fatalf("go %s in a fresh clone of %s (HEAD %s) failed: %v\n%s",
				strings.Join(args, " "), top, head, err, tail(out, 200))
		}
		if args[0] == "test" {
			t.Logf("go test in the clone:\n%s", out)
		}
	}
}

// buildViewer does in the clone what `make viewer` (a prerequisite of
// make's go-test) does: bundle internal/viewer/web into
// internal/viewer/dist, which git ignores. The npm packages are installed
// software (make deps puts them in node_modules, ignored by git), so the
// clone borrows the original checkout's, through a symlink; the bundle is
// built from the clone's own sources. Without the packages the clone keeps
// the committed placeholder, as the original checkout does.
func buildViewer(ctx context.Context, t *testing.T, top, clone string) {
	t.Helper()
	web := filepath.Join("internal", "viewer", "web")
	modules := filepath.Join(top, web, "node_modules")
	if !fileExists(modules) || !fileExists(filepath.Join(clone, web, "build.mjs")) {
		t.Logf("no %s: the clone embeds the viewer placeholder", modules)
		return
	}
	if err := os.Symlink(modules, filepath.Join(clone, web, "node_modules")); err != nil {
		t.Fatal(err)
	}
	node := os.Getenv("TESSERAFS_NODE")
	if node == "" {
		node = "node"
	}
	if _, err := output(ctx, filepath.Join(clone, web), node, "build.mjs"); err != nil {
		t.Fatalf("building the viewer in the clone (make viewer): %v", err)
	}
}

// runtimeGOROOT is the GOROOT of the go command that runs this test, so the
// clone is built by the same toolchain.
func runtimeGOROOT(t *testing.T) string {
	t.Helper()
	if r := os.Getenv("GOROOT"); r != "" {
		return r
	}
	r, err := output(t.Context(), "", "go", "env", "GOROOT")
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	return r
}

// output runs a command in dir and returns its trimmed stdout; on failure
// the error carries stderr.
func output(ctx context.Context, dir, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", &cmdError{name: name, args: args, err: err, stderr: strings.TrimSpace(stderr.String())}
	}
	return strings.TrimSpace(string(out)), nil
}

type cmdError struct {
	name   string
	args   []string
	err    error
	stderr string
}

func (e *cmdError) Error() string {
	return e.name + " " + strings.Join(e.args, " ") + ": " + e.err.Error() + ": " + e.stderr
}

func (e *cmdError) Unwrap() error { return e.err }

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// tail returns the last n lines of out.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"…"}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// TestNoPathOutside: no tracked file reaches outside the repository by
// path: not the team's shared folder beside it, not an absolute path of a
// checkout. A test that did would pass here and fail on a clean clone.
func TestNoPathOutside(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git not found")
	}
	top, err := output(t.Context(), "", git, "rev-parse", "--show-toplevel")
	if err != nil {
		t.Skipf("not in a git checkout (%v)", err)
	}
	files, err := output(t.Context(), top, git, "ls-files")
	if err != nil {
		t.Fatal(err)
	}
	// Spelled in two pieces so that this file does not match itself.
	bad := []string{"../" + "shared", top + "/"}
	checked := 0
	for _, f := range strings.Split(files, "\n") {
		if f == "" || strings.HasPrefix(f, "testdata/") || strings.Contains(f, "/testdata/") {
			continue // fixtures are data, not paths
		}
		b, err := os.ReadFile(filepath.Join(top, f))
		if err != nil || bytes.IndexByte(b, 0) >= 0 {
			continue // gone from the work tree, or binary
		}
		checked++
		for _, s := range bad {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s mentions %q: the repository must not need anything beside it", f, s)
			}
		}
	}
	if checked < 50 {
		t.Fatalf("only %d files checked: the listing is wrong", checked)
	}
}
