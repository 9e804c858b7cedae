package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bop-aof/aof/config"
)

func TestDefaultNodeID(t *testing.T) {
	root := t.TempDir()
	id := DefaultNodeID("gw1.example.com", root)
	if !strings.HasPrefix(id, "gw1-example-com-") || len(id) != len("gw1-example-com-")+8 {
		t.Fatalf("id %q: want the host name with '-' for '.', then 8 hex digits", id)
	}
	if again := DefaultNodeID("gw1.example.com", root); again != id {
		t.Fatalf("not stable: %q then %q", id, again)
	}
	// A relative root names the same directory as its absolute form.
	wd, _ := os.Getwd()
	rel, err := filepath.Rel(wd, root)
	if err != nil {
		t.Fatal(err)
	}
	if got := DefaultNodeID("gw1.example.com", rel); got != id {
		t.Fatalf("relative root gave %q, absolute %q", got, id)
	}
	if other := DefaultNodeID("gw1.example.com", filepath.Join(root, "second")); other == id {
		t.Fatal("two data roots on one host share a node id")
	}
	for _, host := range []string{"gw1.example.com", "", "höst name", strings.Repeat("h", 300)} {
		if err := config.ValidStreamName(DefaultNodeID(host, root)); err != nil {
			t.Errorf("host %q: %v", host, err)
		}
	}
}
