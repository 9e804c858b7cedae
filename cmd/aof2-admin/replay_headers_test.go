package main

import (
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/tiers"
)

// A producer's JetStream control headers were meant for AOF_INGEST. A
// replay into another stream must not apply them there: a Nats-Rollup
// would purge what the replay stored, a Nats-Expected-Stream would refuse
// every run. They arrive as Aof-Original-<name>, and every record is
// stored.
func TestReplayKeepsTheProducersNatsHeadersAside(t *testing.T) {
	url, s := online(t)
	recs := []tiers.Record{
		{Payload: ingest.AppendEnvelope(nil, ingest.Envelope{Subject: "aof.ingest.demo", Header: map[string][]string{"Nats-Rollup": {"sub"}}, Body: []byte("rollup")}), ExtID: 1000},
		{Payload: ingest.AppendEnvelope(nil, ingest.Envelope{Subject: "aof.ingest.demo", Header: map[string][]string{"Nats-Expected-Stream": {"AOF_INGEST"}}, Body: []byte("expect")}), ExtID: 1001},
	}
	if err := s.AppendDurable(testCtx(t), "demo", recs); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(strings.TrimPrefix(url, "--nats-url="))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := testCtx(t)
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RESTORE", Subjects: []string{"restore.>"}, AllowRollup: true})
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, url, "replay", "--stream", "demo", "--from", "40", "--subject", "restore.{{stream}}", "--jetstream", "--window", "1")
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || info.State.Msgs != 7 {
		t.Fatalf("replay of offsets 40..46: exit %d, RESTORE holds %d messages, want 7 (stdout %q, stderr %q)", code, info.State.Msgs, out, errOut)
	}
	last, err := st.GetLastMsgForSubject(ctx, "restore.demo")
	if err != nil {
		t.Fatal(err)
	}
	if last.Header.Get("Aof-Original-Nats-Expected-Stream") != "AOF_INGEST" || last.Header.Get("Nats-Expected-Stream") != "" {
		t.Fatalf("headers of the replayed record: %v, want Nats-Expected-Stream kept as Aof-Original-Nats-Expected-Stream", last.Header)
	}
}
