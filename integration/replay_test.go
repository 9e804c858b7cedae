package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// sentMessage is what a producer published.
type sentMessage struct {
	subject string
	header  nats.Header
	body    []byte
}

// adminSplit runs aof2-admin against e's gateway with stdout and stderr
// apart (export writes its records to stdout).
func (e *env) adminSplit(args ...string) (stdout, stderr string, err error) {
	e.t.Helper()
	cmd := exec.Command(binary(e.t, "aof2-admin"), append([]string{"--nats-url", e.nats.URL}, args...)...)
	cmd.Env = e.environ("")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// publishWithHeaders publishes n messages to aof.ingest.<stream> with
// headers (one of them multi-valued) and bodies, every fifth not UTF-8,
// and returns them in publish order.
func publishWithHeaders(t *testing.T, js jetstream.JetStream, stream string, n int) []sentMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var sent []sentMessage
	for i := range n {
		m := nats.NewMsg("aof.ingest." + stream)
		m.Header.Set("Order", fmt.Sprint(i))
		m.Header["Tag"] = []string{"a", fmt.Sprintf("b-%d", i%3)}
		m.Data = fmt.Appendf(nil, "%s record %d", stream, i)
		if i%5 == 0 {
			m.Data = append(m.Data, 0xff, 0x00, 0xfe)
		}
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatalf("publish %s %d: %v", stream, i, err)
		}
		sent = append(sent, sentMessage{subject: m.Subject, header: m.Header, body: m.Data})
	}
	return sent
}

// TestReplayRestoresAStreamIntoJetStreamAsProducersSentIt runs the real
// gateway with two streams written by producers, replays one of them with
// aof2-admin into a new JetStream stream and checks what a NATS client
// reads from it: the template subject, the producers' headers (plus
// Nats-Msg-Id <stream>:<offset>), bodies and order, each record once,
// even after a second run. Export gives the same records as JSON lines;
// read goes past the old 10,000-record limit.
func TestReplayRestoresAStreamIntoJetStreamAsProducersSentIt(t *testing.T) {
	e := newEnv(t)
	e.startGateway()
	nc := e.nats.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	orders := publishWithHeaders(t, js, "orders", 60)
	e.waitDrained(js, time.Minute)
	e.mustAdmin("seal", "--stream", "orders") // part of the stream sealed, part active
	orders = append(orders, publishWithHeaders(t, js, "orders", 40)...)
	publishWithHeaders(t, js, "payments", 30)
	e.waitDrained(js, time.Minute)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	restore, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RESTORE", Subjects: []string{"restore.>"}, Duplicates: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"replay", "--stream", "orders", "--subject", "restore.{{stream}}", "--jetstream", "--window", "16", "--json"}
	for run, want := range []struct{ stored, dups int }{{100, 0}, {0, 100}} {
		out, errOut, err := e.adminSplit(args...)
		var sum struct{ Records, Stored, Duplicates int }
		if err != nil || json.Unmarshal([]byte(out), &sum) != nil || sum.Records != 100 || sum.Stored != want.stored || sum.Duplicates != want.dups {
			t.Fatalf("replay run %d: %v, stdout %q, stderr %q; want 100 records, %d stored, %d duplicates", run+1, err, out, errOut, want.stored, want.dups)
		}
	}
	info, err := restore.Info(ctx)
	if err != nil || info.State.Msgs != 100 {
		t.Fatalf("RESTORE holds %d messages after two replays (%v), want 100 (each record once)", info.State.Msgs, err)
	}
	checkRestored(t, ctx, restore, orders)
	checkExport(t, e, orders)

	// read has no 10,000-record limit any more.
	const bulk = 12000
	publishSmall(t, js, "bulk", bulk)
	e.waitDrained(js, 2*time.Minute)
	out, errOut, err := e.adminSplit("read", "--stream", "bulk", "--from", "0", "--count", fmt.Sprint(bulk), "--json")
	var read struct {
		Messages []struct {
			Offset uint64 `json:"offset"`
			Body   []byte `json:"body"`
		} `json:"messages"`
		Next   uint64 `json:"next"`
		AtTail bool   `json:"at_tail"`
	}
	if err != nil || json.Unmarshal([]byte(out), &read) != nil || len(read.Messages) != bulk || read.Next != bulk {
		t.Fatalf("read --count %d: %v, %d messages, next %d; stderr %q", bulk, err, len(read.Messages), read.Next, errOut)
	}
	for i, m := range read.Messages {
		if m.Offset != uint64(i) || string(m.Body) != fmt.Sprint(i) {
			t.Fatalf("read --count %d: message %d is offset %d body %q", bulk, i, m.Offset, m.Body)
		}
	}
}

