package ingest

import (
	"context"
	"testing"
	"time"
)

// The gateway starts every partition pipeline at sequence 1
// (cmd/aof-gateway partitionIngest.Run). With a max age on the partitioned
// stream, what the owners purged after archiving is below the first
// sequence: not lost, and not counted.
func TestATakeoverAtSequenceOneDoesNotCountPurgedArchivedMessagesAsLost(t *testing.T) {
	r := newLostRig(t, 0)
	const partitions = 4
	if _, err := EnsureIngestStream(context.Background(), r.js, StreamSettings{Name: "AOF_INGEST", Subjects: []string{"aof.ingest.>"},
		Partitions: partitions, MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	r.opts.Partitions, r.opts.PartitionOf = partitions, serverPartition(partitions)
	a, b := "a", "b"
	if serverPartition(partitions)(a) == serverPartition(partitions)(b) {
		t.Fatal("pick streams of different partitions")
	}
	r.publish(a, 3) // sequences 1 to 3, archived and purged by their owner
	r.publish(b, 3)
	pu := newPurger(t, r.js, PurgerOptions{Partitions: partitions, PartitionOf: serverPartition(partitions)})
	if err := pu.PurgeArchived(context.Background(), a, 3); err != nil {
		t.Fatal(err)
	}
	r.opts.Partition = serverPartition(partitions)(b)
	r.opts.Consumer.StartSequence = 1 // as partitionIngest.Run does
	if err := r.run(r.pipeline()); err != nil {
		t.Fatal(err)
	}
	r.expectStored(b, 3)
	if n := r.lostCount(); n != 0 {
		t.Fatalf("ingest_lost_messages = %d: archived-and-purged messages counted as lost", n)
	}
}
