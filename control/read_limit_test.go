package control

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/tiers"
)

// A read answer is one NATS message: with large records and the default
// bounds it must stop where the encoded answer would exceed the server's
// payload limit, not fail to answer at all.
func TestReadAnswerFitsTheServerPayloadLimit(t *testing.T) {
	n := harness.StartNATS(t)
	nc := n.Connect(t)
	s := openTestStore(t, t.TempDir(), nil)
	defer s.Close()
	for i := 0; i < 20; i++ {
		p := ingest.AppendEnvelope(nil, ingest.Envelope{Subject: "aof.ingest.big", Body: bytes.Repeat([]byte{'x'}, 64<<10)})
		if err := s.AppendDurable(testCtx(t), "big", []tiers.Record{{Payload: p, ExtID: uint64(i + 1)}}); err != nil {
			t.Fatal(err)
		}
	}
	svc, err := New(nc, s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := NewClient(nc, "").Read(ctx, ReadRequest{Stream: "big"})
	if err != nil {
		t.Fatalf("default read of 64 KiB records: %v", err)
	}
	if len(res.Messages) == 0 || len(res.Messages) == 20 || res.Next != uint64(len(res.Messages)) {
		t.Fatalf("read returned %d messages, next %d: want a partial answer that continues", len(res.Messages), res.Next)
	}
}
