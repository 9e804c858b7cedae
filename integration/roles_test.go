package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nkeys"

	"github.com/bop-aof/aof/aofclient"
	"github.com/bop-aof/aof/control"
	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/internal/testpki"
)

// rolesConf is the shipped nats-server configuration under test.
const rolesConf = "deploy/nats/aof-roles.conf"

// readerEndpoints are the aof-admin endpoints the reader role may call:
// those that change nothing.
var readerEndpoints = map[string]bool{
	control.EndpointStatus: true, control.EndpointDump: true, control.EndpointSegmentsList: true,
	control.EndpointManifestInspect: true, control.EndpointRead: true, control.EndpointSnapshotList: true,
}

// TestNATSRolesShippedConfiguration runs the real aof-gateway, connected
// with an nkey as the gateway user, against a nats-server loaded from
// deploy/nats/aof-roles.conf (generated credentials put in place of the
// placeholders), and shows what each role can and cannot do:
//
//   - the gateway user has every permission the gateway needs: producers'
//     records are consumed, stored and readable, a too large record is
//     dead-lettered, a seal publishes manifest events, and the server logs
//     no permission violation of the gateway's account;
//   - the producer publishes with JetStream acks but is refused every admin
//     endpoint, discovery and a subscription to the ingest subjects;
//   - the reader reads (Go client and aof2-admin with user and password)
//     but is refused every endpoint that changes something, segments.delete
//     among them;
//   - the operator reaches every endpoint (the service answers, if only
//     to refuse an empty request) and deletes a segment's Tier 0 file;
//   - no role sees another role's replies on _INBOX.>.
func TestNATSRolesShippedConfiguration(t *testing.T) {
	creds := newRoleCredentials(t)
	ns := startRolesNATS(t, creds.apply(t, readShippedRolesConf(t)))
	e := &env{t: t, nats: &harness.NATS{URL: ns.url}, s3: harness.StartS3(t), root: t.TempDir(),
		extra: []string{"AOF2_INGEST_MAX_RECORD_BYTES=4KiB"}}
	// A restart finds its consumer and recreates it (consumer info,
	// delete, create): those permissions are needed too.
	e.startGateway("--nats-nkey", creds.gatewaySeedFile).stop()
	g := e.startGateway("--nats-nkey", creds.gatewaySeedFile)

	producer := connectRole(t, ns.url, "producer", creds.producerOption())
	reader := connectRole(t, ns.url, "reader", nats.UserInfo("aof-reader", creds.readerPassword))
	operator := connectRole(t, ns.url, "operator", nats.UserInfo("aof-operator", creds.operatorPassword))
	// Second connections of the producer and reader roles listen to every
	// reply subject of their account while the others work.
	producerSnoop := snoopInboxes(t, connectRole(t, ns.url, "producer-snoop", creds.producerOption()))
	readerSnoop := snoopInboxes(t, connectRole(t, ns.url, "reader-snoop", nats.UserInfo("aof-reader", creds.readerPassword)))

	const stream, records = "roles", 20
	publishRecords(t, producer.nc, stream, records)
	big := make([]byte, 8<<10) // over ingest.max_record_bytes: a dead letter
	if _, err := mustJetStream(t, producer.nc).Publish(context.Background(), "aof.ingest."+stream, big); err != nil {
		t.Fatalf("producer: publish of the oversized record: %v", err)
	}

	// The operator reads the records back: the gateway consumed and stored them.
	operatorClient := control.NewClient(operator.nc, "")
	waitRecords(t, operatorClient, stream, records)
	sealed, err := operatorClient.Seal(ctxT(t, 30*time.Second), control.SealRequest{Stream: stream})
	if err != nil || len(sealed.Sealed) != 1 || sealed.Sealed[0].Segment == 0 {
		t.Fatalf("operator: seal = %+v, %v; want one sealed segment", sealed, err)
	}
	ns.waitStreamMessages(t, "AOF_MANIFEST", 1)
	ns.waitStreamMessages(t, "AOF_INGEST_DEADLETTER", 1)

	// Operator: NATS lets every endpoint through; the service answers.
	for _, ep := range control.Endpoints {
		if ep == control.EndpointSegmentsDelete {
			continue // below, with a request that deletes something
		}
		operator.mustBeAnswered(t, "aof.admin."+ep, struct{}{})
	}
	// segments.delete: once the segment has its Tier 1 copy, the service's
	// own rules allow removing the Tier 0 file, and the operator does.
	segment := sealed.Sealed[0].Segment
	deleteTier0 := control.SegmentsDeleteRequest{Stream: stream, Segment: segment, Tier: 0, Force: true}
	waitInTier1(t, operatorClient, stream, segment)
	if res, err := operatorClient.SegmentsDelete(ctxT(t, 30*time.Second), deleteTier0); err != nil || len(res.Removed) == 0 {
		t.Fatalf("operator: segments.delete of the Tier 0 file of segment %d = %+v, %v; want it deleted", segment, res, err)
	}
	operator.mustBeAnswered(t, "$SRV.PING.aof-admin", nil)

	readerSnoop.mustHaveSeenNothing(t, "the reader role, while the operator read records and deleted a segment")
	readerSnoop.stop()

	// Reader: reads, status, discovery; refused the rest by NATS.
	readerClient := control.NewClient(reader.nc, "")
	waitRecords(t, readerClient, stream, records)
	readAPIAs(t, reader.nc, "reader", stream, records)
	readAPIAs(t, operator.nc, "operator", stream, records)
	for _, ep := range control.Endpoints {
		if readerEndpoints[ep] {
			reader.mustBeAnswered(t, "aof.admin."+ep, struct{}{})
		}
	}
	reader.mustBeAnswered(t, "$SRV.INFO.aof-admin", nil)
	var denied []string
	for _, ep := range control.Endpoints {
		if !readerEndpoints[ep] {
			denied = append(denied, "aof.admin."+ep)
		}
	}
	reader.mustBeRefused(t, denied...)
	readerCLI(t, e, creds.readerPassword, stream, sealed.Sealed[0].Segment)

	// Producer: no admin endpoint, no discovery, no read API, no peeking
	// at other producers' messages.
	var all []string
	for _, ep := range control.Endpoints {
		all = append(all, "aof.admin."+ep)
	}
	producer.mustBeRefused(t, append(all, "$SRV.PING", "$SRV.INFO.aof-admin", "aof.read.demo")...)
	producer.mustNotSubscribe(t, "aof.ingest.>")

	producerSnoop.mustSeeOnlyPublishAcks(t)

	// The gateway had every permission it needed, and used it.
	st, err := g.status()
	if err != nil || !st.Ready || st.Ingest.Stored != records || st.Ingest.DeadLetters != 1 {
		t.Fatalf("gateway status = %+v, %v; want ready, %d stored, 1 dead letter\n%s", st, err, records, e.gatewayLog())
	}
	if v := ns.violations(`"AOF/`); len(v) > 0 {
		t.Fatalf("the gateway's account hit permission violations; the shipped configuration is missing a permission:\n%s", strings.Join(v, "\n"))
	}
	logged := strings.Join(ns.violations(`"READERS/user:aof-reader"`), "\n")
	for _, subject := range denied {
		if !strings.Contains(logged, fmt.Sprintf("Publish Violation - Subject %q", subject)) {
			t.Errorf("the server logged no violation of the reader for %s; it logged:\n%s", subject, logged)
		}
	}
}

