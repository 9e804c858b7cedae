package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/control"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/manifest/natsmanifest"
)

// Options configure one demo run.
type Options struct {
	NATSURL     string
	Stream      string
	Records     int
	RecordBytes int
	// Timeout bounds the whole run.
	Timeout time.Duration
	// Names on the wire (DESIGN.md defaults when empty).
	IngestPrefix   string
	ControlPrefix  string
	ManifestPrefix string
	ManifestStream string
	// Progress goes to Progress (a bar when ProgressTerminal, else lines);
	// with Verbose every manifest event is printed there too.
	Progress         io.Writer
	ProgressTerminal bool
	Verbose          bool
}

func (o *Options) defaults() {
	if o.IngestPrefix == "" {
		o.IngestPrefix = "aof.ingest"
	}
	if o.ControlPrefix == "" {
		o.ControlPrefix = control.DefaultSubjectPrefix
	}
	if o.ManifestPrefix == "" {
		o.ManifestPrefix = natsmanifest.DefaultPrefix
	}
	if o.ManifestStream == "" {
		o.ManifestStream = natsmanifest.DefaultStreamName
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// ReadCheck is one record read back through the control service's read
// endpoint and compared with what was published.
type ReadCheck struct {
	Tier    int    `json:"tier"`
	Segment uint64 `json:"segment"`
	Offset  uint64 `json:"offset"`
	// ServedFrom says which copy the store reads from (the reader takes
	// the Tier 0 file when there is one, else the Tier 1 artifact).
	ServedFrom string  `json:"served_from"`
	Millis     float64 `json:"ms"`
	OK         bool    `json:"ok"`
	Error      string  `json:"error,omitempty"`
}

// Summary is the outcome of a run: counts, timings and checks.
type Summary struct {
	Stream      string `json:"stream"`
	Run         string `json:"run"`
	Records     int    `json:"records"`
	RecordBytes int    `json:"record_bytes"`

	Published       int     `json:"published"`
	Acked           int     `json:"acked"`
	PublishFailures int     `json:"publish_failures"`
	PublishSeconds  float64 `json:"publish_seconds"`
	// Stored counts this run's records the gateway made durable; StoreLag
	// is how long after the last ack the gateway had stored them all.
	Stored          int     `json:"stored"`
	FirstOffset     uint64  `json:"first_offset"`
	StoreLagSeconds float64 `json:"store_lag_seconds"`

	SealedSegments    int      `json:"sealed_segments"`
	Segments          []uint64 `json:"segments"`
	SealedRecords     uint64   `json:"sealed_records"`
	UncompressedBytes uint64   `json:"uncompressed_bytes"`
	CompressedBytes   uint64   `json:"compressed_bytes"`
	CompressedCount   int      `json:"compressed_segments"`
	Ratio             float64  `json:"ratio"`
	UploadedObjects   int      `json:"uploaded_objects"`
	CompressSeconds   float64  `json:"compress_seconds"` // seal request to the last CompressionDone
	UploadSeconds     float64  `json:"upload_seconds"`   // seal request to the last UploadDone

	HydratedSegment     uint64  `json:"hydrated_segment"`
	EvictedTiers        []int   `json:"evicted_tiers"`
	HydrationSourceTier uint64  `json:"hydration_source_tier"`
	HydrationMillis     float64 `json:"hydration_ms"`       // the hydrate request, as the client saw it
	HydrationEventMS    int64   `json:"hydration_event_ms"` // HydrationStarted to HydrationDone timestamps
	HydrationOK         bool    `json:"hydration_ok"`
	HydrationError      string  `json:"hydration_error,omitempty"`

	Reads []ReadCheck `json:"reads"`
	// Failed lists every check that failed, in words.
	Failed []string `json:"failed"`
	OK     bool     `json:"ok"`
}

func (s *Summary) fail(format string, args ...any) {
	s.Failed = append(s.Failed, fmt.Sprintf(format, args...))
}

// Run publishes the records, follows them through the tiers and checks
// them. The error is for runs that could not complete (no gateway, a
// timeout, NATS gone); a completed run with failed checks returns a
// Summary with OK false and a nil error.
func Run(ctx context.Context, o Options) (*Summary, error) {
	o.defaults()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	d := &demo{o: o, sum: &Summary{Stream: o.Stream, Records: o.Records, RecordBytes: o.RecordBytes, Failed: []string{}, Reads: []ReadCheck{}}}
	err := d.run(ctx)
	if d.nc != nil {
		d.nc.Close()
	}
	if err != nil {
		return d.sum, err
	}
	d.sum.OK = len(d.sum.Failed) == 0
	return d.sum, nil
}

type demo struct {
	o     Options
	sum   *Summary
	nc    *nats.Conn
	js    jetstream.JetStream
	admin *control.Client
	watch *Watcher
	pub   Published
}

// step runs fn with a short per-request deadline inside ctx.
func (d *demo) call(ctx context.Context, fn func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return fn(cctx)
}

func (d *demo) logf(format string, args ...any) {
	fmt.Fprintf(d.o.Progress, format+"\n", args...)
}

func (d *demo) run(ctx context.Context) error {
	var err error
	d.nc, err = nats.Connect(d.o.NATSURL, nats.Name("aof2-demo"), nats.Timeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w (is the gateway running? `make run` starts one)", d.o.NATSURL, err)
	}
	d.js, err = jetstream.New(d.nc, jetstream.WithPublishAsyncMaxPending(1024), jetstream.WithPublishAsyncTimeout(30*time.Second))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	d.admin = control.NewClient(d.nc, d.o.ControlPrefix)
	if err := d.call(ctx, func(c context.Context) error { _, err := d.admin.Status(c); return err }); err != nil {
		return fmt.Errorf("gateway control service: %w", err)
	}

	// Where this run's records will start: the stream may already hold
	// records of earlier runs.
	segs, err := d.segments(ctx)
	if err != nil {
		return err
	}
	start := nextOffset(segs)
	d.sum.FirstOffset = start
	d.sum.Run = newRunID()
	d.pub = Published{Run: d.sum.Run, RecordBytes: d.o.RecordBytes, Seq: make([]uint64, d.o.Records)}

	d.watch, err = Watch(ctx, d.js, d.o.ManifestStream, d.o.ManifestPrefix, d.o.Stream, time.Now(), d.verbose())
	if err != nil {
		return err
	}
	defer d.watch.Stop()
	d.logf("run %s: publishing %d records of %d bytes to %s.%s (stream starts at offset %d)",
		d.sum.Run, d.o.Records, d.o.RecordBytes, d.o.IngestPrefix, d.o.Stream, start)

	if err := d.publish(ctx); err != nil {
		return err
	}
	end := start + uint64(d.o.Records)
	if err := d.waitStored(ctx, start, end); err != nil {
		return err
	}

	// Tier 0: the newest record, still in the active segment.
	segs, err = d.segments(ctx)
	if err != nil {
		return err
	}
	d.sum.Reads = append(d.sum.Reads, d.readTier0(ctx, segs, start))

	if err := d.sealAndTier(ctx, start, end); err != nil {
		return err
	}
	if err := d.evictAndHydrate(ctx); err != nil {
		return err
	}
	segs, err = d.segments(ctx)
	if err != nil {
		return err
	}
	d.sum.Reads = append(d.sum.Reads, d.readTier1(ctx, segs, start, end), d.readHydrated(ctx, segs, start, end))
	for _, r := range d.sum.Reads {
		if !r.OK {
			d.sum.fail("tier %d read at offset %d: %s", r.Tier, r.Offset, r.Error)
		}
	}
	if err := d.watch.Err(); err != nil {
		d.sum.fail("manifest events: %v", err)
	}
	return nil
}

func (d *demo) verbose() io.Writer {
	if d.o.Verbose {
		return d.o.Progress
	}
	return nil
}

func newRunID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return "r" + hex.EncodeToString(b)
}

// segments lists the stream's segments; none when the stream does not
// exist yet (it is created by its first record).
func (d *demo) segments(ctx context.Context) ([]control.Segment, error) {
	var res control.SegmentsListResponse
	err := d.call(ctx, func(c context.Context) (err error) {
		res, err = d.admin.SegmentsList(c, control.SegmentsListRequest{Stream: d.o.Stream})
		return err
	})
	var ce *control.Error
	if errors.As(err, &ce) && ce.Code == control.CodeNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list segments of %s: %w", d.o.Stream, err)
	}
	return res.Segments, nil
}

