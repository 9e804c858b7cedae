package aofclient_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/aofclient"
	"github.com/bop-aof/aof/readapi"
)

// watchRequests records the read requests for stream "orders" that
// reach the server, beside the gateway that answers them.
func watchRequests(t *testing.T, g *gateway) func() []readapi.Request {
	t.Helper()
	nc := g.connect()
	t.Cleanup(nc.Close)
	var mu sync.Mutex
	var reqs []readapi.Request
	_, err := nc.Subscribe(readapi.DefaultSubjectPrefix+".orders", func(m *nats.Msg) {
		var req readapi.Request
		if err := json.Unmarshal(m.Data, &req); err != nil {
			t.Errorf("request %q: %v", m.Data, err)
		}
		mu.Lock()
		reqs = append(reqs, req)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return func() []readapi.Request {
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		return append([]readapi.Request(nil), reqs...)
	}
}

func readAll(t *testing.T, c *aofclient.Client, n int) {
	t.Helper()
	got := 0
	for rec, err := range c.Read(context.Background(), "orders") {
		if err != nil {
			t.Fatal(err)
		}
		checkRecord(t, rec, got)
		got++
	}
	if got != n {
		t.Fatalf("read %d records, want %d", got, n)
	}
}

// A scan costs the gateway one request per batch (it opens the segment
// and decodes its record index for each), so a client asks for the
// largest batch the gateway serves unless told otherwise.
func TestReadAsksForTheGatewaysLargestBatchByDefault(t *testing.T) {
	g := startGateway()
	t.Cleanup(g.close)
	g.publish(0, 1500)
	requests := watchRequests(t, g)
	readAll(t, newClient(t, g), 1500)
	reqs := requests()
	if len(reqs) != 1 || reqs[0].MaxMsgs != readapi.MaxMaxMsgs || reqs[0].MaxBytes != readapi.MaxMaxBytes {
		t.Fatalf("requests %+v, want one of max_msgs %d, max_bytes %d", reqs, readapi.MaxMaxMsgs, readapi.MaxMaxBytes)
	}
}

func TestReadKeepsTheGatewaysDefaultBatchWhenWithBatchSaysZero(t *testing.T) {
	g := startGateway()
	t.Cleanup(g.close)
	g.publish(0, 1500)
	requests := watchRequests(t, g)
	readAll(t, newClient(t, g, aofclient.WithBatch(0, 0)), 1500)
	reqs := requests()
	if len(reqs) != 2 || reqs[0].MaxMsgs != 0 || reqs[0].MaxBytes != 0 || reqs[1].StartOffset != readapi.DefaultMaxMsgs {
		t.Fatalf("requests %+v, want two of the gateway's default batch", reqs)
	}
}

// The wait for the next message starts when the loop asks for it: a loop
// body slower than the timeout is no lost gateway.
func TestReadDoesNotTakeASlowLoopBodyForALostGateway(t *testing.T) {
	g := startGateway()
	t.Cleanup(g.close)
	g.publish(0, 3)
	requests := watchRequests(t, g)
	c := newClient(t, g, aofclient.WithTimeout(400*time.Millisecond))
	n := 0
	for rec, err := range c.Read(context.Background(), "orders") {
		if err != nil {
			t.Fatal(err)
		}
		checkRecord(t, rec, n)
		n++
		time.Sleep(600 * time.Millisecond)
	}
	if reqs := requests(); n != 3 || len(reqs) != 1 {
		t.Fatalf("read %d records with %d requests %+v, want 3 with one", n, len(reqs), reqs)
	}
}

// answerRecords publishes records [from, to) of gateway.publish's stream to
// reply as the read service does.
func answerRecords(t *testing.T, nc *nats.Conn, reply string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		m := nats.NewMsg(reply)
		m.Header.Set(readapi.APIVersionHeader, readapi.APIVersion)
		m.Header.Set(readapi.HeaderStream, "orders")
		m.Header.Set(readapi.HeaderSubject, "orders.created")
		m.Header.Set(readapi.HeaderOffset, strconv.Itoa(i))
		m.Header.Set(readapi.HeaderSeq, strconv.Itoa(100+i))
		m.Header.Set(readapi.HeaderTime, time.Now().UTC().Format(time.RFC3339Nano))
		m.Header.Set("Order", fmt.Sprint(i))
		m.Data = fmt.Appendf(nil, "order %d", i)
		if err := nc.PublishMsg(m); err != nil {
			t.Error(err)
		}
	}
}

// A gateway that stops answering in the middle of a batch is taken for
// lost once the timeout passes without a message, and the read asks
// again from the record after the last one it yielded.
func TestReadResumesFromTheLastRecordWhenABatchStallsMidway(t *testing.T) {
	g := startGateway()
	t.Cleanup(g.close)
	// The fake below is the only gateway; g.close stops the real one again.
	g.stopService()
	t.Cleanup(g.startService)
	nc := g.connect()
	t.Cleanup(nc.Close)
	var mu sync.Mutex
	var starts []uint64
	_, err := nc.Subscribe(readapi.DefaultSubjectPrefix+".orders", func(m *nats.Msg) {
		var req readapi.Request
		if err := json.Unmarshal(m.Data, &req); err != nil {
			t.Error(err)
		}
		mu.Lock()
		starts = append(starts, req.StartOffset)
		first := len(starts) == 1
		mu.Unlock()
		if first { // three records, then silence
			answerRecords(t, nc, m.Reply, 0, 3)
			return
		}
		answerRecords(t, nc, m.Reply, int(req.StartOffset), 6)
		eob := nats.NewMsg(m.Reply)
		eob.Header.Set(readapi.APIVersionHeader, readapi.APIVersion)
		eob.Header.Set(readapi.HeaderStatus, readapi.StatusEndOfBatch)
		eob.Data, _ = json.Marshal(readapi.EndOfBatch{NextOffset: 6, Reason: readapi.ReasonTail})
		if err := nc.PublishMsg(eob); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	c := newClient(t, g, aofclient.WithTimeout(500*time.Millisecond))
	start := time.Now()
	readAll(t, c, 6)
	mu.Lock()
	defer mu.Unlock()
	if len(starts) != 2 || starts[0] != 0 || starts[1] != 3 {
		t.Fatalf("requests started at %v, want 0 then 3", starts)
	}
	if waited := time.Since(start); waited < 500*time.Millisecond {
		t.Fatalf("asked again after %v, before the timeout", waited)
	}
}
