package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os/signal"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/bop-aof/aof/aofclient"
)

// ExportedRecord is one line of export: a stored record as JSON, for
// tools that do not speak NATS. Body is the body as text when
// BodyEncoding is "text" (valid UTF-8, and --base64 not given), else
// standard base64.
type ExportedRecord struct {
	Stream       string              `json:"stream"`
	Offset       uint64              `json:"offset"`
	Seq          uint64              `json:"seq"`  // JetStream sequence in the ingest stream
	Time         string              `json:"time"` // append time, RFC 3339 with nanoseconds, UTC
	Subject      string              `json:"subject,omitempty"`
	Header       map[string][]string `json:"header,omitempty"`
	Body         string              `json:"body"`
	BodyEncoding string              `json:"body_encoding"` // "text" or "base64"
	Raw          bool                `json:"raw,omitempty"` // the stored payload is not a NATS message; Body is it whole
}

// Body encodings of ExportedRecord.
const (
	BodyText   = "text"
	BodyBase64 = "base64"
)

// exportedRecordOf is rec as a line of export.
func exportedRecordOf(rec aofclient.Record, forceBase64 bool) ExportedRecord {
	e := ExportedRecord{Stream: rec.Stream, Offset: rec.Offset, Seq: rec.Seq, Time: rec.Time.UTC().Format(time.RFC3339Nano),
		Subject: rec.Subject, Raw: rec.Raw}
	if len(rec.Header) > 0 {
		e.Header = map[string][]string(rec.Header)
	}
	if !forceBase64 && utf8.Valid(rec.Data) {
		e.Body, e.BodyEncoding = string(rec.Data), BodyText
	} else {
		e.Body, e.BodyEncoding = base64.StdEncoding.EncodeToString(rec.Data), BodyBase64
	}
	return e
}

// Data decodes Body.
func (e ExportedRecord) Data() ([]byte, error) {
	if e.BodyEncoding == BodyBase64 {
		return base64.StdEncoding.DecodeString(e.Body)
	}
	return []byte(e.Body), nil
}

func (a *app) exportCommand() *cobra.Command {
	var rng recordRange
	var forceBase64 bool
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write a range of a stream's records as JSON lines",
		Long: `export reads a range of a stream through the read API and writes one JSON
object per record and line to stdout, for tools that do not speak NATS:

  {"stream":"orders","offset":0,"seq":1,"time":"2026-01-02T15:04:05.123456789Z",
   "subject":"aof.ingest.orders","header":{"Order":["1"]},"body":"...","body_encoding":"text"}

body is the body as text when it is valid UTF-8 (body_encoding "text"), else
standard base64 (body_encoding "base64"); --base64 encodes every body.
"raw": true marks a stored payload that is not a NATS message (no subject,
no headers; body is the payload). The range flags are those of replay.
A summary goes to stderr; the exit code says whether the export is complete.`,
		Example: `  aof2-admin export --stream orders > orders.jsonl
  aof2-admin export --stream orders --from 1000 --to 2000 --base64 | jq -r .body`,
		Args: cobra.NoArgs,
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			opts, err := rng.options(cmd.Flags())
			if err != nil {
				return usagef("export %v", err)
			}
			return a.export(cmd, &rng, opts, forceBase64)
		}),
	}
	rng.addFlags(cmd.Flags())
	cmd.Flags().BoolVar(&forceBase64, "base64", false, "encode every body in base64, text or not")
	return cmd
}

func (a *app) export(cmd *cobra.Command, rng *recordRange, opts []aofclient.ReadOption, forceBase64 bool) error {
	sctx, cancelSignals := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer cancelSignals()
	ctx, stop, c, err := a.readerClient(cmd, sctx)
	if err != nil {
		return err
	}
	defer stop()
	w := bufio.NewWriterSize(a.stdout, 256<<10)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	n, first, err := exportRecords(ctx, c, rng, opts, forceBase64, enc)
	if ferr := w.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("write the export: %w", ferr)
	}
	if err != nil {
		return fmt.Errorf("export of %s stopped after %d record(s): %w", rng.stream, n, err)
	}
	if n == 0 {
		fmt.Fprintf(a.stderr, "exported 0 records of %s: nothing in the range\n", rng.stream)
	} else {
		fmt.Fprintf(a.stderr, "exported %d records of %s (offsets %d to %d)\n", n, rng.stream, first, first+n-1)
	}
	return nil
}

// exportRecords encodes the records of the range; it returns how many and
// the offset of the first.
func exportRecords(ctx context.Context, c *aofclient.Client, rng *recordRange, opts []aofclient.ReadOption, forceBase64 bool, enc *json.Encoder) (n, first uint64, err error) {
	for rec, err := range c.Read(ctx, rng.stream, opts...) {
		if err != nil {
			return n, first, readFailure(ctx, rng.stream, err)
		}
		if rng.past(rec) {
			break
		}
		if err := enc.Encode(exportedRecordOf(rec, forceBase64)); err != nil {
			return n, first, fmt.Errorf("write the export: %w", err)
		}
		if n == 0 {
			first = rec.Offset
		}
		n++
	}
	return n, first, nil
}
