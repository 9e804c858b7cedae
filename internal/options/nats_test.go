package options

import (
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
)

func TestNkeyAcceptsAnInlineSeedAndNeverShowsIt(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	if _, err := nkeyOption(string(seed)); err != nil {
		t.Fatalf("inline seed: %v", err)
	}
	bad := "SUAMADEUPSEEDTHATISNOTVALID"
	if _, err := nkeyOption(bad); err == nil || strings.Contains(err.Error(), bad) {
		t.Fatalf("invalid inline seed: %v (must fail without showing the seed)", err)
	}
	if _, err := nkeyOption("/no/such/dir/user.nk"); err == nil || !strings.Contains(err.Error(), "nats.nkey") {
		t.Fatalf("missing seed file: %v (want an error naming nats.nkey)", err)
	}
}
