package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/bop-aof/aof/fsck"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/tier0"
	"github.com/bop-aof/aof/tiers/tier1"
	"github.com/bop-aof/aof/tracing"
)

// Defaults of Options.
const (
	DefaultName          = "aof-admin"
	DefaultSubjectPrefix = "aof.admin"
	DefaultVersion       = "0.1.0"
	// DefaultRequestTimeout bounds one request's work when it names none.
	DefaultRequestTimeout = 60 * time.Second
)

// Options configure a Service. Zero values take the defaults.
type Options struct {
	Name          string // micro service name; DefaultName
	SubjectPrefix string // endpoints under <prefix>.<endpoint>; DefaultSubjectPrefix
	Version       string // semver; DefaultVersion
	Logger        *slog.Logger
	// Status, when set, adds the gateway's own status (ingest) to the
	// status answer under "gateway". It must return a JSON-encodable value.
	Status func() any
	// Reload, when set, serves config.reload; without it config.reload
	// answers 501.
	Reload      func(ctx context.Context) (any, error)
	Instruments *tracing.Instruments
	// ClusterView, when set, serves cluster.view (cluster.ReadView).
	ClusterView func(ctx context.Context) (any, error)
	// Drain, when set, serves cluster.drain and cluster.handover (a drain
	// by its older name): the gateway hands its partitions over and takes
	// none (off: takes its share again), and returns what it released.
	Drain func(ctx context.Context, off bool) (DrainResponse, error)
	// Router, when set, sends a request that names a stream to the
	// gateway that owns it (see Router); without it every request is
	// answered here.
	Router Router
}

