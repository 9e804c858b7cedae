package aofclient_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bop-aof/aof/aofclient"
	"github.com/bop-aof/aof/readapi"
)

func newClient(t *testing.T, g *gateway, opts ...aofclient.Option) *aofclient.Client {
	t.Helper()
	nc := g.connect()
	t.Cleanup(nc.Close)
	c, err := aofclient.New(nc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkRecord checks that rec is message i of gateway.publish.
func checkRecord(t *testing.T, rec aofclient.Record, i int) {
	t.Helper()
	if rec.Offset != uint64(i) || rec.Seq != uint64(100+i) || rec.Stream != "orders" || rec.Subject != "orders.created" ||
		rec.Header.Get("Order") != fmt.Sprint(i) || string(rec.Data) != fmt.Sprintf("order %d", i) || rec.Time.IsZero() {
		t.Fatalf("record %d: %+v", i, rec)
	}
	if rec.Header.Get(readapi.HeaderOffset) != "" || rec.Header.Get(readapi.HeaderSubject) != "" {
		t.Fatalf("record %d: the read API's own headers are left in Header: %v", i, rec.Header)
	}
}

func TestReadIteratesBatchAfterBatchAcrossTiers(t *testing.T) {
	g := startGateway()
	t.Cleanup(g.close)
	g.publish(0, 10)
	g.sealAndEvict()
	g.publish(10, 10)
	c := newClient(t, g, aofclient.WithBatch(3, 0))
	n := 0
	for rec, err := range c.Read(context.Background(), "orders") {
		if err != nil {
			t.Fatal(err)
		}
		checkRecord(t, rec, n)
		n++
	}
	if n != 20 {
		t.Fatalf("read %d records in batches of 3, want 20", n)
	}
}

func TestReadStopsAtToOffsetAndStartsAtFromOffset(t *testing.T) {
	g := startGateway()
	t.Cleanup(g.close)
	g.publish(0, 10)
	c := newClient(t, g)
	var got []uint64
	for rec, err := range c.Read(context.Background(), "orders", aofclient.FromOffset(4), aofclient.ToOffset(7)) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rec.Offset)
	}
	if fmt.Sprint(got) != "[4 5 6]" {
		t.Fatalf("read offsets %v, want [4 5 6]", got)
	}
}

func TestReadYieldsAStatusItCannotRetryOnce(t *testing.T) {
	g := startGateway()
	t.Cleanup(g.close)
	g.publish(0, 1)
	c := newClient(t, g, aofclient.WithRetries(0))
	calls := 0
	for _, err := range c.Read(context.Background(), "nosuch") {
		calls++
		var e *aofclient.Error
		if !errors.As(err, &e) || e.Code != readapi.StatusNotFound || e.Retryable {
			t.Fatalf("error %v, want a 404 status", err)
		}
	}
	if calls != 1 {
		t.Fatalf("yielded %d times, want the error once", calls)
	}
}

func TestReadResumesFromTheLastRecordWhenTheGatewayRestarts(t *testing.T) {
	g := startGateway()
	t.Cleanup(g.close)
	g.publish(0, 30)
	c := newClient(t, g, aofclient.WithBatch(4, 0), aofclient.WithRetries(50))
	n := 0
	restarted := make(chan struct{})
	for rec, err := range c.Read(context.Background(), "orders") {
		if err != nil {
			t.Fatal(err)
		}
		checkRecord(t, rec, n) // no record skipped or repeated
		n++
		if n == 6 {
			// Mid-batch: no gateway answers for a while, then one does.
			g.stopService()
			go func() {
				defer close(restarted)
				time.Sleep(300 * time.Millisecond)
				g.startService()
			}()
		}
	}
	<-restarted
	if n != 30 {
		t.Fatalf("read %d records across the restart, want 30", n)
	}
}

