package testservers

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Slurm is a running one-node Slurm cluster: slurmctld and slurmd with a
// private munged, all in the test's temporary directory. Commands (sbatch,
// squeue, sacct-less polling) reach it through Env.
type Slurm struct {
	// Conf is the slurm.conf path (SLURM_CONF).
	Conf string
	// Dir holds the cluster's state, spool and logs.
	Dir string
}

// Env is what a Slurm client command needs to talk to this cluster.
func (s *Slurm) Env() []string { return []string{"SLURM_CONF=" + s.Conf} }

// Command runs a Slurm client command against the cluster.
func (s *Slurm) Command(name string, args ...string) *exec.Cmd {
	c := exec.Command(name, args...)
	c.Env = append(os.Environ(), s.Env()...)
	return c
}

// StartSlurm starts munged, slurmctld and slurmd (as root; Slurm needs it
// here) and waits until the node is idle. Jobs run as root on this machine.
func StartSlurm(t testing.TB) *Slurm {
	t.Helper()
	munged := require(t, "munged (Debian munge)", "munged", "/usr/sbin/munged")
	ctld := require(t, "slurmctld (Debian slurmctld)", "slurmctld", "/usr/sbin/slurmctld")
	slurmd := require(t, "slurmd (Debian slurmd)", "slurmd", "/usr/sbin/slurmd")
	require(t, "sbatch (Debian slurm-client)", "sbatch")
	if os.Geteuid() != 0 {
		if os.Getenv("TESSERAFS_REQUIRE_SERVERS") == "1" {
			t.Fatal("the one-node Slurm cluster needs root")
		}
		t.Skip("SKIPPING: the one-node Slurm cluster needs root; Slurm is NOT tested here")
	}
	// Short paths: munge's socket path must fit in sun_path.
	dir, err := os.MkdirTemp("", "tfs-slurm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{"state", "spool", "munge"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	key := make([]byte, 1024)
	_, _ = rand.Read(key)
	keyPath := filepath.Join(dir, "munge", "munge.key")
	if err := os.WriteFile(keyPath, key, 0o400); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "munge", "sock")
	mcmd := exec.Command(munged, "--foreground", "--force", "--socket="+sock, "--key-file="+keyPath,
		"--pid-file="+filepath.Join(dir, "munge", "pid"), "--log-file="+filepath.Join(dir, "munge", "log"),
		"--seed-file="+filepath.Join(dir, "munge", "seed"))
	startDaemon(t, mcmd, filepath.Join(dir, "munged.out"))
	if err := waitFile(sock, 10*time.Second); err != nil {
		t.Fatalf("munged: %v", err)
	}

	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	host, _, _ = strings.Cut(host, ".")
	ctldPort, dPort := freePort(t), freePort(t)
	conf := filepath.Join(dir, "slurm.conf")
	cfg := fmt.Sprintf(`ClusterName=tfstest
SlurmctldHost=%[1]s
SlurmctldPort=%[2]d
SlurmdPort=%[3]d
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=%[4]s
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SchedulerType=sched/backfill
StateSaveLocation=%[5]s/state
SlurmdSpoolDir=%[5]s/spool
SlurmctldPidFile=%[5]s/slurmctld.pid
SlurmdPidFile=%[5]s/slurmd.pid
SlurmctldLogFile=%[5]s/slurmctld.log
SlurmdLogFile=%[5]s/slurmd.log
MinJobAge=600
NodeName=%[1]s CPUs=%[6]d RealMemory=8000 State=UNKNOWN
PartitionName=main Nodes=%[1]s Default=YES MaxTime=INFINITE State=UP
`, host, ctldPort, dPort, sock, dir, runtime.NumCPU())
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Slurm{Conf: conf, Dir: dir}
	c := exec.Command(ctld, "-D", "-i", "-f", conf)
	c.Env = append(os.Environ(), s.Env()...)
	startDaemon(t, c, filepath.Join(dir, "slurmctld.out"))
	if err := waitListening(fmt.Sprintf("127.0.0.1:%d", ctldPort), nil); err != nil {
		t.Fatalf("slurmctld: %v\n%s", err, readLog(dir, "slurmctld.log", "slurmctld.out"))
	}
	d := exec.Command(slurmd, "-D", "-f", conf)
	d.Env = append(os.Environ(), s.Env()...)
	startDaemon(t, d, filepath.Join(dir, "slurmd.out"))

	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ := s.Command("sinfo", "-h", "-o", "%t").CombinedOutput()
		state := strings.TrimSpace(string(out))
		if state == "idle" {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("slurm node not idle after 30s (sinfo: %q)\n%s", state,
				readLog(dir, "slurmctld.log", "slurmd.log", "slurmd.out"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func startDaemon(t testing.TB, c *exec.Cmd, logPath string) {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	c.Stdout, c.Stderr = f, f
	setGroup(c)
	if err := c.Start(); err != nil {
		f.Close()
		t.Fatalf("%s: %v", c.Path, err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait(); f.Close() }()
	s := &server{cmd: c, exited: done, log: logPath}
	t.Cleanup(s.stop)
}

func waitFile(path string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not appear within %v", path, d)
}

func readLog(dir string, names ...string) string {
	var b strings.Builder
	for _, n := range names {
		out, _ := os.ReadFile(filepath.Join(dir, n))
		if len(out) > 4000 {
			out = out[len(out)-4000:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", n, out)
	}
	return b.String()
}
