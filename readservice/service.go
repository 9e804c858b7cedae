package readservice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/readapi"
	"github.com/bop-aof/aof/tiers"
)

// Defaults of Options.
const (
	DefaultMaxConcurrent = 64
	// DefaultRequestTimeout bounds the work of one request that does not
	// follow (mostly waiting for a segment to come back from Tier 2); a
	// follow request gets its expiry on top.
	DefaultRequestTimeout = 60 * time.Second
)

// Options configure a Service. Zero values take the defaults.
type Options struct {
	SubjectPrefix string // requests on <prefix>.<stream>; readapi.DefaultSubjectPrefix
	// MaxConcurrent bounds the requests served at once; one over it is
	// answered StatusUnavailable (retryable). DefaultMaxConcurrent.
	MaxConcurrent  int
	RequestTimeout time.Duration // DefaultRequestTimeout
	Logger         *slog.Logger
	// Router, when set, sends a request for a stream this gateway does
	// not own to the gateway that does (see Router); without it every
	// request is answered here.
	Router Router
	// Replica, with a Router, answers the archived history of a stream
	// this gateway does not own from Tier 2 (a read-only copy,
	// tiers.Replica); a request past the copy's archived end goes to the
	// owner. Without it every such request goes to the owner.
	Replica *tiers.Replica
}

// source says which store answers a request.
type source int

const (
	ownStore source = iota // this gateway owns the stream (or no Router)
	// replicaFirst: another gateway owns it; the replica answers what it
	// has archived, the owner the rest.
	replicaFirst
	// formerOwner: a request forwarded here by a gateway that believes
	// this one owns the stream, which it does not (any more): its own
	// copy may be behind the new owner's, so only the replica answers.
	formerOwner
)

// Router tells which gateway owns the partition of a stream: with
// several gateways only the owner holds the stream's tail, so a request
// that reaches another one is forwarded, reply subject unchanged, to
// <prefix>.node.<owner>.<stream>, and the owner answers the reader
// directly.
type Router interface {
	Self() string
	// Owner is the node id of the owner of stream's partition, "" when
	// none owns it now.
	Owner(stream string) string
}

// Service answers read requests from one store. Each request is served
// on its own goroutine, so a follow request waiting at the tail does not
// hold up the others.
type Service struct {
	nc    *nats.Conn
	store *tiers.Store
	opts  Options
	log   *slog.Logger
	sub   *nats.Subscription
	// direct receives the requests other gateways forward to this one.
	direct *nats.Subscription
	slots  chan struct{}
	// idle keeps the readers of finished batches for the batches after.
	idle *idleReaders

	ctx    context.Context
	cancel context.CancelFunc
	// mu orders accept's wg.Add before Stop's wg.Wait: a message being
	// delivered while Stop unsubscribes is refused, not lost in a race.
	mu      sync.Mutex
	stopped bool
	wg      sync.WaitGroup
}

