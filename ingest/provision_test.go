package ingest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/config"
	"github.com/bop-aof/aof/integration/harness"
)

// TestConsumerFilterIsLeftOutOnlyWhenItSelectsEverythingStored: the
// server checks a consumer's filter on every delivery, so a filter equal
// to the stream's one subject is left out, but only when no stored
// message lies outside it: on a stream with more subjects, or one still
// holding messages of an earlier subject prefix, it stays, and those
// messages are never delivered to the gateway.
func TestConsumerFilterIsLeftOutOnlyWhenItSelectsEverythingStored(t *testing.T) {
	n := harness.StartNATS(t)
	js := n.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	publish := func(subject string) {
		if _, err := js.Publish(ctx, subject, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	for i, tc := range []struct {
		name       string
		setup      func(stream string)
		wantFilter string
	}{
		{"one subject", func(stream string) {
			mustStream(t, js, stream, "aof.ingest.>")
			publish("aof.ingest.a")
			publish("aof.ingest.b")
		}, ""},
		{"more subjects", func(stream string) {
			mustStream(t, js, stream, "aof.ingest.>", "other.>")
		}, "aof.ingest.>"},
		{"messages of an earlier prefix", func(stream string) {
			mustStream(t, js, stream, "old.ingest.>")
			publish("old.ingest.a")
			// The prefix changed: the stream now captures aof.ingest.>
			// only, but still holds the old message.
			mustStream(t, js, stream, "aof.ingest.>")
			publish("aof.ingest.a")
		}, "aof.ingest.>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := fmt.Sprintf("S%d", i)
			tc.setup(stream)
			defer js.DeleteStream(ctx, stream)
			pos, err := positionConsumer(ctx, js, ConsumerSettings{Stream: stream, Durable: "gw", FilterSubjects: []string{"aof.ingest.>"}, AckWait: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if got := pos.cons.CachedInfo().Config.FilterSubject; got != tc.wantFilter {
				t.Errorf("consumer filter %q, want %q", got, tc.wantFilter)
			}
		})
	}
}

func mustStream(t *testing.T, js jetstream.JetStream, name string, subjects ...string) {
	t.Helper()
	if _, err := js.CreateOrUpdateStream(context.Background(), jetstream.StreamConfig{Name: name, Subjects: subjects}); err != nil {
		t.Fatal(err)
	}
}

func TestSubjectMatches(t *testing.T) {
	for _, tc := range []struct {
		filter, subject string
		want            bool
	}{
		{"aof.ingest.>", "aof.ingest.orders", true},
		{"aof.ingest.>", "aof.ingest.a.b", true},
		{"aof.ingest.>", "aof.ingest", false},
		{"aof.ingest.>", "aof.other.x", false},
		{"aof.*.x", "aof.ingest.x", true},
		{"aof.*.x", "aof.ingest.y", false},
		{"aof.ingest", "aof.ingest", true},
		{"aof.ingest", "aof.ingest.a", false},
	} {
		if got := subjectMatches(tc.filter, tc.subject); got != tc.want {
			t.Errorf("subjectMatches(%q, %q) = %v, want %v", tc.filter, tc.subject, got, tc.want)
		}
	}
}

// The bound config validation puts on ingest.stream_max_age is the one
// JetStream applies: the ingest stream provisions with a max age equal to
// its duplicate window, and is refused one second below it.
func TestIngestStreamMaxAgeBoundIsJetStreams(t *testing.T) {
	n := harness.StartNATS(t)
	js := n.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	settings := StreamSettings{Name: "AOF_INGEST", Subjects: []string{"aof.ingest.>"}, MaxAge: config.IngestDuplicateWindow - time.Second}
	if _, err := EnsureIngestStream(ctx, js, settings); err == nil || !strings.Contains(err.Error(), "duplicates window") {
		t.Fatalf("max age %s below the duplicate window: %v, want JetStream's refusal", settings.MaxAge, err)
	}
	settings.MaxAge = config.IngestDuplicateWindow
	st, err := EnsureIngestStream(ctx, js, settings)
	if err != nil {
		t.Fatalf("max age %s: %v", settings.MaxAge, err)
	}
	if cfg := st.CachedInfo().Config; cfg.MaxAge != config.IngestDuplicateWindow || cfg.Duplicates != config.IngestDuplicateWindow {
		t.Fatalf("provisioned max age %s, duplicate window %s", cfg.MaxAge, cfg.Duplicates)
	}
}