// nextOffset is the offset the stream's next record gets.
func nextOffset(segs []control.Segment) uint64 {
	var n uint64
	for _, s := range segs {
		n = max(n, s.NextOffset)
	}
	return n
}

// publish sends the records with async publishes and collects the acks in
// order on another goroutine. A publish whose ack fails is retried
// synchronously with the same Nats-Msg-Id, so JetStream keeps one copy.
func (d *demo) publish(ctx context.Context) error {
	type inflight struct {
		i   int
		msg *nats.Msg
		f   jetstream.PubAckFuture
	}
	prog := NewProgress(d.o.Progress, d.o.ProgressTerminal, "publish", d.o.Records)
	prog.Rate = true
	ch := make(chan inflight, 2048)
	var (
		wg              sync.WaitGroup
		acked, failed   int
		lastErr         error
		subject         = d.o.IngestPrefix + "." + d.o.Stream
		startedAt       = time.Now()
		publishedRecord int
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for fl := range ch {
			var seq uint64
			select {
			case ack := <-fl.f.Ok():
				seq = ack.Sequence
			case err := <-fl.f.Err():
				for attempt := 0; attempt < 5 && ctx.Err() == nil; attempt++ {
					time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
					var ack *jetstream.PubAck
					if ack, err = d.js.PublishMsg(ctx, fl.msg); err == nil {
						seq = ack.Sequence
						break
					}
				}
				if seq == 0 {
					failed++
					lastErr = err
				}
			}
			if seq != 0 {
				d.pub.Seq[fl.i] = seq
				acked++
			}
			prog.Set(acked + failed)
		}
	}()
	var pubErr error
	for i := 0; i < d.o.Records && pubErr == nil; i++ {
		msg := nats.NewMsg(subject)
		msg.Data = RecordBody(d.pub.Run, i, d.o.RecordBytes)
		msg.Header.Set(HeaderRun, d.pub.Run)
		msg.Header.Set(HeaderIndex, strconv.Itoa(i))
		msg.Header.Set(jetstream.MsgIDHeader, d.pub.Run+"-"+strconv.Itoa(i))
		for {
			f, err := d.js.PublishMsgAsync(msg)
			if err == nil {
				ch <- inflight{i, msg, f}
				publishedRecord++
				break
			}
			if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				pubErr = fmt.Errorf("publish record %d: %w", i, err)
				break
			}
			select {
			case <-ctx.Done():
				pubErr = fmt.Errorf("publish record %d: %w", i, ctx.Err())
			case <-d.js.PublishAsyncComplete():
			case <-time.After(50 * time.Millisecond):
			}
			if pubErr != nil {
				break
			}
		}
	}
	close(ch)
	wg.Wait()
	d.sum.Published, d.sum.Acked, d.sum.PublishFailures = publishedRecord, acked, failed
	d.sum.PublishSeconds = time.Since(startedAt).Seconds()
	prog.Finish(fmt.Sprintf("acked %d, failed %d", acked, failed))
	if pubErr != nil {
		return pubErr
	}
	if acked != d.o.Records {
		d.sum.fail("JetStream acked %d of %d records (last error: %v)", acked, d.o.Records, lastErr)
	}
	if acked == 0 {
		return fmt.Errorf("no record was acked by JetStream: %v", lastErr)
	}
	return nil
}