// New subscribes the service on nc and returns once the server knows the
// subscription.
func New(nc *nats.Conn, store *tiers.Store, opts Options) (*Service, error) {
	if nc == nil || store == nil {
		return nil, errors.New("readservice: nil connection or store")
	}
	if opts.SubjectPrefix == "" {
		opts.SubjectPrefix = readapi.DefaultSubjectPrefix
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = DefaultMaxConcurrent
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{nc: nc, store: store, opts: opts, log: opts.Logger, slots: make(chan struct{}, opts.MaxConcurrent),
		idle: newIdleReaders(opts.MaxConcurrent)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	sub, err := nc.QueueSubscribe(opts.SubjectPrefix+".*", readapi.QueueGroup, s.accept)
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("readservice: subscribe %s.*: %w", opts.SubjectPrefix, err)
	}
	s.sub = sub
	if opts.Router != nil {
		direct, err := nc.Subscribe(nodePrefix(opts.SubjectPrefix, opts.Router.Self())+"*", s.accept)
		if err != nil {
			s.Stop()
			return nil, fmt.Errorf("readservice: subscribe the node subject: %w", err)
		}
		s.direct = direct
	}
	if err := nc.Flush(); err != nil {
		s.Stop()
		return nil, fmt.Errorf("readservice: flush subscription: %w", err)
	}
	return s, nil
}

// Stop unsubscribes, ends the requests in flight (each answers
// StatusUnavailable with the position reached, so the reader resumes on
// another gateway) and waits for them.
func (s *Service) Stop() {
	s.drain()
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	s.idle.stop()
}

// drain unsubscribes so that the requests NATS already routed to this
// gateway are still taken (and answered) rather than dropped: a plain
// unsubscribe loses them, and their readers would wait for a timeout.
func (s *Service) drain() {
	if s.direct != nil {
		_ = s.direct.Drain()
	}
	if s.sub == nil {
		return
	}
	if err := s.sub.Drain(); err != nil {
		_ = s.sub.Unsubscribe()
		return
	}
	for deadline := time.Now().Add(drainTimeout); s.sub.IsValid() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
}

// drainTimeout bounds how long Stop waits for the subscription to drain.
const drainTimeout = 5 * time.Second

// accept runs on the subscription's goroutine: it only takes a slot and
// hands the request to a goroutine of its own.
func (s *Service) accept(m *nats.Msg) {
	if m.Reply == "" {
		s.log.Debug("read_request_without_reply", "subject", m.Subject)
		return
	}
	stream := strings.TrimPrefix(m.Subject, s.opts.SubjectPrefix+".")
	src := ownStore
	if r := s.opts.Router; r != nil {
		if rest, direct := strings.CutPrefix(m.Subject, nodePrefix(s.opts.SubjectPrefix, r.Self())); direct {
			stream = rest
			if r.Owner(stream) != r.Self() {
				src = formerOwner
			}
		} else if r.Owner(stream) != r.Self() {
			if s.opts.Replica == nil && s.forward(m, stream) {
				return
			}
			src = replicaFirst
		}
	}
	select {
	case s.slots <- struct{}{}:
	default:
		s.sendError(m.Reply, stream, statusf(readapi.StatusUnavailable,
			"gateway busy: %d read requests in flight (read.max_concurrent)", s.opts.MaxConcurrent))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		<-s.slots
		s.sendError(m.Reply, stream, statusf(readapi.StatusUnavailable, "gateway stopping: retry on another gateway"))
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.slots }()
		s.serve(m, stream, src)
	}()
}

// nodePrefix is the prefix of node's own subjects, <prefix>.node.<node>.
func nodePrefix(prefix, node string) string { return prefix + ".node." + node + "." }

// forward sends m to the owner of stream when that is another gateway,
// and reports whether m is dealt with (forwarded, or answered that the
// stream has no owner right now).
func (s *Service) forward(m *nats.Msg, stream string) bool {
	owner := s.opts.Router.Owner(stream)
	switch owner {
	case s.opts.Router.Self():
		return false
	case "":
		s.sendError(m.Reply, stream, statusf(readapi.StatusUnavailable,
			"stream %s: its partition has no owner right now (a takeover is under way); retry", stream))
		return true
	}
	fwd := &nats.Msg{Subject: nodePrefix(s.opts.SubjectPrefix, owner) + stream, Reply: m.Reply, Header: m.Header, Data: m.Data}
	if err := s.nc.PublishMsg(fwd); err != nil {
		s.sendError(m.Reply, stream, statusf(readapi.StatusUnavailable, "forward to the owner of %s, gateway %s: %v", stream, owner, err))
	}
	return true
}

