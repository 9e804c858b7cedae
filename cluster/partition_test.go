package cluster

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/integration/harness"
)

// The partition the gateway computes is the one nats-server writes into the
// stored subject through PartitionSubjectTransform, for every stream name.
func TestPartitionOfMatchesTheServer(t *testing.T) {
	for _, partitions := range []int{1, 7, 16, 1024} {
		t.Run(strconv.Itoa(partitions), func(t *testing.T) {
			ctx := testCtx(t)
			n := harness.StartNATS(t)
			js := n.JetStream(t)
			s, err := js.CreateStream(ctx, jetstream.StreamConfig{
				Name:             "AOF_INGEST",
				Subjects:         []string{"aof.ingest.*"},
				SubjectTransform: ptr(PartitionSubjectTransform("aof.ingest", partitions)),
			})
			if err != nil {
				t.Fatal(err)
			}
			const streams = 500
			names := make([]string, streams)
			for i := range names {
				names[i] = fmt.Sprintf("s%d_%s", i, strings.Repeat("x", i%13))
				if _, err := js.Publish(ctx, "aof.ingest."+names[i], nil); err != nil {
					t.Fatal(err)
				}
			}
			seen := map[int]bool{}
			for i, name := range names {
				m, err := s.GetMsg(ctx, uint64(i+1))
				if err != nil {
					t.Fatal(err)
				}
				want := PartitionSubject("aof.ingest", partitions, name)
				if m.Subject != want {
					t.Fatalf("stream %q stored as %q, PartitionSubject says %q", name, m.Subject, want)
				}
				seen[PartitionOf(name, partitions)] = true
			}
			if partitions <= 16 && len(seen) != partitions {
				t.Fatalf("%d streams used %d of %d partitions", streams, len(seen), partitions)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestPartitionsOfReadsTheCountBackFromTheTransform(t *testing.T) {
	for _, n := range []int{1, 16, 1024} {
		tr := PartitionSubjectTransform("aof.ingest", n)
		if got, ok := PartitionsOf(&tr, "aof.ingest"); !ok || got != n {
			t.Errorf("PartitionsOf(transform of %d) = %d, %v", n, got, ok)
		}
	}
	other := []*jetstream.SubjectTransformConfig{
		nil,
		{Source: "aof.ingest.*", Destination: "aof.ingest.{{wildcard(1)}}"},
		{Source: "other.*", Destination: "other.{{partition(4,1)}}.{{wildcard(1)}}"},
		{Source: "aof.ingest.*", Destination: "aof.ingest.{{partition(4,1)}}.x"},
	}
	for _, tr := range other {
		if n, ok := PartitionsOf(tr, "aof.ingest"); ok {
			t.Errorf("PartitionsOf(%+v) = %d, want none", tr, n)
		}
	}
}