// Service is the aof-admin NATS micro service over one store. Endpoints
// are served concurrently, requests to one endpoint in order; each runs under DefaultRequestTimeout (or the
// request's own timeout where it has one) and stops when the service stops.
type Service struct {
	svc   micro.Service
	nc    *nats.Conn
	store *tiers.Store
	opts  Options
	log   *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New registers the service and its endpoints on nc.
func New(nc *nats.Conn, store *tiers.Store, opts Options) (*Service, error) {
	if nc == nil || store == nil {
		return nil, errors.New("control: nil connection or store")
	}
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	if opts.SubjectPrefix == "" {
		opts.SubjectPrefix = DefaultSubjectPrefix
	}
	if opts.Version == "" {
		opts.Version = DefaultVersion
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{nc: nc, store: store, opts: opts, log: opts.Logger}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	svc, err := micro.AddService(nc, micro.Config{
		Name:        opts.Name,
		Version:     opts.Version,
		Description: "bop AOF gateway administration: residency, seal, flush, hydrate, segments, manifest, read",
		Metadata:    map[string]string{"subject_prefix": opts.SubjectPrefix, "api_version": APIVersion},
	})
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("control: add service: %w", err)
	}
	s.svc = svc
	handlers := map[string]func(context.Context, []byte) (any, error){
		EndpointStatus:          s.status,
		EndpointDump:            s.dump,
		EndpointSeal:            s.seal,
		EndpointFlush:           s.flush,
		EndpointHydrate:         s.hydrate,
		EndpointSegmentsList:    s.segmentsList,
		EndpointSegmentsDelete:  s.segmentsDelete,
		EndpointManifestCheck:   s.manifestCheck,
		EndpointManifestInspect: s.manifestInspect,
		EndpointRead:            s.read,
		EndpointSnapshotCreate:  s.snapshotCreate,
		EndpointSnapshotList:    s.snapshotList,
		EndpointConfigReload:    s.configReload,
		EndpointHandover:        s.handover,
		EndpointDrain:           s.drain,
		EndpointClusterView:     s.clusterView,
	}
	for _, name := range Endpoints {
		h := handlers[name]
		// Micro endpoint names allow no dots; the subject keeps them.
		err := svc.AddEndpoint(strings.ReplaceAll(name, ".", "-"), micro.HandlerFunc(func(req micro.Request) { s.serve(name, h, req, false) }),
			micro.WithEndpointSubject(opts.SubjectPrefix+"."+name))
		if err == nil && opts.Router != nil {
			// The node's own subject, for requests forwarded to it: no
			// queue group is needed, only this node listens there.
			err = svc.AddEndpoint("node-"+strings.ReplaceAll(name, ".", "-"), micro.HandlerFunc(func(req micro.Request) { s.serve(name, h, req, true) }),
				micro.WithEndpointSubject(NodeSubject(opts.SubjectPrefix, opts.Router.Self(), name)))
		}
		if err != nil {
			s.Stop()
			return nil, fmt.Errorf("control: add endpoint %s: %w", name, err)
		}
	}
	// Subscriptions reach the server asynchronously: flush so that the
	// service answers as soon as New returns, not a moment later.
	if err := nc.Flush(); err != nil {
		s.Stop()
		return nil, fmt.Errorf("control: register endpoints: %w", err)
	}
	return s, nil
}

// Info returns the micro service's info (name, id, endpoints).
func (s *Service) Info() micro.Info { return s.svc.Info() }

// Stop unregisters the service and cancels requests in flight, waiting for
// their handlers to return.
func (s *Service) Stop() error {
	s.cancel()
	err := s.svc.Stop()
	s.wg.Wait()
	return err
}

// serve runs a handler and answers. It runs on the endpoint's own
// subscription goroutine (micro reads the request's outcome for its stats
// once the handler returns, so the answer must be sent before that): a
// long hydrate holds up other hydrates, not other endpoints.
func (s *Service) serve(name string, h func(context.Context, []byte) (any, error), req micro.Request, direct bool) {
	s.wg.Add(1)
	defer s.wg.Done()
	ctx, cancel := context.WithTimeout(s.ctx, DefaultRequestTimeout)
	defer cancel()
	var res any
	err := checkAPIVersion(req.Headers().Get(APIVersionHeader))
	var owner string
	if err == nil && !direct {
		owner, err = s.route(req)
	}
	switch {
	case err != nil:
	case owner != "":
		if err = s.forward(ctx, name, owner, req); err == nil {
			return
		}
	default:
		res, err = h(ctx, req.Data())
	}
	version := micro.WithHeaders(micro.Headers{APIVersionHeader: {APIVersion}})
	if err != nil {
		ce := asError(err)
		s.log.Warn("control_request_failed", "endpoint", name, "code", ce.Code, "err", ce.Message)
		body, _ := json.Marshal(ce)
		if rerr := req.Error(ce.Code, ce.Message, body, version); rerr != nil {
			s.log.Warn("control_respond_failed", "endpoint", name, "err", rerr)
		}
		return
	}
	if rerr := req.RespondJSON(res, version); rerr != nil {
		s.log.Warn("control_respond_failed", "endpoint", name, "err", rerr)
	}
}

// checkAPIVersion refuses a request in a protocol version this service
// does not speak; a request without the header is version 1.
func checkAPIVersion(v string) error {
	if v == "" || v == APIVersion {
		return nil
	}
	return Errorf(CodeNotImplemented, "aof-admin API version %s not supported: this gateway speaks version %s", v, APIVersion)
}

// decode parses a JSON request; an empty body is the zero request.
func decode(data []byte, v any) error {
	if len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return Errorf(CodeBadRequest, "malformed request: %v", err)
	}
	return nil
}

func (s *Service) status(ctx context.Context, data []byte) (any, error) {
	res := StatusResponse{
		Service: s.opts.Name, Version: s.opts.Version, Root: s.store.Root(), Tier2: s.store.Tier2() != nil,
		Streams: s.store.Streams(), Tier0: tier0StatsOf(s.store.Tier0Stats()), Tier1: tier1StatsOf(s.store.Tier1Stats()),
		Queues: queueDepthsOf(s.store.Queues()), Latency: latency(s.opts.Instruments),
	}
	if res.Streams == nil {
		res.Streams = []string{}
	}
	if s.opts.Status != nil {
		b, err := json.Marshal(s.opts.Status())
		if err != nil {
			return nil, fmt.Errorf("encode gateway status: %w", err)
		}
		res.Gateway = b
	}
	return res, nil
}

