package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/integration/harness"
)

// TestConsumerFilterIsLeftOutOnlyWhenItSelectsTheWholeStream: a filter
// equal to the stream's one subject is dropped (the server would check it
// on every delivery for nothing); on a stream with more subjects it stays,
// so the gateway never receives messages outside aof.ingest.>.
func TestConsumerFilterIsLeftOutOnlyWhenItSelectsTheWholeStream(t *testing.T) {
	n := harness.StartNATS(t)
	js := n.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		stream     string
		subjects   []string
		wantFilter string
	}{
		{"ONE", []string{"aof.ingest.>"}, ""},
		{"MORE", []string{"aof.ingest.>", "other.>"}, "aof.ingest.>"},
	} {
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: tc.stream, Subjects: tc.subjects}); err != nil {
			t.Fatal(err)
		}
		cons, _, err := resetConsumer(ctx, js, ConsumerSettings{Stream: tc.stream, Durable: "gw", FilterSubject: "aof.ingest.>", AckWait: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if got := cons.CachedInfo().Config.FilterSubject; got != tc.wantFilter {
			t.Errorf("stream %s with subjects %v: consumer filter %q, want %q", tc.stream, tc.subjects, got, tc.wantFilter)
		}
		// Deleting a stream removes its consumers; the next case uses the
		// same subjects.
		if err := js.DeleteStream(ctx, tc.stream); err != nil {
			t.Fatal(err)
		}
	}
}
