package ingest

import (
	"context"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// storedSequences lists the sequences the ingest stream still holds on
// subject.
func storedSequences(t *testing.T, js jetstream.JetStream, subject string) []uint64 {
	t.Helper()
	c, err := js.OrderedConsumer(context.Background(), "AOF_INGEST", jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for left := info.NumPending; left > 0; left-- {
		m, err := c.Next()
		if err != nil {
			t.Fatal(err)
		}
		md, _ := m.Metadata()
		seqs = append(seqs, md.Sequence.Stream)
	}
	return seqs
}

// publishAlternating publishes n messages to each of streams, one of each
// in turn, and returns each stream's sequences.
func publishAlternating(t *testing.T, js jetstream.JetStream, n int, streams ...string) map[string][]uint64 {
	t.Helper()
	seqs := map[string][]uint64{}
	for range n {
		for _, s := range streams {
			ack, err := js.Publish(context.Background(), "aof.ingest."+s, []byte("x"))
			if err != nil {
				t.Fatal(err)
			}
			seqs[s] = append(seqs[s], ack.Sequence)
		}
	}
	return seqs
}

func newPurger(t *testing.T, js jetstream.JetStream, opts PurgerOptions) *Purger {
	t.Helper()
	opts.Stream = "AOF_INGEST"
	pu, err := NewPurger(js, opts)
	if err != nil {
		t.Fatal(err)
	}
	return pu
}

func expectSequences(t *testing.T, what string, got, want []uint64) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: the ingest stream holds %v, want %v", what, got, want)
	}
}

// PurgeArchived removes the stream's messages up to through, none above
// it and none of other streams; again, or with a lower through, it
// removes nothing more.
func TestPurgeArchivedRemovesThroughAndNothingElse(t *testing.T) {
	r := newRig(t, 0)
	seqs := publishAlternating(t, r.js, 6, "a", "b")
	pu := newPurger(t, r.js, PurgerOptions{})
	through := seqs["a"][3]
	for _, th := range []uint64{through, through, seqs["a"][1]} {
		if err := pu.PurgeArchived(context.Background(), "a", th); err != nil {
			t.Fatal(err)
		}
		expectSequences(t, "stream a", storedSequences(t, r.js, "aof.ingest.a"), seqs["a"][4:])
		expectSequences(t, "stream b", storedSequences(t, r.js, "aof.ingest.b"), seqs["b"])
	}
	if err := pu.PurgeArchived(context.Background(), "a.b", 1); err == nil {
		t.Fatal("a purge of an invalid stream name was accepted")
	}
}

// With ingest.keep, the newest archived messages stay, and still none
// above through goes: JetStream's purge takes a sequence or a count to
// keep, not both, and a count would count unarchived messages too.
func TestPurgeArchivedKeepsTheNewestArchived(t *testing.T) {
	r := newRig(t, 0)
	seqs := publishAlternating(t, r.js, 10, "a", "b")
	pu := newPurger(t, r.js, PurgerOptions{Keep: 3})
	a := seqs["a"]
	if err := pu.PurgeArchived(context.Background(), "a", a[6]); err != nil {
		t.Fatal(err)
	}
	// a[4], a[5], a[6] are the 3 newest archived; a[7:] are not archived.
	expectSequences(t, "keep 3 through a[6]", storedSequences(t, r.js, "aof.ingest.a"), a[4:])
	if err := pu.PurgeArchived(context.Background(), "a", a[6]); err != nil {
		t.Fatal(err)
	}
	expectSequences(t, "again", storedSequences(t, r.js, "aof.ingest.a"), a[4:])
	// Fewer archived than keep: nothing goes.
	if err := pu.PurgeArchived(context.Background(), "b", seqs["b"][1]); err != nil {
		t.Fatal(err)
	}
	expectSequences(t, "b, 2 archived", storedSequences(t, r.js, "aof.ingest.b"), seqs["b"])
	if err := pu.PurgeArchived(context.Background(), "a", a[9]); err != nil {
		t.Fatal(err)
	}
	expectSequences(t, "everything archived", storedSequences(t, r.js, "aof.ingest.a"), a[7:])
}

// On a partitioned stream the purge removes the stream's partitioned
// subject and what it stored before partitioning, not another stream's.
func TestPurgeArchivedOnAPartitionedStream(t *testing.T) {
	r := newRig(t, 0)
	legacy := publishAlternating(t, r.js, 3, "a", "b")
	const partitions = 4
	if _, err := EnsureIngestStream(context.Background(), r.js, StreamSettings{Name: "AOF_INGEST", Subjects: []string{"aof.ingest.>"}, Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
	seqs := publishAlternating(t, r.js, 3, "a", "b")
	part := func(s string) string {
		return "aof.ingest." + string(rune('0'+serverPartition(partitions)(s))) + "." + s
	}
	pu := newPurger(t, r.js, PurgerOptions{Partitions: partitions, PartitionOf: serverPartition(partitions)})
	if err := pu.PurgeArchived(context.Background(), "a", seqs["a"][1]); err != nil {
		t.Fatal(err)
	}
	expectSequences(t, "a legacy", storedSequences(t, r.js, "aof.ingest.a"), nil)
	expectSequences(t, "a partitioned", storedSequences(t, r.js, part("a")), seqs["a"][2:])
	expectSequences(t, "b legacy", storedSequences(t, r.js, "aof.ingest.b"), legacy["b"])
	expectSequences(t, "b partitioned", storedSequences(t, r.js, part("b")), seqs["b"])
	if _, err := NewPurger(r.js, PurgerOptions{Stream: "AOF_INGEST", Partitions: partitions}); err == nil {
		t.Fatal("a partitioned purger without PartitionOf was accepted")
	}
}
