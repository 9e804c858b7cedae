package aofclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/readapi"
)

// errLost: no message of a batch came within the wait: the gateway
// serving it is gone (restart, failover, network).
var errLost = errors.New("aofclient: no answer from the gateway within the timeout")

// followExpires is the expiry of a Follow's requests.
const followExpires = 10 * time.Second

// reading is one Read or Follow: it asks for batch after batch from the
// position after the last record yielded.
type reading struct {
	c      *Client
	stream string
	follow bool
	pos    position
	yield  func(Record, error) bool

	stopped  bool // the loop body broke out
	failures int  // retryable failures in a row
	// last is the end of the last batch answered.
	last readapi.EndOfBatch
	// packed is reused to decode each pack.
	packed []readapi.PackRecord
	// subject is the last record's subject: records of a stream mostly
	// share one, and it is then not copied for each.
	subject string
}

func (r *reading) run(ctx context.Context) {
	for {
		eob, err := r.batch(ctx)
		if r.stopped {
			return
		}
		if err != nil {
			if !r.retry(ctx, err) {
				return
			}
			continue
		}
		r.failures, r.last = 0, eob
		r.pos.offset, r.pos.seq, r.pos.time = eob.NextOffset, 0, ""
		if r.pos.end > 0 && r.pos.offset >= r.pos.end {
			return
		}
		if !r.follow && (eob.Reason == readapi.ReasonTail || eob.Reason == readapi.ReasonExpired) {
			return
		}
	}
}

// retry decides after a failed batch: yield the error and stop, or wait
// a backoff and ask again.
func (r *reading) retry(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		if !r.follow {
			r.yield(Record{}, ctx.Err())
		}
		return false
	}
	if !retryable(err) || (!r.follow && r.failures >= r.c.retries) {
		r.yield(Record{}, fmt.Errorf("aofclient: read %s from offset %d: %w", r.stream, r.pos.offset, err))
		return false
	}
	backoff := min(r.c.backoff<<min(r.failures, 5), 2*time.Second)
	r.failures++
	select {
	case <-ctx.Done():
		return r.retry(ctx, ctx.Err())
	case <-time.After(backoff):
		return true
	}
}

func retryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return readapi.Retryable(e.Code)
	}
	return errors.Is(err, errLost) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout)
}

func (r *reading) request() readapi.Request {
	req := readapi.Request{StartOffset: r.pos.offset, StartSeq: r.pos.seq, StartTime: r.pos.time, EndOffset: r.pos.end,
		MaxMsgs: r.c.maxMsgs, MaxBytes: r.c.maxBytes, Pack: r.c.pack}
	if req.StartSeq == 0 && req.StartTime == "" && req.EndOffset > req.StartOffset {
		// Fewer records than a batch: ask for just those, which lets the
		// gateway read a cold segment with ranged GETs.
		limit := req.MaxMsgs
		if limit == 0 {
			limit = readapi.DefaultMaxMsgs
		}
		if left := req.EndOffset - req.StartOffset; left < uint64(limit) {
			req.MaxMsgs = int(left)
		}
	}
	if r.follow {
		req.Follow, req.HeartbeatMS = true, r.c.heartbeat.Milliseconds()
		// A follow in packs stays open at the tail until its expiry,
		// sending as records come: a loop body that breaks leaves the
		// gateway sending to nobody (and holding a read slot) until then.
		req.ExpiresMS = followExpires.Milliseconds()
	}
	return req
}

// batch asks for one batch and yields its records as they arrive.
func (r *reading) batch(ctx context.Context) (readapi.EndOfBatch, error) {
	inbox := r.c.nc.NewInbox()
	sub, err := r.c.nc.SubscribeSync(inbox)
	if err != nil {
		return readapi.EndOfBatch{}, err
	}
	defer sub.Unsubscribe()
	// The batch is bounded by the request: let it all wait in the buffer
	// while the loop body is slow rather than drop any of it.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return readapi.EndOfBatch{}, err
	}
	body, _ := json.Marshal(r.request()) // a Request always encodes
	m := &nats.Msg{Subject: r.c.prefix + "." + r.stream, Reply: inbox, Data: body, Header: nats.Header{}}
	m.Header.Set(readapi.APIVersionHeader, readapi.APIVersion)
	if err := r.c.nc.PublishMsg(m); err != nil {
		return readapi.EndOfBatch{}, err
	}
	w := newWatchdog(ctx, r.wait())
	defer w.stop()
	for {
		msg, err := w.next(sub)
		if err != nil {
			return readapi.EndOfBatch{}, err
		}
		eob, done, err := r.handle(msg)
		if done || err != nil || r.stopped {
			return eob, err
		}
	}
}

// wait is how long a batch waits for its next message: the timeout, or in
// follow three heartbeats. At the tail the heartbeats are what say the
// gateway is alive; a timeout shorter than them would take every quiet
// moment for a lost gateway and leave an abandoned request holding one of
// its read slots each time.
func (r *reading) wait() time.Duration {
	if r.follow {
		return 3 * r.c.heartbeat
	}
	return r.c.timeout
}

