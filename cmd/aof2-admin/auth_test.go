package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/bop-aof/aof/control"
	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/internal/testpki"
	"github.com/bop-aof/aof/readservice"
)

// rolesServer is an embedded nats-server with the logins of
// deploy/nats/aof-roles.conf reduced to users and permissions in one
// account: the gateway (user and password, every subject), the operator
// by nkey and by password (every subject), the reader (password; it
// may call status only) and the read API user (password; publish to
// aof.read.> only). The aof-admin service and the read API of a store
// run as the gateway.
type rolesServer struct {
	url string
	// operatorSeed is the operator's nkey seed, operatorSeedFile the file
	// holding it.
	operatorSeed, operatorSeedFile string
}

const (
	gatewayPassword  = "gw-pw"
	operatorPassword = "op-pw"
	readerPassword   = "reader-pw"
	readAPIPassword  = "readapi-pw"
)

// startRolesServer starts the server, over mutual TLS with the
// certificates of pki when pki is not nil.
func startRolesServer(t *testing.T, pki *testpki.PKI) *rolesServer {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	rs := &rolesServer{operatorSeed: string(seed), operatorSeedFile: filepath.Join(t.TempDir(), "operator.nk")}
	if err := os.WriteFile(rs.operatorSeedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	reader := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{"aof.admin.status", "$SRV.>"}},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
	}
	opts := &server.Options{
		Host: "127.0.0.1", Port: harness.FreePort(t), NoLog: true, NoSigs: true,
		Users: []*server.User{
			{Username: "gateway", Password: gatewayPassword},
			{Username: "operator", Password: operatorPassword},
			{Username: "reader", Password: readerPassword, Permissions: reader},
			{Username: "readapi", Password: readAPIPassword, Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{"aof.read.>"}},
				Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
			}},
		},
		Nkeys: []*server.NkeyUser{{Nkey: pub}},
	}
	scheme := "nats"
	if pki != nil {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, CaFile: pki.CA, Verify: true})
		if err != nil {
			t.Fatal(err)
		}
		opts.TLSConfig, opts.TLS, opts.TLSVerify, opts.TLSTimeout = tc, true, true, 2
		scheme = "tls"
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("roles nats-server not ready")
	}
	t.Cleanup(s.Shutdown)
	rs.url = fmt.Sprintf("%s://127.0.0.1:%d", scheme, opts.Port)

	gwOpts := []nats.Option{nats.UserInfo("gateway", gatewayPassword)}
	if pki != nil {
		gwOpts = append(gwOpts, nats.RootCAs(pki.CA), nats.ClientCert(pki.ClientCert, pki.ClientKey))
	}
	nc, err := nats.Connect(rs.url, gwOpts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	_, store := buildRoot(t)
	t.Cleanup(func() { store.Close() })
	svc, err := control.New(nc, store, control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	read, err := readservice.New(nc, store, readservice.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(read.Stop)
	return rs
}

// cliEnv runs aof2-admin in process with env added to a clean
// environment.
func cliEnv(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(testCtx(t), args, &out, &errOut, append([]string{"HOME=" + t.TempDir()}, env...))
	return code, out.String(), errOut.String()
}

// TestAdminLogsInWithAnNkey: the operator's nkey seed, named by
// --nats-nkey or by the nats.nkey setting (AOF2_NATS_NKEY, a file path or
// the seed itself), logs aof2-admin in as it logs the gateway in.
func TestAdminLogsInWithAnNkey(t *testing.T) {
	rs := startRolesServer(t, nil)
	cases := []struct {
		name string
		env  []string
		args []string
	}{
		{"flag", nil, []string{"--nats-nkey", rs.operatorSeedFile}},
		{"setting, seed file", []string{"AOF2_NATS_NKEY=" + rs.operatorSeedFile}, nil},
		{"setting, inline seed", []string{"AOF2_NATS_NKEY=" + rs.operatorSeed}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append(append([]string{"--nats-url", rs.url, "--timeout", "10s"}, c.args...), "status")
			code, out, errOut := cliEnv(t, c.env, args...)
			if code != 0 || !strings.Contains(out, "streams: demo") {
				t.Fatalf("status logged in with the nkey (%s): exit %d, stdout %q, stderr %q", c.name, code, out, errOut)
			}
			if strings.Contains(out+errOut, rs.operatorSeed) {
				t.Errorf("the seed shows in the output: %s%s", out, errOut)
			}
		})
	}
}

// TestAdminTLSFlags: --nats-ca, --nats-cert and --nats-key connect
// aof2-admin to a server that verifies client certificates, as they
// connect the gateway; without the client certificate the server refuses.
func TestAdminTLSFlags(t *testing.T) {
	pki := testpki.New(t)
	rs := startRolesServer(t, pki)
	login := []string{"--nats-url", rs.url, "--timeout", "10s", "--user", "operator", "--password", operatorPassword}

	code, out, errOut := cli(t, append(login, "--nats-ca", pki.CA, "--nats-cert", pki.ClientCert, "--nats-key", pki.ClientKey, "status")...)
	if code != 0 || !strings.Contains(out, "streams: demo") {
		t.Fatalf("status over mutual TLS: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, errOut := cli(t, append(login, "--nats-ca", pki.CA, "status")...); code == 0 {
		t.Fatalf("status without a client certificate succeeded; stderr %q", errOut)
	}
}

// TestAdminLoginFlagsApplyBeforeValidation: the configuration is built as
// the gateway builds it, defaults < file < environment < flags, and then
// validated, so --user on the command line with the password in
// AOF2_NATS_PASSWORD is one complete login.
func TestAdminLoginFlagsApplyBeforeValidation(t *testing.T) {
	rs := startRolesServer(t, nil)
	code, out, errOut := cliEnv(t, []string{"AOF2_NATS_PASSWORD=" + operatorPassword},
		"--nats-url", rs.url, "--timeout", "10s", "--user", "operator", "status")
	if code != 0 || !strings.Contains(out, "streams: demo") {
		t.Fatalf("--user with AOF2_NATS_PASSWORD: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestAdminLoginFlagReplacesTheConfiguredLogin: a login flag (--creds,
// --nats-nkey, --user) names who runs the command, and the other ways to
// log in that the file or the environment hold are dropped: an operator
// using the gateway's configuration file must not log in with the
// gateway's nkey, nor be stopped by "nats.creds and nats.nkey are
// mutually exclusive".
func TestAdminLoginFlagReplacesTheConfiguredLogin(t *testing.T) {
	rs := startRolesServer(t, nil)
	base := []string{"--nats-url", rs.url, "--timeout", "10s"}

	withNkey := writeConfig(t, fmt.Sprintf("[nats]\nnkey = %q\n", rs.operatorSeedFile))
	code, out, errOut := cli(t, append(base, "--config", withNkey, "--user", "reader", "--password", readerPassword,
		"seal", "--stream", "demo")...)
	if code != control.ExitAuth || !strings.Contains(errOut, "permission denied") {
		t.Fatalf("seal with --user reader over a file with nats.nkey: exit %d, stdout %q, stderr %q; want the reader refused (exit 3)", code, out, errOut)
	}

	withCreds := writeConfig(t, "[nats]\ncreds = \"/etc/aof/gateway.creds\"\n")
	code, out, errOut = cliEnv(t, []string{"AOF2_NATS_USER=reader", "AOF2_NATS_PASSWORD=" + readerPassword},
		append(base, "--config", withCreds, "--nats-nkey", rs.operatorSeedFile, "seal", "--stream", "demo")...)
	if code != 0 {
		t.Fatalf("seal with --nats-nkey over nats.creds in the file and a user in the environment: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestAdminAcceptsTheGatewaysLoginFlagNames: --nats-creds, --nats-user
// and --nats-password, the gateway's names, are --creds, --user and
// --password, so one login line works with both commands.
func TestAdminAcceptsTheGatewaysLoginFlagNames(t *testing.T) {
	rs := startRolesServer(t, nil)
	code, out, errOut := cli(t, "--nats-url", rs.url, "--timeout", "10s", "--nats-user", "operator", "--nats-password", operatorPassword, "status")
	if code != 0 || !strings.Contains(out, "streams: demo") {
		t.Fatalf("--nats-user and --nats-password: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, _, errOut = cli(t, "--nats-url", rs.url, "--nats-creds", filepath.Join(t.TempDir(), "missing.creds"), "status")
	if code == 0 || !strings.Contains(errOut, "missing.creds") {
		t.Fatalf("--nats-creds naming a missing file: exit %d, stderr %q; want it used as --creds", code, errOut)
	}
}

// TestAdminRefusesAnUnusableConfigurationNamingTheKey: a configuration
// that does not validate is an error (exit 1) naming the key, not a
// warning followed by a run on the defaults that drops every setting
// (nats.tls.* among them). Tier 2 left incomplete is still fine: the
// commands that do not use it run without it.
func TestAdminRefusesAnUnusableConfigurationNamingTheKey(t *testing.T) {
	url, _ := online(t)
	cases := []struct {
		name, key string
		env       []string
	}{
		{"password without user", "nats.password", []string{"AOF2_NATS_PASSWORD=pw-not-shown"}},
		{"client certificate without key", "nats.tls.cert", []string{"AOF2_NATS_TLS_CERT=/etc/aof/client.crt"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := cliEnv(t, c.env, url, "status")
			if code != control.ExitUsage || !strings.Contains(errOut, c.key) || strings.Contains(out+errOut, "using defaults") {
				t.Fatalf("exit %d (want %d naming %s), stdout %q, stderr %q", code, control.ExitUsage, c.key, out, errOut)
			}
			t.Logf("exit %d: %s", code, errOut)
			if strings.Contains(out+errOut, "pw-not-shown") {
				t.Errorf("the password shows in the output: %s", errOut)
			}
		})
	}
	code, out, errOut := cliEnv(t, []string{"AOF2_TIER2_ENABLED=true"}, url, "status")
	if code != 0 || !strings.Contains(out, "streams: demo") {
		t.Fatalf("status with Tier 2 enabled but not configured: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestPermissionRefusalFailsAtOnceWithExitCode3: a request the NATS
// server refuses for lack of permission fails at once, naming the subject
// and what to do, with the authentication/authorization exit code; it
// does not wait for --timeout and pass for a missing answer (503, exit 4).
func TestPermissionRefusalFailsAtOnceWithExitCode3(t *testing.T) {
	rs := startRolesServer(t, nil)
	login := []string{"--nats-url", rs.url, "--timeout", "20s", "--user", "reader", "--password", readerPassword}
	if code, out, errOut := cli(t, append(login, "status")...); code != 0 {
		t.Fatalf("status as the reader: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	start := time.Now()
	code, out, errOut := cli(t, append(login, "segments", "delete", "--stream", "demo", "--segment", "1", "--tier", "0")...)
	took := time.Since(start)
	if code != control.ExitAuth || took > 5*time.Second {
		t.Fatalf("segments delete as the reader: exit %d after %v (want %d at once), stdout %q, stderr %q", code, took, control.ExitAuth, out, errOut)
	}
	t.Logf("segments delete as the reader: exit %d after %v: %s", code, took, errOut)
	for _, want := range []string{"permission denied", "publish to aof.admin.segments.delete", "operator", "code 403"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr %q does not say %q", errOut, want)
		}
	}
}

// TestReadCommandsNeedOnlyTheReadAPIPermission: read, export and tail run
// as a NATS user allowed to publish to aof.read.> and nothing else; a
// user without it is refused by the server at once with exit code 3,
// naming the subject, instead of waiting for the read's timeouts.
func TestReadCommandsNeedOnlyTheReadAPIPermission(t *testing.T) {
	rs := startRolesServer(t, nil)
	login := []string{"--nats-url", rs.url, "--timeout", "20s", "--user", "readapi", "--password", readAPIPassword}
	code, out, errOut := cli(t, append(login, "read", "--stream", "demo", "--from", "43")...)
	if code != 0 || !strings.Contains(out, "offset 44 | ext 45") {
		t.Fatalf("read with only aof.read.>: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = cli(t, append(login, "export", "--stream", "demo", "--from", "40")...)
	if code != 0 || strings.Count(out, "\n") != 5 {
		t.Fatalf("export with only aof.read.>: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	ctx, cancel := context.WithTimeout(testCtx(t), 2*time.Second)
	defer cancel()
	var tailOut, tailErr bytes.Buffer
	code = run(ctx, append(login, "tail", "--stream", "demo", "--from", "44"), &tailOut, &tailErr, []string{"HOME=" + t.TempDir()})
	if code != 0 || !strings.Contains(tailOut.String(), "offset 44 | ext 45") {
		t.Fatalf("tail with only aof.read.>: exit %d, stdout %q, stderr %q", code, tailOut.String(), tailErr.String())
	}

	refused := []string{"--nats-url", rs.url, "--timeout", "20s", "--user", "reader", "--password", readerPassword}
	for _, args := range [][]string{{"read", "--stream", "demo"}, {"tail", "--stream", "demo"}, {"export", "--stream", "demo"}} {
		start := time.Now()
		code, out, errOut := cli(t, append(refused, args...)...)
		if took := time.Since(start); code != control.ExitAuth || took > 5*time.Second || !strings.Contains(errOut, "aof.read.demo") {
			t.Errorf("%v without aof.read.>: exit %d after %v (want %d at once naming aof.read.demo), stdout %q, stderr %q",
				args, code, took, control.ExitAuth, out, errOut)
		}
	}
}

// TestReplayToASubjectTheUserMayNotPublishFailsWithExitCode3: the NATS
// server refuses the target subject; replay says so (exit 3) instead of
// waiting for JetStream acks that never come.
func TestReplayToASubjectTheUserMayNotPublishFailsWithExitCode3(t *testing.T) {
	rs := startRolesServer(t, nil)
	login := []string{"--nats-url", rs.url, "--timeout", "20s", "--user", "readapi", "--password", readAPIPassword}
	start := time.Now()
	code, out, errOut := cli(t, append(login, "replay", "--stream", "demo", "--subject", "restore.{{stream}}", "--jetstream")...)
	if took := time.Since(start); code != control.ExitAuth || took > 5*time.Second || !strings.Contains(errOut, "publish to restore.demo") {
		t.Fatalf("replay to a refused subject: exit %d after %v (want %d at once naming restore.demo), stdout %q, stderr %q",
			code, took, control.ExitAuth, out, errOut)
	}
	t.Logf("exit %d: %s", code, errOut)
}