// TestNATSRolesShippedConfigurationLetsNobodyInAsShipped shows the
// placeholders of the shipped file are fail-closed: nats-server refuses
// the placeholder nkeys, and no password matches the placeholder hashes.
func TestNATSRolesShippedConfigurationLetsNobodyInAsShipped(t *testing.T) {
	conf := readShippedRolesConf(t)
	path := filepath.Join(t.TempDir(), "as-shipped.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := server.ProcessConfigFile(path); err == nil || !strings.Contains(err.Error(), "nkey") {
		t.Fatalf("loading the file as shipped: %v; want a refusal of the placeholder nkeys", err)
	}

	// With real nkeys but the placeholder hashes, the reader and the
	// operator cannot log in, whatever the password.
	creds := newRoleCredentials(t)
	creds.readerHash, creds.operatorHash = "", ""
	ns := startRolesNATS(t, creds.apply(t, conf))
	for _, user := range []string{"aof-reader", "aof-operator"} {
		for _, pw := range []string{"", "REPLACE", "$2a$11$REPLACE.WITH.THE.READER.BCRYPT.HASH.............."} {
			nc, err := nats.Connect(ns.url, nats.UserInfo(user, pw), nats.MaxReconnects(0))
			if err == nil {
				nc.Close()
				t.Fatalf("%s logged in with password %q against the placeholder hash", user, pw)
			}
			if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
				t.Fatalf("%s: connect error %v, want an authorization violation", user, err)
			}
		}
	}
}