func (s *Service) dump(ctx context.Context, data []byte) (any, error) {
	var req DumpRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	return Dump(s.store, req.Stream, s.opts.Instruments)
}

func (s *Service) seal(ctx context.Context, data []byte) (any, error) {
	var req SealRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	var streams []string
	switch {
	case req.All:
		streams = s.store.Streams()
	case req.Stream != "":
		if err := checkStream(s.store, req.Stream); err != nil {
			return nil, err
		}
		streams = []string{req.Stream}
	default:
		return nil, Errorf(CodeBadRequest, "seal needs a stream (or all)")
	}
	res := SealResponse{Sealed: []SealedSegment{}}
	for _, name := range streams {
		id, err := s.store.Seal(ctx, name, req.Force)
		if err != nil {
			return nil, fmt.Errorf("seal %s: %w", name, err)
		}
		res.Sealed = append(res.Sealed, SealedSegment{Stream: name, Segment: id, Skipped: id == 0 && !req.Force})
	}
	return res, nil
}

func (s *Service) flush(ctx context.Context, data []byte) (any, error) {
	var req FlushRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if req.Stream == "" {
		return nil, Errorf(CodeBadRequest, "flush needs a stream")
	}
	if req.TimeoutMS > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMS)*time.Millisecond)
		defer cancel()
	}
	return FlushStream(ctx, s.store, req.Stream)
}

// FlushStream makes stream durable, giving up (with CodeUnavailable) when
// ctx ends first; the fsync itself then still completes in the background.
func FlushStream(ctx context.Context, st *tiers.Store, stream string) (FlushResponse, error) {
	if err := checkStream(st, stream); err != nil {
		return FlushResponse{}, err
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- st.Flush(context.WithoutCancel(ctx), stream) }()
	select {
	case err := <-done:
		if err != nil {
			return FlushResponse{}, fmt.Errorf("flush %s: %w", stream, err)
		}
	case <-ctx.Done():
		return FlushResponse{}, Errorf(CodeUnavailable, "flush %s: not durable within the timeout (%v)", stream, ctx.Err())
	}
	res := FlushResponse{Stream: stream, DurationMS: time.Since(start).Milliseconds()}
	for _, seg := range st.Segments(stream) {
		res.NextOffset = max(res.NextOffset, seg.NextOffset)
	}
	return res, nil
}

func (s *Service) hydrate(ctx context.Context, data []byte) (any, error) {
	var req HydrateRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	return HydrateSegment(ctx, s.store, req)
}

// HydrateSegment brings a segment back into Tier 1 and waits for it.
func HydrateSegment(ctx context.Context, st *tiers.Store, req HydrateRequest) (HydrateResponse, error) {
	seg, err := findSegment(st, req.Stream, req.Segment)
	if err != nil {
		return HydrateResponse{}, err
	}
	res := HydrateResponse{Stream: seg.Stream, Segment: seg.Segment, AlreadyLocal: seg.InTier0 || seg.InTier1}
	start := time.Now()
	if err := st.Hydrate(ctx, seg.Stream, seg.Segment); err != nil {
		return res, err
	}
	res.DurationMS = time.Since(start).Milliseconds()
	if after, err := findSegment(st, seg.Stream, seg.Segment); err == nil {
		res.Bytes = after.CompressedBytes
	}
	return res, nil
}

func (s *Service) segmentsList(ctx context.Context, data []byte) (any, error) {
	var req SegmentsListRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	return ListSegments(s.store, req)
}

func (s *Service) segmentsDelete(ctx context.Context, data []byte) (any, error) {
	var req SegmentsDeleteRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	before, _ := findSegment(s.store, req.Stream, req.Segment)
	res, err := DeleteSegment(ctx, s.store, req)
	if err != nil {
		return res, err
	}
	s.logDeleted(req, res, before.InTier2)
	return res, nil
}

