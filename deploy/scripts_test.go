package deploy

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tesserafs/tesserafs/internal/testservers"
	"github.com/tesserafs/tesserafs/materializer"
)

// TestSlurmScripts checks what needs no cluster: every script parses,
// each phase script runs its own phase, submit.sh submits them in the
// materializer's order, and submit.sh refuses bad arguments before it
// reaches sbatch.
func TestSlurmScripts(t *testing.T) {
	dir := filepath.Join(testservers.RepoRoot(), "deploy", "slurm")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	scripts, _ := filepath.Glob(filepath.Join(dir, "*.s*"))
	scripts = append(scripts, filepath.Join(testservers.RepoRoot(), "deploy", "k8s", "run.sh"))
	for _, s := range scripts {
		if code, out := run(t, ctx, nil, false, "bash", "-n", s); code != 0 {
			t.Errorf("bash -n %s: exit %d\n%s", s, code, out)
		}
	}
	for _, p := range materializer.DataPhases {
		b, err := os.ReadFile(filepath.Join(dir, p+".sbatch"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "\nphase="+p+"\n") || !strings.Contains(string(b), "#SBATCH --job-name=tfs-"+p+"\n") {
			t.Errorf("%s.sbatch does not run phase %s as job tfs-%s", p, p, p)
		}
	}
	submit, err := os.ReadFile(filepath.Join(dir, "submit.sh"))
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, m := range regexp.MustCompile(`\$here/(\w+)\.sbatch`).FindAllStringSubmatch(string(submit), -1) {
		order = append(order, m[1])
	}
	if want := append(slices.Clone(materializer.DataPhases), materializer.PhaseFinalize); !slices.Equal(order, want) {
		t.Errorf("submit.sh submits %v, want %v", order, want)
	}

	script := filepath.Join(dir, "submit.sh")
	if code, out := run(t, ctx, nil, false, "bash", script, "--help"); code != 0 || !strings.Contains(out, "--partitions N") {
		t.Errorf("submit.sh --help: exit %d\n%s", code, out)
	}
	// No sbatch on PATH: each case must fail on its arguments first.
	env := []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--out", "x"}, "--tiles is required"},
		{[]string{"--tiles", "t"}, "--out is required"},
		{[]string{"--tiles", "t", "--out", "o", "--partitions", "0"}, "want a positive integer"},
		{[]string{"--tiles", "t", "--out", "o", "--workers", "x"}, "want a positive integer"},
		{[]string{"--tiles", "t", "--out", "o", "--bin", "/nonexistent/tesserafs"}, "is not executable"},
		{[]string{"--tiles"}, "--tiles needs a value"},
		{[]string{"--frobnicate"}, "unknown option"},
	} {
		code, out := run(t, ctx, env, true, "/bin/bash", append([]string{script}, tc.args...)...)
		if code != 2 || !strings.Contains(out, tc.want) {
			t.Errorf("submit.sh %v: exit %d, want 2 and %q:\n%s", tc.args, code, tc.want, out)
		}
	}
}