// roleCredentials are generated credentials for the four roles of the
// shipped configuration.
type roleCredentials struct {
	gatewayPub, gatewaySeedFile      string
	producerPub                      string
	producerKP                       nkeys.KeyPair
	readerPassword, operatorPassword string
	readerHash, operatorHash         string // "": keep the placeholder
}

// Test passwords and their bcrypt hashes (cost 4, the lowest, so logins
// stay fast; production hashes use 11 or more). Made with
// bcrypt.GenerateFromPassword, as `nats server passwd` does.
const (
	testReaderPassword   = "reader-test-password"
	testReaderHash       = "$2a$04$WL9PMhsfj9zJzrrtKU2.oONkOSrGdrSwPDOMPzQoWU6FKk4zmc2uG"
	testOperatorPassword = "operator-test-password"
	testOperatorHash     = "$2a$04$kMc/sXUUCAYNklQx.f12p.wYEg8uCSHRY4PFC0wQhcpiI7ji3qGvm"
)

func newRoleCredentials(t *testing.T) *roleCredentials {
	t.Helper()
	c := &roleCredentials{
		readerPassword: testReaderPassword, readerHash: testReaderHash,
		operatorPassword: testOperatorPassword, operatorHash: testOperatorHash,
	}
	gw, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	c.gatewayPub, _ = gw.PublicKey()
	seed, _ := gw.Seed()
	c.gatewaySeedFile = filepath.Join(t.TempDir(), "gateway.nk")
	if err := os.WriteFile(c.gatewaySeedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	if c.producerKP, err = nkeys.CreateUser(); err != nil {
		t.Fatal(err)
	}
	c.producerPub, _ = c.producerKP.PublicKey()
	return c
}

func (c *roleCredentials) producerOption() nats.Option {
	return nats.Nkey(c.producerPub, c.producerKP.Sign)
}

// apply puts the credentials in place of the placeholders of conf, as the
// user manual tells an administrator to. Each placeholder line must be
// found exactly once, so a change of the shipped file fails here, not
// later with a confusing login error.
func (c *roleCredentials) apply(t *testing.T, conf string) string {
	t.Helper()
	for name, value := range map[string]string{
		"AOF_GATEWAY_NKEY": c.gatewayPub, "AOF_PRODUCER_NKEY": c.producerPub,
		"AOF_READER_PASSWORD": c.readerHash, "AOF_OPERATOR_PASSWORD": c.operatorHash,
	} {
		line := regexp.MustCompile(`(?m)^` + name + `: "[^"]*"$`)
		if n := len(line.FindAllStringIndex(conf, -1)); n != 1 {
			t.Fatalf("%s: the placeholder line %q appears %d times, want once", rolesConf, name, n)
		}
		if value != "" {
			conf = line.ReplaceAllLiteralString(conf, name+`: "`+value+`"`)
		}
	}
	return conf
}

func readShippedRolesConf(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(harness.RepoRoot(t), rolesConf))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rolesNATS is an embedded nats-server running a roles configuration, with
// its log kept to find permission violations.
type rolesNATS struct {
	srv *server.Server
	url string
	log *lineLogger
}

// startRolesNATS loads conf with the server's own configuration parser and
// starts it. Only the listen address and the JetStream directory are
// changed, for the test machine.
func startRolesNATS(t *testing.T, conf string) *rolesNATS {
	t.Helper()
	path := filepath.Join(t.TempDir(), "aof-roles.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server refuses %s: %v", rolesConf, err)
	}
	opts.Host, opts.Port = "127.0.0.1", harness.FreePort(t)
	opts.StoreDir = t.TempDir()
	opts.NoSigs = true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats-server with %s: %v", rolesConf, err)
	}
	log := &lineLogger{}
	srv.SetLoggerV2(log, false, false, false)
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return &rolesNATS{srv: srv, url: srv.ClientURL(), log: log}
}