// logDeleted records a done segments.delete and who asked for it (as the
// client states it: requested_by is not authenticated). A retirement that
// acknowledged data loss is a warning: records are gone for good.
func (s *Service) logDeleted(req SegmentsDeleteRequest, res SegmentsDeleteResponse, wasInTier2 bool) {
	level := slog.LevelInfo
	if req.Tier == 2 && !wasInTier2 {
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, "segment_deleted", "stream", res.Stream, "segment", res.Segment,
		"tier", req.Tier, "removed_tiers", res.Removed, "was_in_tier2", wasInTier2, "force", req.Force,
		"acknowledge_data_loss", req.AcknowledgeDataLoss, "requested_by", req.RequestedBy)
}

// DeleteSegment removes copies of a sealed segment. Tier 0 removes only
// the Tier 0 file (the segment must have a Tier 1 copy, which then serves
// reads); tier 1 removes both local copies (the segment must be confirmed
// in Tier 2, which then serves reads through hydration); tier 2 retires the
// segment: its Tier 2 object and every local copy are deleted and its
// records are gone. Retiring a segment that is not confirmed in Tier 2
// deletes the only copy of its records and is refused unless the request
// acknowledges the data loss (Force does not). Without Force the newest
// sealed segment of the stream and a segment being hydrated are refused as
// still in use.
func DeleteSegment(ctx context.Context, st *tiers.Store, req SegmentsDeleteRequest) (SegmentsDeleteResponse, error) {
	if req.Tier != 0 && req.Tier != 1 && req.Tier != 2 {
		return SegmentsDeleteResponse{}, Errorf(CodeBadRequest, "tier must be 0, 1 or 2, got %d", req.Tier)
	}
	seg, err := findSegment(st, req.Stream, req.Segment)
	if err != nil {
		return SegmentsDeleteResponse{}, err
	}
	if segmentStateOf(seg) == StateActive {
		return SegmentsDeleteResponse{}, Errorf(CodeConflict, "segment %d of %s is the active segment: seal it first", seg.Segment, seg.Stream)
	}
	if req.Tier == 0 && !seg.InTier1 {
		return SegmentsDeleteResponse{}, Errorf(CodeConflict, "segment %d of %s has no Tier 1 copy yet: its Tier 0 file is the only local copy", seg.Segment, seg.Stream)
	}
	if req.Tier == 1 && !seg.InTier2 {
		return SegmentsDeleteResponse{}, Errorf(CodeConflict, "segment %d of %s is not confirmed in Tier 2: its local copies are the only ones", seg.Segment, seg.Stream)
	}
	if req.Tier == 2 && !seg.InTier2 && !req.AcknowledgeDataLoss {
		return SegmentsDeleteResponse{}, Errorf(CodeConflict, "segment %d of %s is not confirmed in Tier 2: retiring it deletes the only copy of its records; "+
			"wait for the upload, or acknowledge the loss (aof2-admin --acknowledge-data-loss, acknowledge_data_loss in the request)", seg.Segment, seg.Stream)
	}
	if !req.Force {
		if seg.PendingHydration {
			return SegmentsDeleteResponse{}, Errorf(CodeConflict, "segment %d of %s is being hydrated (use --force)", seg.Segment, seg.Stream)
		}
		newest := uint64(0)
		for _, o := range st.Segments(seg.Stream) {
			if segmentStateOf(o) == StateSealed {
				newest = max(newest, o.Segment)
			}
		}
		if seg.Segment == newest {
			return SegmentsDeleteResponse{}, Errorf(CodeConflict, "segment %d is the newest sealed segment of %s and likely still read (use --force)", seg.Segment, seg.Stream)
		}
	}
	res := SegmentsDeleteResponse{Stream: seg.Stream, Segment: seg.Segment, Removed: []int{}}

	switch req.Tier {
	case 0:
		err = st.EvictTier0(ctx, seg.Stream, seg.Segment)
	case 1:
		err = st.EvictLocal(ctx, seg.Stream, seg.Segment)
	case 2:
		err = st.Retire(ctx, seg.Stream, seg.Segment)
	}
	if err != nil {
		return res, err
	}
	if seg.InTier0 {
		res.Removed = append(res.Removed, 0)
	}
	if seg.InTier1 && req.Tier >= 1 {
		res.Removed = append(res.Removed, 1)
	}
	if seg.InTier2 && req.Tier == 2 {
		res.Removed = append(res.Removed, 2)
	}
	return res, nil
}

