package readservice

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/readapi"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/backpressure"
)

// rangedReadMaxMsgs: a batch of at most this many records reads a segment
// that is only in Tier 2 with ranged GETs of its frames instead of
// hydrating the whole segment (a Get, a search by sequence). A larger
// batch is a sequential read: it reads ahead (read.prefetch_segments),
// the next cold segments fetched into memory while it sends, and leaves
// Tier 1's working set alone; with read-ahead off it hydrates.
const rangedReadMaxMsgs = 16

// errTail: the reader is at the durable end of the stream.
var errTail = errors.New("at the tail")

// errPastReplica: the request starts at or past the archived end of the
// replica copy; the owner answers it.
var errPastReplica = errors.New("past the replica's archived end")

// batch is one request being answered: it reads from start until a bound
// and publishes each record to the reply subject as it goes.
type batch struct {
	s      *Service
	stream string
	reply  string
	req    readapi.Request
	r      *tiers.Reader
	// store is the gateway's own store, or a replica copy of a stream
	// another gateway owns; then replica is set and the batch ends at
	// limit, the copy's archived end, never at its tail.
	store   *tiers.Store
	replica bool
	limit   uint64

	next  uint64 // the offset of the next record to send
	sent  int
	bytes int64 // of bodies sent
	w     *recordWriter
	pub   *publisher
	// pack gathers the records of a request that asked for packs; nil
	// otherwise. next, sent and bytes count the records in it, which
	// flush takes back if the pack cannot be published.
	pack *packer
	// expires is when a follow stops waiting at the tail: the request's
	// start plus its expires_ms.
	expires time.Time
}

// run sends the records and says why the batch ended; the caller
// publishes the end of batch (end) or the error once the heartbeats have
// stopped.
func (b *batch) run(ctx context.Context) (string, error) {
	b.expires = time.Now().Add(time.Duration(b.req.ExpiresMS) * time.Millisecond)
	r, err := b.reader()
	if err != nil {
		return "", err
	}
	b.r = r
	if b.next, err = b.start(ctx); err != nil {
		r.Close()
		return "", err
	}
	if b.replica && b.next >= b.limit {
		r.Close()
		return "", errPastReplica
	}
	r.Seek(b.next)
	r.SetRangedReads(b.req.MaxMsgs <= rangedReadMaxMsgs)
	r.SetReadAhead(b.req.MaxMsgs > rangedReadMaxMsgs)
	if b.req.Pack {
		b.pack = newPacker(b.reply, b.stream, b.s.nc.MaxPayload())
	} else {
		b.w = newRecordWriter(b.reply, b.stream)
	}
	reason, err := b.send(ctx)
	if err != nil {
		r.Close()
		return "", err
	}
	if b.replica {
		// A copy may be replaced before the next batch: its readers
		// are not parked.
		r.Close()
		return reason, nil
	}
	// Where the next batch of this read starts (idleReaders).
	b.s.idle.park(b.stream, b.next, r)
	return reason, nil
}

// reader is the reader parked at the request's start offset by the batch
// before it, or a new one. A start by sequence or time searches with the
// reader it opens.
func (b *batch) reader() (*tiers.Reader, error) {
	if b.req.StartSeq == 0 && b.req.StartTime == "" && !b.replica {
		if r := b.s.idle.take(b.stream, b.req.StartOffset); r != nil {
			return r, nil
		}
	}
	return b.store.Reader(b.stream)
}

// bounds are the earliest retained offset and the durable end (the offset
// the next record appended gets) of the stream.
func (b *batch) bounds() (earliest, end uint64) {
	segs := b.store.Segments(b.stream)
	if len(segs) == 0 {
		return 0, 0
	}
	earliest, end = segs[0].BaseOffset, segs[len(segs)-1].NextOffset
	if b.replica {
		end = min(end, b.limit)
	}
	return earliest, end
}

// start resolves the request's start to an offset within the stream.
func (b *batch) start(ctx context.Context) (uint64, error) {
	earliest, end := b.bounds()
	if b.req.StartSeq > 0 {
		return b.offsetOfSeq(ctx, b.req.StartSeq, earliest, end)
	}
	if b.req.StartTime != "" {
		tMS, e := parseStartTime(b.req.StartTime)
		if e != nil {
			return 0, e
		}
		return b.offsetOfTime(ctx, tMS, earliest, end)
	}
	off := b.req.StartOffset
	if b.replica && off >= b.limit {
		return off, nil // past the copy: the owner answers (errPastReplica)
	}
	switch {
	case off < earliest:
		return 0, statusf(readapi.StatusGone, "offset %d of %s was deleted by retention; the earliest retained offset is %d", off, b.stream, earliest)
	case off > end && b.req.Follow && !b.replica:
		// A follow waits for its start, as for the record at the end: a
		// new owner still re-reading the un-archived tail after a
		// failover may be behind the offset its reader reached at the
		// old owner, and offsets only grow.
		return off, nil
	case off > end:
		return 0, statusf(readapi.StatusBeyondEnd, "offset %d is beyond the end of %s: the next offset to be written is %d", off, b.stream, end)
	}
	return off, nil
}

