package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 is a real versitygw S3 server with a posix backend in a temp dir.
type S3 struct {
	t         testing.TB
	Binary    string
	Host      string // 127.0.0.1:port
	Endpoint  string // http://127.0.0.1:port
	AccessKey string
	SecretKey string
	Bucket    string
	Dir       string

	mu  sync.Mutex
	cmd *exec.Cmd
	log *os.File
}

// VersitygwPath finds the versitygw binary: $AOF_VERSITYGW, then ./bin of
// the repository (where `make tools` installs it).
func VersitygwPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("AOF_VERSITYGW"); p != "" {
		return p
	}
	p := filepath.Join(RepoRoot(t), "bin", "versitygw")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("harness: versitygw not found at %s: run `make test` (or `make tools`), which installs it", p)
	}
	return p
}

// StartS3 starts versitygw on a free loopback port and creates a fresh
// bucket. The server is stopped and its directory removed with the test.
func StartS3(t testing.TB) *S3 {
	t.Helper()
	port := FreePort(t)
	s := &S3{
		t:         t,
		Binary:    VersitygwPath(t),
		Host:      fmt.Sprintf("127.0.0.1:%d", port),
		AccessKey: "aoftestaccess",
		SecretKey: "aoftestsecret-do-not-log",
		Bucket:    "aof-test",
		Dir:       t.TempDir(),
	}
	s.Endpoint = "http://" + s.Host
	s.Start()
	t.Cleanup(s.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Client(t).MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("harness: make bucket: %v", err)
	}
	return s
}

// Start (re)starts the server process on the same port and directory.
func (s *S3) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	logf, err := os.OpenFile(filepath.Join(s.t.TempDir(), "versitygw.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatalf("harness: versitygw log: %v", err)
	}
	cmd := exec.Command(s.Binary, "--port", s.Host, "--access", s.AccessKey, "--secret", s.SecretKey, "posix", s.Dir)
	cmd.Stdout = logf
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.t.Fatalf("harness: start versitygw: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := waitTCP(ctx, s.Host); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		out, _ := os.ReadFile(logf.Name())
		s.t.Fatalf("harness: versitygw did not start: %v\n%s", err, strings.TrimSpace(string(out)))
	}
	s.cmd, s.log = cmd, logf
}

// Stop kills the server process; the bucket data stays for Start.
func (s *S3) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.log.Close()
	s.cmd, s.log = nil, nil
}

// Client returns a minio-go client for the server.
func (s *S3) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(s.Host, &minio.Options{
		Creds:  credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure: false,
		Region: "us-east-1",
	})
	if err != nil {
		t.Fatalf("harness: minio client: %v", err)
	}
	return c
}
