package tier2

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/bop-aof/aof/integration/harness"
)

// TestOpenNeedsNoServerAndTheBucketIsCheckedOnceItAnswers: a client is
// built while the store is down; its bucket check fails as an outage (not
// a refusal) and Health says degraded, until the server is up and the
// check passes.
func TestOpenNeedsNoServerAndTheBucketIsCheckedOnceItAnswers(t *testing.T) {
	s3 := harness.StartS3(t)
	s3.Stop()
	c, err := Open(Options{Endpoint: s3.Endpoint, Bucket: s3.Bucket, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey,
		Retry: RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond}, Breaker: BreakerPolicy{Failures: 10}})
	if err != nil {
		t.Fatalf("Open while the store is down: %v", err)
	}
	if h := c.Health(); !h.Degraded() || h.BucketChecked {
		t.Fatalf("health before any check %+v: want degraded, bucket not checked", h)
	}
	err = c.CheckBucket(context.Background())
	if err == nil {
		t.Fatal("bucket check passed with the store down")
	}
	if r := Refused(err); r != NotRefused {
		t.Fatalf("an unreachable store read as refusal %d: %v", r, err)
	}
	if Reason(err) != ReasonUnavailable {
		t.Fatalf("reason %d for %v, want 3", Reason(err), err)
	}
	if h := c.Health(); !h.Degraded() || h.LastError == "" {
		t.Fatalf("health after a failed check %+v: want degraded with the error", h)
	}

	s3.Start()
	if err := c.CheckBucket(context.Background()); err != nil {
		t.Fatalf("bucket check once the store is up: %v", err)
	}
	if h := c.Health(); h.Degraded() || !h.BucketChecked || h.LastError != "" {
		t.Fatalf("health after the check passed %+v: want ok", h)
	}
}

// TestRefusalsNameTheConfigurationToFix: bad credentials and a bucket name
// S3 refuses are refusals, told apart from an outage, answered at once and
// with neither key in the message.
func TestRefusalsNameTheConfigurationToFix(t *testing.T) {
	s3 := harness.StartS3(t)
	const secret = "WRONG-secret-7f1e-must-not-leak"
	const access = "unknown-access-key-3b2a"
	for _, tc := range []struct {
		name         string
		access, sec  string
		bucket       string
		want         Refusal
		refusedByNew bool // Open itself refuses (no request sent)
	}{
		{name: "wrong secret", access: s3.AccessKey, sec: secret, bucket: s3.Bucket, want: RefusedCredentials},
		{name: "unknown access key", access: access, sec: secret, bucket: s3.Bucket, want: RefusedCredentials},
		{name: "bucket named like an IP address", access: s3.AccessKey, sec: s3.SecretKey, bucket: "192.168.10.20", want: RefusedBucketName, refusedByNew: true},
		{name: "empty bucket", access: s3.AccessKey, sec: s3.SecretKey, bucket: "", want: RefusedBucketName, refusedByNew: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Open(Options{Endpoint: s3.Endpoint, Bucket: tc.bucket, AccessKey: tc.access, SecretKey: tc.sec,
				Retry: RetryPolicy{MaxAttempts: 4, BaseDelay: 50 * time.Millisecond}})
			if tc.refusedByNew {
				if Refused(err) != tc.want || !errors.Is(err, ErrInvalidBucketName) {
					t.Fatalf("Open: %v (refusal %d), want refusal %d", err, Refused(err), tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			started := time.Now()
			err = c.CheckBucket(context.Background())
			if Refused(err) != tc.want {
				t.Fatalf("CheckBucket: %v (refusal %d), want refusal %d", err, Refused(err), tc.want)
			}
			var oe *OpError
			if !errors.As(err, &oe) || oe.Attempts != 1 || time.Since(started) > 5*time.Second {
				t.Fatalf("a refusal was retried: %v", err)
			}
			for _, k := range []string{secret, access} {
				if strings.Contains(err.Error(), k) {
					t.Fatalf("key %q in the error: %v", k, err)
				}
			}
			if h := c.Health(); !h.Degraded() || h.LastError == "" || strings.Contains(h.LastError, secret) {
				t.Fatalf("health after a refusal %+v: want degraded with the (redacted) error", h)
			}
		})
	}
}

// TestRefusedTellsRefusalsFromOutages: what the gateway must not start
// with, and what it must start through.
func TestRefusedTellsRefusalsFromOutages(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Refusal
	}{
		{minio.ErrorResponse{Code: "InvalidAccessKeyId", StatusCode: 403}, RefusedCredentials},
		{minio.ErrorResponse{Code: "SignatureDoesNotMatch", StatusCode: 403}, RefusedCredentials},
		{minio.ErrorResponse{Code: "AccessDenied", StatusCode: 403}, RefusedCredentials},
		{minio.ErrorResponse{Code: "InvalidBucketName", StatusCode: 400}, RefusedBucketName},
		{fmt.Errorf("tier2: %w", ErrInvalidBucketName), RefusedBucketName},
		{minio.ErrorResponse{Code: "InternalError", StatusCode: 500}, NotRefused},
		{minio.ErrorResponse{Code: "ServiceUnavailable", StatusCode: 503}, NotRefused},
		{minio.ErrorResponse{Code: "NoSuchBucket", StatusCode: 404}, NotRefused},
		{ErrBreakerOpen, NotRefused},
		{ErrBucketMissing, NotRefused},
		{context.DeadlineExceeded, NotRefused},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, NotRefused},
		{fmt.Errorf("%w (after: %w)", ErrBreakerOpen, errors.New("connection refused")), NotRefused},
	} {
		if got := Refused(tc.err); got != tc.want {
			t.Errorf("Refused(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	if countsAgainstStore(minio.ErrorResponse{Code: "InvalidBucketName", StatusCode: 400}) {
		t.Error("an invalid bucket name counts against the store: it would be retried and open the breaker")
	}
}

// Once the breaker opens, later calls fail with "circuit breaker open";
// the health report keeps the error the breaker opened on, so an operator
// reading /readyz sees why (connection refused) and not only that the
// breaker is open (which Breaker already says).
func TestHealthKeepsTheCauseOnceTheBreakerOpens(t *testing.T) {
	s3 := harness.StartS3(t)
	s3.Stop()
	c, err := Open(Options{Endpoint: s3.Endpoint, Bucket: s3.Bucket, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey,
		Retry: RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond}, Breaker: BreakerPolicy{Failures: 2, Cooldown: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	c.CheckBucket(context.Background()) // opens the breaker
	if err := c.CheckBucket(context.Background()); !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("second check: %v, want the breaker open", err)
	}
	h := c.Health()
	if h.Breaker != BreakerOpen || !strings.Contains(h.LastError, "connection refused") {
		t.Fatalf("health with the breaker open: %+v, want breaker open and the connection error as last error", h)
	}
}