// violations returns the permission violations the server logged for
// clients whose account/user tag contains who (e.g. `"AOF/`).
func (n *rolesNATS) violations(who string) []string {
	var out []string
	for _, l := range n.log.all() {
		if strings.Contains(l, "Violation") && strings.Contains(l, who) {
			out = append(out, l)
		}
	}
	return out
}

// waitStreamMessages waits until JetStream stream name of account AOF
// holds at least want messages, looked up on the server itself: no role of
// the configuration may read the gateway's streams.
func (n *rolesNATS) waitStreamMessages(t *testing.T, name string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got uint64
		info, err := n.srv.Jsz(&server.JSzOptions{Account: "AOF", Accounts: true, Streams: true})
		if err == nil {
			for _, a := range info.AccountDetails {
				for _, s := range a.Streams {
					if s.Name == name {
						got = s.State.Msgs
					}
				}
			}
		}
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s holds %d messages after 30s, want %d (err %v)", name, got, want, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lineLogger is a server.Logger that keeps every line.
type lineLogger struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineLogger) add(format string, v ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, v...))
	l.mu.Unlock()
}

func (l *lineLogger) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func (l *lineLogger) Noticef(format string, v ...any) { l.add(format, v...) }
func (l *lineLogger) Warnf(format string, v ...any)   { l.add(format, v...) }
func (l *lineLogger) Fatalf(format string, v ...any)  { l.add(format, v...) }
func (l *lineLogger) Errorf(format string, v ...any)  { l.add(format, v...) }
func (l *lineLogger) Debugf(format string, v ...any)  { l.add(format, v...) }
func (l *lineLogger) Tracef(format string, v ...any)  { l.add(format, v...) }

// roleConn is one client connection of a role, with the permission
// violations the server reported to it.
type roleConn struct {
	name string
	nc   *nats.Conn

	mu      sync.Mutex
	refused map[string]bool // subjects of "Permissions Violation" errors
}

var violationSubject = regexp.MustCompile(`(?:Publish to|Subscription to) "([^"]+)"`)

func connectRole(t *testing.T, url, name string, opts ...nats.Option) *roleConn {
	t.Helper()
	rc := &roleConn{name: name, refused: map[string]bool{}}
	opts = append(opts, nats.Name("roles-test-"+name), nats.MaxReconnects(0),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if m := violationSubject.FindStringSubmatch(err.Error()); errors.Is(err, nats.ErrPermissionViolation) && m != nil {
				rc.mu.Lock()
				rc.refused[m[1]] = true
				rc.mu.Unlock()
			}
		}))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("%s: connect: %v", name, err)
	}
	t.Cleanup(nc.Close)
	rc.nc = nc
	return rc
}

