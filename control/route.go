package control

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Router tells which gateway owns the partition of a stream. With several
// gateways on one NATS, a request that names a stream is answered by its
// owner whichever gateway receives it: the receiver forwards it to the
// owner's node subject, <prefix>.node.<node id>.<endpoint>, and relays the
// answer as it came, headers and error included.
type Router interface {
	// Self is this gateway's node id.
	Self() string
	// Owner is the node id of the gateway that owns stream's partition
	// now, "" when none does (a takeover is under way).
	Owner(stream string) string
}

// NodeSubject is the subject on which only node answers endpoint; a
// request sent there is never forwarded again.
func NodeSubject(prefix, node, endpoint string) string {
	return prefix + ".node." + node + "." + endpoint
}

// named returns the stream and the node a request names, "" for none.
// Every request type spells them "stream" and "node" (JSON matches them
// in any case).
func named(data []byte) (stream, node string) {
	var r struct {
		Stream string `json:"stream"`
		Node   string `json:"node"`
	}
	if len(data) == 0 || json.Unmarshal(data, &r) != nil {
		return "", ""
	}
	return r.Stream, r.Node
}

// route returns the node to forward req to, "" to answer it here, or an
// error when the stream's partition has no owner.
func (s *Service) route(req micro.Request) (string, error) {
	r := s.opts.Router
	if r == nil {
		return "", nil
	}
	stream, node := named(req.Data())
	if node != "" {
		if node == r.Self() {
			return "", nil
		}
		return node, nil
	}
	if stream == "" {
		return "", nil
	}
	owner := r.Owner(stream)
	switch owner {
	case "":
		return "", Errorf(CodeUnavailable, "stream %s: its partition has no owner right now (a takeover is under way); retry", stream)
	case r.Self():
		return "", nil
	}
	return owner, nil
}

// forward sends req to node's subject and relays the answer.
func (s *Service) forward(ctx context.Context, name, node string, req micro.Request) error {
	msg := nats.NewMsg(NodeSubject(s.opts.SubjectPrefix, node, name))
	msg.Data = req.Data()
	for k, v := range req.Headers() {
		msg.Header[k] = v
	}
	resp, err := s.nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		return Errorf(CodeUnavailable, "the owner of the stream, gateway %s, did not answer: %v", node, err)
	}
	headers := micro.Headers{}
	for k, v := range resp.Header {
		headers[k] = v
	}
	if err := req.Respond(resp.Data, micro.WithHeaders(headers)); err != nil {
		return fmt.Errorf("relay answer of %s: %w", node, err)
	}
	return nil
}
