package control

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
)

// permissionViolationRe reads the operation and the subject out of the
// server's -ERR 'Permissions Violation for Publish to "subject"' (or
// Subscription to), as nats.go passes it to the connection's error
// handler wrapped in nats.ErrPermissionViolation.
var permissionViolationRe = regexp.MustCompile(`Permissions Violation for (Publish|Subscription) to "([^"\s]+)"`)

// PermissionViolation returns the operation ("publish" or "subscribe")
// and the subject of a permissions violation the NATS server reported;
// two empty strings for any other error.
func PermissionViolation(err error) (op, subject string) {
	if !errors.Is(err, nats.ErrPermissionViolation) {
		return "", ""
	}
	m := permissionViolationRe.FindStringSubmatch(err.Error())
	if m == nil {
		return "", ""
	}
	if m[1] == "Publish" {
		return "publish", m[2]
	}
	return "subscribe", m[2]
}

// PermissionDenials fails a client's request at once when the NATS server
// refuses it for lack of permission. The server refuses a publish it does
// not permit (or the subscription to the reply inbox) with an
// asynchronous -ERR, never an answer: without this the request waits for
// its context and looks like a gateway that does not answer (503).
//
// Install ErrorHandler as the connection's nats.ErrorHandler and pass the
// PermissionDenials to NewClient with WithPermissionDenials.
type PermissionDenials struct {
	mu sync.Mutex
	// waiting holds the requests in flight, oldest first: the server
	// reports refusals in the order of the publishes.
	waiting []*denialWaiter
}

type denialWaiter struct {
	subject, inboxPrefix string
	fail                 func(error)
}

// NewPermissionDenials returns a PermissionDenials with no request in
// flight.
func NewPermissionDenials() *PermissionDenials { return &PermissionDenials{} }

// ErrorHandler returns the connection error handler that fails the
// request a permissions violation concerns. Errors no request waits for
// go to next (nil: dropped).
func (d *PermissionDenials) ErrorHandler(next nats.ErrHandler) nats.ErrHandler {
	return func(nc *nats.Conn, sub *nats.Subscription, err error) {
		if op, subject := PermissionViolation(err); op != "" && d.deny(op, subject) {
			return
		}
		if next != nil {
			next(nc, sub, err)
		}
	}
}

// deny fails the oldest request the refusal of op on subject concerns:
// the one publishing to subject, or any when the refused subscription is
// the connection's reply inbox (no answer can arrive then).
func (d *PermissionDenials) deny(op, subject string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, w := range d.waiting {
		var err error
		switch {
		case op == "publish" && subject == w.subject:
			err = Errorf(CodeForbidden, "permission denied by the NATS server for publish to %s: this NATS user may not call it "+
				"(ask for the operator role, user manual section 10)", subject)
		case op == "subscribe" && strings.HasPrefix(subject, w.inboxPrefix):
			err = Errorf(CodeForbidden, "permission denied by the NATS server for subscribe to %s: this NATS user cannot receive answers "+
				"(its permissions must allow subscribing to %s>)", subject, w.inboxPrefix)
		default:
			continue
		}
		d.waiting = append(d.waiting[:i], d.waiting[i+1:]...)
		w.fail(err)
		return true
	}
	return false
}

// watch registers a request to subject on nc until the returned function
// is called; fail is called with the refusal if the server refuses it.
func (d *PermissionDenials) watch(nc *nats.Conn, subject string, fail func(error)) (stop func()) {
	prefix := nc.Opts.InboxPrefix
	if prefix == "" {
		prefix = nats.InboxPrefix
	}
	w := &denialWaiter{subject: subject, inboxPrefix: strings.TrimSuffix(prefix, ".") + ".", fail: fail}
	d.mu.Lock()
	d.waiting = append(d.waiting, w)
	d.mu.Unlock()
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		for i, x := range d.waiting {
			if x == w {
				d.waiting = append(d.waiting[:i], d.waiting[i+1:]...)
				return
			}
		}
	}
}

// requestWatched sends the request req through c.nc, failing at once
// with the refusal when the server refuses it.
func (c *Client) requestWatched(ctx context.Context, req *nats.Msg) (*nats.Msg, error) {
	if c.denials == nil {
		return c.nc.RequestMsgWithContext(ctx, req)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer c.denials.watch(c.nc, req.Subject, cancel)()
	msg, err := c.nc.RequestMsgWithContext(ctx, req)
	if err != nil {
		var refused *Error
		if cause := context.Cause(ctx); errors.As(cause, &refused) && refused.Code == CodeForbidden {
			return nil, refused
		}
	}
	return msg, err
}
