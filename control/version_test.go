package control

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/bop-aof/aof/integration/harness"
)

// Every answer, error answers included, says which protocol version it
// speaks, and the service announces it in its micro metadata.
func TestAnswersCarryTheAPIVersion(t *testing.T) {
	_, s := buildDemoRoot(t, nil)
	defer s.Close()
	_, nc := startService(t, s, Options{})
	for _, subj := range []string{"aof.admin.status", "aof.admin.seal"} { // seal without a stream: 400
		msg, err := nc.Request(subj, nil, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if v := msg.Header.Get(APIVersionHeader); v != APIVersion {
			t.Errorf("%s answered with %s %q, want %q", subj, APIVersionHeader, v, APIVersion)
		}
	}
	subj, _ := micro.ControlSubject(micro.InfoVerb, DefaultName, "")
	msg, err := nc.Request(subj, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(msg.Data, &info); err != nil || info.Metadata["api_version"] != APIVersion {
		t.Errorf("service metadata %v (%v), want api_version %s", info.Metadata, err, APIVersion)
	}
}

// A request in a protocol version the gateway does not speak is refused
// with 501, not answered in a format the client would misread; one
// without the header is version 1.
func TestServiceRefusesAnUnknownAPIVersion(t *testing.T) {
	_, s := buildDemoRoot(t, nil)
	defer s.Close()
	_, nc := startService(t, s, Options{})
	req := nats.NewMsg("aof.admin.status")
	req.Header.Set(APIVersionHeader, "2")
	msg, err := nc.RequestMsg(req, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != CodeNotImplemented {
		t.Fatalf("request of version 2 answered with code %q and body %s, want %s", code, msg.Data, CodeNotImplemented)
	}
	msg, err = nc.Request("aof.admin.status", nil, 5*time.Second)
	if err != nil || msg.Header.Get(micro.ErrorCodeHeader) != "" {
		t.Fatalf("request without a version: %v, headers %v", err, msg.Header)
	}
}

// The client refuses an answer in another protocol version instead of
// decoding it as its own.
func TestClientRefusesAnAnswerOfAnotherAPIVersion(t *testing.T) {
	n := harness.StartNATS(t)
	nc := n.Connect(t)
	sub, err := nc.Subscribe("future.admin.status", func(m *nats.Msg) {
		ans := nats.NewMsg(m.Reply)
		ans.Header.Set(APIVersionHeader, "2")
		ans.Data = []byte(`{"service":"aof-admin","streams":{"renamed":true}}`)
		m.RespondMsg(ans)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	_, err = NewClient(nc, "future.admin").Status(testCtx(t))
	wantCode(t, err, CodeNotImplemented)
}