func (s *Service) serve(m *nats.Msg, stream string, src source) {
	if src != ownStore && s.opts.Replica == nil {
		s.handOff(m, stream, src)
		return
	}
	req, rerr := parseRequest(m)
	if rerr != nil {
		s.sendError(m.Reply, stream, rerr)
		return
	}
	timeout := s.opts.RequestTimeout
	if req.Follow {
		timeout += time.Duration(req.ExpiresMS) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	b := &batch{s: s, stream: stream, reply: m.Reply, req: req, pub: newPublisher(s.nc, m.Reply), store: s.store}
	if req.Follow {
		// From the start, not only at the tail: a cold segment or a seek
		// may keep the request busy for longer than the client waits
		// for a heartbeat.
		b.pub.startHeartbeats(time.Duration(req.HeartbeatMS) * time.Millisecond)
	}
	var view *tiers.ReplicaView
	if src != ownStore {
		if view = s.useReplica(ctx, b); view == nil {
			b.pub.stop()
			s.handOff(m, stream, src)
			return
		}
		defer view.Release()
	}
	reason, err := b.run(ctx)
	b.pub.stop()
	if errors.Is(err, errPastReplica) {
		s.handOff(m, stream, src)
		return
	}
	if view != nil && err != nil && s.replicaFailed(ctx, b, view, err) {
		if b.sent == 0 {
			s.handOff(m, stream, src)
			return
		}
		// What was sent stands; the reader asks again from there, and
		// the request is routed afresh.
		reason, err = readapi.ReasonArchived, nil
	}
	if err == nil {
		err = b.end(reason)
	}
	if err != nil {
		e := s.errorOf(err, stream)
		if b.sent > 0 {
			e.Records, e.NextOffset = b.sent, b.next
		}
		s.log.Debug("read_request_failed", "stream", stream, "code", e.Code, "err", err)
		s.sendError(m.Reply, stream, e)
	}
}

// useReplica points b at the replica's copy of its stream, and returns
// the view to release, nil when there is no copy to read.
func (s *Service) useReplica(ctx context.Context, b *batch) *tiers.ReplicaView {
	need := b.req.StartOffset
	if b.req.StartSeq > 0 || b.req.StartTime != "" {
		need = tiers.NewestCopy // the search needs the newest copy
	}
	v, err := s.opts.Replica.Acquire(ctx, b.stream, need)
	if err != nil {
		if !errors.Is(err, tiers.ErrNotArchived) {
			s.log.Warn("replica_unavailable", "stream", b.stream, "err", err)
		}
		return nil
	}
	b.store, b.replica, b.limit = v.Store, true, v.End
	return v
}

// replicaFailed says whether a batch's failure on the replica's copy is
// one the owner may not have (a Tier 2 object missing or unreadable, Tier
// 2 unavailable), rather than the request's own or the gateway stopping:
// then the rest goes to the owner. A copy that found an object missing
// is dropped: the owner's retention may have deleted it since the copy
// was adopted, and the next adoption knows.
func (s *Service) replicaFailed(ctx context.Context, b *batch, v *tiers.ReplicaView, err error) bool {
	if ctx.Err() != nil || s.ctx.Err() != nil {
		return false
	}
	var re *readapi.Error
	if errors.As(err, &re) {
		return false // the request's own (400, 410, 413): the owner would say the same
	}
	code := codeOf(err)
	if code == readapi.StatusInternal {
		s.opts.Replica.Invalidate(b.stream, v)
	}
	s.log.Warn("replica_read_failed", "stream", b.stream, "offset", b.next, "code", code, "err", err)
	return code == readapi.StatusInternal || code == readapi.StatusUnavailable
}

// handOff deals with a request the replica cannot answer: the owner
// does, or, when this gateway is the owner after all, its own store. A
// request forwarded here as to the owner is not forwarded again (two
// gateways whose views of the owners differ would pass it back and
// forth): it is answered unavailable, and the reader retries.
func (s *Service) handOff(m *nats.Msg, stream string, src source) {
	if src == formerOwner {
		s.sendError(m.Reply, stream, statusf(readapi.StatusUnavailable,
			"gateway %s does not own stream %s (any more) and has not archived that far; retry", s.opts.Router.Self(), stream))
		return
	}
	if !s.forward(m, stream) {
		s.serve(m, stream, ownStore)
	}
}
