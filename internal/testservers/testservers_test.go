package testservers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// TestNginxRanges checks what the remote-tile tests rely on: byte ranges
// (a-b, suffix) answered 206 with the right bytes, and an ETag.
func TestNginxRanges(t *testing.T) {
	root := t.TempDir()
	body := make([]byte, 10000)
	for i := range body {
		body[i] = byte(i * 7)
	}
	if err := os.WriteFile(filepath.Join(root, "f.bin"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	base := Nginx(t, root)
	for _, tc := range []struct {
		rng    string
		lo, hi int
	}{{"bytes=10-19", 10, 20}, {"bytes=-100", 9900, 10000}, {"bytes=9990-", 9990, 10000}} {
		req, _ := http.NewRequest("GET", base+"f.bin", nil)
		req.Header.Set("Range", tc.rng)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 206 || !bytes.Equal(got, body[tc.lo:tc.hi]) {
			t.Errorf("%s: status %d, %d bytes; want 206 and bytes %d..%d", tc.rng, resp.StatusCode, len(got), tc.lo, tc.hi)
		}
		if want := fmt.Sprintf("bytes %d-%d/%d", tc.lo, tc.hi-1, len(body)); resp.Header.Get("Content-Range") != want {
			t.Errorf("%s: Content-Range %q, want %q", tc.rng, resp.Header.Get("Content-Range"), want)
		}
		if resp.Header.Get("ETag") == "" {
			t.Errorf("%s: no ETag", tc.rng)
		}
	}
}

// TestVersityConditionalPut checks the S3 behaviour the object-storage
// output relies on: If-None-Match: * answers 412 when the key exists.
func TestVersityConditionalPut(t *testing.T) {
	s := Versity(t)
	s.CreateBucket(t, "tfs-test")
	c := s.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	put := func(b string) error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("tfs-test"), Key: aws.String("a/b.bin"),
			Body: bytes.NewReader([]byte(b)), IfNoneMatch: aws.String("*")})
		return err
	}
	if err := put("one"); err != nil {
		t.Fatalf("first put: %v", err)
	}
	err := put("two")
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "PreconditionFailed" {
		t.Fatalf("second put: %v, want PreconditionFailed", err)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("tfs-test"), Key: aws.String("a/b.bin"), Range: aws.String("bytes=-2")})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(got) != "ne" {
		t.Fatalf("suffix range: %q, want %q (the first write must stay)", got, "ne")
	}
}

// TestSlurmArray runs a 3-task array and an afterok job on the one-node
// cluster: what the deploy/slurm scripts rely on.
func TestSlurmArray(t *testing.T) {
	s := StartSlurm(t)
	out := t.TempDir()
	script := filepath.Join(out, "task.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT\" > "+out+"/task-$SLURM_ARRAY_TASK_ID\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := s.Command("sbatch", "--parsable", "--array=0-2", "-o", out+"/%A_%a.log", script).CombinedOutput()
	if err != nil {
		t.Fatalf("sbatch: %v: %s", err, b)
	}
	job := strings.TrimSpace(string(b))
	fin := filepath.Join(out, "fin.sh")
	if err := os.WriteFile(fin, []byte("#!/bin/sh\nls "+out+" | grep -c '^task-' > "+out+"/final\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Command("sbatch", "--parsable", "--dependency=afterok:"+job, "-o", out+"/fin.log", fin).CombinedOutput(); err != nil {
		t.Fatalf("sbatch finalize: %v: %s", err, b)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(out, "final")); err == nil && strings.TrimSpace(string(b)) == "3" {
			break
		}
		if time.Now().After(deadline) {
			q, _ := s.Command("squeue").CombinedOutput()
			t.Fatalf("array + finalize did not finish in 60s; squeue:\n%s\n%s", q, readLog(s.Dir, "slurmctld.log", "slurmd.log"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i := 0; i < 3; i++ {
		b, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("task-%d", i)))
		if err != nil || strings.TrimSpace(string(b)) != fmt.Sprintf("%d/3", i) {
			t.Errorf("task %d wrote %q, %v; want %d/3", i, b, err, i)
		}
	}
}