func (s *Service) manifestCheck(ctx context.Context, data []byte) (any, error) {
	var req ManifestCheckRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := checkStream(s.store, req.Stream); err != nil {
		return nil, err
	}
	rep, err := fsck.CheckLive(ctx, s.store, req.Stream, req.Repair)
	if err != nil {
		return nil, err
	}
	return CheckReportOf(rep), nil
}

func (s *Service) manifestInspect(ctx context.Context, data []byte) (any, error) {
	var req ManifestInspectRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	return Inspect(s.store, req)
}

func (s *Service) read(ctx context.Context, data []byte) (any, error) {
	var req ReadRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	// The answer is one NATS message: it must fit the server's limit.
	limit := MaxReadMaxBytes
	if p := int(s.nc.MaxPayload()) - 4096; p > 0 {
		limit = min(limit, p)
	}
	return readWithin(ctx, s.store, req, limit)
}

func (s *Service) snapshotCreate(ctx context.Context, data []byte) (any, error) {
	var req SnapshotRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if req.Stream == "" {
		return nil, Errorf(CodeBadRequest, "snapshot needs a stream")
	}
	id, err := s.store.Snapshot(req.Stream)
	if err != nil {
		return nil, err
	}
	return SnapshotResponse{Stream: req.Stream, SnapshotID: id}, nil
}

func (s *Service) snapshotList(ctx context.Context, data []byte) (any, error) {
	var req StreamRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	return ListSnapshots(nil, s.store.Root(), req.Stream)
}

func (s *Service) clusterView(ctx context.Context, _ []byte) (any, error) {
	if s.opts.ClusterView == nil {
		return nil, Errorf(CodeNotImplemented, "this gateway does not own partitions")
	}
	return s.opts.ClusterView(ctx)
}

func (s *Service) handover(ctx context.Context, data []byte) (any, error) {
	var req HandoverRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if req.Node == "" {
		return nil, Errorf(CodeBadRequest, "cluster.handover needs the node to hand over")
	}
	if s.opts.Drain == nil {
		return nil, Errorf(CodeNotImplemented, "this gateway does not own partitions")
	}
	res, err := s.opts.Drain(ctx, false)
	return HandoverResponse{Node: res.Node, Released: res.Released, TookMS: res.TookMS}, err
}

func (s *Service) drain(ctx context.Context, data []byte) (any, error) {
	var req DrainRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if req.Node == "" {
		return nil, Errorf(CodeBadRequest, "cluster.drain needs the node to drain")
	}
	if s.opts.Drain == nil {
		return nil, Errorf(CodeNotImplemented, "this gateway does not own partitions")
	}
	return s.opts.Drain(ctx, req.Off)
}

func (s *Service) configReload(ctx context.Context, data []byte) (any, error) {
	if s.opts.Reload == nil {
		return nil, Errorf(CodeNotImplemented, "this gateway does not support config reload")
	}
	out, err := s.opts.Reload(ctx)
	if err != nil {
		return nil, fmt.Errorf("reload: %w", err)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode reload result: %w", err)
	}
	return ReloadResponse{Result: b}, nil
}

// The storage to wire mappings: each answer is built from the store's
// types here, so that a change of a storage type changes these functions,
// never the protocol.

// segmentStateOf names the state of a store segment on the wire. The
// store's state strings are the wire's today; the explicit conversion
// keeps this compiling whether the store's state is a string or a named
// string type.
func segmentStateOf(st tiers.SegmentStatus) SegmentState {
	return SegmentState(string(st.State))
}

