package aofclient_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bop-aof/aof/aofclient"
)

// Read a stream from its first record to its end.
func ExampleClient_Read() {
	g := startGateway()
	defer g.close()
	g.publish(0, 3)

	nc := g.connect()
	defer nc.Close()
	c, err := aofclient.New(nc)
	if err != nil {
		panic(err)
	}
	for rec, err := range c.Read(context.Background(), "orders") {
		if err != nil {
			panic(err)
		}
		fmt.Println(rec.Offset, rec.Seq, rec.Subject, rec.Header.Get("Order"), string(rec.Data))
	}
	// Output:
	// 0 100 orders.created 0 order 0
	// 1 101 orders.created 1 order 1
	// 2 102 orders.created 2 order 2
}

// Start reading at a JetStream sequence of the ingest stream.
func ExampleFromSeq() {
	g := startGateway()
	defer g.close()
	g.publish(0, 5)

	nc := g.connect()
	defer nc.Close()
	c, _ := aofclient.New(nc)
	for rec, err := range c.Read(context.Background(), "orders", aofclient.FromSeq(103)) {
		if err != nil {
			panic(err)
		}
		fmt.Println(rec.Offset, rec.Seq, string(rec.Data))
	}
	// Output:
	// 3 103 order 3
	// 4 104 order 4
}

// Start reading at the first record appended at or after a time, for
// instance the time a consumer lost its position.
func ExampleFromTime() {
	g := startGateway()
	defer g.close()
	g.publish(0, 3)
	time.Sleep(5 * time.Millisecond) // append times are in milliseconds
	since := time.Now()
	time.Sleep(5 * time.Millisecond)
	g.publish(3, 2)

	nc := g.connect()
	defer nc.Close()
	c, _ := aofclient.New(nc)
	for rec, err := range c.Read(context.Background(), "orders", aofclient.FromTime(since)) {
		if err != nil {
			panic(err)
		}
		fmt.Println(rec.Offset, string(rec.Data), !rec.Time.Before(since.Truncate(time.Millisecond)))
	}
	// Output:
	// 3 order 3 true
	// 4 order 4 true
}

// Get one record by its offset.
func ExampleClient_Get() {
	g := startGateway()
	defer g.close()
	g.publish(0, 3)

	nc := g.connect()
	defer nc.Close()
	c, _ := aofclient.New(nc)
	rec, err := c.Get(context.Background(), "orders", 1)
	fmt.Println(string(rec.Data), err)
	_, err = c.Get(context.Background(), "orders", 7)
	var e *aofclient.Error
	if errors.As(err, &e) {
		fmt.Println(e.Code, e.Retryable)
	}
	// Output:
	// order 1 <nil>
	// 416 false
}

// Follow a stream: the records already stored, then the new ones as they
// are appended, whatever tier they are in by then.
func ExampleClient_Follow() {
	g := startGateway()
	defer g.close()
	g.publish(0, 2)

	nc := g.connect()
	defer nc.Close()
	c, _ := aofclient.New(nc, aofclient.WithHeartbeat(200*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		time.Sleep(100 * time.Millisecond)
		g.sealAndEvict() // records 0 and 1 are now read from Tier 1
		g.publish(2, 2)
	}()
	for rec, err := range c.Follow(ctx, "orders") {
		if err != nil {
			panic(err)
		}
		fmt.Println(rec.Offset, string(rec.Data))
		if rec.Offset == 3 {
			break
		}
	}
	// Output:
	// 0 order 0
	// 1 order 1
	// 2 order 2
	// 3 order 3
}
