package ingest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/tiers"
)

// fakeMsg is a delivered JetStream message without a broker behind it.
type fakeMsg struct {
	subject, reply string
	data           []byte
}

var errNoBroker = errors.New("fake message: no broker")

func (m *fakeMsg) Metadata() (*jetstream.MsgMetadata, error) { return nil, errNoBroker }
func (m *fakeMsg) Data() []byte                              { return m.data }
func (m *fakeMsg) Headers() nats.Header                      { return nil }
func (m *fakeMsg) Subject() string                           { return m.subject }
func (m *fakeMsg) Reply() string                             { return m.reply }
func (m *fakeMsg) Ack() error                                { return nil }
func (m *fakeMsg) DoubleAck(context.Context) error           { return nil }
func (m *fakeMsg) Nak() error                                { return nil }
func (m *fakeMsg) NakWithDelay(time.Duration) error          { return nil }
func (m *fakeMsg) InProgress() error                         { return nil }
func (m *fakeMsg) Term() error                               { return nil }
func (m *fakeMsg) TermWithReason(string) error               { return nil }

// BenchmarkPipelineCPUPerMessage is the gateway's own share of the ingest
// cost, without a broker: batches of 1 KiB messages over 4 streams go
// through appendBatch (sequence parsing, envelopes, appends) and syncGroup
// (write and fsync per stream), and the process's user and system CPU per
// message are reported. It explains the ingest benchmark's ratio: the
// plain consumer's CPU per message is the broker's and the client's, the
// gateway's is that plus this.
//
//	go test -run '^$' -bench PipelineCPUPerMessage -benchtime 1x ./ingest
func BenchmarkPipelineCPUPerMessage(b *testing.B) {
	const n = 200_000
	for _, batch := range []int{512, 2048} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			msgs := make([]jetstream.Msg, n)
			for i := range msgs {
				msgs[i] = &fakeMsg{
					subject: fmt.Sprintf("aof.ingest.bench-%d", i%4),
					reply:   fmt.Sprintf("$JS.ACK.AOF_INGEST.gw.1.%d.%d.1700000000000000000.0", i+1, i+1),
					data:    make([]byte, benchBodyBytes),
				}
			}
			var user, sys time.Duration
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				store, err := tiers.Open(context.Background(), tiers.Options{Root: b.TempDir(), SegmentTargetBytes: 1 << 30, Tier0MaxBytes: 4 << 30})
				if err != nil {
					b.Fatal(err)
				}
				p, err := NewPipeline(nil, store, Options{BatchSize: batch})
				if err != nil {
					b.Fatal(err)
				}
				u0, s0 := processCPU()
				b.StartTimer()
				for i := 0; i < n; i += batch {
					fl, err := p.appendBatch(context.Background(), msgs[i:min(i+batch, n)])
					if err != nil {
						b.Fatal(err)
					}
					if refused, err := p.syncGroup([]*inflight{fl}); err != nil || refused != nil {
						b.Fatal(err, refused)
					}
					fl.span.End()
				}
				b.StopTimer()
				u1, s1 := processCPU()
				user, sys = user+u1-u0, sys+s1-s0
				store.Close()
				b.StartTimer()
			}
			msgsDone := float64(b.N * n)
			b.ReportMetric(float64(user.Nanoseconds())/msgsDone/1000, "user_us/msg")
			b.ReportMetric(float64(sys.Nanoseconds())/msgsDone/1000, "sys_us/msg")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/msgsDone/1000, "wall_us/msg")
		})
	}
}
