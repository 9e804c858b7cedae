package main

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/bop-aof/aof/aofclient"
	"github.com/bop-aof/aof/ingest"
)

// replayOptions are the flags of replay besides the range.
type replayOptions struct {
	subject     string
	jetStream   bool
	window      int
	rate        float64
	allowIngest bool
}

func (a *app) replayCommand() *cobra.Command {
	var rng recordRange
	var o replayOptions
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Republish a range of a stream's records to NATS",
		Long: `replay reads a range of a stream through the read API and publishes each
record again, in order, with its headers and body: to the subject it was
published on, or to the subject --subject makes of it, where {{stream}} is
the stream and {{subject}} the original subject ('restore.{{stream}}',
'copy.{{subject}}').

The range starts at --from (offset, default 0), --from-seq (JetStream
sequence) or --from-time (the first record appended at or after that time,
RFC 3339), and ends before --to (offset), --to-seq or --to-time, or at the
durable end of the stream when the read reaches it.

The original subjects are under the ingest prefix (ingest.subject_prefix,
aof.ingest): a record published there again is ingested by the gateway a
second time. replay refuses such a target subject unless
--allow-ingest-subject is given.

With --jetstream every record is a JetStream publish, awaited
asynchronously with at most --window unacknowledged, carrying
Nats-Msg-Id: <stream>:<offset> (replacing a Nats-Msg-Id the producer sent):
a replay interrupted and run again stores nothing twice in a stream whose
duplicate window covers both runs. Without it, records are core NATS
publishes, flushed at the end.

--rate limits the records published per second. On a terminal a progress
bar shows records/s and the ETA; otherwise a line every second goes to
stderr. A summary ends the run (--json: as JSON). When the replay fails,
the error names the first offset not confirmed: run again with --from it.`,
		Example: `  aof2-admin replay --stream orders --subject 'restore.{{stream}}' --jetstream
  aof2-admin replay --stream orders --from 1000 --to 2000 --subject 'copy.{{subject}}' --rate 500
  aof2-admin replay --stream orders --from-seq 52000 --to-seq 53000 --subject 'restore.orders'`,
		Args: cobra.NoArgs,
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			opts, err := rng.options(cmd.Flags())
			if err != nil {
				return usagef("replay %v", err)
			}
			if o.window < 1 {
				return usagef("--window must be at least 1")
			}
			if o.rate < 0 {
				return usagef("--rate must be >= 0 (0: no limit)")
			}
			tmpl, err := parseSubjectTemplate(o.subject)
			if err != nil {
				return usagef("--subject: %v", err)
			}
			return a.replay(cmd, &rng, opts, tmpl, o)
		}),
	}
	rng.addFlags(cmd.Flags())
	cmd.Flags().StringVar(&o.subject, "subject", DefaultSubjectTemplate, "target subject template: {{stream}} and {{subject}} (the original subject) are replaced")
	cmd.Flags().BoolVar(&o.jetStream, "jetstream", false, "publish to JetStream and wait for the acks, with Nats-Msg-Id <stream>:<offset> so a second run stores nothing twice")
	cmd.Flags().IntVar(&o.window, "window", 256, "with --jetstream: publishes awaiting their ack at most")
	cmd.Flags().Float64Var(&o.rate, "rate", 0, "records per second at most (0: no limit)")
	cmd.Flags().BoolVar(&o.allowIngest, "allow-ingest-subject", false, "allow a target subject under the ingest prefix: the gateway ingests those records again")
	return cmd
}

// replaySummary is what a replay did; printed at the end.
type replaySummary struct {
	Stream      string  `json:"stream"`
	Subject     string  `json:"subject"` // the template
	Records     uint64  `json:"records"`
	FirstOffset uint64  `json:"first_offset"`
	NextOffset  uint64  `json:"next_offset"` // after the last record published
	JetStream   bool    `json:"jetstream"`
	Stored      uint64  `json:"stored,omitempty"`     // JetStream: acks of new messages
	Duplicates  uint64  `json:"duplicates,omitempty"` // JetStream: acks of messages the stream already held
	Seconds     float64 `json:"seconds"`
}

