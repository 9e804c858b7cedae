package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Client calls the aof-admin service. Every method blocks until the answer
// arrives or ctx ends (ctx must carry a deadline or be cancellable). An
// error answer is returned as *Error; a missing service as *Error with
// CodeUnavailable.
type Client struct {
	nc      *nats.Conn
	prefix  string
	denials *PermissionDenials
}

// ClientOption sets an optional setting of a Client.
type ClientOption func(*Client)

// WithPermissionDenials makes every request that the NATS server refuses
// for lack of permission fail at once with CodeForbidden; d must be the
// error handler of the client's connection (PermissionDenials).
func WithPermissionDenials(d *PermissionDenials) ClientOption {
	return func(c *Client) { c.denials = d }
}

// NewClient returns a client of the service whose endpoints are under
// prefix ("" for DefaultSubjectPrefix).
func NewClient(nc *nats.Conn, prefix string, opts ...ClientOption) *Client {
	if prefix == "" {
		prefix = DefaultSubjectPrefix
	}
	c := &Client{nc: nc, prefix: prefix}
	for _, o := range opts {
		o(c)
	}
	return c
}

// call sends req as JSON to endpoint and decodes the answer into res.
func (c *Client) call(ctx context.Context, endpoint string, req, res any) error {
	var data []byte
	if req != nil {
		var err error
		if data, err = json.Marshal(req); err != nil {
			return fmt.Errorf("encode %s request: %w", endpoint, err)
		}
	}
	out := nats.NewMsg(c.prefix + "." + endpoint)
	out.Data = data
	out.Header.Set(APIVersionHeader, APIVersion)
	msg, err := c.requestWatched(ctx, out)
	if err != nil {
		var refused *Error
		switch {
		case errors.As(err, &refused):
			return refused
		case errors.Is(err, nats.ErrNoResponders):
			return Errorf(CodeUnavailable, "no aof-admin service answers on %s.%s: is the gateway running?", c.prefix, endpoint)
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
			return Errorf(CodeUnavailable, "%s: no answer before the timeout", endpoint)
		}
		return fmt.Errorf("%s: %w", endpoint, err)
	}
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		return &Error{Code: code, Message: msg.Header.Get(micro.ErrorHeader)}
	}
	// No header: a gateway from before the header, which speaks version 1.
	if v := msg.Header.Get(APIVersionHeader); v != "" && v != APIVersion {
		return Errorf(CodeNotImplemented, "%s: the gateway answered in aof-admin API version %s, this aof2-admin speaks version %s: use the aof2-admin of the gateway's release",
			endpoint, v, APIVersion)
	}
	if res == nil {
		return nil
	}
	if err := json.Unmarshal(msg.Data, res); err != nil {
		return fmt.Errorf("decode %s answer: %w", endpoint, err)
	}
	return nil
}

// Status calls status.
func (c *Client) Status(ctx context.Context) (StatusResponse, error) {
	var res StatusResponse
	return res, c.call(ctx, EndpointStatus, nil, &res)
}

// Dump calls dump.
func (c *Client) Dump(ctx context.Context, req DumpRequest) (DumpResponse, error) {
	var res DumpResponse
	return res, c.call(ctx, EndpointDump, req, &res)
}

// Seal calls seal.
func (c *Client) Seal(ctx context.Context, req SealRequest) (SealResponse, error) {
	var res SealResponse
	return res, c.call(ctx, EndpointSeal, req, &res)
}

// Flush calls flush.
func (c *Client) Flush(ctx context.Context, req FlushRequest) (FlushResponse, error) {
	var res FlushResponse
	return res, c.call(ctx, EndpointFlush, req, &res)
}

// Hydrate calls hydrate.
func (c *Client) Hydrate(ctx context.Context, req HydrateRequest) (HydrateResponse, error) {
	var res HydrateResponse
	return res, c.call(ctx, EndpointHydrate, req, &res)
}

// SegmentsList calls segments.list.
func (c *Client) SegmentsList(ctx context.Context, req SegmentsListRequest) (SegmentsListResponse, error) {
	var res SegmentsListResponse
	return res, c.call(ctx, EndpointSegmentsList, req, &res)
}

// SegmentsDelete calls segments.delete.
func (c *Client) SegmentsDelete(ctx context.Context, req SegmentsDeleteRequest) (SegmentsDeleteResponse, error) {
	var res SegmentsDeleteResponse
	return res, c.call(ctx, EndpointSegmentsDelete, req, &res)
}

// ManifestCheck calls manifest.check.
func (c *Client) ManifestCheck(ctx context.Context, req ManifestCheckRequest) (CheckReport, error) {
	var res CheckReport
	return res, c.call(ctx, EndpointManifestCheck, req, &res)
}

// ManifestInspect calls manifest.inspect.
func (c *Client) ManifestInspect(ctx context.Context, req ManifestInspectRequest) (ManifestInspectResponse, error) {
	var res ManifestInspectResponse
	return res, c.call(ctx, EndpointManifestInspect, req, &res)
}

// Read calls read.
func (c *Client) Read(ctx context.Context, req ReadRequest) (ReadResponse, error) {
	var res ReadResponse
	return res, c.call(ctx, EndpointRead, req, &res)
}

// SnapshotCreate calls snapshot.create.
func (c *Client) SnapshotCreate(ctx context.Context, req SnapshotRequest) (SnapshotResponse, error) {
	var res SnapshotResponse
	return res, c.call(ctx, EndpointSnapshotCreate, req, &res)
}

// SnapshotList calls snapshot.list.
func (c *Client) SnapshotList(ctx context.Context, req StreamRequest) (SnapshotListResponse, error) {
	var res SnapshotListResponse
	return res, c.call(ctx, EndpointSnapshotList, req, &res)
}

// ClusterView calls cluster.view and decodes the answer into v (a
// cluster.View).
func (c *Client) ClusterView(ctx context.Context, v any) error {
	return c.call(ctx, EndpointClusterView, nil, v)
}

// Handover calls cluster.handover, which the node it names answers.
func (c *Client) Handover(ctx context.Context, req HandoverRequest) (HandoverResponse, error) {
	var res HandoverResponse
	return res, c.call(ctx, EndpointHandover, req, &res)
}

// Drain calls cluster.drain, which the node it names answers.
func (c *Client) Drain(ctx context.Context, req DrainRequest) (DrainResponse, error) {
	var res DrainResponse
	return res, c.call(ctx, EndpointDrain, req, &res)
}

// ConfigReload calls config.reload.
func (c *Client) ConfigReload(ctx context.Context) (ReloadResponse, error) {
	var res ReloadResponse
	return res, c.call(ctx, EndpointConfigReload, nil, &res)
}