func (rc *roleConn) wasRefused(subject string) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.refused[subject]
}

// mustBeAnswered sends req (JSON; nil for an empty body) to subject and
// returns the answer, which may be an error answer of the service: what
// matters is that NATS let the request through to it.
func (rc *roleConn) mustBeAnswered(t *testing.T, subject string, req any) string {
	t.Helper()
	var body []byte
	if req != nil {
		body, _ = json.Marshal(req)
	}
	msg, err := rc.nc.RequestWithContext(ctxT(t, 30*time.Second), subject, body)
	if err != nil || rc.wasRefused(subject) {
		t.Fatalf("%s: request to %s: %v (refused by NATS: %v); want an answer of the gateway", rc.name, subject, err, rc.wasRefused(subject))
	}
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		return fmt.Sprintf("error %s: %s", code, msg.Header.Get(micro.ErrorHeader))
	}
	return string(msg.Data)
}

// mustBeRefused sends a request to each subject at once and requires that
// the server refused each with a permissions violation and that no answer
// came.
func (rc *roleConn) mustBeRefused(t *testing.T, subjects ...string) {
	t.Helper()
	errs := make([]error, len(subjects))
	var wg sync.WaitGroup
	for i, subject := range subjects {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			_, errs[i] = rc.nc.RequestWithContext(ctx, subject, []byte("{}"))
		}()
	}
	wg.Wait()
	for i, subject := range subjects {
		if errs[i] == nil {
			t.Errorf("%s: %s answered; want it refused", rc.name, subject)
		}
		if !rc.wasRefused(subject) {
			t.Errorf("%s: no permissions violation for %s (request error %v)", rc.name, subject, errs[i])
		}
	}
}

