package tier2

import (
	"errors"
	"sync"

	"github.com/minio/minio-go/v7"
)

// ErrInvalidBucketName says the bucket name is one S3 refuses: empty, too
// long, an IP address, invalid characters. The configuration has to change.
var ErrInvalidBucketName = errors.New("invalid bucket name")

// Refusal is what a store that answered, but refused the client, blames.
// A refusal is a configuration that can never work; an outage is not one.
type Refusal int

const (
	// NotRefused: no refusal. The error, if any, may pass: the store is
	// down, slow or failing, or the object is missing.
	NotRefused Refusal = iota
	// RefusedCredentials: the store refused the access key
	// (InvalidAccessKeyId), the signature made with the secret key
	// (SignatureDoesNotMatch) or access to the bucket (AccessDenied).
	RefusedCredentials
	// RefusedBucketName: the bucket name is not one the store accepts
	// (InvalidBucketName, or refused by minio-go before sending).
	RefusedBucketName
)

// Refused says whether err is a refusal of the client's configuration,
// and of which part.
func Refused(err error) Refusal {
	if err == nil || errors.Is(err, ErrBreakerOpen) {
		return NotRefused
	}
	if errors.Is(err, ErrInvalidBucketName) {
		return RefusedBucketName
	}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && resp.Code == "InvalidBucketName" {
		return RefusedBucketName
	}
	if Reason(err) == ReasonAuth {
		return RefusedCredentials
	}
	return NotRefused
}

// Health is what a client has seen of the object store, for readiness
// reports.
type Health struct {
	// BucketChecked is true once a bucket check (CheckBucket) succeeded.
	BucketChecked bool
	Breaker       BreakerState
	// LastError is the latest failure that says the store is down or
	// refuses the client; "" once a later call succeeded.
	LastError string
}

// Degraded says Tier 2 is not known to work: the bucket was never
// confirmed, the breaker is not closed, or the latest call failed.
// Uploads wait while it is; appends and local reads go on.
func (h Health) Degraded() bool {
	return !h.BucketChecked || h.Breaker != BreakerClosed || h.LastError != ""
}

// health holds the facts behind Health.
type health struct {
	mu            sync.Mutex
	bucketChecked bool
	lastErr       string
}

// Health reports what the client has seen of the store.
func (c *Client) Health() Health {
	c.health.mu.Lock()
	defer c.health.mu.Unlock()
	return Health{BucketChecked: c.health.bucketChecked, Breaker: c.breaker.State(), LastError: c.health.lastErr}
}

// noteCheck records the outcome of a bucket check; err is already redacted.
func (h *health) noteCheck(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.bucketChecked = true
	}
	h.setLastErrLocked(err, func(err error) string { return err.Error() })
}

// setLastErrLocked records err (nil clears it) as the last error, written
// by text. An open breaker's refusal does not replace the error it opened
// on: the breaker's state is reported on its own, and the last error keeps
// saying why (connection refused, 503, ...).
func (h *health) setLastErrLocked(err error, text func(error) string) {
	switch {
	case err == nil:
		h.lastErr = ""
	case errors.Is(err, ErrBreakerOpen) && h.lastErr != "":
	default:
		h.lastErr = text(err)
	}
}

// noteAttempt records the outcome of one attempt of any call: a success
// clears the last error, a failure against the store or a refusal sets
// it, and answers about objects (missing, corrupt) leave it.
func (c *Client) noteAttempt(err error, failed bool) {
	if err != nil && !failed && Refused(err) == NotRefused {
		return
	}
	c.health.mu.Lock()
	defer c.health.mu.Unlock()
	c.health.setLastErrLocked(err, func(err error) string { return c.redact(err.Error()) })
}
