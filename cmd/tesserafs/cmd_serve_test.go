package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/cache"
	"github.com/tesserafs/tesserafs/internal/store"
	"github.com/tesserafs/tesserafs/internal/testtiles"
)

// startServe starts a real `tesserafs serve` process on a free loopback
// port and returns its base URL; the process is killed at the end of the
// test if still running.
func startServe(t *testing.T, args ...string) (string, *mountProc) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), "TESSERAFS_TEST_MAIN=1")
	p := &mountProc{cmd: cmd, out: &syncBuffer{}, exited: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(p.out, pw)
	cmd.Stderr = p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); pw.Close(); close(p.exited) }()
	url := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`serving (http://127\.0\.0\.1:\d+)/`)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case url <- m[1]:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
	})
	select {
	case u := <-url:
		return u, p
	case <-p.exited:
		t.Fatalf("serve exited before it was ready:\n%s", p.out.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("serve not ready after 60 s:\n%s", p.out.String())
	}
	return "", nil
}

// shards are the keys of listed embeddings shards of the test preset,
// found from the index alone.
func shards(t *testing.T, tiles string) []string {
	cat, err := index.Discover(context.Background(), tiles, index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.New(cat, store.Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	st.Walk(context.Background(), fmt.Sprintf("%d.zarr", testtiles.Year), func(k string) error {
		if strings.Contains(k, "/embeddings/c/") {
			keys = append(keys, k)
		}
		return nil
	})
	if len(keys) < 5 {
		t.Fatalf("%d embeddings shards listed", len(keys))
	}
	return keys
}

// TestServeSIGTERM: a request in flight when SIGTERM arrives (a cold shard
// being generated) is answered in full, the process exits 0 with its
// summary, and the cache was closed cleanly (it opens again). A second
// server on the same cache is refused, naming the process that holds it.
func TestServeSIGTERM(t *testing.T) {
	tiles := testtiles.Root(t, "test")
	cdir := filepath.Join(t.TempDir(), "cache")
	keys := shards(t, tiles)
	base, p := startServe(t, "--tiles", tiles, "--cache", cdir, "--cache-size", "1GiB", "--workers", "1")

	// The viewer (or its placeholder without make viewer) at "/".
	if resp, err := http.Get(base + "/"); err != nil || resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET /: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// The same cache from a second process: refused, with who holds it.
	second := exec.Command(os.Args[0], "serve", "--addr", "127.0.0.1:0", "--tiles", tiles, "--cache", cdir)
	second.Env = append(os.Environ(), "TESSERAFS_TEST_MAIN=1")
	out, err := second.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), fmt.Sprintf("in use by process %d (", p.cmd.Process.Pid)) {
		t.Errorf("second serve on the same cache: %v\n%s", err, out)
	}

	type result struct {
		status int
		n      int64
		length int64
		err    error
	}
	// Ask for cold shards until one is seen generating in /metrics (a
	// generation may end before the first poll), then SIGTERM.
	var got chan result
	caught := false
	for _, key := range keys[:5] {
		got = make(chan result, 1)
		go func() {
			resp, err := http.Get(base + "/" + key)
			if err != nil {
				got <- result{err: err}
				return
			}
			defer resp.Body.Close()
			n, err := io.Copy(io.Discard, resp.Body)
			got <- result{resp.StatusCode, n, resp.ContentLength, err}
		}()
		for !caught && len(got) == 0 {
			resp, err := http.Get(base + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			caught = strings.Contains(string(b), "tesserafs_generations_in_flight 1")
		}
		if caught {
			break
		}
		if r := <-got; r.status != 200 {
			t.Fatalf("GET %s: %+v", key, r)
		}
	}
	if !caught {
		t.Fatal("no generation was ever seen in flight in /metrics")
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil || r.status != 200 || r.n != r.length || r.n == 0 {
		t.Errorf("request in flight at SIGTERM: %+v", r)
	}
	p.wait(t)
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, p.out.String())
	}
	if !strings.Contains(p.out.String(), "stopped serving") {
		t.Errorf("no summary on exit:\n%s", p.out.String())
	}
	c, err := cache.Open(cdir, cache.Options{})
	if err != nil {
		t.Fatalf("cache after shutdown: %v", err)
	}
	defer c.Close()
	if s := c.Stats(); s.Entries == 0 {
		t.Errorf("cache after shutdown: empty, want the shards served")
	}
}
