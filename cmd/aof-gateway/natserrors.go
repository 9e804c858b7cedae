package main

import (
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/control"
)

// natsErrorHandler logs the asynchronous errors of the gateway's NATS
// connection (a publish or subscription the server refuses, a slow
// consumer) as nats_async_error events; without a handler nats.go prints
// a raw line on stderr, outside the structured log. The subject is the
// subscription's, else the one a permissions violation names. nats.go
// quotes no URL or credentials in these errors.
func natsErrorHandler(log *slog.Logger) nats.ErrHandler {
	return func(_ *nats.Conn, sub *nats.Subscription, err error) {
		op, subject := control.PermissionViolation(err)
		if sub != nil {
			subject = sub.Subject
		}
		attrs := []any{"subject", subject, "err", err}
		if op != "" {
			attrs = append(attrs, "refused", op)
		}
		log.Error("nats_async_error", attrs...)
	}
}
