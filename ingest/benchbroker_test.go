package ingest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/integration/harness"
)

// brokerChildEnv makes the test binary run only a JetStream broker (see
// TestMain): the benchmark's broker in a process of its own, as in
// production, where the gateway connects to a server it does not host.
const brokerChildEnv = "AOF_BENCH_BROKER_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(brokerChildEnv); dir != "" {
		runBrokerChild(dir)
		return
	}
	os.Exit(m.Run())
}

// runBrokerChild starts a JetStream server storing under dir on a free
// loopback port, prints its URL, and runs until stdin closes.
func runBrokerChild(dir string) {
	s, err := server.NewServer(&server.Options{ServerName: "aof-bench", Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		fmt.Fprintln(os.Stderr, "broker not ready")
		os.Exit(1)
	}
	fmt.Println(s.ClientURL())
	io.Copy(io.Discard, os.Stdin)
	s.Shutdown()
}

// benchJetStream starts the benchmark's JetStream where AOF_BENCH_BROKER
// says: "process" (the default) runs it as a separate process, as in
// production, where the gateway connects to a broker it does not host;
// "embedded" runs it inside the benchmark process, sharing its Go
// scheduler. A separate broker is pinned to the first CPU and the
// benchmark to the others when there are two or more (AOF_BENCH_PIN=0
// leaves both free): that stands in for a broker on a machine of its own,
// so that neither side's CPU use slows the other. It returns the client
// and a description of the layout for the report.
func benchJetStream(b *testing.B) (jetstream.JetStream, string) {
	mode := os.Getenv("AOF_BENCH_BROKER")
	if mode == "" {
		mode = "process"
	}
	if mode == "embedded" {
		return harness.StartNATS(b).JetStream(b), "embedded in the benchmark process"
	}
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), brokerChildEnv+"="+b.TempDir())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	url, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("bench broker: %v", err)
	}
	where := "a separate process"
	if pin, err := strconv.ParseBool(os.Getenv("AOF_BENCH_PIN")); pin || err != nil {
		where = pinBroker(b, cmd.Process.Pid)
	}
	nc, err := nats.Connect(strings.TrimSpace(url))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	return js, where
}
