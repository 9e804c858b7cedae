package harness

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/nats-io/nats.go/jetstream"
)

// TestS3RoundTrip shows versitygw serves the operations the store relies
// on through minio-go: put, ranged get, list and delete.
func TestS3RoundTrip(t *testing.T) {
	s := StartS3(t)
	c := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	body := bytes.Repeat([]byte("0123456789"), 1000)
	_, err := c.PutObject(ctx, s.Bucket, "segments/demo/1.zst", bytes.NewReader(body), int64(len(body)),
		minio.PutObjectOptions{UserMetadata: map[string]string{"Crc64": "42"}})
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	opts := minio.GetObjectOptions{}
	if err := opts.SetRange(100, 109); err != nil {
		t.Fatal(err)
	}
	obj, err := c.GetObject(ctx, s.Bucket, "segments/demo/1.zst", opts)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	got, err := io.ReadAll(obj)
	obj.Close()
	if err != nil {
		t.Fatalf("read range: %v", err)
	}
	if string(got) != "0123456789" {
		t.Fatalf("range = %q, want 0123456789", got)
	}
	info, err := c.StatObject(ctx, s.Bucket, "segments/demo/1.zst", minio.StatObjectOptions{})
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	if info.UserMetadata["Crc64"] != "42" || info.Size != int64(len(body)) {
		t.Fatalf("stat = size %d meta %v", info.Size, info.UserMetadata)
	}
	var keys []string
	for o := range c.ListObjects(ctx, s.Bucket, minio.ListObjectsOptions{Prefix: "segments/", Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("list: %v", o.Err)
		}
		keys = append(keys, o.Key)
	}
	if len(keys) != 1 || keys[0] != "segments/demo/1.zst" {
		t.Fatalf("list = %v", keys)
	}
	if err := c.RemoveObject(ctx, s.Bucket, "segments/demo/1.zst", minio.RemoveObjectOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := c.StatObject(ctx, s.Bucket, "segments/demo/1.zst", minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
		t.Fatalf("stat after delete: %v, want NoSuchKey", err)
	}

	// A restart on the same port and directory keeps the bucket.
	s.Stop()
	s.Start()
	if ok, err := c.BucketExists(ctx, s.Bucket); err != nil || !ok {
		t.Fatalf("bucket after restart: %v %v", ok, err)
	}
}

// TestNATSPublishConsume shows the embedded server runs JetStream: a
// message published to a file-backed stream is consumed by a durable pull
// consumer, also across a server restart.
func TestNATSPublishConsume(t *testing.T) {
	n := StartNATS(t)
	js := n.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	if _, err := js.Publish(ctx, "t.a", []byte("hello")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	n.Restart()
	cons, err := js.CreateOrUpdateConsumer(ctx, "T", jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	if string(msg.Data()) != "hello" || msg.Subject() != "t.a" {
		t.Fatalf("got %q on %s", msg.Data(), msg.Subject())
	}
	if err := msg.DoubleAck(ctx); err != nil {
		t.Fatalf("ack: %v", err)
	}
}

// A three-server cluster keeps an R3 stream writable through the loss of
// any one server, and the server rejoins after a restart.
func TestClusterRidesThroughTheLossOfOneServer(t *testing.T) {
	c := StartCluster(t, 3)
	nc := c.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3}); err != nil {
		t.Fatalf("create R3 stream: %v", err)
	}
	publish := func(n int) {
		for i := range n {
			for {
				if _, err := js.Publish(ctx, "r3.x", []byte{byte(i)}); err == nil {
					break
				} else if ctx.Err() != nil {
					t.Fatalf("publish: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	publish(50)
	c.Kill(1)
	publish(50)
	c.Start(1)
	c.WaitReady(30 * time.Second)
	publish(50)
	st, err := js.Stream(ctx, "R3")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs != 150 {
		t.Fatalf("R3 holds %v messages (%v), want 150", info.State.Msgs, err)
	}
}
