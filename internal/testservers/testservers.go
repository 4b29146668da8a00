// Package testservers starts, for tests, the real servers that tesserafs
// talks to: nginx serving a directory over HTTP (with range requests) and
// versitygw, an S3-compatible gateway over a POSIX directory. Each server
// listens on 127.0.0.1 only, lives in t's temporary directory and is
// stopped by t.Cleanup.
//
// A missing server binary skips the test loudly, or fails it when
// TESSERAFS_REQUIRE_SERVERS=1 (as CI sets, after `make deps` installed
// them).
package testservers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// RepoRoot is the repository's top directory (where go.mod is).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// require finds a binary or skips/fails t.
func require(t testing.TB, name string, candidates ...string) string {
	t.Helper()
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	if os.Getenv("TESSERAFS_REQUIRE_SERVERS") == "1" {
		t.Fatalf("TESSERAFS_REQUIRE_SERVERS=1 but %s is not installed (make deps installs it)", name)
	}
	t.Skipf("SKIPPING %s: %s is not installed (make deps installs it); this server is NOT tested here", t.Name(), name)
	return ""
}

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitListening polls addr until it accepts a connection, the process
// exits, or 15 s pass.
func waitListening(addr string, exited <-chan error) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if exited != nil {
			select {
			case err := <-exited:
				return fmt.Errorf("exited before listening: %v", err)
			default:
			}
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not listening on %s after 15s", addr)
}

// server is a started process with its log file.
type server struct {
	cmd    *exec.Cmd
	exited chan error
	log    string
}

// start runs argv with up to 3 tries at a fresh port (another process may
// take a port between freePort and bind). args gets the port.
func start(t testing.TB, name, dir string, args func(port int) []string) (int, *server) {
	t.Helper()
	var lastErr error
	for try := 0; try < 3; try++ {
		port := freePort(t)
		argv := args(port)
		logPath := filepath.Join(dir, fmt.Sprintf("%s-%d.log", name, try))
		logf, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = logf, logf
		setGroup(cmd)
		if err := cmd.Start(); err != nil {
			logf.Close()
			t.Fatalf("%s: %v", name, err)
		}
		s := &server{cmd: cmd, exited: make(chan error, 1), log: logPath}
		go func() { s.exited <- cmd.Wait(); logf.Close() }()
		if err := waitListening(fmt.Sprintf("127.0.0.1:%d", port), s.exited); err != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			out, _ := os.ReadFile(logPath)
			lastErr = fmt.Errorf("%s: %v\n%s", name, err, out)
			continue
		}
		t.Cleanup(func() { s.stop() })
		return port, s
	}
	t.Fatal(lastErr)
	return 0, nil
}

// setGroup puts a server in its own process group (stop signals the
// whole group) and kills it if the test process dies.
func setGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func (s *server) stop() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}

// Nginx serves root read-only over HTTP on 127.0.0.1 and returns its base
// URL, ending in "/". Static files get byte ranges, ETag and
// Last-Modified, as from any nginx.
func Nginx(t testing.TB, root string) string {
	t.Helper()
	bin := require(t, "nginx", os.Getenv("TESSERAFS_NGINX"), "nginx", "/usr/sbin/nginx")
	root, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port, _ := start(t, "nginx", dir, func(port int) []string {
		conf := filepath.Join(dir, fmt.Sprintf("nginx-%d.conf", port))
		user := ""
		if os.Geteuid() == 0 {
			// Workers would otherwise drop to nobody, who cannot read
			// the test's private temporary directories.
			user = "user root;"
		}
		cfg := fmt.Sprintf(`%s
daemon off;
worker_processes 1;
error_log %[2]s/error.log warn;
pid %[2]s/nginx-%[3]d.pid;
events { worker_connections 512; }
http {
  access_log %[2]s/access.log;
  client_body_temp_path %[2]s/body;
  proxy_temp_path %[2]s/proxy;
  fastcgi_temp_path %[2]s/fastcgi;
  uwsgi_temp_path %[2]s/uwsgi;
  scgi_temp_path %[2]s/scgi;
  types { application/octet-stream npy; image/tiff tiff; application/json json; text/html html; text/javascript js; image/png png; }
  default_type application/octet-stream;
  sendfile on;
  keepalive_requests 10000;
  server {
    listen 127.0.0.1:%[3]d;
    root %[4]s;
    autoindex off;
  }
}
`, user, dir, port, root)
		if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		return []string{bin, "-p", dir, "-c", conf}
	})
	return fmt.Sprintf("http://127.0.0.1:%d/", port)
}

// S3 is a running versitygw: its endpoint and credentials.
type S3 struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Region    string
	// Dir is the POSIX directory that holds the buckets (bucket = subdirectory).
	Dir string
	// Pid is the server's process id (for benchmarks that account its CPU).
	Pid int
}

// Env is the standard AWS environment that points a client at the server.
func (s *S3) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL=" + s.Endpoint,
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=" + s.Region,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Setenv sets Env in the test's environment (t.Setenv: not with t.Parallel).
func (s *S3) Setenv(t *testing.T) {
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(s.Dir, "no-aws-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(s.Dir, "no-aws-credentials"))
}

// Client is an S3 client for the server, configured directly (not from
// the environment).
func (s *S3) Client() *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint:               aws.String(s.Endpoint),
		Region:                     s.Region,
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// CreateBucket makes a bucket.
func (s *S3) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("versitygw: create bucket %s: %v", name, err)
	}
}

// Versity starts versitygw over a fresh directory with random credentials.
// The binary is $TESSERAFS_VERSITYGW, .tools/bin/versitygw in the
// repository (where `make deps` installs it), or versitygw on PATH.
func Versity(t testing.TB) *S3 {
	t.Helper()
	bin := require(t, "versitygw", os.Getenv("TESSERAFS_VERSITYGW"),
		filepath.Join(RepoRoot(), ".tools", "bin", "versitygw"), "versitygw")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &S3{AccessKey: "tfs" + randHex(8), SecretKey: randHex(20), Region: "us-east-1", Dir: data}
	port, srv := start(t, "versitygw", dir, func(port int) []string {
		return []string{bin, "--access", s.AccessKey, "--secret", s.SecretKey,
			"--region", s.Region, "--port", fmt.Sprintf("127.0.0.1:%d", port), "posix", data}
	})
	s.Pid = srv.cmd.Process.Pid
	s.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", port)
	return s
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Upload puts every file under root into bucket, keyed prefix + its
// slash-separated path under root.
func (s *S3) Upload(t testing.TB, root, bucket, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := s.Client()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket),
			Key: aws.String(prefix + filepath.ToSlash(rel)), Body: f})
		return err
	})
	if err != nil {
		t.Fatalf("upload %s to s3://%s/%s: %v", root, bucket, prefix, err)
	}
}

// Objects reads every object under prefix in bucket, keyed by its name
// with the prefix removed.
func (s *S3) Objects(t testing.TB, bucket, prefix string) map[string][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := s.Client()
	objs := map[string][]byte{}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("listing s3://%s/%s: %v", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			r, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				t.Fatalf("get %s: %v", aws.ToString(o.Key), err)
			}
			b, err := io.ReadAll(r.Body)
			r.Body.Close()
			if err != nil {
				t.Fatalf("get %s: %v", aws.ToString(o.Key), err)
			}
			objs[strings.TrimPrefix(aws.ToString(o.Key), prefix)] = b
		}
	}
	return objs
}