// checkRestored reads the restored stream as a NATS client would and
// compares it with what the producers sent.
func checkRestored(t *testing.T, ctx context.Context, st jetstream.Stream, sent []sentMessage) {
	t.Helper()
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(len(sent), jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for m := range batch.Messages() {
		want := sent[i]
		h := m.Headers()
		if got := h.Get(jetstream.MsgIDHeader); got != fmt.Sprintf("orders:%d", i) {
			t.Fatalf("restored message %d: Nats-Msg-Id %q, want orders:%d", i, got, i)
		}
		h.Del(jetstream.MsgIDHeader)
		if m.Subject() != "restore.orders" || !reflect.DeepEqual(h, want.header) || !bytes.Equal(m.Data(), want.body) {
			t.Fatalf("restored message %d: %s %v %q; the producer sent %s %v %q", i, m.Subject(), h, m.Data(), want.subject, want.header, want.body)
		}
		i++
	}
	if i != len(sent) {
		t.Fatalf("restored %d messages, want %d (%v)", i, len(sent), batch.Error())
	}
}

// checkExport exports the stream as JSON lines and parses them back.
func checkExport(t *testing.T, e *env, sent []sentMessage) {
	t.Helper()
	out, errOut, err := e.adminSplit("export", "--stream", "orders")
	if err != nil || !strings.Contains(errOut, fmt.Sprintf("exported %d records of orders", len(sent))) {
		t.Fatalf("export: %v, stderr %q", err, errOut)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	i := 0
	for ; sc.Scan(); i++ {
		var rec struct {
			Offset       uint64              `json:"offset"`
			Subject      string              `json:"subject"`
			Header       map[string][]string `json:"header"`
			Body         string              `json:"body"`
			BodyEncoding string              `json:"body_encoding"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("export line %d %q: %v", i, sc.Text(), err)
		}
		body := []byte(rec.Body)
		if rec.BodyEncoding == "base64" {
			if body, err = base64.StdEncoding.DecodeString(rec.Body); err != nil {
				t.Fatalf("export line %d: body not base64: %v", i, err)
			}
		}
		want := sent[i]
		if rec.Offset != uint64(i) || rec.Subject != want.subject || !reflect.DeepEqual(nats.Header(rec.Header), want.header) || !bytes.Equal(body, want.body) {
			t.Fatalf("export line %d: %+v; the producer sent %s %v %q", i, rec, want.subject, want.header, want.body)
		}
	}
	if i != len(sent) {
		t.Fatalf("export wrote %d lines, want %d", i, len(sent))
	}
}

// publishSmall publishes n tiny records (the body is the index) with
// async publishes, 1000 at a time.
func publishSmall(t *testing.T, js jetstream.JetStream, stream string, n int) {
	t.Helper()
	for start := 0; start < n; start += 1000 {
		var futures []jetstream.PubAckFuture
		for i := start; i < min(start+1000, n); i++ {
			f, err := js.PublishAsync("aof.ingest."+stream, []byte(fmt.Sprint(i)))
			if err != nil {
				t.Fatal(err)
			}
			futures = append(futures, f)
		}
		for i, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				t.Fatalf("bulk publish %d: %v", start+i, err)
			case <-time.After(time.Minute):
				t.Fatalf("bulk publish %d not acked within a minute", start+i)
			}
		}
	}
}
