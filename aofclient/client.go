package aofclient

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/readapi"
)

// Error is a status the gateway answered: Code is one of the
// readapi.Status* codes; Retryable tells whether the same request may
// succeed later.
type Error = readapi.Error

// Record is one stored record: the NATS message as it was ingested and
// where it is in the stream.
type Record struct {
	Stream  string
	Offset  uint64 // logical offset in the stream
	Seq     uint64 // JetStream sequence in the ingest stream
	Time    time.Time
	Subject string      // the subject it was published on; "" when Raw
	Header  nats.Header // the original headers, without the read API's own
	// Data is the body. It is the record's own, but read in a pack it
	// shares the pack's buffer (up to 256 KiB), which stays in memory as
	// long as any of its records' Data is kept.
	Data []byte
	// Raw: the stored payload is not a NATS message envelope; Data is the
	// payload as stored.
	Raw bool
}

// Defaults of the options.
const (
	DefaultTimeout = 70 * time.Second // a gateway waits up to 60 s for a segment from Tier 2
	DefaultRetries = 5
	// DefaultBatchMsgs and DefaultBatchBytes are what a batch asks for
	// unless WithBatch says otherwise: the gateway's limits. Each batch
	// costs the gateway a request (it opens the segment, decodes its record
	// index, seeks to the start), so a scan of large batches spends less of
	// its time on that. Memory stays bounded by the batch: at most this many
	// records and bodies (plus the one record that passes the byte limit)
	// wait in the client while the loop body is slow.
	DefaultBatchMsgs  = readapi.MaxMaxMsgs
	DefaultBatchBytes = readapi.MaxMaxBytes
)

// Client reads streams through the gateways' read API.
type Client struct {
	nc        *nats.Conn
	prefix    string
	maxMsgs   int
	maxBytes  int
	timeout   time.Duration
	heartbeat time.Duration
	retries   int
	backoff   time.Duration
	pack      bool
}

// Option sets an optional setting of New.
type Option func(*Client)

// WithSubjectPrefix sets the gateways' read.subject_prefix
// (readapi.DefaultSubjectPrefix).
func WithSubjectPrefix(p string) Option { return func(c *Client) { c.prefix = p } }

// WithBatch sets the records and body bytes asked for per batch
// (DefaultBatchMsgs and DefaultBatchBytes without it; 0 keeps the
// gateway's default, readapi.DefaultMaxMsgs and readapi.DefaultMaxBytes;
// above readapi.MaxMaxMsgs or readapi.MaxMaxBytes the gateway refuses the
// request).
func WithBatch(maxMsgs, maxBytes int) Option {
	return func(c *Client) { c.maxMsgs, c.maxBytes = maxMsgs, maxBytes }
}

// WithTimeout sets how long to wait for the next message of a batch
// before taking the gateway for lost and asking again (DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithHeartbeat sets the heartbeat Follow asks for while waiting at the
// tail; three missed heartbeats count as a lost gateway (5 s).
func WithHeartbeat(d time.Duration) Option { return func(c *Client) { c.heartbeat = d } }

// WithRetries sets how many times in a row Get and Read ask again after a
// retryable failure before they give up (DefaultRetries); Follow retries
// until its context ends.
func WithRetries(n int) Option { return func(c *Client) { c.retries = n } }

// WithPacks sets whether batches are asked for in packs, many records per
// NATS message (readapi.HeaderPack), which is the default: a scan then
// costs the broker and both ends a message per few hundred records
// instead of one per record. Records are the same either way; a gateway
// that predates packs answers a message per record.
func WithPacks(on bool) Option { return func(c *Client) { c.pack = on } }

// New returns a client on nc.
func New(nc *nats.Conn, opts ...Option) (*Client, error) {
	if nc == nil {
		return nil, errors.New("aofclient: nil connection")
	}
	c := &Client{nc: nc, prefix: readapi.DefaultSubjectPrefix, timeout: DefaultTimeout,
		maxMsgs: DefaultBatchMsgs, maxBytes: DefaultBatchBytes,
		heartbeat: readapi.DefaultHeartbeatMS * time.Millisecond, retries: DefaultRetries, backoff: 100 * time.Millisecond, pack: true}
	for _, o := range opts {
		o(c)
	}
	if c.prefix == "" || c.timeout <= 0 || c.heartbeat < readapi.MinHeartbeatMS*time.Millisecond {
		return nil, fmt.Errorf("aofclient: invalid options: prefix %q, timeout %v, heartbeat %v (at least %d ms)", c.prefix, c.timeout, c.heartbeat, readapi.MinHeartbeatMS)
	}
	return c, nil
}

// ReadOption sets where Read and Follow start and end.
type ReadOption func(*position)

// position is where the next batch starts: offset, or seq or time (RFC
// 3339) until the first batch answers with an offset.
type position struct {
	offset, seq, end uint64
	time             string
}

// FromOffset starts at logical offset off (the default is 0).
func FromOffset(off uint64) ReadOption {
	return func(p *position) { p.offset, p.seq, p.time = off, 0, "" }
}

// FromSeq starts at the first record whose JetStream sequence is at least seq.
func FromSeq(seq uint64) ReadOption {
	return func(p *position) { p.seq, p.offset, p.time = seq, 0, "" }
}

