package control

import (
	"context"
	"sync"
	"testing"

	"github.com/bop-aof/aof/integration/harness"
)

// staticRouter is an ownership table the test sets.
type staticRouter struct {
	self   string
	mu     sync.Mutex
	owners map[string]string
}

func (r *staticRouter) Self() string { return r.self }

func (r *staticRouter) Owner(stream string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.owners[stream]
}

// Two gateways on one NATS, each holding its own streams: whichever of
// them the queue group hands a request to, the owner of the stream
// answers it, and a stream no gateway owns gets a retryable error.
func TestRequestsNamingAStreamAreAnsweredByItsOwner(t *testing.T) {
	n := harness.StartNATS(t)
	owners := map[string]string{"orders": "gw-a", "audit": "gw-b"}
	stores := map[string]string{"gw-a": "orders", "gw-b": "audit"}
	for node, stream := range stores {
		s := openTestStore(t, t.TempDir(), nil)
		t.Cleanup(func() { s.Close() })
		appendN(t, s, stream, 0, 3)
		self := node
		svc, err := New(n.Connect(t), s, Options{Router: &staticRouter{self: node, owners: owners},
			Drain: func(_ context.Context, off bool) (DrainResponse, error) {
				return DrainResponse{Node: self, Draining: !off, Released: []int{1, 2}}, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { svc.Stop() })
	}
	c := NewClient(n.Connect(t), DefaultSubjectPrefix)
	ctx := testCtx(t)
	// The queue group picks a member at random: enough requests reach
	// both gateways for each stream.
	for i := range 20 {
		for stream := range owners {
			list, err := c.SegmentsList(ctx, SegmentsListRequest{Stream: stream})
			if err != nil {
				t.Fatalf("request %d for %s: %v", i, stream, err)
			}
			if len(list.Segments) != 1 || list.Segments[0].Records != 3 {
				t.Fatalf("request %d for %s answered %+v, want the owner's one segment of 3 records", i, stream, list.Segments)
			}
		}
	}
	// The owner's errors come back with their codes, relayed or not.
	for range 10 {
		_, err := c.Hydrate(ctx, HydrateRequest{Stream: "orders", Segment: 99})
		wantCode(t, err, CodeNotFound)
	}
	// A handover is answered by the node it names.
	for range 10 {
		for _, node := range []string{"gw-a", "gw-b"} {
			res, err := c.Handover(ctx, HandoverRequest{Node: node})
			if err != nil || res.Node != node {
				t.Fatalf("handover of %s answered by %q (%v)", node, res.Node, err)
			}
			d, err := c.Drain(ctx, DrainRequest{Node: node, Off: true})
			if err != nil || d.Node != node || d.Draining {
				t.Fatalf("drain off of %s answered %+v (%v)", node, d, err)
			}
		}
	}
	_, err := c.SegmentsList(ctx, SegmentsListRequest{Stream: "unowned"})
	wantCode(t, err, CodeUnavailable)
}

// cluster.view is answered by the gateway's view function, so an operator
// needs the admin service only.
func TestClusterViewIsServedByTheGateway(t *testing.T) {
	s := openTestStore(t, t.TempDir(), nil)
	defer s.Close()
	c, _ := startService(t, s, Options{ClusterView: func(context.Context) (any, error) {
		return map[string]int{"partitions": 16}, nil
	}})
	var v struct {
		Partitions int `json:"partitions"`
	}
	if err := c.ClusterView(testCtx(t), &v); err != nil || v.Partitions != 16 {
		t.Fatalf("cluster.view = %+v, %v", v, err)
	}
	c2, _ := startService(t, s, Options{})
	wantCode(t, c2.ClusterView(testCtx(t), &v), CodeNotImplemented)
}
