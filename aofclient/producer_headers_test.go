package aofclient_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/bop-aof/aof/aofclient"
	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/tiers"
)

// Producers may send any header, including the names the read API uses
// for its control messages (Aof-Status, and the Status of a NATS
// no-responders answer). A record is still a record: the client yields
// every one, in order, and never takes one for a heartbeat, the end of a
// batch or a lost gateway.
func TestProducerHeadersNamedLikeControlMessagesAreRecords(t *testing.T) {
	g := startGateway()
	defer g.close()
	var recs []tiers.Record
	for i := 0; i < 1010; i++ {
		h := map[string][]string{"Order": {fmt.Sprint(i)}}
		body := fmt.Appendf(nil, "order %d", i)
		switch i {
		case 1:
			h["Aof-Status"] = []string{"100"} // a heartbeat's
		case 3:
			h["Aof-Status"] = []string{"204"} // an end of batch's
			body = []byte(`{"next_offset":1000,"reason":"max_msgs"}`)
		case 5:
			h["Status"] = []string{"503"} // no responders'
			body = nil
		}
		env := ingest.Envelope{Subject: "orders.created", Header: h, Body: body}
		recs = append(recs, tiers.Record{Payload: ingest.AppendEnvelope(nil, env), ExtID: uint64(100 + i)})
	}
	must(g.store.AppendDurable(context.Background(), "orders", recs))
	c, _ := aofclient.New(g.connect(), aofclient.WithRetries(2))
	next := uint64(0)
	for rec, err := range c.Read(context.Background(), "orders") {
		if err != nil {
			t.Fatalf("after %d records: %v", next, err)
		}
		if rec.Offset != next {
			t.Fatalf("record at offset %d after %d: a producer header was taken for a control message", rec.Offset, next-1)
		}
		next++
	}
	if next != 1010 {
		t.Fatalf("read %d records of 1010", next)
	}
}