// FromTime starts at the first record the gateway appended at or after t
// (append times are in milliseconds). A time before the earliest retained
// record, once retention deleted records, is an *Error with Code
// readapi.StatusGone; a time after the last record starts at the end.
func FromTime(t time.Time) ReadOption {
	return func(p *position) { p.time, p.offset, p.seq = t.UTC().Format(time.RFC3339Nano), 0, 0 }
}

// ToOffset ends Read before offset end (exclusive).
func ToOffset(end uint64) ReadOption { return func(p *position) { p.end = end } }

// Get returns the record at offset of stream. An offset not written yet is
// an *Error with Code readapi.StatusBeyondEnd.
func (c *Client) Get(ctx context.Context, stream string, offset uint64) (Record, error) {
	for rec, err := range c.Read(ctx, stream, FromOffset(offset), ToOffset(offset+1)) {
		return rec, err
	}
	return Record{}, &Error{Code: readapi.StatusBeyondEnd, Stream: stream,
		Description: fmt.Sprintf("offset %d of %s is not written yet", offset, stream)}
}

// EndOffset returns the durable end of stream: the offset the next record
// appended to it will get. It asks for the records after the highest
// JetStream sequence, which the gateway answers with none and the end.
func (c *Client) EndOffset(ctx context.Context, stream string) (uint64, error) {
	var failed error
	r := reading{c: c, stream: stream, pos: position{seq: math.MaxUint64},
		yield: func(_ Record, err error) bool { failed = err; return err == nil }}
	r.run(ctx)
	if failed != nil {
		return 0, failed
	}
	return r.last.NextOffset, nil
}

// Read iterates over stream's records from the start the options give up
// to the durable end when the read reaches it (or the ToOffset end). It
// stops at the first error it cannot retry, yielding it.
func (c *Client) Read(ctx context.Context, stream string, opts ...ReadOption) iter.Seq2[Record, error] {
	return c.iterate(ctx, stream, false, opts)
}

// Follow iterates over stream's records from the start the options give
// and then waits for new ones, until ctx ends (without yielding ctx's
// error) or the loop breaks. A lost gateway, a restart and a retryable
// status are retried without end from the last record yielded.
func (c *Client) Follow(ctx context.Context, stream string, opts ...ReadOption) iter.Seq2[Record, error] {
	return c.iterate(ctx, stream, true, opts)
}

func (c *Client) iterate(ctx context.Context, stream string, follow bool, opts []ReadOption) iter.Seq2[Record, error] {
	var p position
	for _, o := range opts {
		o(&p)
	}
	return func(yield func(Record, error) bool) {
		r := reading{c: c, stream: stream, follow: follow, pos: p, yield: yield}
		r.run(ctx)
	}
}

// recordOf reads a record message in one pass over its headers. They
// become the record's Header once the read API's own are taken out,
// without a copy: the message is this client's alone.
func recordOf(m *nats.Msg) (Record, error) {
	rec := Record{Data: m.Data}
	var off, seq, ts string
	own := 0 // the record's own headers
	for k, vs := range m.Header {
		v := ""
		if len(vs) > 0 {
			v = vs[0]
		}
		switch k {
		case readapi.HeaderOffset:
			off = v
		case readapi.HeaderSeq:
			seq = v
		case readapi.HeaderTime:
			ts = v
		case readapi.HeaderStream:
			rec.Stream = v
		case readapi.HeaderSubject:
			rec.Subject = v
		case readapi.HeaderRaw:
			rec.Raw = v == "true"
		case readapi.APIVersionHeader:
		default:
			if !isAPIHeader(k) {
				own++
			}
		}
	}
	var err1, err2, err3 error
	rec.Offset, err1 = strconv.ParseUint(off, 10, 64)
	rec.Seq, err2 = strconv.ParseUint(seq, 10, 64)
	rec.Time, err3 = time.Parse(time.RFC3339Nano, ts)
	if err := errors.Join(err1, err2, err3); err != nil {
		return Record{}, fmt.Errorf("aofclient: malformed record message: %w", err)
	}
	if own > 0 {
		stripAPIHeaders(m.Header)
		rec.Header = m.Header
	}
	return rec, nil
}

// apiHeaders are the read API's own headers, not the record's.
var apiHeaders = [...]string{readapi.APIVersionHeader, readapi.HeaderSubject, readapi.HeaderStream,
	readapi.HeaderOffset, readapi.HeaderSeq, readapi.HeaderTime, readapi.HeaderRaw}

// stripAPIHeaders deletes the read API's headers from h: by their exact
// names, as the gateway sends them, and then in any case.
func stripAPIHeaders(h nats.Header) {
	for _, k := range apiHeaders {
		delete(h, k)
	}
	for k := range h {
		if isAPIHeader(k) {
			delete(h, k)
		}
	}
}

func isAPIHeader(k string) bool {
	const prefix = "Aof-" // of every read API header
	if len(k) < len(prefix) || !strings.EqualFold(k[:len(prefix)], prefix) {
		return false
	}
	for _, s := range apiHeaders {
		if strings.EqualFold(k, s) {
			return true
		}
	}
	return false
}
