package natsmanifest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/manifest"
)

// runServer starts an embedded JetStream server on 127.0.0.1:port (-1 for
// a random port) keeping its data in storeDir.
func runServer(t *testing.T, port int, storeDir string) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: storeDir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	return s
}

func connect(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func randomRecord(rng *rand.Rand, i int) manifest.Record {
	seg := uint64(rng.IntN(6))
	ps := []manifest.Payload{
		manifest.SegmentOpenedPayload{BaseOffset: uint64(i), Epoch: 1},
		manifest.SealSegmentPayload{DurableBytes: uint64(i), ExtID: uint64(i)},
		manifest.CompressionStartedPayload{JobID: uint32(i)},
		manifest.CompressionDonePayload{CompressedBytes: uint64(i)},
		manifest.UploadStartedPayload{Key: fmt.Sprintf("segments/demo/%d.zst", seg)},
		manifest.UploadDonePayload{Key: fmt.Sprintf("segments/demo/%d.zst", seg), ETag: fmt.Sprint(i)},
		manifest.UploadFailedPayload{Key: "k", Reason: manifest.ReasonUnavailable},
		manifest.HydrationStartedPayload{SourceTier: 2},
		manifest.HydrationDonePayload{ResidentBytes: uint64(i)},
		manifest.HydrationFailedPayload{Reason: manifest.ReasonMissing},
		manifest.LocalEvictedPayload{ReclaimedBytes: 1},
		manifest.Tier2DeletedPayload{Key: "k"},
		manifest.CustomEventPayload{SchemaID: 1, Blob: []byte("x")},
	}
	p := ps[rng.IntN(len(ps))]
	return manifest.Record{Type: p.RecordType(), Segment: seg, LogicalOffset: uint64(i), TimestampMS: int64(i), Payload: p}
}

func appendRound(t *testing.T, l *manifest.Log, rng *rand.Rand, start, n int) {
	t.Helper()
	for i := start; i < start+n; i++ {
		if _, err := l.Append(randomRecord(rng, i)); err != nil {
			t.Fatal(err)
		}
		if i%5 == 4 {
			if err := l.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Commit(); err != nil {
		t.Fatal(err)
	}
}

func waitPublished(t *testing.T, l *manifest.Log) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for l.PublishedThrough() != l.Tail() {
		if time.Now().After(deadline) {
			t.Fatalf("publication stuck at %v, tail %v", l.PublishedThrough(), l.Tail())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func openLog(t *testing.T, js jetstream.JetStream) *manifest.Log {
	t.Helper()
	l, err := manifest.Open(vfs.Default, t.TempDir(), "demo", manifest.Options{
		ChunkCapacity: 1024,
		Publisher:     NewPublisher(js, WithTimeout(300*time.Millisecond)),
		RetryMin:      10 * time.Millisecond, RetryMax: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestFollowerIndexEqualsLocalIndex(t *testing.T) {
	ctx := context.Background()
	s := runServer(t, -1, t.TempDir())
	defer s.Shutdown()
	js := connect(t, s.ClientURL())
	if _, err := EnsureStream(ctx, js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	l := openLog(t, js)
	defer l.Close()
	rng := rand.New(rand.NewPCG(1, 1))
	appendRound(t, l, rng, 0, 200)
	if _, err := l.Snapshot(); err != nil {
		t.Fatal(err)
	}
	appendRound(t, l, rng, 200, 50)
	waitPublished(t, l)

	got, err := Follow(ctx, js, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if want := l.Index(); !got.Equal(want) {
		t.Fatalf("follower index differs:\n got %d records %+v\nwant %d records %+v", got.Records, got.Segments(), want.Records, want.Segments())
	}

	// The message carries the documented headers and body.
	st, _ := js.Stream(ctx, DefaultStreamName)
	m, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	rec, _, err := manifest.DecodeRecord(m.Data)
	if err != nil || m.Subject != "aof.manifest.demo" || m.Header.Get(HeaderEvent) != rec.Type.String() ||
		m.Header.Get(HeaderStream) != "demo" || m.Header.Get(HeaderSegment) != fmt.Sprint(rec.Segment) ||
		m.Header.Get(jetstream.MsgIDHeader) != fmt.Sprintf("demo/0/%d", manifest.ChunkHeaderSize) {
		t.Fatalf("first message: subject %s headers %v, decode err %v", m.Subject, m.Header, err)
	}
	// Another stream's events are not followed.
	other, err := Follow(ctx, js, "other")
	if err != nil || other.Records != 0 {
		t.Fatalf("empty stream: %d records, %v", other.Records, err)
	}
}

// TestFollowerSurvivesServerRestart stops the NATS server while records are
// being committed and published, restarts it on the same port and store
// dir, and checks that every record arrives exactly once.
func TestFollowerSurvivesServerRestart(t *testing.T) {
	ctx := context.Background()
	store := t.TempDir()
	s := runServer(t, -1, store)
	port := s.Addr().(*net.TCPAddr).Port
	js := connect(t, s.ClientURL())
	if _, err := EnsureStream(ctx, js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	l := openLog(t, js)
	defer l.Close()
	rng := rand.New(rand.NewPCG(2, 2))
	appendRound(t, l, rng, 0, 100)
	s.Shutdown()
	s.WaitForShutdown()
	// Commits go on while the broker is down: the log is the outbox.
	start := time.Now()
	appendRound(t, l, rng, 100, 100)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("commits took %v with the broker down", d)
	}
	time.Sleep(100 * time.Millisecond) // several failed attempts
	if l.PublishedThrough() == l.Tail() {
		t.Fatal("everything published with the broker down")
	}
	s = runServer(t, port, store)
	defer s.Shutdown()
	appendRound(t, l, rng, 200, 50)
	waitPublished(t, l)

	got, err := Follow(ctx, js, "demo")
	if err != nil {
		t.Fatal(err)
	}
	want := l.Index()
	if !got.Equal(want) {
		t.Fatalf("follower index differs after restart: %d records, want %d", got.Records, want.Records)
	}
	st, err := js.Stream(ctx, DefaultStreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != want.Records {
		t.Fatalf("stream holds %d messages for %d records: duplicates or losses", info.State.Msgs, want.Records)
	}
}

func TestMsgIDRoundTrip(t *testing.T) {
	ev := manifest.Event{Stream: "demo", Chunk: 12, Offset: 345}
	stream, pos, err := ParseMsgID(MsgID(ev))
	if err != nil || stream != "demo" || pos != (manifest.Position{Chunk: 12, Offset: 345}) {
		t.Fatalf("%s -> %s %v %v", MsgID(ev), stream, pos, err)
	}
	if _, _, err := ParseMsgID("demo/x/1"); err == nil {
		t.Fatal("bad chunk accepted")
	}
}

// A watcher that starts now sees what is committed from now on, in commit
// order, and nothing of the history before it.
func TestTailFromStartTimeDeliversOnlyLaterEvents(t *testing.T) {
	srv := runServer(t, -1, t.TempDir())
	defer srv.Shutdown()
	js := connect(t, srv.ClientURL())
	ctx := context.Background()
	if _, err := EnsureStream(ctx, js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	l := openLog(t, js)
	defer l.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	appendRound(t, l, rng, 0, 20)
	waitPublished(t, l)
	time.Sleep(20 * time.Millisecond) // JetStream stamps messages in ms; keep the two rounds apart
	since := time.Now()
	appendRound(t, l, rng, 20, 15)
	waitPublished(t, l)

	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var got []uint64
	err := Tail(tctx, js, "demo", func(ev manifest.Event) error {
		got = append(got, ev.Record.LogicalOffset)
		if len(got) == 15 {
			cancel()
		}
		return nil
	}, WithStartTime(since))
	if len(got) != 15 {
		t.Fatalf("tail from %v delivered %d events (%v, err %v), want the 15 committed after it", since, len(got), got, err)
	}
	for i, off := range got {
		if off != uint64(20+i) {
			t.Fatalf("event %d has logical offset %d, want %d (commit order, none from before the start time): %v", i, off, 20+i, got)
		}
	}
}
