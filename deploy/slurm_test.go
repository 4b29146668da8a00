package deploy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tesserafs/tesserafs/internal/testservers"
	"github.com/tesserafs/tesserafs/internal/testtiles"
)

// slurmJob is one job (or array task) as scontrol shows it.
type slurmJob struct {
	ID, Name, State string
	Start, End      time.Time
}

var scontrolField = regexp.MustCompile(`(\w+)=(\S*)`)

// slurmJobs returns the jobs (every task, for an array) of job id.
func slurmJobs(t *testing.T, s *testservers.Slurm, id string) []slurmJob {
	t.Helper()
	out, err := s.Command("scontrol", "show", "job", "-o", id).CombinedOutput()
	if err != nil {
		t.Fatalf("scontrol show job %s: %v\n%s", id, err, out)
	}
	var jobs []slurmJob
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := map[string]string{}
		for _, m := range scontrolField.FindAllStringSubmatch(line, -1) {
			if _, ok := f[m[1]]; !ok {
				f[m[1]] = m[2]
			}
		}
		j := slurmJob{ID: f["JobId"], Name: f["JobName"], State: f["JobState"]}
		if task := f["ArrayTaskId"]; task != "" {
			j.ID = f["ArrayJobId"] + "_" + task
		}
		j.Start, _ = time.ParseInLocation("2006-01-02T15:04:05", f["StartTime"], time.Local)
		j.End, _ = time.ParseInLocation("2006-01-02T15:04:05", f["EndTime"], time.Local)
		jobs = append(jobs, j)
	}
	return jobs
}

func finished(state string) bool {
	switch state {
	case "PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED":
		return false
	}
	return true
}

// TestSlurmSubmit runs deploy/slurm/submit.sh on a one-node Slurm cluster
// started here: three job arrays of 3 partitions chained with afterok and
// a finalize job, writing the test preset into versitygw. The bucket must
// hold exactly the files of one local materialize, byte for byte, and each
// phase must have started only after the one before it ended.
func TestSlurmSubmit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Slurm, versitygw and a dozen tesserafs processes")
	}
	s := testservers.StartSlurm(t)
	bin := tesserafsBin(t)
	tiles := testtiles.Root(t, "test")
	want := localRun(t, bin, tiles)

	srv := testservers.Versity(t)
	const bucket, prefix, n = "tfs-slurm", "planet/", 3
	srv.CreateBucket(t, bucket)
	work := t.TempDir()
	logs := filepath.Join(work, "logs")
	// The jobs inherit the submitting shell's environment (sbatch
	// --export=ALL): the cluster's SLURM_CONF and the S3 configuration.
	env := append(append(s.Env(), srv.Env()...),
		"AWS_CONFIG_FILE="+filepath.Join(work, "none"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(work, "none"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	script := filepath.Join(testservers.RepoRoot(), "deploy", "slurm", "submit.sh")
	code, out := run(t, ctx, env, false, "bash", script, "--tiles", tiles, "--out", "s3://"+bucket+"/"+prefix,
		"--partitions", fmt.Sprint(n), "--workers", "1", "--mem", "500M", "--bin", bin, "--logs", logs,
		"--scratch", filepath.Join(work, "scratch"))
	if code != 0 {
		t.Fatalf("submit.sh: exit %d\n%s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	ids := map[string]string{}
	for _, kv := range strings.Fields(lines[len(lines)-1]) {
		k, v, _ := strings.Cut(kv, "=")
		ids[k] = v
	}
	phases := []string{"zones", "global0", "global", "finalize"}
	for _, p := range phases {
		if ids[p] == "" {
			t.Fatalf("submit.sh printed no %s job id:\n%s", p, out)
		}
	}
	if !strings.Contains(out, "zones") || !strings.Contains(out, "keys") {
		t.Errorf("submit.sh did not print the plan:\n%s", out)
	}

	dump := func() string {
		var b strings.Builder
		q, _ := s.Command("squeue").CombinedOutput()
		fmt.Fprintf(&b, "squeue:\n%s", q)
		logFiles, _ := filepath.Glob(filepath.Join(logs, "*.log"))
		for _, f := range logFiles {
			c, _ := os.ReadFile(f)
			fmt.Fprintf(&b, "--- %s\n%s", filepath.Base(f), c)
		}
		return b.String()
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		fin := slurmJobs(t, s, ids["finalize"])
		if len(fin) == 1 && finished(fin[0].State) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the jobs did not finish in 5 minutes\n%s", dump())
		}
		time.Sleep(time.Second)
	}

	var prevEnd time.Time
	for _, p := range phases {
		jobs := slurmJobs(t, s, ids[p])
		wantJobs := n
		if p == "finalize" {
			wantJobs = 1
		}
		if len(jobs) != wantJobs {
			t.Fatalf("%s: %d jobs, want %d: %+v\n%s", p, len(jobs), wantJobs, jobs, dump())
		}
		var end time.Time
		for _, j := range jobs {
			if j.State != "COMPLETED" {
				t.Fatalf("%s %s: %s\n%s", j.Name, j.ID, j.State, dump())
			}
			if j.Name != "tfs-"+p {
				t.Errorf("job %s is named %q, want tfs-%s", j.ID, j.Name, p)
			}
			// afterok: nothing of a phase starts before the previous
			// phase's last task has ended (scontrol has whole seconds).
			if j.Start.Before(prevEnd) {
				t.Errorf("%s %s started at %v, before the previous phase ended (%v)", p, j.ID, j.Start, prevEnd)
			}
			// Each task writes the partition of its array index.
			if task, ok := strings.CutPrefix(j.ID, ids[p]+"_"); ok {
				log, _ := os.ReadFile(filepath.Join(logs, fmt.Sprintf("tfs-%s-%s.log", p, j.ID)))
				if mine := fmt.Sprintf(" partition %s/%d phase %s:", task, n, p); !strings.Contains(string(log), mine) {
					t.Errorf("%s task %s did not write%s; its log:\n%s", p, j.ID, mine, log)
				}
			}
			if j.End.After(end) {
				end = j.End
			}
		}
		prevEnd = end
	}
	sameStore(t, "slurm", srv.Objects(t, bucket, prefix), want)
	if rest, _ := os.ReadDir(filepath.Join(work, "scratch")); len(rest) != 0 {
		t.Errorf("the tasks left %d entries in their scratch directory", len(rest))
	}
}