// waitStored waits until the gateway has made [start, end) durable: an
// ack from JetStream only means AOF_INGEST holds the message.
func (d *demo) waitStored(ctx context.Context, start, end uint64) error {
	prog := NewProgress(d.o.Progress, d.o.ProgressTerminal, "store", d.o.Records)
	acksDone := time.Now()
	want := start + uint64(d.sum.Acked)
	for {
		segs, err := d.segments(ctx)
		if err != nil {
			return err
		}
		next := nextOffset(segs)
		stored := int(min(next, end) - min(start, next))
		d.sum.Stored = stored
		prog.Set(stored)
		if next >= want {
			break
		}
		select {
		case <-ctx.Done():
			prog.Finish("")
			return fmt.Errorf("the gateway stored %d of %d acked records before the timeout: is it consuming %s.%s?", stored, d.sum.Acked, d.o.IngestPrefix, d.o.Stream)
		case <-time.After(100 * time.Millisecond):
		}
	}
	d.sum.StoreLagSeconds = time.Since(acksDone).Seconds()
	prog.Finish("")
	if d.sum.Stored != d.o.Records {
		d.sum.fail("the gateway stored %d of %d records", d.sum.Stored, d.o.Records)
	}
	return nil
}

// sealAndTier seals the stream and waits until the manifest says every
// segment holding this run's records is sealed, compressed and uploaded.
func (d *demo) sealAndTier(ctx context.Context, start, end uint64) error {
	sealedAt := time.Now()
	if err := d.call(ctx, func(c context.Context) error {
		_, err := d.admin.Seal(c, control.SealRequest{Stream: d.o.Stream})
		return err
	}); err != nil {
		return fmt.Errorf("seal %s: %w", d.o.Stream, err)
	}
	segs, err := d.segments(ctx)
	if err != nil {
		return err
	}
	var run []control.Segment
	for _, s := range segs {
		if s.NextOffset > start && s.BaseOffset < end && s.State != control.StateActive && s.Records > 0 {
			run = append(run, s)
			lo, hi := max(s.BaseOffset, start), min(s.NextOffset, end)
			d.sum.SealedRecords += hi - lo
			d.sum.Segments = append(d.sum.Segments, s.Segment)
		}
	}
	if len(run) == 0 {
		return fmt.Errorf("no sealed segment holds offsets %d-%d of %s after seal", start, end-1, d.o.Stream)
	}
	prog := NewProgress(d.o.Progress, d.o.ProgressTerminal, "tiering", 3*len(run))
	var folded *manifest.Index
	werr := d.watch.WaitFor(ctx, 0, func(evs []Event) bool {
		folded = Fold(d.o.Stream, evs)
		n, all := 0, true
		for _, s := range run {
			sp, ok := folded.Get(s.Segment)
			if !ok {
				all = false
				continue
			}
			n += b2i(sp.Sealed) + b2i(compressed(sp)) + b2i(uploaded(sp))
			all = all && sp.Sealed && compressed(sp) && uploaded(sp)
		}
		prog.Set(n)
		return all
	})
	prog.Finish("sealed, compressed, uploaded")
	var lastCompressed, lastUploaded time.Time
	for _, ev := range d.watch.Since(0) {
		switch ev.Record.Type {
		case manifest.CompressionDone:
			lastCompressed = ev.Arrived
		case manifest.UploadDone:
			lastUploaded = ev.Arrived
		}
	}
	d.sum.SealedSegments = len(run)
	for _, s := range run {
		sp, _ := folded.Get(s.Segment)
		if compressed(sp) {
			d.sum.CompressedCount++
			d.sum.CompressedBytes += sp.CompressedBytes
			d.sum.UncompressedBytes += sp.DurableBytes
		}
		if uploaded(sp) {
			d.sum.UploadedObjects++
		}
		if sp.Failures > 0 {
			d.logf("segment %d: %d failed transitions, the last for %s (retried by the gateway)", s.Segment, sp.Failures, sp.LastFailure)
		}
	}
	if d.sum.CompressedBytes > 0 {
		d.sum.Ratio = float64(d.sum.UncompressedBytes) / float64(d.sum.CompressedBytes)
	}
	if !lastCompressed.IsZero() {
		d.sum.CompressSeconds = lastCompressed.Sub(sealedAt).Seconds()
	}
	if !lastUploaded.IsZero() {
		d.sum.UploadSeconds = lastUploaded.Sub(sealedAt).Seconds()
	}
	if werr != nil {
		missing := ""
		for _, s := range run {
			sp, _ := folded.Get(s.Segment)
			switch {
			case !sp.Sealed:
				missing += fmt.Sprintf(" %d:SealSegment", s.Segment)
			case !compressed(sp):
				missing += fmt.Sprintf(" %d:CompressionDone", s.Segment)
			case !uploaded(sp):
				missing += fmt.Sprintf(" %d:UploadDone", s.Segment)
			}
		}
		return fmt.Errorf("waiting for manifest events on %s: %w (missing:%s)", natsmanifest.Subject(d.o.ManifestPrefix, d.o.Stream), werr, missing)
	}
	if d.sum.SealedRecords != uint64(d.o.Records) {
		d.sum.fail("sealed segments hold %d of this run's records, want %d", d.sum.SealedRecords, d.o.Records)
	}
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// evictAndHydrate drops the local copies (Tier 0 and Tier 1) of this run's
// oldest segment, so that only Tier 2 holds it, then hydrates it back and
// waits for HydrationStarted and HydrationDone on the manifest subject.
func (d *demo) evictAndHydrate(ctx context.Context) error {
	target := d.sum.Segments[0]
	d.sum.HydratedSegment = target
	// The newest sealed segment is refused without force as likely still
	// read; it is only the target when the run filled a single segment.
	force := len(d.sum.Segments) == 1
	mark := d.watch.Len()
	var del control.SegmentsDeleteResponse
	if err := d.call(ctx, func(c context.Context) (err error) {
		del, err = d.admin.SegmentsDelete(c, control.SegmentsDeleteRequest{Stream: d.o.Stream, Segment: target, Tier: 1, Force: force})
		return err
	}); err != nil {
		return fmt.Errorf("evict the local copies of segment %d: %w", target, err)
	}
	d.sum.EvictedTiers = del.Removed
	d.logf("evicted segment %d from tiers %v; hydrating it back from tier 2", target, del.Removed)

	began := time.Now()
	var hyd control.HydrateResponse
	err := d.call(ctx, func(c context.Context) (err error) {
		hyd, err = d.admin.Hydrate(c, control.HydrateRequest{Stream: d.o.Stream, Segment: target})
		return err
	})
	d.sum.HydrationMillis = float64(time.Since(began).Microseconds()) / 1000
	if err != nil {
		d.sum.HydrationError = err.Error()
		d.sum.fail("hydrate segment %d: %v", target, err)
		return nil
	}
	if hyd.AlreadyLocal {
		d.sum.HydrationError = "segment was still local after eviction"
		d.sum.fail("segment %d was still local after its local copies were deleted", target)
		return nil
	}
	var started, done *manifest.Record
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	werr := d.watch.WaitFor(wctx, mark, func(evs []Event) bool {
		for i := range evs {
			r := &evs[i].Record
			if r.Segment != target {
				continue
			}
			switch r.Type {
			case manifest.HydrationStarted:
				rc := *r
				started = &rc
			case manifest.HydrationDone:
				rc := *r
				done = &rc
			}
		}
		return started != nil && done != nil
	})
	if werr != nil {
		d.sum.HydrationError = fmt.Sprintf("HydrationStarted/HydrationDone not seen for segment %d: %v", target, werr)
		d.sum.fail("%s", d.sum.HydrationError)
		return nil
	}
	if p, ok := started.Payload.(manifest.HydrationStartedPayload); ok {
		d.sum.HydrationSourceTier = p.SourceTier
	}
	d.sum.HydrationEventMS = done.TimestampMS - started.TimestampMS
	if d.sum.HydrationSourceTier != 2 {
		d.sum.HydrationError = fmt.Sprintf("hydrated from tier %d, want tier 2", d.sum.HydrationSourceTier)
		d.sum.fail("segment %d: %s", target, d.sum.HydrationError)
		return nil
	}
	d.sum.HydrationOK = true
	return nil
}

// servedFrom names the copy the store's reader uses for s.
func servedFrom(s control.Segment) string {
	switch {
	case s.InTier0 && s.State == control.StateActive:
		return "tier 0 active segment"
	case s.InTier0 && s.InTier1:
		return "tier 0 file (tier 1 copy present)"
	case s.InTier0:
		return "tier 0 file"
	case s.InTier1:
		return "tier 1 artifact"
	case s.InTier2:
		return "tier 2 (hydrating on read)"
	}
	return "no copy"
}

// readAt reads one record at off and verifies it.
func (d *demo) readAt(ctx context.Context, tier int, s control.Segment, off uint64) ReadCheck {
	rc := ReadCheck{Tier: tier, Segment: s.Segment, Offset: off, ServedFrom: servedFrom(s)}
	began := time.Now()
	var res control.ReadResponse
	err := d.call(ctx, func(c context.Context) (err error) {
		res, err = d.admin.Read(c, control.ReadRequest{Stream: d.o.Stream, From: off, Count: 1})
		return err
	})
	rc.Millis = float64(time.Since(began).Microseconds()) / 1000
	switch {
	case err != nil:
		rc.Error = err.Error()
	case len(res.Messages) == 0:
		rc.Error = fmt.Sprintf("no record at offset %d (at tail: %v)", off, res.AtTail)
	default:
		if _, err := d.pub.Verify(res.Messages[0], off); err != nil {
			rc.Error = err.Error()
		} else {
			rc.OK = true
		}
	}
	return rc
}

// readTier0 reads the run's newest record from the active segment (or,
// when the run ended exactly at a rollover, from the newest segment still
// in Tier 0).
func (d *demo) readTier0(ctx context.Context, segs []control.Segment, start uint64) ReadCheck {
	for i := len(segs) - 1; i >= 0; i-- {
		s := segs[i]
		if s.InTier0 && s.Records > 0 && s.NextOffset > start {
			return d.readAt(ctx, 0, s, s.NextOffset-1)
		}
	}
	return ReadCheck{Tier: 0, Error: "no segment of this run is in tier 0"}
}

// middle is an offset in the middle of this run's part of s, so the read
// lands inside the artifact rather than on its first frame.
func middle(s control.Segment, start, end uint64) uint64 {
	lo, hi := max(s.BaseOffset, start), min(s.NextOffset, end)
	return lo + (hi-lo)/2
}

// readTier1 reads from a sealed, compressed segment of this run other than
// the hydrated one, preferring one whose Tier 0 file is gone so that the
// Tier 1 artifact serves it.
func (d *demo) readTier1(ctx context.Context, segs []control.Segment, start, end uint64) ReadCheck {
	var pick *control.Segment
	for i := range segs {
		s := &segs[i]
		if s.Segment == d.sum.HydratedSegment || !s.InTier1 || s.State != control.StateSealed || s.NextOffset <= start || s.BaseOffset >= end {
			continue
		}
		if pick == nil || (pick.InTier0 && !s.InTier0) {
			pick = s
		}
	}
	if pick == nil {
		// The run filled one segment: the hydrated one is the only Tier 1
		// segment there is.
		for i := range segs {
			if segs[i].Segment == d.sum.HydratedSegment && segs[i].InTier1 {
				pick = &segs[i]
			}
		}
	}
	if pick == nil {
		return ReadCheck{Tier: 1, Error: "no segment of this run is in tier 1"}
	}
	if pick.InTier0 && pick.Segment != d.sum.HydratedSegment {
		// Drop only the Tier 0 file, so the read exercises the Tier 1
		// artifact (one frame decompressed per record).
		if _, err := d.admin.SegmentsDelete(ctx, control.SegmentsDeleteRequest{
			Stream: d.o.Stream, Segment: pick.Segment, Tier: 0, Force: true}); err != nil {
			return ReadCheck{Tier: 1, Segment: pick.Segment, Error: "evict tier 0 copy: " + err.Error()}
		}
		pick.InTier0 = false
	}
	return d.readAt(ctx, 1, *pick, middle(*pick, start, end))
}

// readHydrated reads from the segment brought back from Tier 2.
func (d *demo) readHydrated(ctx context.Context, segs []control.Segment, start, end uint64) ReadCheck {
	for _, s := range segs {
		if s.Segment == d.sum.HydratedSegment {
			rc := d.readAt(ctx, 2, s, middle(s, start, end))
			rc.ServedFrom += " hydrated from tier 2"
			if s.InTier0 && rc.OK {
				rc.OK, rc.Error = false, "segment is back in tier 0: the read did not exercise the hydrated copy"
			}
			return rc
		}
	}
	return ReadCheck{Tier: 2, Segment: d.sum.HydratedSegment, Error: "hydrated segment not listed"}
}