func segmentOf(st tiers.SegmentStatus) Segment {
	return Segment{
		Stream: st.Stream, Segment: st.Segment, State: segmentStateOf(st),
		BaseOffset: st.BaseOffset, NextOffset: st.NextOffset, Records: st.Records,
		Bytes: st.Bytes, CompressedBytes: st.CompressedBytes,
		InTier0: st.InTier0, InTier1: st.InTier1, InTier2: st.InTier2,
		Tier2Key: st.Tier2Key, ETag: st.ETag,
		PendingHydration: st.PendingHydration, HydratedBytes: st.HydratedBytes,
		NeedsRecovery: st.NeedsRecovery, Reason: st.Reason,
	}
}

// segmentsOf maps a list of store segments; never nil, so that an empty
// list is [] on the wire.
func segmentsOf(list []tiers.SegmentStatus) []Segment {
	out := make([]Segment, 0, len(list))
	for _, st := range list {
		out = append(out, segmentOf(st))
	}
	return out
}

func tier0StatsOf(s tier0.Stats) Tier0Stats {
	return Tier0Stats{MaxBytes: s.MaxBytes, UsedBytes: s.UsedBytes, ReservedBytes: s.ReservedBytes,
		QueueDepth: s.QueueDepth, Segments: s.Segments, EvictableSegments: s.EvictableSegments,
		PinnedSegments: s.PinnedSegments, Evictions: s.Evictions}
}

func tier1StatsOf(s tier1.CacheStats) Tier1Stats {
	return Tier1Stats{Bytes: s.Bytes, Files: s.Files, MaxBytes: s.MaxBytes, Pinned: s.Pinned, Uploaded: s.Uploaded}
}

func queueDepthsOf(q tiers.QueueDepths) QueueDepths {
	return QueueDepths{Activation: q.Activation, Compression: q.Compression, Upload: q.Upload, Hydration: q.Hydration}
}

func manifestSegmentsOf(list []manifest.SegmentState) []ManifestSegment {
	out := make([]ManifestSegment, 0, len(list))
	for _, g := range list {
		out = append(out, ManifestSegment{
			Stream: g.Stream, Segment: g.Segment, BaseOffset: g.BaseOffset, Epoch: g.Epoch,
			LastLogicalOffset: g.LastLogicalOffset, LastTimestampMS: g.LastTimestampMS, OpenedMS: g.OpenedMS,
			RecordCount: g.RecordCount, Sealed: g.Sealed, DurableBytes: g.DurableBytes, CRC64: g.CRC64,
			LastExtID: g.LastExtID, FlushFailure: g.FlushFailure,
			InTier0: g.InTier0, InTier1: g.InTier1, InTier2: g.InTier2,
			CompressedBytes: g.CompressedBytes, DictionaryID: g.DictionaryID, ResidentBytes: g.ResidentBytes,
			Tier2Key: g.Tier2Key, ETag: g.ETag, HydrationSource: g.HydrationSource,
			PendingJobs: uint8(g.PendingJobs), LastFailure: uint32(g.LastFailure), Failures: g.Failures,
			NeedsRecovery: g.NeedsRecovery, Reason: uint32(g.Reason), Deleted: g.Deleted,
		})
	}
	return out
}

// CheckReportOf maps a check report of package fsck to the wire:
// manifest.check answers it, and aof2-admin prints an offline check
// (--root) through it, so both print alike.
func CheckReportOf(rep fsck.Report) CheckReport {
	out := CheckReport{Streams: make([]StreamCheck, 0, len(rep.Streams)), Problems: make([]Problem, 0, len(rep.Problems)), Tier2: rep.Tier2}
	for _, s := range rep.Streams {
		out.Streams = append(out.Streams, StreamCheck{Stream: s.Stream, Chunks: s.Chunks, Records: s.Records,
			Snapshots: s.Snapshots, SegmentsChecked: s.SegmentsChecked, Tier2Checked: s.Tier2Checked})
	}
	for _, p := range rep.Problems {
		out.Problems = append(out.Problems, Problem{Stream: p.Stream, Kind: p.Kind, Segment: p.Segment, Chunk: p.Chunk,
			File: p.File, Offset: p.Offset, Reason: p.Reason, Repaired: p.Repaired, RepairNote: p.RepairNote})
	}
	return out
}
