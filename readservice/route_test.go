package readservice

import (
	"sync"
	"testing"

	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/readapi"
	"github.com/bop-aof/aof/tiers"
)

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

// Two gateways each own one stream: whichever of them the queue group
// hands a read to, the owner answers the reader directly, with every
// record; a stream no gateway owns is answered unavailable (retry).
func TestReadsAreAnsweredByTheOwnerOfTheStream(t *testing.T) {
	n := harness.StartNATS(t)
	owners := map[string]string{"orders": "gw-a", "audit": "gw-b"}
	for node, stream := range map[string]string{"gw-a": "orders", "gw-b": "audit"} {
		s, err := tiers.Open(testCtx(t), tiers.Options{Root: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		appendN(t, s, stream, 0, 20, seqPlusOne)
		svc, err := New(n.Connect(t), s, Options{Router: &staticRouter{self: node, owners: owners}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(svc.Stop)
	}
	nc := n.Connect(t)
	for i := range 10 {
		for stream := range owners {
			a := request(t, nc, stream, readapi.Request{}, 0)
			if len(a.records) != 20 || a.eob(t).NextOffset != 20 {
				t.Fatalf("read %d of %s: %d records, %s", i, stream, len(a.records), a.final.Data)
			}
			checkRecords(t, stream, a.records, 0, seqPlusOne)
		}
	}
	a := request(t, nc, "unowned", readapi.Request{}, 0)
	if a.status() != readapi.StatusUnavailable {
		t.Fatalf("read of a stream without an owner: status %q (%s)", a.status(), a.final.Data)
	}
}