// send publishes records until a bound of the request, the tail, or the
// follow expiry, and says which ended the batch. A pack still open when
// it ends goes out before the end of batch or the error.
func (b *batch) send(ctx context.Context) (string, error) {
	reason, err := b.sendRecords(ctx)
	if ferr := b.flush(); ferr != nil && err == nil {
		return "", ferr
	}
	return reason, err
}

func (b *batch) sendRecords(ctx context.Context) (string, error) {
	for {
		if b.sent >= b.req.MaxMsgs {
			return readapi.ReasonMaxMsgs, nil
		}
		if b.req.EndOffset > 0 && b.next >= b.req.EndOffset {
			return readapi.ReasonEnd, nil
		}
		if b.replica && b.next >= b.limit {
			return readapi.ReasonArchived, nil
		}
		e, err := b.read(ctx)
		if errors.Is(err, errTail) && b.replica {
			// A copy's tail is never the stream's.
			return readapi.ReasonArchived, nil
		}
		if errors.Is(err, errTail) {
			// A follow in packs stays open at the tail until its bounds
			// or its expiry, sending each record as it comes: no request
			// between a record's append and its reader. One message per
			// record ends at the tail once it sent any, as before packs.
			if !b.req.Follow || (b.sent > 0 && b.pack == nil) {
				return readapi.ReasonTail, nil
			}
			// What was read goes out before the wait.
			if err := b.flush(); err != nil {
				return "", err
			}
			if e, err = b.waitAtTail(ctx); errors.Is(err, errTail) {
				if b.sent > 0 {
					return readapi.ReasonTail, nil
				}
				return readapi.ReasonExpired, nil
			}
		}
		if err != nil {
			return "", err
		}
		if reason, err := b.emit(e); reason != "" || err != nil {
			return reason, err
		}
	}
}

// emit sends e, as a message of its own or into the open pack (which is
// published first if e would take it past its size), and counts it. It
// says max_bytes when e would pass the request's bound (e is not sent);
// the first record goes out whatever its size, or the read could never
// pass it.
func (b *batch) emit(e tiers.Entry) (string, error) {
	var m *nats.Msg
	var r readapi.PackRecord
	var body int
	if b.pack != nil {
		r = packRecordOf(e)
		body = len(r.Body)
	} else {
		m = b.w.msg(e)
		body = len(m.Data)
	}
	if b.sent > 0 && b.bytes+int64(body) > int64(b.req.MaxBytes) {
		return readapi.ReasonMaxBytes, nil
	}
	var err error
	switch {
	case b.pack == nil:
		err = b.pub.publish(m)
	case b.pack.full(r):
		if err = b.flush(); err == nil {
			err = b.pack.add(r)
		}
	default:
		err = b.pack.add(r)
	}
	if err != nil {
		return "", err
	}
	b.sent++
	b.bytes += int64(body)
	b.next = e.Offset + 1
	return "", nil
}

// read returns the next record without waiting at the tail (errTail);
// while its segment comes back from Tier 2 it backs off 10 ms to 250 ms,
// as REFERENCE.md asks, until ctx ends.
func (b *batch) read(ctx context.Context) (tiers.Entry, error) {
	backoff := 10 * time.Millisecond
	for {
		e, err := b.r.TryNext(ctx)
		switch {
		case err == nil:
			return e, nil
		case backpressure.Is(err, backpressure.Tail):
			return e, errTail
		case !backpressure.Is(err, backpressure.Hydration):
			return e, err
		}
		// The records read so far go out before the wait, not after it.
		if err := b.flush(); err != nil {
			return e, err
		}
		select {
		case <-ctx.Done():
			return e, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 250*time.Millisecond)
	}
}

// waitAtTail waits for the next record up to the request's expiry,
// counted from its start
// (errTail when none came). The request's heartbeats (publisher) tell
// the reader a quiet stream from a lost gateway meanwhile.
func (b *batch) waitAtTail(ctx context.Context) (tiers.Entry, error) {
	wctx, cancel := context.WithDeadline(ctx, b.expires)
	defer cancel()
	e, err := b.r.Next(wctx)
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return e, errTail
	}
	return e, err
}

// end publishes the end-of-batch message.
func (b *batch) end(reason string) error {
	_, end := b.bounds()
	limit := end
	if b.req.EndOffset > 0 {
		limit = min(limit, b.req.EndOffset)
	}
	eob := readapi.EndOfBatch{
		Stream: b.stream, NextOffset: b.next, Records: b.sent, Bytes: b.bytes,
		AtTail: b.next >= end && !b.replica, Reason: reason,
	}
	if limit > b.next {
		eob.Pending = limit - b.next
	}
	return b.pub.publish(endOfBatchMsg(b.reply, eob))
}

// flush publishes the open pack, if any. A pack that cannot be published
// was not sent: next, sent and bytes go back to before it, so that an
// error names where the reader continues.
func (b *batch) flush() error {
	if b.pack == nil || b.pack.w.Count() == 0 {
		return nil
	}
	n, body, from := b.pack.w.Count(), b.pack.w.BodyBytes(), b.pack.first
	err := b.pub.publish(b.pack.msg())
	if err != nil {
		b.sent -= n
		b.bytes -= body
		b.next = from
	}
	b.pack.w.Reset()
	return err
}
