package main

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/bop-aof/aof/aofclient"
	"github.com/bop-aof/aof/control"
	"github.com/bop-aof/aof/readapi"
	"github.com/bop-aof/aof/tiers"
)

// The online read commands (read, tail, replay, export) use the gateways'
// read API on <read.subject_prefix>.<stream> through aofclient, not the
// admin service: a NATS user needs only publish to aof.read.> (and its
// inbox) to run them, and a read is not bounded by one answer.

// readerClient connects and returns a read API client, and ctx with a
// cause that the NATS server's refusal of a read subject or of the reply
// inbox sets at once (the server answers a refused publish with an
// asynchronous -ERR only: without this, the read would wait for its
// timeouts and retry). stop releases ctx.
func (a *app) readerClient(cmd *cobra.Command, parent context.Context, opts ...aofclient.Option) (context.Context, context.CancelFunc, *aofclient.Client, error) {
	cfg, err := a.config(cmd)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithCancelCause(parent)
	prefix := cfg.Read.SubjectPrefix
	a.readDenied = func(op, subject string) {
		if op == "publish" && !underPrefix(subject, prefix) {
			// replay's target subject, not the read API
			cancel(control.Errorf(control.CodeForbidden, "permission denied by the NATS server for publish to %s: this NATS user may not publish there", subject))
			return
		}
		cancel(control.Errorf(control.CodeForbidden, "permission denied by the NATS server for %s to %s: reading needs publish to %s.> "+
			"and subscribe to the reply inbox (the reader role of deploy/nats/aof-roles.conf)", op, subject, prefix))
	}
	stop := func() { cancel(nil) }
	nc, err := a.connect(cmd)
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	// A gateway may wait up to 60 s for a cold segment from Tier 2 before
	// the first record of a batch: the client's default covers it; an
	// explicit --timeout is taken as asked.
	wait := aofclient.DefaultTimeout
	if changed(a.flags, "timeout") {
		wait = a.timeout
	}
	base := []aofclient.Option{aofclient.WithSubjectPrefix(prefix), aofclient.WithTimeout(wait)}
	c, err := aofclient.New(nc, append(base, opts...)...)
	if err != nil {
		stop()
		return nil, nil, nil, usageError{err}
	}
	return ctx, stop, c, nil
}

// deniedBy is the NATS server's refusal that ended ctx, if one did.
func deniedBy(ctx context.Context) *control.Error {
	var ce *control.Error
	if errors.As(context.Cause(ctx), &ce) {
		return ce
	}
	return nil
}