func TestFollowSeesRecordsAppendedAfterItStartedAcrossSealAndRestart(t *testing.T) {
	g := startGateway()
	t.Cleanup(g.close)
	g.publish(0, 3)
	c := newClient(t, g, aofclient.WithHeartbeat(100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	appended := make(chan struct{})
	go func() {
		defer close(appended)
		time.Sleep(200 * time.Millisecond)
		g.publish(3, 3)
		g.sealAndEvict()
		time.Sleep(200 * time.Millisecond)
		g.stopService() // while the follow request waits at the tail
		g.publish(6, 2)
		time.Sleep(200 * time.Millisecond)
		g.startService()
		time.Sleep(200 * time.Millisecond)
		g.publish(8, 2)
	}()
	n := 0
	for rec, err := range c.Follow(ctx, "orders") {
		if err != nil {
			t.Fatal(err)
		}
		checkRecord(t, rec, n)
		n++
		if n == 10 {
			break
		}
	}
	if n != 10 {
		t.Fatalf("followed %d records, want 10 (ctx: %v)", n, ctx.Err())
	}
	<-appended
}

func TestFollowEndsQuietlyWhenItsContextEnds(t *testing.T) {
	g := startGateway()
	t.Cleanup(g.close)
	g.publish(0, 1)
	c := newClient(t, g, aofclient.WithHeartbeat(100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	n := 0
	for _, err := range c.Follow(ctx, "orders") {
		if err != nil {
			t.Fatalf("Follow yielded %v", err)
		}
		n++
	}
	if n != 1 || ctx.Err() == nil {
		t.Fatalf("Follow returned after %d records with ctx %v", n, ctx.Err())
	}
}

func TestReadAsksAgainWhenAGatewayTakesARequestAndDies(t *testing.T) {
	g := startGateway()
	t.Cleanup(g.close)
	g.publish(0, 5)
	g.stopService()
	// A gateway that takes the first request and never answers it.
	dead := g.connect()
	defer dead.Close()
	sub, err := dead.QueueSubscribeSync(readapi.DefaultSubjectPrefix+".*", readapi.QueueGroup)
	if err != nil {
		t.Fatal(err)
	}
	dead.Flush()
	swallowed := make(chan error, 1)
	go func() {
		_, err := sub.NextMsg(10 * time.Second)
		sub.Unsubscribe()
		dead.Flush()
		g.startService()
		swallowed <- err
	}()
	c := newClient(t, g, aofclient.WithTimeout(500*time.Millisecond))
	n := 0
	for rec, err := range c.Read(context.Background(), "orders") {
		if err != nil {
			t.Fatal(err)
		}
		checkRecord(t, rec, n)
		n++
	}
	if err := <-swallowed; err != nil || n != 5 {
		t.Fatalf("read %d records, want 5 (the dead gateway: %v)", n, err)
	}
}

func TestEndOffsetIsTheDurableEnd(t *testing.T) {
	g := startGateway()
	t.Cleanup(g.close)
	c := newClient(t, g)
	g.publish(0, 10)
	g.sealAndEvict()
	g.publish(10, 5)
	end, err := c.EndOffset(context.Background(), "orders")
	if err != nil || end != 15 {
		t.Fatalf("EndOffset = %d, %v; want 15", end, err)
	}
	var e *aofclient.Error
	if _, err := c.EndOffset(context.Background(), "nosuch"); !errors.As(err, &e) || e.Code != readapi.StatusNotFound {
		t.Fatalf("EndOffset of an unknown stream: %v, want a 404", err)
	}
}

// FromTime names the start of the first batch only: the batches after it
// go on from the next offset, so a read from a time in batches of 3 gets
// every record from there once, in order.
func TestReadFromTimeGoesOnByOffsetBatchAfterBatch(t *testing.T) {
	g := startGateway()
	t.Cleanup(g.close)
	g.publish(0, 5)
	time.Sleep(5 * time.Millisecond) // append times are in milliseconds
	since := time.Now()
	time.Sleep(5 * time.Millisecond)
	g.publish(5, 5)
	g.sealAndEvict()
	g.publish(10, 5)
	c := newClient(t, g, aofclient.WithBatch(3, 0))
	n := 5
	for rec, err := range c.Read(context.Background(), "orders", aofclient.FromTime(since), aofclient.ToOffset(13)) {
		if err != nil {
			t.Fatalf("after %d records: %v", n-5, err)
		}
		checkRecord(t, rec, n)
		n++
	}
	if n != 13 {
		t.Fatalf("read records 5..%d, want 5..12", n-1)
	}
}