// watchdog takes a batch's gateway for lost when no message comes within
// the wait. One timer serves the whole batch, armed while waiting and
// stopped while the loop body runs: a context with a timeout for every
// message cost a cold scan 6.5% of its CPU (docs/performance.md).
type watchdog struct {
	ctx    context.Context // the read's
	wctx   context.Context // ctx, also cancelled when the timer fires
	cancel context.CancelFunc
	timer  *time.Timer
	wait   time.Duration
}

func newWatchdog(ctx context.Context, wait time.Duration) *watchdog {
	w := &watchdog{ctx: ctx, wait: wait}
	w.wctx, w.cancel = context.WithCancel(ctx)
	w.timer = time.AfterFunc(wait, w.cancel)
	w.timer.Stop()
	return w
}

func (w *watchdog) stop() {
	w.timer.Stop()
	w.cancel()
}

// next waits for the next message of the batch. A timer that fired ends
// the batch as lost even if a message came at the same instant: the read
// resumes from the record after the last one yielded, which loses nothing.
func (w *watchdog) next(sub *nats.Subscription) (*nats.Msg, error) {
	w.timer.Reset(w.wait)
	msg, err := sub.NextMsgWithContext(w.wctx)
	w.timer.Stop()
	if err != nil && w.ctx.Err() == nil && w.wctx.Err() != nil {
		return nil, errLost
	}
	return msg, err
}

// handle takes one message of the batch: a record is yielded, a
// heartbeat skipped; the end of the batch or an error ends it (done).
func (r *reading) handle(msg *nats.Msg) (eob readapi.EndOfBatch, done bool, err error) {
	// A record carries its offset; a control message never does. A
	// producer's own header named like a control one (Aof-Status, or the
	// Status of a no-responders answer) must not turn a record into one.
	code := msg.Header.Get(readapi.HeaderStatus)
	if msg.Header.Get(readapi.HeaderOffset) != "" {
		code = ""
	} else if msg.Header.Get("Status") == "503" && len(msg.Data) == 0 {
		return eob, true, nats.ErrNoResponders
	} else if code == "" && msg.Header.Get(readapi.HeaderPack) != "" {
		err := r.yieldPack(msg)
		return eob, err != nil, err
	}
	switch code {
	case "":
		rec, err := recordOf(msg)
		if err != nil {
			return eob, true, err
		}
		r.pos.offset, r.pos.seq, r.pos.time = rec.Offset+1, 0, ""
		if !r.yield(rec, nil) {
			r.stopped = true
		}
		return eob, false, nil
	case readapi.StatusHeartbeat:
		return eob, false, nil
	case readapi.StatusEndOfBatch:
		if err := json.Unmarshal(msg.Data, &eob); err != nil {
			return eob, true, fmt.Errorf("aofclient: malformed end of batch: %w", err)
		}
		return eob, true, nil
	default:
		e := &Error{Code: code, Description: msg.Header.Get(readapi.HeaderDescription)}
		_ = json.Unmarshal(msg.Data, e) // the headers suffice if the body does not parse
		return eob, true, e
	}
}

// yieldPack yields the records of a pack, in order, until the loop body
// breaks. A pack that does not decode is an error of the batch, and none
// of its records is yielded.
func (r *reading) yieldPack(msg *nats.Msg) error {
	if v := msg.Header.Get(readapi.HeaderPack); v != strconv.Itoa(readapi.PackVersion) {
		return fmt.Errorf("aofclient: pack format %q; this client reads %d", v, readapi.PackVersion)
	}
	recs, err := readapi.DecodePack(msg.Data, r.packed[:0])
	if err != nil {
		return fmt.Errorf("aofclient: %s: %w", r.stream, err)
	}
	r.packed = recs
	for i := range recs {
		rec, err := r.recordOfPacked(&recs[i])
		if err != nil {
			return err
		}
		r.pos.offset, r.pos.seq, r.pos.time = rec.Offset+1, 0, ""
		if !r.yield(rec, nil) {
			r.stopped = true
			break
		}
	}
	clear(r.packed) // the records alias msg.Data: let it go
	return nil
}

// recordOfPacked is p as a Record, the same as a record message gives:
// the record's own headers are named as in the answer of one message per
// record (readapi.RecordHeaderName).
func (r *reading) recordOfPacked(p *readapi.PackRecord) (Record, error) {
	rec := Record{Stream: r.stream, Offset: p.Offset, Seq: p.Seq, Time: time.UnixMilli(p.TimeMS).UTC(), Raw: p.Raw, Data: p.Body}
	if !p.Raw {
		if string(p.Subject) != r.subject {
			r.subject = string(p.Subject)
		}
		rec.Subject = r.subject
	}
	if len(p.Header) == 0 {
		return rec, nil
	}
	h, err := nats.DecodeHeadersMsg(p.Header)
	if err != nil {
		return Record{}, fmt.Errorf("aofclient: record %d of %s: malformed header block: %w", p.Offset, r.stream, err)
	}
	for k, vs := range h {
		if readapi.RenamedInAnswer(k) {
			delete(h, k)
			h[readapi.OriginalHeaderPrefix+k] = vs
		}
	}
	if len(h) > 0 {
		rec.Header = h
	}
	return rec, nil
}