// replayer publishes the records of one replay.
type replayer struct {
	a            *app
	stream       string
	tmpl         subjectTemplate
	ingestPrefix string
	allowIngest  bool
	pub          publisher
	pace         pacer
	sum          replaySummary
	// The target subject of the last record, and the subject it was
	// rendered from: records of a stream mostly share one.
	lastFrom, lastTo string
	msgID            []byte
}

func (a *app) replay(cmd *cobra.Command, rng *recordRange, opts []aofclient.ReadOption, tmpl subjectTemplate, o replayOptions) error {
	cfg, err := a.config(cmd)
	if err != nil {
		return err
	}
	sctx, cancelSignals := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer cancelSignals()
	ctx, stop, c, err := a.readerClient(cmd, sctx)
	if err != nil {
		return err
	}
	defer stop()
	pub, err := newPublisher(a.nc, o.jetStream, o.window, a.timeout)
	if err != nil {
		return err
	}
	r := &replayer{a: a, stream: rng.stream, tmpl: tmpl, ingestPrefix: cfg.Ingest.SubjectPrefix, allowIngest: o.allowIngest,
		pub: pub, pace: pacer{rate: o.rate}, sum: replaySummary{Stream: rng.stream, Subject: tmpl.text, JetStream: o.jetStream}}
	prog := newRecordProgress(a.stderr, false, "replay "+rng.stream, nil)
	if a.isTerminal {
		prog = newRecordProgress(a.stdout, true, "replay "+rng.stream, nil)
	}
	if err := a.expectRecords(ctx, c, rng, prog); err != nil {
		return readFailure(ctx, rng.stream, err)
	}
	start := time.Now()
	err = r.run(ctx, c, rng, opts, prog)
	if denied := deniedBy(ctx); denied != nil {
		err = denied // the NATS server refused a read or a publish: ctx ended for it
	}
	prog.finish(r.sum.Records)
	r.sum.Seconds = time.Since(start).Seconds()
	if err != nil {
		return r.failed(ctx, err)
	}
	if a.jsonOut {
		return a.printJSON(r.sum)
	}
	printReplaySummary(a, r.sum)
	return nil
}

// expectRecords sets the progress total when the range ends at an offset:
// --to, or the durable end as it is now.
func (a *app) expectRecords(ctx context.Context, c *aofclient.Client, rng *recordRange, prog *recordProgress) error {
	if !rng.endsByOffsetOnly() || !rng.startsAtOffset {
		return nil
	}
	end := rng.to
	if end == 0 {
		var err error
		if end, err = c.EndOffset(ctx, rng.stream); err != nil {
			return err
		}
	}
	if end > rng.from {
		prog.total = end - rng.from
	}
	return nil
}

// run publishes every record of the range.
func (r *replayer) run(ctx context.Context, c *aofclient.Client, rng *recordRange, opts []aofclient.ReadOption, prog *recordProgress) error {
	for rec, err := range c.Read(ctx, rng.stream, opts...) {
		if err != nil {
			return readFailure(ctx, rng.stream, err)
		}
		if rng.past(rec) {
			break
		}
		m, err := r.message(rec)
		if err != nil {
			return err
		}
		if err := r.pace.wait(ctx); err != nil {
			return err
		}
		if err := r.pub.publish(ctx, m, rec.Offset); err != nil {
			return err
		}
		if r.sum.Records == 0 {
			r.sum.FirstOffset = rec.Offset
		}
		r.sum.Records++
		r.sum.NextOffset = rec.Offset + 1
		prog.update(r.sum.Records)
	}
	stats, err := r.pub.finish(ctx)
	r.sum.Stored, r.sum.Duplicates = stats.stored, stats.duplicates
	return err
}