// readFailure turns an error of a read into a command error with the
// exit code it deserves: the NATS server's refusal (ctx's cause), the
// gateway's status, or no gateway answering.
func readFailure(ctx context.Context, stream string, err error) error {
	if denied := deniedBy(ctx); denied != nil {
		return denied
	}
	var re *readapi.Error
	if errors.As(err, &re) {
		return control.Errorf(readStatusCode(re.Code), "%v", err)
	}
	if errors.Is(err, nats.ErrNoResponders) {
		return control.Errorf(control.CodeUnavailable, "read %s: no gateway serves the read API (no responders): %v", stream, err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
		return control.Errorf(control.CodeUnavailable, "read %s: %v", stream, err)
	}
	return err
}

// readStatusCode maps a read API status onto the admin error code whose
// exit code fits it.
func readStatusCode(status string) string {
	switch status {
	case readapi.StatusBadRequest, readapi.StatusVersionMismatch:
		return control.CodeBadRequest
	case readapi.StatusTooLarge:
		return control.CodeTooLarge
	case readapi.StatusNotImplemented:
		return control.CodeNotImplemented
	case readapi.StatusNotFound, readapi.StatusGone, readapi.StatusBeyondEnd:
		return control.CodeNotFound
	case readapi.StatusUnavailable:
		return control.CodeUnavailable
	}
	return control.CodeInternal
}

// isStatus reports whether err is the read API status code.
func isStatus(err error, code string) bool {
	var re *readapi.Error
	return errors.As(err, &re) && re.Code == code
}

// messageOf is a record in the shape read and tail have always printed.
func messageOf(rec aofclient.Record) control.Message {
	m := control.Message{Offset: rec.Offset, ExtID: rec.Seq, AppendMS: rec.Time.UnixMilli(),
		Subject: rec.Subject, Body: rec.Data, Raw: rec.Raw}
	if len(rec.Header) > 0 {
		m.Header = map[string][]string(rec.Header)
	}
	if len(m.Body) == 0 {
		m.Body = nil // JSON null, as the admin read printed an empty body
	}
	return m
}

func (a *app) readCommand() *cobra.Command {
	var root, stream string
	var from uint64
	var count, maxBytes int
	cmd := &cobra.Command{
		Use:   "read",
		Short: "Print records of a stream from an offset",
		Long: `read prints up to --count records of a stream starting at logical offset
--from: offset, ext id (JetStream sequence), append time, subject, headers and
body (quoted text, or base64 when not UTF-8). The read stops at the durable
end of the stream. --count has no upper limit: the records come in batches
of at most 10000 records and --max-bytes body bytes (at most 16 MiB).

Online it uses the gateways' read API (aof.read.<stream>, read.subject_prefix):
cold segments come back from Tier 2 on demand, a gateway restart during the
read is resumed, and the NATS user needs only publish to aof.read.> (the
reader role). --timeout, when given, is how long to wait for the next
message of a batch (by default 70 s: a gateway may wait 60 s for a cold
segment). With --root it reads a stopped gateway's data root (Tier 0 and
Tier 1 only).`,
		Example: `  aof2-admin read --stream demo --from 0 --count 10
  aof2-admin read --stream demo --from 1000 --json | jq -r '.messages[].body | @base64d'
  aof2-admin read --root ./data --stream demo --from 0`,
		Args: cobra.NoArgs,
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			if stream == "" {
				return usagef("read needs --stream")
			}
			if count <= 0 {
				return usagef("--count must be at least 1")
			}
			req := control.ReadRequest{Stream: stream, From: from, Count: count, MaxBytes: maxBytes}
			var res control.ReadResponse
			var err error
			if root != "" {
				res, err = answer(a, cmd, root,
					func(ctx context.Context, s *tiers.Store) (control.ReadResponse, error) { return readAll(ctx, s, req) }, nil)
			} else {
				res, err = a.readOnline(cmd, req)
			}
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(res)
			}
			for _, m := range res.Messages {
				printMessage(a.stdout, m)
			}
			if len(res.Messages) == 0 {
				fmt.Fprintf(a.stderr, "no records at offset %d of %s (end of stream)\n", from, stream)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&root, "root", "", "read this data root offline (gateway stopped)")
	cmd.Flags().StringVar(&stream, "stream", "", "stream to read")
	cmd.Flags().Uint64Var(&from, "from", 0, "first logical offset")
	cmd.Flags().IntVar(&count, "count", 10, "records to print at most")
	cmd.Flags().IntVar(&maxBytes, "max-bytes", control.DefaultReadMaxBytes, "body bytes per batch at most (up to 16 MiB)")
	return cmd
}

// readOnline reads req through the read API. AtTail is set when the read
// ended at the durable end before Count records, as the admin read said.
func (a *app) readOnline(cmd *cobra.Command, req control.ReadRequest) (control.ReadResponse, error) {
	ctx, stop, c, err := a.readerClient(cmd, cmd.Context(), aofclient.WithBatch(batchMsgs(req.Count), batchBytes(req.MaxBytes)))
	if err != nil {
		return control.ReadResponse{}, err
	}
	defer stop()
	out := control.ReadResponse{Stream: req.Stream, Messages: []control.Message{}, Next: req.From}
	end := req.From + uint64(req.Count)
	for rec, err := range c.Read(ctx, req.Stream, aofclient.FromOffset(req.From), aofclient.ToOffset(end)) {
		if err != nil {
			if isStatus(err, readapi.StatusBeyondEnd) && len(out.Messages) == 0 {
				break // as the admin read answered: no records, the end of the stream
			}
			return out, readFailure(ctx, req.Stream, err)
		}
		out.Messages = append(out.Messages, messageOf(rec))
		out.Next = rec.Offset + 1
	}
	out.AtTail = len(out.Messages) < req.Count
	return out, nil
}

// batchMsgs is the records per batch for a read of count records.
func batchMsgs(count int) int { return min(max(count, 1), readapi.MaxMaxMsgs) }

// batchBytes is the body bytes per batch for --max-bytes: the gateway
// refuses more than readapi.MaxMaxBytes, so a larger value is capped.
func batchBytes(maxBytes int) int { return min(max(maxBytes, 0), readapi.MaxMaxBytes) }

// readAll repeats offline reads until count records or the tail.
func readAll(ctx context.Context, s *tiers.Store, req control.ReadRequest) (control.ReadResponse, error) {
	out := control.ReadResponse{Stream: req.Stream, Messages: []control.Message{}, Next: req.From}
	want := req.Count
	for len(out.Messages) < want {
		req.Count = want - len(out.Messages)
		req.From = out.Next
		res, err := control.Read(ctx, s, req)
		if err != nil {
			return out, err
		}
		out.Messages = append(out.Messages, res.Messages...)
		out.Next = res.Next
		if res.AtTail || len(res.Messages) == 0 {
			out.AtTail = res.AtTail
			break
		}
	}
	return out, nil
}

func (a *app) tailCommand() *cobra.Command {
	var stream string
	var from int64
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Follow new records of a stream until Ctrl-C",
		Long: `tail prints the records of a stream as they become durable, like read,
until interrupted (Ctrl-C or SIGTERM). It starts at the end of the stream, or
at --from. It uses the gateways' read API (the NATS user needs only publish
to aof.read.>) and carries on from the last record printed when a gateway
restarts or another takes over.`,
		Example: `  aof2-admin tail --stream demo
  aof2-admin tail --stream demo --from 0`,
		Args: cobra.NoArgs,
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			if stream == "" {
				return usagef("tail needs --stream")
			}
			sctx, cancelSignals := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer cancelSignals()
			ctx, stop, c, err := a.readerClient(cmd, sctx)
			if err != nil {
				return err
			}
			defer stop()
			return a.tail(ctx, c, stream, from)
		}),
	}
	cmd.Flags().StringVar(&stream, "stream", "", "stream to follow")
	cmd.Flags().Int64Var(&from, "from", -1, "start at this offset (default: the end of the stream)")
	return cmd
}

// tail follows stream from offset from (the end when negative) until ctx
// ends, which is a success.
func (a *app) tail(ctx context.Context, c *aofclient.Client, stream string, from int64) error {
	next := uint64(max(from, 0))
	if from < 0 {
		end, err := c.EndOffset(ctx, stream)
		if err != nil {
			return a.tailEnded(ctx, stream, err)
		}
		next = end
	}
	for rec, err := range c.Follow(ctx, stream, aofclient.FromOffset(next)) {
		if err != nil {
			return a.tailEnded(ctx, stream, err)
		}
		m := messageOf(rec)
		if a.jsonOut {
			if err := a.printJSON(m); err != nil {
				return err
			}
		} else {
			printMessage(a.stdout, m)
		}
	}
	return a.tailEnded(ctx, stream, nil)
}

// tailEnded is the outcome of a tail that stopped: an interrupt is a
// success, the NATS server's refusal or the gateway's status is not.
func (a *app) tailEnded(ctx context.Context, stream string, err error) error {
	if denied := deniedBy(ctx); denied != nil {
		return denied
	}
	if err == nil || ctx.Err() != nil {
		return nil
	}
	return readFailure(ctx, stream, err)
}
