package tier2

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/minio/minio-go/v7"
)

// Reason codes, as in the manifest's UploadFailed / HydrationFailed records
// (REFERENCE.md).
const (
	// ReasonTransient: retry automatically.
	ReasonTransient uint32 = 0
	// ReasonCodec: the bytes are wrong (crc mismatch); retrying will not help.
	ReasonCodec uint32 = 1
	// ReasonAuth: credentials or permissions; operator action.
	ReasonAuth uint32 = 2
	// ReasonUnavailable: bucket or network unavailable.
	ReasonUnavailable uint32 = 3
	// ReasonMissing: the object is not in Tier 2; repair.
	ReasonMissing uint32 = 4
)

// OpError is the error every Client call returns. Its message never holds
// the secret key.
type OpError struct {
	Op       string // upload, stat, download, get-range, delete, list, connect
	Bucket   string
	Key      string
	Attempts int
	Err      error

	msg string // computed and redacted at construction
}

// NewOpError builds the OpError of a Bucket implementation: "tier2 op
// bucket/key (n attempts): err". err's message must hold no secret.
func NewOpError(op, bucket, key string, attempts int, err error) *OpError {
	msg := fmt.Sprintf("tier2 %s %s/%s", op, bucket, key)
	if attempts > 1 {
		msg += fmt.Sprintf(" (%d attempts)", attempts)
	}
	return &OpError{Op: op, Bucket: bucket, Key: key, Attempts: attempts, Err: err, msg: msg + ": " + err.Error()}
}

func (e *OpError) Error() string { return e.msg }
func (e *OpError) Unwrap() error { return e.Err }

// Reason is the REFERENCE.md reason code of e.
func (e *OpError) Reason() uint32 { return Reason(e.Err) }

// CorruptionError says an object's bytes do not match the crc64 recorded
// for them (reason 1).
type CorruptionError struct {
	Key       string
	Want, Got uint64
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("tier2: object %s crc64 %016x, metadata says %016x", e.Key, e.Got, e.Want)
}

var (
	// ErrBucketMissing is returned by New when the bucket does not exist and
	// Options.CreateBucket is false (reason 3).
	ErrBucketMissing = errors.New("bucket does not exist (create it or set CreateBucket)")
	// ErrNotFound is returned for missing objects (reason 4).
	ErrNotFound = errors.New("object not found")
)

// Reason classifies err into a REFERENCE.md reason code: 0 transient,
// 1 codec, 2 auth, 3 bucket/network unavailable, 4 object missing. nil and
// unknown errors are transient.
func Reason(err error) uint32 {
	if err == nil {
		return ReasonTransient
	}
	var ce *CorruptionError
	switch {
	case errors.As(err, &ce):
		return ReasonCodec
	case errors.Is(err, ErrNotFound):
		return ReasonMissing
	case errors.Is(err, ErrBucketMissing), errors.Is(err, ErrBreakerOpen), errors.Is(err, ErrInvalidBucketName):
		return ReasonUnavailable
	}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && resp.Code != "" {
		switch resp.Code {
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
			"InvalidToken", "InvalidSecurity", "AllAccessDisabled", "AccountProblem",
			"InvalidClientTokenId", "XAdminUserNotFound": // versitygw answers an unknown access key with XAdminUserNotFound
			return ReasonAuth
		case "NoSuchKey", "NoSuchVersion":
			return ReasonMissing
		case "NoSuchBucket", "InvalidBucketName", "ServiceUnavailable", "ServiceUnavailableException":
			return ReasonUnavailable
		case "BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum":
			return ReasonCodec
		}
		switch {
		case resp.StatusCode == 401 || resp.StatusCode == 403:
			return ReasonAuth
		case resp.StatusCode == 503:
			return ReasonUnavailable
		}
		return ReasonTransient
	}
	var netErr net.Error
	var opErr *net.OpError
	switch {
	case errors.As(err, &opErr), errors.As(err, &netErr):
		return ReasonUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonUnavailable
	}
	// minio-go sometimes flattens transport errors into strings.
	if s := err.Error(); strings.Contains(s, "connection refused") || strings.Contains(s, "connection reset") ||
		strings.Contains(s, "no such host") || strings.Contains(s, "EOF") {
		return ReasonUnavailable
	}
	return ReasonTransient
}

// countsAgainstStore says whether a failed attempt should feed the breaker
// and be retried: the store is failing or unreachable, not answering.
func countsAgainstStore(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, errNoRetry) || errors.Is(err, ErrBucketMissing) {
		return false
	}
	if Refused(err) == RefusedBucketName {
		return false // an answer about the configuration, not an outage
	}
	r := Reason(err)
	return r == ReasonTransient || r == ReasonUnavailable
}
