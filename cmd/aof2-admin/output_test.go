package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/bop-aof/aof/control"
)

// TestStatusShowsTheGatewaysTier2Health: the human status shows Tier 2
// as the gateway reports it in its status (the tier2 object of /readyz:
// state, breaker, bucket check, last error), not only whether the store
// has a Tier 2 client.
func TestStatusShowsTheGatewaysTier2Health(t *testing.T) {
	cases := []struct {
		name    string
		tier2   bool
		gateway string
		want    string
	}{
		{"degraded", true, `{"ready":true,"tier2":{"state":"degraded","bucket_checked":false,"breaker":"open","last_error":"dial tcp 10.0.0.9:9000: connection refused"}}`,
			"tier 2: degraded, breaker open, bucket not checked (last error: dial tcp 10.0.0.9:9000: connection refused)\n"},
		{"ok", true, `{"ready":true,"tier2":{"state":"ok","bucket_checked":true,"breaker":"closed"}}`, "tier 2: ok\n"},
		{"disabled", false, `{"ready":true,"tier2":{"state":"disabled","bucket_checked":false}}`, "tier 2: disabled\n"},
		{"no gateway status, tier 2 configured", true, "", "tier 2: configured\n"},
		{"no gateway status, no tier 2", false, "", "tier 2: disabled\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			s := control.StatusResponse{Service: "aof-admin", Version: "1", Root: "/data", Tier2: c.tier2, Streams: []string{"demo"}}
			if c.gateway != "" {
				s.Gateway = []byte(c.gateway)
			}
			printStatus(&b, s)
			if !strings.Contains(b.String(), "\n"+c.want) {
				t.Errorf("status output:\n%s\nwant the line %q", b.String(), c.want)
			}
		})
	}
}
