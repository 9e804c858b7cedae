package control

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/config"
	"github.com/bop-aof/aof/fsck"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/backpressure"
	"github.com/bop-aof/aof/tiers/tier2"
)

// Endpoint names. Each is served on <prefix>.<name>.
const (
	EndpointStatus          = "status"
	EndpointDump            = "dump"
	EndpointSeal            = "seal"
	EndpointFlush           = "flush"
	EndpointHydrate         = "hydrate"
	EndpointSegmentsList    = "segments.list"
	EndpointSegmentsDelete  = "segments.delete"
	EndpointManifestCheck   = "manifest.check"
	EndpointManifestInspect = "manifest.inspect"
	EndpointRead            = "read"
	EndpointSnapshotCreate  = "snapshot.create"
	EndpointSnapshotList    = "snapshot.list"
	EndpointConfigReload    = "config.reload"
	// EndpointHandover is answered by the node it names: that gateway
	// hands every partition it owns over and takes no more.
	EndpointHandover = "cluster.handover"
	// EndpointDrain is answered by the node it names: that gateway gives
	// every partition away and takes none (off: takes its share again).
	EndpointDrain = "cluster.drain"
	// EndpointClusterView answers the view of aof2-admin cluster, so
	// that an operator's NATS account needs only the admin service, not
	// the cluster bucket's JetStream API.
	EndpointClusterView = "cluster.view"
)

// Endpoints lists every endpoint the service registers, in a stable order.
var Endpoints = []string{
	EndpointStatus, EndpointDump, EndpointSeal, EndpointFlush, EndpointHydrate,
	EndpointSegmentsList, EndpointSegmentsDelete, EndpointManifestCheck,
	EndpointManifestInspect, EndpointRead, EndpointSnapshotCreate,
	EndpointSnapshotList, EndpointConfigReload, EndpointHandover, EndpointClusterView,
	EndpointDrain,
}

// Error codes carried in the Nats-Service-Error-Code header of an error
// response. They follow HTTP status numbers, as NATS micro tooling expects.
const (
	CodeBadRequest     = "400" // malformed request or invalid argument
	CodeUnauthorized   = "401" // NATS or Tier 2 authentication/authorization
	CodeForbidden      = "403" // the NATS server refused the request: the user lacks the permission
	CodeNotFound       = "404" // stream, segment or offset not found
	CodeConflict       = "409" // refused: the operation would break an invariant
	CodeTooLarge       = "413" // one record does not fit the answer limit
	CodeInternal       = "500" // I/O error, corruption, anything else
	CodeUnavailable    = "503" // backpressure or Tier 2 unavailable: retry later
	CodeNotImplemented = "501" // the store cannot do this (yet)
)

// Exit codes of aof2-admin (REFERENCE.md).
const (
	ExitOK       = 0
	ExitUsage    = 1
	ExitNotFound = 2
	ExitAuth     = 3
	ExitIO       = 4
)

// Error is an error answer of the service: a code (Code* above) and a
// message. The client returns it for every error response.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s (code %s)", e.Message, e.Code) }

// Errorf builds an *Error.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Classify maps an error of the store, Tier 2 or NATS to a service error
// code.
func Classify(err error) string {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Code
	}
	var he *tiers.HydrationError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, tiers.ErrStreamNotFound), errors.Is(err, tiers.ErrSegmentNotFound),
		errors.Is(err, tiers.ErrOffsetNotFound):
		return CodeNotFound
	case errors.Is(err, config.ErrInvalidName), errors.Is(err, fsck.ErrNoRoot):
		return CodeBadRequest
	case errors.Is(err, fsck.ErrRootMissing):
		return CodeNotFound
	case errors.Is(err, fsck.ErrTier2Auth):
		return CodeUnauthorized
	case errors.Is(err, tiers.ErrRootLocked):
		return CodeConflict
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired),
		errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrAccountAuthExpired):
		return CodeUnauthorized
	case errors.Is(err, nats.ErrPermissionViolation):
		return CodeForbidden
	case errors.As(err, &he) && he.Reason == manifest.ReasonAuth:
		return CodeUnauthorized
	case errors.Is(err, context.DeadlineExceeded):
		return CodeUnavailable
	}
	var bp *backpressure.Error
	if errors.As(err, &bp) {
		return CodeUnavailable
	}
	var oe *tier2.OpError
	if errors.As(err, &oe) {
		switch oe.Reason() {
		case tier2.ReasonAuth:
			return CodeUnauthorized
		case tier2.ReasonUnavailable:
			return CodeUnavailable
		}
	}
	return CodeInternal
}

// ExitCode maps an error to the aof2-admin exit code: 1 usage, 2 not found,
// 3 authentication or authorization, 4 I/O (everything else that failed).
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	switch Classify(err) {
	case CodeBadRequest, CodeConflict, CodeNotImplemented, CodeTooLarge:
		return ExitUsage
	case CodeNotFound:
		return ExitNotFound
	case CodeUnauthorized, CodeForbidden:
		return ExitAuth
	}
	return ExitIO
}

// asError converts err to an *Error for the wire.
func asError(err error) *Error {
	var ce *Error
	if errors.As(err, &ce) {
		return ce
	}
	return &Error{Code: Classify(err), Message: err.Error()}
}
