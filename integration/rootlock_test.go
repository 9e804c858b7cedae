package integration

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bop-aof/aof/integration/harness"
)

// TestSecondWriterOfAGatewaysDataRootFailsNamingItsPid: a second gateway
// on the data root a running gateway has open exits at once with code 4,
// naming the running one's pid, and so does aof2-admin --root (exit 1,
// pointing to the online command); the first gateway goes on serving.
func TestSecondWriterOfAGatewaysDataRootFailsNamingItsPid(t *testing.T) {
	e := newEnv(t)
	g := e.startGateway()
	data := filepath.Join(e.root, "data")
	want := fmt.Sprintf("data root %s is locked by pid %d (another aof-gateway or aof2-admin --root holds it)", data, g.cmd.Process.Pid)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	second := exec.CommandContext(ctx, binary(t, "aof-gateway"))
	second.Env = e.environ(fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t)))
	out, err := second.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 4 || !strings.Contains(string(out), want) {
		t.Fatalf("second gateway: %v, want exit 4 and %q; output:\n%s", err, want, out)
	}

	out2, err := e.admin("dump", "--root", data)
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out2, want) || !strings.Contains(out2, "leave out --root") {
		t.Fatalf("aof2-admin dump --root: %v, want exit 1 and %q; output:\n%s", err, want, out2)
	}
	if st, err := g.status(); err != nil || !st.Ready {
		t.Fatalf("the first gateway after the refusals: %+v, %v\n%s", st, err, e.gatewayLog())
	}
	e.mustAdmin("status")
}