// mustNotSubscribe requires that the server refuses a subscription to subject.
func (rc *roleConn) mustNotSubscribe(t *testing.T, subject string) {
	t.Helper()
	sub, err := rc.nc.SubscribeSync(subject)
	if err != nil {
		t.Fatalf("%s: subscribe %s: %v", rc.name, subject, err)
	}
	defer sub.Unsubscribe()
	rc.nc.Flush()
	deadline := time.Now().Add(5 * time.Second)
	for !rc.wasRefused(subject) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the server accepted a subscription to %s", rc.name, subject)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// inboxSnoop is a subscription to every reply subject of a role's account.
type inboxSnoop struct {
	rc  *roleConn
	sub *nats.Subscription
}

func snoopInboxes(t *testing.T, rc *roleConn) *inboxSnoop {
	t.Helper()
	sub, err := rc.nc.SubscribeSync("_INBOX.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.nc.Flush(); err != nil || rc.wasRefused("_INBOX.>") {
		t.Fatalf("%s: subscribe _INBOX.>: %v, refused %v", rc.name, err, rc.wasRefused("_INBOX.>"))
	}
	return &inboxSnoop{rc: rc, sub: sub}
}

func (s *inboxSnoop) stop() { s.sub.Unsubscribe() }

func (s *inboxSnoop) messages() []*nats.Msg {
	s.rc.nc.Flush()
	var out []*nats.Msg
	for {
		m, err := s.sub.NextMsg(100 * time.Millisecond)
		if err != nil {
			return out
		}
		out = append(out, m)
	}
}

func (s *inboxSnoop) mustHaveSeenNothing(t *testing.T, during string) {
	t.Helper()
	if got := s.messages(); len(got) > 0 {
		t.Fatalf("%s: saw %d replies of other roles on _INBOX.> (first on %s: %.200q)", during, len(got), got[0].Subject, got[0].Data)
	}
}

// mustSeeOnlyPublishAcks requires that the producer role's _INBOX.> held
// only JetStream publish acks: its own, not the gateway's deliveries nor
// anyone's admin answers.
func (s *inboxSnoop) mustSeeOnlyPublishAcks(t *testing.T) {
	t.Helper()
	got := s.messages()
	if len(got) == 0 {
		t.Fatal("the producer role's snoop saw not even the producer's own publish acks: is it subscribed?")
	}
	for _, m := range got {
		var ack jetstream.PubAck
		if err := json.Unmarshal(m.Data, &ack); err != nil || ack.Stream != "AOF_INGEST" || ack.Sequence == 0 {
			t.Fatalf("the producer role saw a reply that is not its publish ack on %s: %.200q", m.Subject, m.Data)
		}
	}
}

func mustJetStream(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// publishRecords publishes n records to stream with JetStream acks.
func publishRecords(t *testing.T, nc *nats.Conn, stream string, n int) {
	t.Helper()
	js := mustJetStream(t, nc)
	for i := range n {
		ack, err := js.Publish(ctxT(t, 10*time.Second), "aof.ingest."+stream, fmt.Appendf(nil, "roles-record-%d", i))
		if err != nil {
			t.Fatalf("producer: publish %d: %v", i, err)
		}
		if ack.Stream != "AOF_INGEST" {
			t.Fatalf("producer: publish %d acked by stream %q, want AOF_INGEST", i, ack.Stream)
		}
	}
}

// waitRecords reads stream through c until it holds want records and
// checks their bodies.
func waitRecords(t *testing.T, c *control.Client, stream string, want int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := c.Read(ctxT(t, 10*time.Second), control.ReadRequest{Stream: stream, Count: 1000})
		if err == nil && len(res.Messages) >= want {
			for i, m := range res.Messages[:want] {
				if string(m.Body) != fmt.Sprintf("roles-record-%d", i) {
					t.Fatalf("record %d = %q", i, m.Body)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("read %s: %d records, %v after 60s; want %d", stream, len(res.Messages), err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitInTier1 waits until segment of stream has its Tier 1 copy.
func waitInTier1(t *testing.T, c *control.Client, stream string, segment uint64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := c.SegmentsList(ctxT(t, 10*time.Second), control.SegmentsListRequest{Stream: stream})
		for _, s := range res.Segments {
			if s.Segment == segment && s.InTier1 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("segment %d of %s has no Tier 1 copy after 60s (%v): %+v", segment, stream, err, res.Segments)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readerCLI shows aof2-admin logged in as the reader with user and
// password: read works, segments delete and seal do not.
func readerCLI(t *testing.T, e *env, password, stream string, segment uint64) {
	t.Helper()
	login := []string{"--user", "aof-reader", "--password", password, "--timeout", "3s"}
	out, err := e.admin(append(login, "read", "--stream", stream, "--from", "0", "--count", "1")...)
	if err != nil || !strings.Contains(out, "roles-record-0") {
		t.Fatalf("aof2-admin read as the reader: %v\n%s", err, out)
	}
	for _, args := range [][]string{
		{"segments", "delete", "--stream", stream, "--segment", fmt.Sprint(segment), "--tier", "0"},
		{"seal", "--stream", stream},
	} {
		out, err := e.admin(append(login, args...)...)
		if err == nil {
			t.Fatalf("aof2-admin %v as the reader succeeded:\n%s", args, out)
		}
		t.Logf("aof2-admin %v as the reader: %v: %s", args, err, strings.TrimSpace(out))
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestNATSRolesShippedConfigurationOverMutualTLS turns on the shipped
// file's tls block (verify: true) and runs the gateway the way the user
// manual says: --nats-url tls://..., --nats-nkey, --nats-ca, --nats-cert,
// --nats-key. A producer's record is read back with aof2-admin, connected
// as the operator with its TLS files and password from AOF2_NATS_*
// variables; a client without a certificate is refused.
func TestNATSRolesShippedConfigurationOverMutualTLS(t *testing.T) {
	pki := testpki.New(t)
	creds := newRoleCredentials(t)
	ns := startRolesNATS(t, enableTLSBlock(t, pki, creds.apply(t, readShippedRolesConf(t))))
	if !strings.HasPrefix(ns.url, "tls://") {
		t.Fatalf("server URL %s: the tls block did not apply", ns.url)
	}
	e := &env{t: t, nats: &harness.NATS{URL: ns.url}, s3: harness.StartS3(t), root: t.TempDir()}
	e.startGateway("--nats-nkey", creds.gatewaySeedFile,
		"--nats-ca", pki.CA, "--nats-cert", pki.ClientCert, "--nats-key", pki.ClientKey)

	if nc, err := nats.Connect(ns.url, creds.producerOption(), nats.RootCAs(pki.CA), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a producer without a client certificate connected; want it refused (verify: true)")
	}
	producer := connectRole(t, ns.url, "producer", creds.producerOption(),
		nats.RootCAs(pki.CA), nats.ClientCert(pki.ClientCert, pki.ClientKey))
	publishRecords(t, producer.nc, "tls", 1)

	// The operator logs in and sets TLS through the AOF2_NATS_* variables
	// alone, the way a service unit would.
	adminEnv := append(e.environ(""), "AOF2_NATS_USER=aof-operator", "AOF2_NATS_PASSWORD="+creds.operatorPassword,
		"AOF2_NATS_TLS_CA="+pki.CA, "AOF2_NATS_TLS_CERT="+pki.ClientCert, "AOF2_NATS_TLS_KEY="+pki.ClientKey)
	deadline := time.Now().Add(60 * time.Second)
	for {
		cmd := exec.Command(binary(t, "aof2-admin"), "--nats-url", ns.url, "--timeout", "10s",
			"read", "--stream", "tls", "--from", "0", "--count", "1")
		cmd.Env = adminEnv
		out, err := cmd.CombinedOutput()
		if err == nil && strings.Contains(string(out), "roles-record-0") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("aof2-admin read over TLS as the operator: %v\n%s\n%s", err, out, e.gatewayLog())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// enableTLSBlock uncomments the shipped tls block of conf and points it at
// p's files, as the user manual tells an administrator to.
func enableTLSBlock(t *testing.T, p *testpki.PKI, conf string) string {
	t.Helper()
	block := regexp.MustCompile(`(?m)^# tls \{\n(?:#   .*\n)+# \}\n`)
	found := block.FindString(conf)
	if found == "" {
		t.Fatalf("%s: no commented tls block", rolesConf)
	}
	tls := regexp.MustCompile(`(?m)^# ?`).ReplaceAllString(found, "")
	for shipped, path := range map[string]string{
		"/etc/nats/tls/server.crt": p.ServerCert, "/etc/nats/tls/server.key": p.ServerKey, "/etc/nats/tls/ca.crt": p.CA,
	} {
		if !strings.Contains(tls, shipped) {
			t.Fatalf("%s: the tls block names no %s", rolesConf, shipped)
		}
		tls = strings.ReplaceAll(tls, shipped, path)
	}
	return strings.Replace(conf, found, tls, 1)
}

// readAPIAs reads stream through the read API (aof.read.>) in batches of
// 7, so that each answer is a stream of several messages across accounts,
// and checks it gets records 0..records-1.
func readAPIAs(t *testing.T, nc *nats.Conn, role, stream string, records int) {
	t.Helper()
	c, err := aofclient.New(nc, aofclient.WithBatch(7, 0), aofclient.WithTimeout(10*time.Second), aofclient.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rec, err := range c.Read(ctxT(t, 30*time.Second), stream) {
		if err != nil {
			t.Fatalf("%s: read API: %v", role, err)
		}
		if rec.Offset != uint64(n) {
			t.Fatalf("%s: read API: record at offset %d, want %d", role, rec.Offset, n)
		}
		n++
	}
	if n != records {
		t.Fatalf("%s: read API: %d records, want %d", role, n, records)
	}
}
