package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tesserafs/tesserafs/internal/keyspace"
	"github.com/tesserafs/tesserafs/internal/testservers"
	"github.com/tesserafs/tesserafs/internal/testtiles"
	"github.com/tesserafs/tesserafs/materializer"
)

func TestResolvePartition(t *testing.T) {
	tests := []struct {
		name     string
		flag     string
		n        int
		finalize bool
		env      map[string]string
		want     materializer.Partition
		err      string
	}{
		{name: "nothing: whole run", want: materializer.Partition{}},
		{name: "flag", flag: "2/4", want: materializer.Partition{I: 2, N: 4}},
		{name: "flag out of range", flag: "4/4", err: "0 ≤ I < N"},
		{name: "flag garbage", flag: "a/b", err: "want I/N"},
		{name: "k8s index", n: 4, env: map[string]string{"JOB_COMPLETION_INDEX": "3"}, want: materializer.Partition{I: 3, N: 4}},
		{name: "k8s index too big", n: 4, env: map[string]string{"JOB_COMPLETION_INDEX": "4"}, err: "0 ≤ I < N"},
		{name: "partitions without index", n: 4, err: "neither is set"},
		{name: "slurm 0-3", n: 4, env: map[string]string{"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "4"},
			want: materializer.Partition{I: 0, N: 4}},
		// A resubmitted subset (--array=2,5 of 8): the index is the
		// array index, not its rank in the subset.
		{name: "slurm subset", n: 8, env: map[string]string{"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "2", "SLURM_ARRAY_TASK_COUNT": "2"},
			want: materializer.Partition{I: 5, N: 8}},
		{name: "slurm id beyond N", n: 4, env: map[string]string{"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "4"},
			err: "0 ≤ I < N"},
		{name: "slurm without --partitions", env: map[string]string{"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "4"}, err: "give --partitions N"},
		{name: "slurm bad id", n: 4, env: map[string]string{"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "4"}, err: "non-negative integer"},
		{name: "k8s wins over slurm", n: 4, env: map[string]string{"JOB_COMPLETION_INDEX": "1", "SLURM_ARRAY_TASK_ID": "3"},
			want: materializer.Partition{I: 1, N: 4}},
		{name: "flag wins over slurm", flag: "1/2", env: map[string]string{"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"},
			want: materializer.Partition{I: 1, N: 2}},
		{name: "both flags", flag: "1/2", n: 2, err: "choose one"},
		{name: "finalize with N", n: 4, finalize: true, want: materializer.Partition{I: 0, N: 4}},
		{name: "finalize with a partition", flag: "1/4", finalize: true, err: "not --partition"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolvePartition(tc.flag, tc.n, tc.finalize, func(k string) string { return tc.env[k] })
			if tc.err != "" {
				var ue userError
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.As(err, &ue) {
					t.Fatalf("err = %v, want a user error containing %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// tfs runs the real tesserafs command line in a child process (TestMain),
// with env added, and returns its exit status and combined output.
func tfs(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := tfsCmd(env, args...)
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
	t.Fatalf("tesserafs %v: %v", args, err)
	return 0, ""
}

func tfsCmd(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "TESSERAFS_TEST_MAIN=1"), env...)
	return cmd
}

// sameTree reports every difference between the objects and the files of
// a local run: a missing, extra or different key.
func sameTree(t *testing.T, what string, got, want map[string][]byte) {
	t.Helper()
	bad := 0
	for k, v := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("%s: %s missing", what, k)
			bad++
		} else if !bytes.Equal(g, v) {
			t.Errorf("%s: %s differs from the local run's file", what, k)
			bad++
		}
		if bad > 10 {
			t.Fatalf("%s: too many differences", what)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s is not in the local run", what, k)
		}
	}
}

// runPartitions runs every phase's n partitions concurrently, phase after
// phase, then finalize, each a tesserafs process with --workers 1, and
// fails the test on any non-zero exit.
func runPartitions(t *testing.T, env []string, tiles, out string, n int) {
	t.Helper()
	for _, ph := range materializer.DataPhases {
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, msg := tfs(t, env, "materialize", "--tiles", tiles, "--out", out, "--workers", "1",
					"--phase", ph, "--partition", fmt.Sprintf("%d/%d", i, n))
				if code != 0 {
					t.Errorf("phase %s partition %d/%d: exit %d\n%s", ph, i, n, code, msg)
				}
			}()
		}
		wg.Wait()
	}
	if code, msg := tfs(t, env, "materialize", "--tiles", tiles, "--out", out, "--finalize", "--partitions", fmt.Sprint(n)); code != 0 {
		t.Fatalf("finalize: exit %d\n%s", code, msg)
	}
}

// TestMaterializeS3Partitions writes the test preset into a real S3 server
// (versitygw) in partitions, and compares every object with the file of a
// single local run: the union of the partitions is the same store, with
// nothing else in the bucket, however the partitions were run.
func TestMaterializeS3Partitions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts versitygw and many tesserafs processes")
	}
	tiles := testtiles.Root(t, "test")
	srv := testservers.Versity(t)
	const bucket = "tfs-out"
	srv.CreateBucket(t, bucket)
	env := append(srv.Env(), "AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent")

	local := t.TempDir()
	if code, msg := tfs(t, nil, "materialize", "--tiles", tiles, "--out", local, "--workers", "2"); code != 0 {
		t.Fatalf("local run: exit %d\n%s", code, msg)
	}
	want := readTree(t, local)
	url := func(prefix string) string { return "s3://" + bucket + "/" + prefix }

	t.Run("4 partitions by phase", func(t *testing.T) {
		runPartitions(t, env, tiles, url("four/"), 4)
		sameTree(t, "four", srv.Objects(t, bucket, "four/"), want)
		// A rerun writes nothing and still succeeds.
		code, msg := tfs(t, env, "materialize", "--tiles", tiles, "--out", url("four/"), "--partition", "2/4", "--workers", "1")
		if code != 0 || !strings.Contains(msg, "(0 written") {
			t.Errorf("rerun: exit %d, want 0 and nothing written:\n%s", code, msg)
		}
	})

	t.Run("finalize before all partitions", func(t *testing.T) {
		if code, msg := tfs(t, env, "materialize", "--tiles", tiles, "--out", url("early/"), "--partition", "0/2", "--workers", "2"); code != 0 {
			t.Fatalf("partition 0/2: exit %d\n%s", code, msg)
		}
		have := srv.Objects(t, bucket, "early/")
		var missing []string
		for k := range want {
			if _, ok := have[k]; !ok && strings.Contains(k, "/c/") && !strings.Contains(k, "/easting/") &&
				!strings.Contains(k, "/northing/") && !strings.Contains(k, "/band/") {
				missing = append(missing, k)
			}
		}
		if len(missing) == 0 {
			t.Fatal("partition 0/2 wrote every data key: the split gave partition 1 nothing")
		}
		code, msg := tfs(t, env, "materialize", "--tiles", tiles, "--out", url("early/"), "--finalize", "--partitions", "2")
		if code != 2 || !strings.Contains(msg, fmt.Sprintf("%d of", len(missing))) || !strings.Contains(msg, "partition(s) 1 of 2") {
			t.Fatalf("finalize: exit %d, want 2 refusing with %d missing keys of partition 1:\n%s", code, len(missing), msg)
		}
		for i, k := range missing {
			if i < 20 && len(missing) <= 20 && !strings.Contains(msg, k) {
				t.Errorf("finalize does not name missing %s", k)
			}
		}
		if after := srv.Objects(t, bucket, "early/"); len(after) != len(have) {
			t.Errorf("refused finalize wrote %d objects", len(after)-len(have))
		}
	})

	t.Run("kill -9 and rerun", func(t *testing.T) {
		prefix := "killed/"
		cmd := tfsCmd(env, "materialize", "--tiles", tiles, "--out", url(prefix), "--partition", "1/2", "--workers", "1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		deadline := time.Now().Add(60 * time.Second)
		for len(srv.Objects(t, bucket, prefix)) < 3 {
			if time.Now().After(deadline) {
				t.Fatal("partition wrote nothing in 60 s")
			}
			select {
			case err := <-done:
				t.Fatalf("partition finished before it could be killed (%v)", err)
			case <-time.After(50 * time.Millisecond):
			}
		}
		cmd.Process.Kill() // SIGKILL
		<-done
		partial := len(srv.Objects(t, bucket, prefix))
		t.Logf("killed after %d objects", partial)
		runPartitions(t, env, tiles, url(prefix), 2)
		sameTree(t, "killed", srv.Objects(t, bucket, prefix), want)
	})

	t.Run("same partition twice at once", func(t *testing.T) {
		prefix := "twice/"
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if code, msg := tfs(t, env, "materialize", "--tiles", tiles, "--out", url(prefix), "--partition", "0/2", "--workers", "1"); code != 0 {
					t.Errorf("partition 0/2: exit %d\n%s", code, msg)
				}
			}()
		}
		wg.Wait()
		runPartitions(t, env, tiles, url(prefix), 2)
		sameTree(t, "twice", srv.Objects(t, bucket, prefix), want)
	})
}

// TestMaterializeS3BadTile truncates one tile and runs four partitions of
// the zones phase into S3: exactly one partition names the tile and exits
// 3, the others succeed, and every shard written equals the one a local
// run of the good tiles alone writes.
func TestMaterializeS3BadTile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts versitygw and tesserafs processes")
	}
	good := testtiles.Root(t, "test")
	bad, ref := testtiles.Copy(t, good), testtiles.Copy(t, good)
	const tile = "grid_0.05_84.95"
	npy := filepath.Join(bad, "global_0.1_degree_representation", "2024", tile, tile+".npy")
	fi, err := os.Stat(npy)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(npy, fi.Size()-1000); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(ref, "global_0.1_degree_representation", "2024", tile)); err != nil {
		t.Fatal(err)
	}
	// The reference is listed, not read from the registry it was copied
	// with, which still names the tile it no longer has.
	for _, f := range []string{"registry.parquet", "landmasks.parquet"} {
		if err := os.Remove(filepath.Join(ref, f)); err != nil {
			t.Fatal(err)
		}
	}
	local := t.TempDir()
	if code, msg := tfs(t, nil, "materialize", "--tiles", ref, "--out", local, "--workers", "2"); code != 0 {
		t.Fatalf("local run: exit %d\n%s", code, msg)
	}
	want := readTree(t, local)

	srv := testservers.Versity(t)
	srv.CreateBucket(t, "tfs-bad")
	env := append(srv.Env(), "AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent")
	const n = 4
	codes := make([]int, n)
	msgs := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], msgs[i] = tfs(t, env, "materialize", "--tiles", bad, "--out", "s3://tfs-bad/", "--workers", "1",
				"--phase", "zones", "--partition", fmt.Sprintf("%d/%d", i, n))
		}()
	}
	wg.Wait()
	failed := 0
	for i := range n {
		switch codes[i] {
		case 3:
			failed++
			if !strings.Contains(msgs[i], tile) || !strings.Contains(msgs[i], "1 tile(s) were skipped") {
				t.Errorf("partition %d exits 3 without naming %s:\n%s", i, tile, msgs[i])
			}
		case 0:
		default:
			t.Errorf("partition %d: exit %d\n%s", i, codes[i], msgs[i])
		}
	}
	if failed != 1 {
		t.Errorf("%d partitions exit 3, want exactly 1:\n%s", failed, strings.Join(msgs, "\n----\n"))
	}
	got := srv.Objects(t, "tfs-bad", "")
	// The store is unfinished (no finalize yet): its state object, written
	// by the first partition, names the inputs for the partitions to come.
	const state = ".tesserafs-materialize.json"
	if !bytes.Contains(got[state], []byte(`"fingerprint"`)) {
		t.Errorf("no state object %s in an unfinished output: %q", state, got[state])
	}
	delete(got, state)
	// So are the zones' rgb stretch records, bookkeeping until finalize.
	for k := range got {
		if strings.HasPrefix(k, keyspace.StretchRecordPrefix) {
			delete(got, k)
		}
	}
	zones := 0
	for k, v := range want {
		if materializer.PhaseOf(k) != materializer.PhaseZones {
			continue
		}
		zones++
		if !bytes.Equal(got[k], v) {
			t.Errorf("%s: not the good tiles' shard", k)
		}
	}
	if len(got) != zones {
		t.Errorf("%d objects, want the %d zone shards", len(got), zones)
	}
}