// message is the NATS message that republishes rec.
func (r *replayer) message(rec aofclient.Record) (*nats.Msg, error) {
	if rec.Raw && r.tmpl.usesSubject() {
		return nil, usagef("record %d of %s is a raw payload with no subject: give --subject a template without {{subject}}", rec.Offset, r.stream)
	}
	subject, err := r.target(rec)
	if err != nil {
		return nil, err
	}
	m := &nats.Msg{Subject: subject, Data: rec.Data}
	if len(rec.Header) > 0 || r.sum.JetStream {
		m.Header = nats.Header{}
		for k, vs := range rec.Header {
			// A producer's Nats-Rollup or Nats-Expected-Stream was meant
			// for AOF_INGEST: republished as is, it would purge the
			// target stream or refuse every run.
			m.Header[ingest.RepublishedHeaderName(k)] = append([]string(nil), vs...)
		}
	}
	if r.sum.JetStream {
		// stream:offset; the key is already in canonical form.
		r.msgID = strconv.AppendUint(append(append(r.msgID[:0], r.stream...), ':'), rec.Offset, 10)
		m.Header[jetstream.MsgIDHeader] = []string{string(r.msgID)}
	}
	return m, nil
}

// target is the subject rec is republished on: the template rendered and
// checked once for each new subject.
func (r *replayer) target(rec aofclient.Record) (string, error) {
	if r.lastTo != "" && rec.Subject == r.lastFrom {
		return r.lastTo, nil
	}
	subject, err := r.tmpl.render(r.stream, rec.Subject)
	if err != nil {
		return "", usagef("record %d of %s: %v", rec.Offset, r.stream, err)
	}
	if underPrefix(subject, r.ingestPrefix) && !r.allowIngest {
		return "", usagef("target subject %s is under the ingest prefix %s (ingest.subject_prefix): the gateway would ingest the replayed records "+
			"again into stream %s; publish elsewhere with --subject (e.g. 'restore.{{stream}}') or pass --allow-ingest-subject if that is what you want",
			subject, r.ingestPrefix, r.stream)
	}
	r.lastFrom, r.lastTo = rec.Subject, subject
	return subject, nil
}

// failed says how far a failed replay got and where to run it again.
func (r *replayer) failed(ctx context.Context, err error) error {
	var ue usageError
	if errors.As(err, &ue) && r.sum.Records == 0 {
		return err
	}
	if r.sum.Records == 0 {
		return err
	}
	from := r.pub.unconfirmed(r.sum.NextOffset)
	hint := "records before it are published"
	if r.sum.JetStream {
		hint = "records before it are stored; a second run stores none of them twice"
	}
	wrapped := fmt.Errorf("replay of %s stopped after publishing %d record(s); the first offset not confirmed is %d (%s): run again with --from %d: %w",
		r.stream, r.sum.Records, from, hint, from, err)
	if errors.As(err, &ue) {
		return usageError{wrapped}
	}
	return wrapped
}

func printReplaySummary(a *app, s replaySummary) {
	if s.Records == 0 {
		fmt.Fprintf(a.stdout, "replayed 0 records of %s: nothing in the range\n", s.Stream)
		return
	}
	fmt.Fprintf(a.stdout, "replayed %d records of %s (offsets %d to %d) to %s in %.1fs, %.0f records/s",
		s.Records, s.Stream, s.FirstOffset, s.NextOffset-1, s.Subject, s.Seconds, rate(s.Records, time.Duration(s.Seconds*float64(time.Second))))
	if s.JetStream {
		fmt.Fprintf(a.stdout, "; JetStream stored %d, %d duplicate(s) already stored", s.Stored, s.Duplicates)
	}
	fmt.Fprintln(a.stdout)
}

// pacer spaces publishes to at most rate per second (0: no limit),
// against the start so that a slow stretch is caught up, not lost.
type pacer struct {
	rate  float64
	start time.Time
	n     uint64
}

func (p *pacer) wait(ctx context.Context) error {
	if p.rate <= 0 {
		return nil
	}
	if p.n == 0 {
		p.start = time.Now()
	}
	due := p.start.Add(time.Duration(float64(p.n) / p.rate * float64(time.Second)))
	p.n++
	d := time.Until(due)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
