// Package backpressure defines the typed answer the store gives when it cannot
// take or serve work right now. Backpressure is never a hang and never a
// silent drop: callers test for it with errors.As and decide whether to wait,
// retry or slow down. The kinds and their meaning follow the original AOF2
// store (see REFERENCE.md).
package backpressure

import (
	"errors"
	"fmt"
)

// Kind says which resource is short.
type Kind int

const (
	// Admission: the Tier 0 byte budget is exhausted. Slow down, wait for
	// admission, or raise tier0.cluster_max_bytes.
	Admission Kind = iota + 1
	// Rollover: the active segment is being sealed. Retry shortly.
	Rollover
	// Hydration: the segment is being brought back from Tier 1 or Tier 2.
	// Wait and back off exponentially (10 ms to 250 ms).
	Hydration
	// Flush: durability trails what was written (fsync failing or behind).
	Flush
	// Tail: a tail reader is ahead of the durable watermark.
	Tail
)

var kindNames = map[Kind]string{
	Admission: "admission",
	Rollover:  "rollover",
	Hydration: "hydration",
	Flush:     "flush",
	Tail:      "tail",
}

// Kinds lists every kind in a stable order, for metrics and status output.
var Kinds = []Kind{Admission, Rollover, Hydration, Flush, Tail}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is the backpressure answer. Stream names the stream concerned, if
// one is; Err carries the underlying cause when there is one (for Flush, the
// failed fsync).
type Error struct {
	Kind   Kind
	Stream string
	Err    error
}

func (e *Error) Error() string {
	msg := "backpressure: " + e.Kind.String()
	if e.Stream != "" {
		msg += " (stream " + e.Stream + ")"
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// New returns a backpressure error of kind k.
func New(k Kind, stream string, cause error) *Error {
	return &Error{Kind: k, Stream: stream, Err: cause}
}

// Is reports whether err is backpressure of kind k.
func Is(err error, k Kind) bool {
	var bp *Error
	return errors.As(err, &bp) && bp.Kind == k
}
