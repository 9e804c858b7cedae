package aofclient_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/aofclient"
	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/readapi"
	"github.com/bop-aof/aof/tiers"
)

// storeMixedRecords stores n records of every shape a stream can hold:
// with and without headers, headers named like the read API's own, an
// empty body, a body of 100 KiB, and payloads that are not a NATS message
// (raw), and header blocks ingest does not write.
func storeMixedRecords(t *testing.T, g *gateway, n int) {
	t.Helper()
	var recs []tiers.Record
	for i := 0; i < n; i++ {
		var payload []byte
		switch i % 7 {
		case 0:
			payload = []byte(fmt.Sprintf("raw payload %d", i)) // no envelope
		case 1:
			payload = ingest.AppendEnvelope(nil, ingest.Envelope{Subject: "orders.created", Body: fmt.Appendf(nil, "plain %d", i)})
		case 2:
			h := map[string][]string{"Order": {fmt.Sprint(i)}, "Multi": {"a", "b"}, "Status": {"503"}, "Aof-Offset": {"1"}}
			payload = ingest.AppendEnvelope(nil, ingest.Envelope{Subject: "orders.created.eu", Header: h, Body: fmt.Appendf(nil, "hdr %d", i)})
		case 3:
			payload = ingest.AppendEnvelope(nil, ingest.Envelope{Subject: "orders.empty"})
		case 4:
			big := make([]byte, 100<<10)
			for k := range big {
				big[k] = byte(i + k)
			}
			payload = ingest.AppendEnvelope(nil, ingest.Envelope{Subject: "orders.big", Body: big})
		case 6:
			// A header block ingest never writes: a blank line inside
			// (a NATS parser stops there), and then a line with no ": ".
			hdrs := []string{"NATS/1.0\r\nA: 1\r\n\r\nB: 2\r\n\r\n", "NATS/1.0\r\nBad\r\n\r\n"}
			hdr := hdrs[(i/7)%2]
			payload = []byte{ingest.EnvelopeVersion, 1, 0, byte(len(hdr)), 0, 0, 0, 'x'}
			payload = append(append(payload, hdr...), fmt.Appendf(nil, "odd header %d", i)...)
		default:
			h := map[string][]string{"Traceparent": {fmt.Sprintf("00-%032x-%016x-01", i, i)}}
			payload = ingest.AppendEnvelope(nil, ingest.Envelope{Subject: "orders.created", Header: h, Body: fmt.Appendf(nil, "traced %d", i)})
		}
		recs = append(recs, tiers.Record{Payload: payload, ExtID: uint64(1000 + 3*i)})
	}
	must(g.store.AppendDurable(context.Background(), "orders", recs))
}

func readEvery(t *testing.T, c *aofclient.Client) []aofclient.Record {
	t.Helper()
	var got []aofclient.Record
	for rec, err := range c.Read(context.Background(), "orders") {
		if err != nil {
			t.Fatalf("after %d records: %v", len(got), err)
		}
		got = append(got, rec)
	}
	return got
}

// TestPacksYieldTheSameRecordsAsAMessagePerRecord: a read in packs (the
// default) and a read of a message per record (a gateway before packs,
// or WithPacks(false)) yield equal records, field for field, across
// Tier 0 and Tier 1, whatever the records hold. Small batches and a body
// of 100 KiB make packs end at every bound: max_msgs, max_bytes, a
// pack's size, the segment's end and the tail.
func TestPacksYieldTheSameRecordsAsAMessagePerRecord(t *testing.T) {
	g := startGateway()
	t.Cleanup(g.close)
	storeMixedRecords(t, g, 40)
	g.sealAndEvict()
	storeMixedRecords(t, g, 30)
	for _, batch := range [][2]int{{0, 0}, {5, 0}, {1000, 150 << 10}} {
		packed := readEvery(t, newClient(t, g, aofclient.WithBatch(batch[0], batch[1])))
		single := readEvery(t, newClient(t, g, aofclient.WithBatch(batch[0], batch[1]), aofclient.WithPacks(false)))
		if len(packed) != 70 || len(single) != 70 {
			t.Fatalf("batch %v: read %d records in packs, %d one by one; want 70", batch, len(packed), len(single))
		}
		for i := range packed {
			if !reflect.DeepEqual(packed[i], single[i]) {
				t.Fatalf("batch %v, record %d:\n packed %+v\n single %+v", batch, i, packed[i], single[i])
			}
		}
		if packed[2].Header.Get("Aof-Original-Status") != "503" || packed[0].Raw != true || string(packed[0].Data) != "raw payload 0" ||
			!reflect.DeepEqual(packed[2].Header.Values("Multi"), []string{"a", "b"}) {
			t.Fatalf("batch %v: records 0 and 2 are %+v and %+v", batch, packed[0], packed[2])
		}
		if packed[6].Header.Get("B") != "2" || packed[6].Subject != "x" || !packed[13].Raw {
			t.Fatalf("batch %v: records 6 and 13 (odd header blocks) are %+v and %+v", batch, packed[6], packed[13])
		}
	}
}

// TestAReadAsksForPacksAndGetsThem: the client asks for packs, and the
// gateway answers a batch of many records with few messages, each a valid
// pack of consecutive offsets.
func TestAReadAsksForPacksAndGetsThem(t *testing.T) {
	g := startGateway()
	t.Cleanup(g.close)
	g.publish(0, 3000)
	requests := watchRequests(t, g)
	nc := g.connect()
	t.Cleanup(nc.Close)
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	readEvery(t, newClient(t, g))
	if reqs := requests(); len(reqs) == 0 || !reqs[0].Pack {
		t.Fatalf("the client's requests %+v do not ask for packs", reqs)
	}
	m := nats.NewMsg("aof.read.orders")
	m.Reply = inbox
	m.Data = []byte(`{"pack":true,"max_msgs":3000}`)
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	packs, next := 0, uint64(0)
	for {
		msg, err := sub.NextMsg(10e9)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Header.Get(readapi.HeaderStatus) == readapi.StatusEndOfBatch {
			break
		}
		if msg.Header.Get(readapi.HeaderPack) != "1" || msg.Header.Get(readapi.HeaderStream) != "orders" {
			t.Fatalf("answer message with headers %v is neither a pack nor the end", msg.Header)
		}
		recs, err := readapi.DecodePack(msg.Data, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Offset != next || string(r.Subject) != "orders.created" || string(r.Body) != fmt.Sprintf("order %d", next) {
				t.Fatalf("pack %d: record %+v, want offset %d", packs, r, next)
			}
			next++
		}
		packs++
	}
	if next != 3000 || packs > 3 {
		t.Fatalf("%d records in %d packs; want 3000 in at most 3", next, packs)
	}
}
