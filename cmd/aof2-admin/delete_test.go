package main

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/bop-aof/aof/control"
	"github.com/bop-aof/aof/integration/harness"
)

// TestSegmentsDeleteTier2NeedsAcknowledgeDataLoss: aof2-admin segments
// delete --tier 2 of a segment that never reached Tier 2 is refused (exit
// 1), with --force too, and names the flag that acknowledges the loss;
// with --acknowledge-data-loss it retires the segment and the gateway's
// log names this user@host.
func TestSegmentsDeleteTier2NeedsAcknowledgeDataLoss(t *testing.T) {
	_, s := buildRoot(t)
	t.Cleanup(func() { s.Close() })
	var mu sync.Mutex
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	n := harness.StartNATS(t)
	svc, err := control.New(n.Connect(t), s, control.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	url := "--nats-url=" + n.URL

	for _, extra := range [][]string{nil, {"--force"}} {
		args := append([]string{url, "segments", "delete", "--stream", "demo", "--segment", "1", "--tier", "2"}, extra...)
		code, out, errOut := cli(t, args...)
		if code != 1 || !strings.Contains(errOut, "not confirmed in Tier 2") || !strings.Contains(errOut, "--acknowledge-data-loss") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	code, out, errOut := cli(t, url, "segments", "delete", "--stream", "demo", "--segment", "1", "--tier", "2", "--acknowledge-data-loss")
	if code != 0 || !strings.Contains(out, "stream demo segment 1: retired") {
		t.Fatalf("with --acknowledge-data-loss: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), `"msg":"segment_deleted"`) || !strings.Contains(logs.String(), `"requested_by":"`+requester()+`"`) {
		t.Errorf("gateway log does not name %s:\n%s", requester(), logs.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
