package ingest

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// serverPartition is nats-server's partition(n, 1) of a one-token
// wildcard: FNV-1a of the token, modulo n (cluster.PartitionOf in the
// gateway). TestPartitionedStreamStoresEachStreamOnceUnderItsPartition
// checks it against the server.
func serverPartition(n int) func(string) int {
	return func(stream string) int {
		h := fnv.New32a()
		h.Write([]byte(stream))
		return int(h.Sum32() % uint32(n))
	}
}

func TestParseStoredSubject(t *testing.T) {
	for _, tc := range []struct {
		subject    string
		partitions int
		want       storedSubject
		err        string
	}{
		{"aof.ingest.orders", 0, storedSubject{stream: "orders", partition: -1, producer: "aof.ingest.orders"}, ""},
		{"aof.ingest.3.orders", 0, storedSubject{}, "stream must be one token"},
		{"aof.ingest.3.orders", 8, storedSubject{stream: "orders", partition: 3, producer: "aof.ingest.orders"}, ""},
		{"aof.ingest.orders", 8, storedSubject{stream: "orders", partition: -1, legacy: true, producer: "aof.ingest.orders"}, ""},
		{"aof.ingest.8.orders", 8, storedSubject{}, "not a partition below 8"},
		{"aof.ingest.03.orders", 8, storedSubject{}, "not a partition"},
		{"aof.ingest.x.orders", 8, storedSubject{}, "not a partition"},
		{"aof.ingest.3.a.b", 8, storedSubject{}, "stream must be one token"},
		{"aof.other.3.orders", 8, storedSubject{}, "is not under aof.ingest"},
	} {
		got, err := parseStoredSubject("aof.ingest", tc.subject, tc.partitions)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s (%d partitions): error %v, want one saying %q", tc.subject, tc.partitions, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%s (%d partitions): %v", tc.subject, tc.partitions, err)
		case tc.err == "" && got != tc.want:
			t.Errorf("%s (%d partitions) = %+v, want %+v", tc.subject, tc.partitions, got, tc.want)
		}
	}
}

