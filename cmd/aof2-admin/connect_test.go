package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/bop-aof/aof/config"
	"github.com/bop-aof/aof/control"
	"github.com/bop-aof/aof/integration/harness"
)

// onlineInvocations runs every command that connects to the gateway, with
// the arguments it needs to get as far as connecting.
var onlineInvocations = map[string][]string{
	"status":            {"status"},
	"dump":              {"dump"},
	"seal":              {"seal", "--stream", "demo"},
	"flush":             {"flush", "--stream", "demo"},
	"hydrate":           {"hydrate", "--segment", "1"},
	"segments list":     {"segments", "list"},
	"segments delete":   {"segments", "delete", "--segment", "1"},
	"manifest check":    {"manifest", "check"},
	"manifest inspect":  {"manifest", "inspect"},
	"read":              {"read", "--stream", "demo"},
	"tail":              {"tail", "--stream", "demo"},
	"replay":            {"replay", "--stream", "demo", "--subject", "restore.demo"},
	"export":            {"export", "--stream", "demo"},
	"snapshot create":   {"snapshot", "create", "--stream", "demo"},
	"snapshot list":     {"snapshot", "list"},
	"config reload":     {"config", "reload"},
	"cluster":           {"cluster"},
	"cluster drain":     {"cluster", "drain", "--node", "gw-a"},
	"recover (offline)": nil,
	"gen-docs (no I/O)": nil,
}

// TestEveryCommandIsCoveredByTheURLTests keeps onlineInvocations complete:
// a new command must say whether it connects.
func TestEveryCommandIsCoveredByTheURLTests(t *testing.T) {
	covered := map[string]bool{}
	for k := range onlineInvocations {
		covered[strings.Fields(k)[0]] = true
		covered[strings.TrimSuffix(strings.TrimSuffix(k, " (offline)"), " (no I/O)")] = true
	}
	var walk func(c *cobra.Command, path string)
	walk = func(c *cobra.Command, path string) {
		if c.HasSubCommands() {
			for _, sub := range c.Commands() {
				if sub.Name() != "help" && sub.Name() != "completion" {
					walk(sub, strings.TrimSpace(path+" "+sub.Name()))
				}
			}
			return
		}
		if !covered[path] {
			t.Errorf("command %q is not in onlineInvocations", path)
		}
	}
	walk((&app{}).rootCommand(), "")
}

// TestConnectErrorsNeverShowTheNATSPassword: whichever command, wherever
// the URL comes from (--nats-url, AOF2_NATS_URL, nats.url in the file) and
// however connecting fails (refused, malformed URL, wrong password), the
// error shows the URL with its user info redacted and never the password.
func TestConnectErrorsNeverShowTheNATSPassword(t *testing.T) {
	const secret = "s3cr3t-pw"
	auth := strings.TrimPrefix(startAuthNATS(t), "nats://")
	urls := map[string]string{
		"refused":   "nats://alice:" + secret + "@127.0.0.1:1",
		"malformed": "nats://alice:" + secret + "@127.0.0.1:notaport",
		"two":       "nats://alice:" + secret + "@127.0.0.1:1,nats://bob:" + secret + "@127.0.0.1:2",
		"auth":      "nats://admin:" + secret + "@" + auth,
	}
	wantCode := map[string]int{"refused": control.ExitIO, "malformed": control.ExitIO, "two": control.ExitIO, "auth": control.ExitAuth}
	for name, args := range onlineInvocations {
		if args == nil {
			continue
		}
		for kind, url := range urls {
			for _, source := range []string{"flag", "env", "file"} {
				home := t.TempDir()
				env := []string{"HOME=" + home}
				full := args
				switch source {
				case "flag":
					full = append([]string{"--nats-url", url}, args...)
				case "env":
					env = append(env, "AOF2_NATS_URL="+url)
				case "file":
					path := filepath.Join(home, "config.toml")
					if err := os.WriteFile(path, fmt.Appendf(nil, "[nats]\nurl = %q\n", url), 0o600); err != nil {
						t.Fatal(err)
					}
					full = append([]string{"--config", path}, args...)
				}
				var out, errOut bytes.Buffer
				code := run(testCtx(t), full, &out, &errOut, env)
				all := out.String() + errOut.String()
				if strings.Contains(all, secret) || code != wantCode[kind] || !strings.Contains(all, "connect to nats://"+config.RedactedValue+"@") {
					t.Errorf("%s, %s URL from %s: exit %d (want %d), output:\n%s", name, kind, source, code, wantCode[kind], all)
				}
			}
		}
	}
}

// TestNATSURLOfTheGateway: without --nats-url, aof2-admin connects where
// the gateway of the same configuration does.
func TestNATSURLOfTheGateway(t *testing.T) {
	cases := []struct {
		name string
		env  []string
		want string
	}{
		{"defaults", nil, "nats://127.0.0.1:4222"},
		{"nats.url", []string{"AOF2_NATS_URL=nats://10.0.0.5:4222"}, "nats://10.0.0.5:4222"},
		{"embedded port, no url", []string{"AOF2_NATS_EMBEDDED_PORT=14222"}, "nats://127.0.0.1:14222"},
		{"embedded host and port, no url", []string{"AOF2_NATS_EMBEDDED_HOST=10.1.2.3", "AOF2_NATS_EMBEDDED_PORT=14222"}, "nats://10.1.2.3:14222"},
		{"embedded on every interface", []string{"AOF2_NATS_EMBEDDED_HOST=0.0.0.0", "AOF2_NATS_EMBEDDED_PORT=14222"}, "nats://127.0.0.1:14222"},
		{"embedded on every IPv6 interface", []string{"AOF2_NATS_EMBEDDED_HOST=::", "AOF2_NATS_EMBEDDED_PORT=14222"}, "nats://[::1]:14222"},
		{"url set, embedded not enabled", []string{"AOF2_NATS_URL=nats://10.0.0.5:4222", "AOF2_NATS_EMBEDDED_PORT=14222"}, "nats://10.0.0.5:4222"},
		// The gateway connects to its embedded server even when nats.url is set.
		{"embedded enabled", []string{"AOF2_NATS_URL=nats://10.0.0.5:4222", "AOF2_NATS_EMBEDDED_ENABLED=true", "AOF2_NATS_EMBEDDED_PORT=14222"}, "nats://127.0.0.1:14222"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := config.Load(config.LoadOptions{Env: append([]string{"HOME=" + t.TempDir(), "AOF2_TIER2_ENABLED=false"}, c.env...)})
			if err != nil {
				t.Fatal(err)
			}
			if got := gatewayNATSURL(cfg); got != c.want {
				t.Errorf("gatewayNATSURL = %q, want %q", got, c.want)
			}
		})
	}
}

// TestFindsGatewayOnEmbeddedPortWhenNATSURLUnset: a gateway started with
// --dev and nats.embedded.port in its configuration file listens there;
// aof2-admin with the same file (no nats.url, no --nats-url) finds it.
func TestFindsGatewayOnEmbeddedPortWhenNATSURLUnset(t *testing.T) {
	_, s := buildRoot(t)
	t.Cleanup(func() { s.Close() })
	n := harness.StartNATS(t)
	svc, err := control.New(n.Connect(t), s, control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })

	path := filepath.Join(t.TempDir(), "gateway.toml")
	if err := os.WriteFile(path, fmt.Appendf(nil, "[nats.embedded]\nport = %d\n", n.Port), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, "--config", path, "status")
	if code != 0 || !strings.Contains(out, "streams: demo") {
		t.Fatalf("status with nats.embedded.port = %d: exit %d, stdout %q, stderr %q", n.Port, code, out, errOut)
	}
}
