package control

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/integration/harness"
)

// startPermissionsNATS starts a nats-server where user "reader" may
// publish only to aof.admin.status and subscribe only to _INBOX.>, and
// user "noinbox" may publish to aof.admin.> but subscribe to nothing.
func startPermissionsNATS(t *testing.T) string {
	t.Helper()
	port := harness.FreePort(t)
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true,
		Users: []*server.User{
			{Username: "reader", Password: "pw", Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{"aof.admin.status"}},
				Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
			}},
			{Username: "noinbox", Password: "pw", Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{"aof.admin.>"}},
				Subscribe: &server.SubjectPermission{Deny: []string{">"}},
			}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(s.Shutdown)
	return fmt.Sprintf("nats://127.0.0.1:%d", port)
}

// TestClientFailsAtOnceOnAPermissionRefusal: the server refuses a request
// the user may not publish, or whose answer it may not receive, with an
// asynchronous -ERR, not an answer. The client with PermissionDenials
// fails such a request at once with code 403 naming the subject, instead
// of waiting for ctx and reporting a missing answer (503).
func TestClientFailsAtOnceOnAPermissionRefusal(t *testing.T) {
	url := startPermissionsNATS(t)
	cases := []struct {
		user, want string
		call       func(context.Context, *Client) error
	}{
		{"reader", "publish to aof.admin.segments.delete", func(ctx context.Context, c *Client) error {
			_, err := c.SegmentsDelete(ctx, SegmentsDeleteRequest{Stream: "demo", Segment: 1, Tier: 0})
			return err
		}},
		{"noinbox", "subscribe to _INBOX.", func(ctx context.Context, c *Client) error {
			_, err := c.Status(ctx)
			return err
		}},
	}
	for _, c := range cases {
		t.Run(c.user, func(t *testing.T) {
			denials := NewPermissionDenials()
			nc, err := nats.Connect(url, nats.UserInfo(c.user, "pw"), nats.ErrorHandler(denials.ErrorHandler(nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			client := NewClient(nc, "", WithPermissionDenials(denials))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			err = c.call(ctx, client)
			var ce *Error
			if took := time.Since(start); !errors.As(err, &ce) || ce.Code != CodeForbidden || took > 5*time.Second {
				t.Fatalf("%s: error %v after %v, want code %s at once", c.user, err, took, CodeForbidden)
			}
			if !strings.Contains(err.Error(), "permission denied by the NATS server for "+c.want) {
				t.Errorf("error %q does not name %q", err, c.want)
			}
			if ExitCode(err) != ExitAuth {
				t.Errorf("exit code %d, want %d", ExitCode(err), ExitAuth)
			}
		})
	}
}

// TestPermissionViolationSubject reads the operation and subject out of
// the errors nats.go hands to the connection's error handler.
func TestPermissionViolationSubject(t *testing.T) {
	for _, c := range []struct {
		err         error
		op, subject string
	}{
		{fmt.Errorf("%w: %s", nats.ErrPermissionViolation, `Permissions Violation for Publish to "aof.admin.seal"`), "publish", "aof.admin.seal"},
		{fmt.Errorf("%w: %s", nats.ErrPermissionViolation, `Permissions Violation for Subscription to "_INBOX.abc.*"`), "subscribe", "_INBOX.abc.*"},
		{fmt.Errorf("%w: %s", nats.ErrPermissionViolation, `Permissions Violation for Subscription to "q.x" using queue "workers"`), "subscribe", "q.x"},
		{nats.ErrSlowConsumer, "", ""},
	} {
		op, subject := PermissionViolation(c.err)
		if op != c.op || subject != c.subject {
			t.Errorf("PermissionViolation(%v) = %q, %q; want %q, %q", c.err, op, subject, c.op, c.subject)
		}
	}
}