// partitionRig is a rig whose ingest stream is partitioned.
func newPartitionRig(t *testing.T, partitions int) *rig {
	t.Helper()
	r := newRig(t, 5*time.Second)
	ctx := context.Background()
	if _, err := EnsureIngestStream(ctx, r.js, StreamSettings{Name: "AOF_INGEST", Subjects: []string{"aof.ingest.>"}, Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
	r.opts.Partitions, r.opts.PartitionOf = partitions, serverPartition(partitions)
	return r
}

// runPartitions runs one pipeline per partition over the rig's store, as
// the partitions' owners would, each until its consumer is drained.
func (r *rig) runPartitions() {
	r.t.Helper()
	for p := range r.opts.Partitions {
		opts := r.opts
		opts.Partition = p
		pl, err := NewPipeline(r.js, r.store, opts)
		if err != nil {
			r.t.Fatal(err)
		}
		if err := r.run(pl); err != nil {
			r.t.Fatal(err)
		}
	}
}

// expectSubjects checks every record of stream keeps the producer's
// subject.
func (r *rig) expectSubjects(stream string, n int) {
	r.t.Helper()
	rd, err := r.store.Reader(stream)
	if err != nil {
		r.t.Fatal(err)
	}
	defer rd.Close()
	for i := range n {
		e, err := rd.TryNext(context.Background())
		if err != nil {
			r.t.Fatal(err)
		}
		env, err := DecodeEnvelope(e.Payload)
		if err != nil {
			r.t.Fatal(err)
		}
		if env.Subject != "aof.ingest."+stream {
			r.t.Fatalf("%s record %d keeps subject %q, want the producer's aof.ingest.%s", stream, i, env.Subject, stream)
		}
	}
}

// With partitions, JetStream stores aof.ingest.<s> as
// aof.ingest.<partition>.<s>; each partition's pipeline stores its
// streams, once, with the subject the producer used.
func TestPartitionedStreamStoresEachStreamOnceUnderItsPartition(t *testing.T) {
	const partitions = 4
	r := newPartitionRig(t, partitions)
	streams := []string{"orders", "users", "clicks", "audit", "x1", "x2"}
	for _, s := range streams {
		r.publish(s, 5)
	}
	st, err := r.js.Stream(context.Background(), "AOF_INGEST")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range streams {
		m, err := st.GetLastMsgForSubject(context.Background(), fmt.Sprintf("aof.ingest.%d.%s", serverPartition(partitions)(s), s))
		if err != nil {
			t.Fatalf("stream %s is not stored under partition %d: %v", s, serverPartition(partitions)(s), err)
		}
		if string(m.Data) != s+"-4" {
			t.Fatalf("last message of %s = %q", s, m.Data)
		}
	}
	r.runPartitions()
	for _, s := range streams {
		r.expectStored(s, 5)
		r.expectSubjects(s, 5)
	}
	// Each partition's durable holds its own position.
	for p := range partitions {
		c, err := r.js.Consumer(context.Background(), "AOF_INGEST", PartitionDurable("gw", p))
		if err != nil {
			t.Fatalf("partition %d: %v", p, err)
		}
		if f := c.CachedInfo().Config.FilterSubject; f != PartitionFilter("aof.ingest", p) {
			t.Fatalf("partition %d filters on %q", p, f)
		}
	}
}

// Upgrade: messages stored before the stream was partitioned are drained
// by the partition of their stream, in sequence order before the newer
// partitioned ones, and acked without being stored by every other
// partition.
func TestMessagesStoredBeforePartitioningAreStoredFirstAndOnce(t *testing.T) {
	r := newRig(t, 5*time.Second)
	for i := range 5 {
		for _, s := range []string{"a", "b"} {
			if _, err := r.js.Publish(context.Background(), "aof.ingest."+s, fmt.Appendf(nil, "%s-%d", s, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	const partitions = 4
	if _, err := EnsureIngestStream(context.Background(), r.js, StreamSettings{Name: "AOF_INGEST", Subjects: []string{"aof.ingest.>"}, Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
	r.opts.Partitions, r.opts.PartitionOf = partitions, serverPartition(partitions)
	for i := 5; i < 10; i++ {
		for _, s := range []string{"a", "b"} {
			if _, err := r.js.Publish(context.Background(), "aof.ingest."+s, fmt.Appendf(nil, "%s-%d", s, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	r.runPartitions()
	for _, s := range []string{"a", "b"} {
		r.expectStored(s, 10)
		r.expectSubjects(s, 10)
	}
	for p := range partitions {
		if f := partitionFilters(t, r, p); len(f) != 2 {
			t.Fatalf("partition %d filters on %v while old messages remain, want its own and aof.ingest.*", p, f)
		}
	}
	// Once archived and purged, the old messages are gone and the next
	// start drops the extra filter.
	pu := newPurger(t, r.js, PurgerOptions{Partitions: partitions, PartitionOf: serverPartition(partitions)})
	for _, s := range []string{"a", "b"} {
		if err := pu.PurgeArchived(context.Background(), s, 20); err != nil {
			t.Fatal(err)
		}
	}
	r.publish("c", 2)
	r.runPartitions()
	r.expectStored("c", 2)
	for p := range partitions {
		if f := partitionFilters(t, r, p); len(f) != 1 || f[0] != PartitionFilter("aof.ingest", p) {
			t.Fatalf("partition %d filters on %v after the old messages were purged", p, f)
		}
	}
}

// partitionFilters are the filter subjects of partition p's consumer.
func partitionFilters(t *testing.T, r *rig, p int) []string {
	t.Helper()
	c, err := r.js.Consumer(context.Background(), "AOF_INGEST", PartitionDurable("gw", p))
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.CachedInfo().Config
	if cfg.FilterSubject != "" {
		return []string{cfg.FilterSubject}
	}
	return cfg.FilterSubjects
}

// A producer publishing past the transform, to a partition subject
// directly (it would give its stream a second owner) or to a deeper
// subject (no partition's consumer would ever read it), is refused by
// JetStream at once; the stream's own messages are stored as usual.
func TestSubjectsPastTheTransformAreRefusedAtPublish(t *testing.T) {
	const partitions = 4
	r := newPartitionRig(t, partitions)
	right := serverPartition(partitions)("orders")
	wrong := (right + 1) % partitions
	for _, subj := range []string{fmt.Sprintf("aof.ingest.%d.orders", wrong), "aof.ingest.orders.too.deep"} {
		if _, err := r.js.Publish(context.Background(), subj, []byte("stray")); !errors.Is(err, jetstream.ErrNoStreamResponse) {
			t.Fatalf("publish to %s: %v, want JetStream's no-stream error", subj, err)
		}
	}
	r.publish("orders", 3)
	r.runPartitions()
	r.expectStored("orders", 3)
}

func readDeadLetters(t *testing.T, js jetstream.JetStream, n int) []jetstream.Msg {
	t.Helper()
	c, err := js.OrderedConsumer(context.Background(), "AOF_INGEST_DEADLETTER", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if len(msgs) != n {
		t.Fatalf("%d dead letters, want %d", len(msgs), n)
	}
	return msgs
}

// The partition count is fixed once the stream has one: another count,
// or none, would hide stored messages from their partition's consumer.
func TestPartitionCountIsFixedOnceProvisioned(t *testing.T) {
	r := newPartitionRig(t, 4)
	for _, n := range []int{8, 0} {
		_, err := EnsureIngestStream(context.Background(), r.js, StreamSettings{Name: "AOF_INGEST", Subjects: []string{"aof.ingest.>"}, Partitions: n})
		if err == nil || !strings.Contains(err.Error(), "partition") {
			t.Fatalf("partitions 4 -> %d: %v, want a refusal", n, err)
		}
	}
	if _, err := EnsureIngestStream(context.Background(), r.js, StreamSettings{Name: "AOF_INGEST", Subjects: []string{"aof.ingest.>"}, Partitions: 4}); err != nil {
		t.Fatalf("same count again: %v", err)
	}
}

// The ingest stream refuses producers when full rather than dropping its
// oldest messages, which may not be archived.
func TestIngestStreamDiscardsNew(t *testing.T) {
	r := newRig(t, 5*time.Second)
	st, err := EnsureIngestStream(context.Background(), r.js, StreamSettings{Name: "AOF_INGEST", Subjects: []string{"aof.ingest.>"}, MaxBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if d := st.CachedInfo().Config.Discard; d != jetstream.DiscardNew {
		t.Fatalf("discard policy %v, want new", d)
	}
	var full error
	for i := 0; i < 100 && full == nil; i++ {
		_, full = r.js.Publish(context.Background(), "aof.ingest.s", make([]byte, 512))
	}
	if full == nil {
		t.Fatal("100 publishes of 512 bytes into a 4 KiB stream all succeeded")
	}
	var apiErr *jetstream.APIError
	if !errors.As(full, &apiErr) {
		t.Fatalf("publish into the full stream: %v, want JetStream's refusal", full)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.FirstSeq != 1 {
		t.Fatalf("first sequence %d: the oldest message was dropped", info.State.FirstSeq)
	}
}
