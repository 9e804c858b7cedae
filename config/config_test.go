package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// baseTOML is the smallest file that validates: Tier 2 needs an endpoint,
// a bucket and credentials.
const baseTOML = `
[tier2]
endpoint = "http://127.0.0.1:7070"
bucket = "aof-test"
access_key = "test-access"
secret_key = "test-secret"
`

// baseEnv supplies the Tier 2 settings through the environment.
var baseEnv = []string{
	"AOF2_TIER2_ENDPOINT=http://127.0.0.1:7070", "AOF2_TIER2_BUCKET=aof-test",
	"AOF2_TIER2_ACCESS_KEY=test-access", "AOF2_TIER2_SECRET_KEY=test-secret",
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// opts isolates a test from the real environment and home directory.
func opts(t *testing.T, file string, env ...string) LoadOptions {
	return LoadOptions{
		File:        file,
		Env:         append([]string{}, env...),
		DefaultFile: filepath.Join(t.TempDir(), "absent.toml"),
	}
}

func mustLoad(t *testing.T, o LoadOptions) *Config {
	t.Helper()
	c, err := Load(o)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func flags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

// errorLines returns the messages of a joined error, one per problem.
func errorLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func TestPrecedenceDefaultFileEnvFlag(t *testing.T) {
	cases := []struct {
		key                 string
		get                 func(*Config) any
		def                 any
		file, env, flag     string // raw forms
		fileVal, envVal, fv any
	}{
		{"ingest.batch_size", func(c *Config) any { return c.Ingest.BatchSize }, 2048,
			"100", "200", "300", 100, 200, 300},
		{"tier0.cluster_max_bytes", func(c *Config) any { return c.Tier0.ClusterMaxBytes }, 2 * GiB,
			`"512MiB"`, "1.5GB", "3GiB", 512 * MiB, Bytes(1_500_000_000), 3 * GiB},
		{"ingest.ack_wait", func(c *Config) any { return c.Ingest.AckWait }, Duration(30 * time.Second),
			`"10s"`, "250ms", "1m", Duration(10 * time.Second), Duration(250 * time.Millisecond), Duration(time.Minute)},
		{"tier2.create_bucket", func(c *Config) any { return c.Tier2.CreateBucket }, false,
			"true", "false", "true", true, false, true},
		{"metrics.listen", func(c *Config) any { return c.Metrics.Listen }, "127.0.0.1:9464",
			`"127.0.0.1:1001"`, "127.0.0.1:1002", "127.0.0.1:1003", "127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1003"},
		{"tier2.retry.jitter", func(c *Config) any { return c.Tier2.Retry.Jitter }, 0.2,
			"0.5", "0.25", "0", 0.5, 0.25, 0.0},
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			// Dotted keys at the root of the file, credentials from env.
			fileOnly := writeFile(t, tc.key+" = "+tc.file+"\n")
			env := append([]string{EnvName(tc.key) + "=" + tc.env}, baseEnv...)
			o := func(file string, env ...string) LoadOptions { return opts(t, file, append(env, baseEnv...)...) }

			if got := tc.get(mustLoad(t, o(""))); !reflect.DeepEqual(got, tc.def) {
				t.Errorf("default: got %v, want %v", got, tc.def)
			}
			if got := tc.get(mustLoad(t, o(fileOnly))); !reflect.DeepEqual(got, tc.fileVal) {
				t.Errorf("file: got %v, want %v", got, tc.fileVal)
			}
			if got := tc.get(mustLoad(t, opts(t, fileOnly, env...))); !reflect.DeepEqual(got, tc.envVal) {
				t.Errorf("env over file: got %v, want %v", got, tc.envVal)
			}
			withFlags := opts(t, fileOnly, env...)
			withFlags.Flags = flags(t, "--"+tc.key+"="+tc.flag)
			if got := tc.get(mustLoad(t, withFlags)); !reflect.DeepEqual(got, tc.fv) {
				t.Errorf("flag over env: got %v, want %v", got, tc.fv)
			}
			// Registered but unchanged flags carry defaults and must not
			// override anything.
			unchanged := opts(t, fileOnly, env...)
			unchanged.Flags = flags(t)
			if got := tc.get(mustLoad(t, unchanged)); !reflect.DeepEqual(got, tc.envVal) {
				t.Errorf("unchanged flag overrode env: got %v, want %v", got, tc.envVal)
			}
		})
	}
}

func TestDefaultsSurviveLoad(t *testing.T) {
	got := mustLoad(t, opts(t, writeFile(t, baseTOML)))
	want := Default()
	want.Tier2.Endpoint, want.Tier2.Bucket = "http://127.0.0.1:7070", "aof-test"
	want.Tier2.AccessKey, want.Tier2.SecretKey = "test-access", "test-secret"
	want.File = got.File
	if d := Diff(want, got); len(d) != 0 {
		t.Fatalf("defaults changed by Load: %+v", d)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Load(defaults) = %#v, want %#v", got, want)
	}
}

func TestFileSelection(t *testing.T) {
	t.Run("missing explicit file is an error naming it", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nope.toml")
		_, err := Load(opts(t, missing))
		want := "config: config file " + missing + ": no such file or directory"
		if err == nil || err.Error() != want {
			t.Fatalf("got %v, want %q", err, want)
		}
	})
	t.Run("AOF2_CONFIG names the file", func(t *testing.T) {
		p := writeFile(t, "data_root = \"/from/env/config\"\n"+baseTOML)
		c := mustLoad(t, opts(t, "", "AOF2_CONFIG="+p))
		if c.DataRoot != "/from/env/config" || c.File != p {
			t.Fatalf("data_root %q file %q", c.DataRoot, c.File)
		}
	})
	t.Run("missing AOF2_CONFIG file is an error naming it", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "gone.toml")
		_, err := Load(opts(t, "", "AOF2_CONFIG="+missing))
		if err == nil || !strings.Contains(err.Error(), missing) {
			t.Fatalf("got %v, want an error naming %s", err, missing)
		}
	})
	t.Run("missing default file is fine", func(t *testing.T) {
		o := opts(t, "", "AOF2_TIER2_ENDPOINT=http://h:1", "AOF2_TIER2_BUCKET=bkt",
			"AOF2_TIER2_ACCESS_KEY=a", "AOF2_TIER2_SECRET_KEY=s")
		c := mustLoad(t, o)
		if c.File != "" {
			t.Fatalf("File = %q, want none", c.File)
		}
	})
	t.Run("present default file is read", func(t *testing.T) {
		o := opts(t, "")
		o.DefaultFile = writeFile(t, "data_root = \"/from/default\"\n"+baseTOML)
		if c := mustLoad(t, o); c.DataRoot != "/from/default" {
			t.Fatalf("data_root %q", c.DataRoot)
		}
	})
	t.Run("--config beats AOF2_CONFIG", func(t *testing.T) {
		p1 := writeFile(t, "data_root = \"/one\"\n"+baseTOML)
		p2 := writeFile(t, "data_root = \"/two\"\n"+baseTOML)
		o := opts(t, "", "AOF2_CONFIG="+p1)
		o.Flags = flags(t, "--config", p2)
		if c := mustLoad(t, o); c.DataRoot != "/two" {
			t.Fatalf("data_root %q, want /two", c.DataRoot)
		}
	})
}

func TestValidationMessages(t *testing.T) {
	cases := []struct {
		name string
		toml string   // appended to baseTOML
		env  []string // applied over the file
		key  string
		want string
	}{
		{"zero tier0 budget", "[tier0]\ncluster_max_bytes = 0\n", nil,
			"tier0.cluster_max_bytes", "config: tier0.cluster_max_bytes must be > 0, got 0"},
		{"negative tier0 budget", "", []string{"AOF2_TIER0_CLUSTER_MAX_BYTES=-1MiB"},
			"tier0.cluster_max_bytes", "config: tier0.cluster_max_bytes must be > 0, got -1MiB"},
		{"tier1 smaller than a segment", "[tier1]\nmax_bytes = \"1MiB\"\n", nil,
			"tier1.max_bytes", "config: tier1.max_bytes (1MiB) must be at least one segment (segment.target_bytes = 64MiB)"},
		{"tier0 smaller than a segment", "[tier0]\ncluster_max_bytes = \"1MiB\"\n", nil,
			"tier0.cluster_max_bytes", "config: tier0.cluster_max_bytes (1MiB) must be at least one segment (segment.target_bytes = 64MiB)"},
		{"endpoint without scheme", "", []string{"AOF2_TIER2_ENDPOINT=localhost:9000"},
			"tier2.endpoint", `config: tier2.endpoint "localhost:9000" must start with http:// or https://`},
		{"endpoint with path", "", []string{"AOF2_TIER2_ENDPOINT=http://h:9000/bucket"},
			"tier2.endpoint", `config: tier2.endpoint "http://h:9000/bucket" must be scheme://host[:port] only (no path, query or credentials)`},
		{"secure with http", "", []string{"AOF2_TIER2_SECURE=true"},
			"tier2.secure", `config: tier2.secure is true but tier2.endpoint "http://127.0.0.1:7070" is not https://`},
		{"missing credentials", "", []string{"AOF2_TIER2_SECRET_KEY="},
			"tier2.access_key", "config: tier2.access_key and tier2.secret_key are required when tier2 is enabled"},
		{"bad bucket", "", []string{"AOF2_TIER2_BUCKET=AOF_Demo"},
			"tier2.bucket", `config: tier2.bucket "AOF_Demo" is not a valid bucket name: 'A' at byte 0; only lowercase letters, digits, '.' and '-' are allowed`},
		{"log level enum", "[log]\nlevel = \"verbose\"\n", nil,
			"log.level", `config: log.level "verbose" must be one of debug, info, warn, error`},
		{"log format enum", "", []string{"AOF2_LOG_FORMAT=xml"},
			"log.format", `config: log.format "xml" must be one of text, json`},
		{"discard old is gone", "[ingest]\ndiscard = \"old\"\n", nil,
			"ingest.discard", `config: ingest.discard "old" is no longer supported: the ingest stream always refuses producers when full (discard new), because it holds the messages not yet archived in Tier 2; remove the key`},
		{"negative keep", "[ingest]\nkeep = -1\n", nil,
			"ingest.keep", `config: ingest.keep must be >= 0, got -1`},
		{"exporter enum", "[tracing]\nexporter = \"jaeger\"\n", nil,
			"tracing.exporter", `config: tracing.exporter "jaeger" must be one of none, stdout, otlp-grpc, otlp-http`},
		{"wildcard prefix", "[ingest]\nsubject_prefix = \"aof.ingest.>\"\n", nil,
			"ingest.subject_prefix", `config: ingest.subject_prefix: subject prefix "aof.ingest.>" contains a wildcard (* or >)`},
		{"empty prefix token", "", []string{"AOF2_MANIFEST_SUBJECT_PREFIX=aof..manifest"},
			"manifest.subject_prefix", `config: manifest.subject_prefix: subject prefix "aof..manifest" has an empty token (leading, trailing or double dot)`},
		{"dead letters inside ingest subjects", "", []string{"AOF2_INGEST_DEADLETTER_PREFIX=aof.ingest.dead"},
			"ingest.deadletter_prefix", `config: ingest.deadletter_prefix "aof.ingest.dead" overlaps ingest.subject_prefix "aof.ingest"; subject prefixes must be disjoint`},
		{"read inside admin subjects", "", []string{"AOF2_READ_SUBJECT_PREFIX=aof.admin.read"},
			"read.subject_prefix", `config: read.subject_prefix "aof.admin.read" overlaps control.subject_prefix "aof.admin"; subject prefixes must be disjoint`},
		{"read wildcard prefix", "[read]\nsubject_prefix = \"aof.read.*\"\n", nil,
			"read.subject_prefix", `config: read.subject_prefix: subject prefix "aof.read.*" contains a wildcard (* or >)`},
		{"read concurrency", "", []string{"AOF2_READ_MAX_CONCURRENT=0"},
			"read.max_concurrent", "config: read.max_concurrent must be between 1 and 4096, got 0"},
		{"read prefetch segments", "", []string{"AOF2_READ_PREFETCH_SEGMENTS=-1"},
			"read.prefetch_segments", "config: read.prefetch_segments must be between 0 and 64, got -1"},
		{"read prefetch budget", "[read]\nprefetch_bytes = 0\n", nil,
			"read.prefetch_bytes", "config: read.prefetch_bytes must be > 0, got 0"},
		{"stream name with dot", "", []string{"AOF2_INGEST_STREAM_NAME=AOF.INGEST"},
			"ingest.stream_name", `config: ingest.stream_name: JetStream stream name "AOF.INGEST" has '.' at byte 3; only A-Z, a-z, 0-9, _ and - are allowed`},
		{"same stream twice", "", []string{"AOF2_MANIFEST_STREAM_NAME=AOF_INGEST"},
			"manifest.stream_name", `config: manifest.stream_name "AOF_INGEST" must differ from ingest.stream_name`},
		{"consumer name with space", "", []string{"AOF2_INGEST_CONSUMER_NAME=aof gateway"},
			"ingest.consumer_name", `config: ingest.consumer_name: consumer name "aof gateway" has ' ' at byte 3; only A-Z, a-z, 0-9, _ and - are allowed`},
		{"replicas", "", []string{"AOF2_INGEST_REPLICAS=7"},
			"ingest.replicas", "config: ingest.replicas must be between 1 and 5, got 7"},
		{"jitter", "", []string{"AOF2_TIER2_RETRY_JITTER=1.5"},
			"tier2.retry.jitter", "config: tier2.retry.jitter must be between 0 and 1, got 1.5"},
		{"zero workers", "", []string{"AOF2_TIER1_HYDRATION_WORKERS=0"},
			"tier1.hydration_workers", "config: tier1.hydration_workers must be > 0, got 0"},
		{"zero ack wait", "", []string{"AOF2_INGEST_ACK_WAIT=0s"},
			"ingest.ack_wait", "config: ingest.ack_wait must be > 0, got 0s"},
		{"negative retention", "", []string{"AOF2_RETENTION_MAX_AGE=-1h"},
			"retention.max_age", "config: retention.max_age must be >= 0, got -1h"},
		{"zstd level", "", []string{"AOF2_TIER1_COMPRESSION_LEVEL=23"},
			"tier1.compression_level", "config: tier1.compression_level must be between 1 and 22, got 23"},
		{"cert without key", "", []string{"AOF2_TLS_CERT=/etc/aof/client.pem"},
			"tls.cert", "config: tls.cert and tls.key must be set together"},
		{"nats url needed without embedded server", "", []string{"AOF2_NATS_URL="},
			"nats.url", "config: nats.url is required unless nats.embedded.enabled is true"},
		{"embedded port", "", []string{"AOF2_NATS_EMBEDDED_ENABLED=true", "AOF2_NATS_EMBEDDED_PORT=70000"},
			"nats.embedded.port", "config: nats.embedded.port must be between 1 and 65535, got 70000"},
		{"metrics listen", "", []string{"AOF2_METRICS_LISTEN=9464"},
			"metrics.listen", `config: metrics.listen "9464" must be host:port ("" disables metrics)`},
		{"sampling ratio", "", []string{"AOF2_TRACING_SAMPLING_RATIO=2"},
			"tracing.sampling_ratio", "config: tracing.sampling_ratio must be between 0 and 1, got 2"},
		{"no partitions", "[cluster]\npartitions = 0\n", nil,
			"cluster.partitions", "config: cluster.partitions must be between 1 and 1024, got 0"},
		{"too many partitions", "", []string{"AOF2_CLUSTER_PARTITIONS=1025"},
			"cluster.partitions", "config: cluster.partitions must be between 1 and 1024, got 1025"},
		{"cluster bucket with dot", "", []string{"AOF2_CLUSTER_BUCKET=AOF.CLUSTER"},
			"cluster.bucket", `config: cluster.bucket: KV bucket name "AOF.CLUSTER" has '.' at byte 3; only A-Z, a-z, 0-9, _ and - are allowed`},
		{"cluster replicas", "[cluster]\nreplicas = 0\n", nil,
			"cluster.replicas", "config: cluster.replicas must be between 1 and 5, got 0"},
		{"lease ttl too short", "", []string{"AOF2_CLUSTER_LEASE_TTL=500ms"},
			"cluster.lease_ttl", "config: cluster.lease_ttl must be at least 1s, got 500ms"},
		{"node id with dot", "", []string{"AOF2_NODE_ID=gw.1"},
			"node.id", `config: node.id: node id "gw.1" has '.' at byte 2; only A-Z, a-z, 0-9, _ and - are allowed`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(opts(t, writeFile(t, baseTOML+tc.toml), tc.env...))
			lines := errorLines(err)
			found := false
			for _, l := range lines {
				found = found || l == tc.want
			}
			if !found {
				t.Fatalf("want line %q, got:\n%v", tc.want, err)
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Key != tc.key {
				t.Fatalf("errors.As: got %+v, want key %q", ce, tc.key)
			}
		})
	}
}

// The cluster section has the documented defaults, and node.id is set by
// AOF2_NODE_ID as the issue asks.
func TestClusterDefaultsAndNodeIDFromEnvironment(t *testing.T) {
	c := mustLoad(t, opts(t, writeFile(t, baseTOML)))
	want := Cluster{Partitions: 16, Bucket: "AOF_CLUSTER", Replicas: 1, LeaseTTL: Duration(10 * time.Second), RebalancePause: Duration(2 * time.Second)}
	if c.Cluster != want || c.Node.ID != "" {
		t.Fatalf("defaults: cluster %+v node %+v, want %+v and an empty id", c.Cluster, c.Node, want)
	}
	if EnvName("node.id") != "AOF2_NODE_ID" {
		t.Fatalf("node.id is set by %q, want AOF2_NODE_ID", EnvName("node.id"))
	}
	c = mustLoad(t, opts(t, writeFile(t, baseTOML+"[cluster]\nlease_ttl = \"3s\"\npartitions = 64\n"), "AOF2_NODE_ID=gw-a"))
	if c.Node.ID != "gw-a" || c.Cluster.LeaseTTL.D() != 3*time.Second || c.Cluster.Partitions != 64 {
		t.Fatalf("got node %q, cluster %+v", c.Node.ID, c.Cluster)
	}
}

func TestValidationReportsEveryProblem(t *testing.T) {
	_, err := Load(opts(t, writeFile(t, baseTOML),
		"AOF2_TIER0_CLUSTER_MAX_BYTES=0", "AOF2_LOG_LEVEL=loud", "AOF2_TIER2_ENDPOINT=minio:9000"))
	if n := len(errorLines(err)); n != 3 {
		t.Fatalf("want 3 problems, got %d:\n%v", n, err)
	}
}

func TestFileErrors(t *testing.T) {
	t.Run("unknown key", func(t *testing.T) {
		p := writeFile(t, baseTOML+"[tier9]\nfoo = 1\n")
		_, err := Load(opts(t, p))
		want := `config: unknown key "tier9.foo" in ` + p
		if err == nil || err.Error() != want {
			t.Fatalf("got %v, want %q", err, want)
		}
	})
	t.Run("misspelt nested key", func(t *testing.T) {
		p := writeFile(t, baseTOML+"[tier2.retry]\nmax_attempt = 3\n")
		_, err := Load(opts(t, p))
		if err == nil || !strings.Contains(err.Error(), `unknown key "tier2.retry.max_attempt"`) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("malformed TOML names the line", func(t *testing.T) {
		p := writeFile(t, "data_root = \"./x\"\n[tier0]\ncluster_max_bytes = = 3\n")
		_, err := Load(opts(t, p))
		prefix := "config: parse " + p + ": line 3: "
		if err == nil || !strings.HasPrefix(err.Error(), prefix) {
			t.Fatalf("got %v, want prefix %q", err, prefix)
		}
	})
	t.Run("wrong value types", func(t *testing.T) {
		p := writeFile(t, baseTOML+"[ingest]\nbatch_size = \"many\"\nack_wait = 30\nmax_record_bytes = 1.5\n")
		_, err := Load(opts(t, p))
		for _, want := range []string{
			`config: ingest.batch_size: invalid integer "many" (from ` + p + `)`,
			`config: ingest.ack_wait: must be a duration string with a unit like "250ms" or "5m", got a bare number (from ` + p + `)`,
			`config: ingest.max_record_bytes: must be a byte size like "64MiB" or an integer, got a float (from ` + p + `)`,
		} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("missing %q in:\n%v", want, err)
			}
		}
	})
	t.Run("plain integer bytes", func(t *testing.T) {
		c := mustLoad(t, opts(t, writeFile(t, baseTOML+"[ingest]\nmax_record_bytes = 4096\n")))
		if c.Ingest.MaxRecordBytes != 4096 {
			t.Fatalf("got %d", c.Ingest.MaxRecordBytes)
		}
	})
}

func TestEnvironment(t *testing.T) {
	t.Run("unknown AOF2 variable is an error naming it", func(t *testing.T) {
		_, err := Load(opts(t, writeFile(t, baseTOML), "AOF2_TIER0_CLUSTER_MAX_BYTE=1GiB", "PATH=/bin"))
		want := "config: unknown environment variable AOF2_TIER0_CLUSTER_MAX_BYTE: no configuration key maps to it"
		if err == nil || err.Error() != want {
			t.Fatalf("got %v, want %q", err, want)
		}
	})
	t.Run("bad env value names key and variable", func(t *testing.T) {
		_, err := Load(opts(t, writeFile(t, baseTOML), "AOF2_NATS_EMBEDDED_PORT=http"))
		want := `config: nats.embedded.port: invalid integer "http" (from env AOF2_NATS_EMBEDDED_PORT)`
		if err == nil || err.Error() != want {
			t.Fatalf("got %v, want %q", err, want)
		}
	})
	t.Run("keys with underscores resolve against the known keys", func(t *testing.T) {
		c := mustLoad(t, opts(t, writeFile(t, baseTOML),
			"AOF2_TIER2_RETRY_BASE_DELAY_MS=250",
			"AOF2_NATS_EMBEDDED_STORE_DIR=/var/lib/aof/js",
			"AOF2_TIER0_CLUSTER_MAX_BYTES=4GiB",
			"AOF2_TIER0_ACTIVATION_QUEUE_WARN_THRESHOLD=8",
			"AOF2_TIER2_CREATE_BUCKET=true",
			"AOF2_METRICS_LISTEN=0.0.0.0:9100",
			"AOF2_DATA_ROOT=/srv/aof",
			"AOF2_TLS_CERT=/etc/aof/c.pem", "AOF2_TLS_KEY=/etc/aof/k.pem",
			"AOF2_INGEST_MAX_ACK_PENDING=10",
		))
		got := []any{c.Tier2.Retry.BaseDelayMS, c.NATS.Embedded.StoreDir, c.Tier0.ClusterMaxBytes,
			c.Tier0.ActivationQueueWarnThreshold, c.Tier2.CreateBucket, c.Metrics.Listen, c.DataRoot,
			c.TLS.Cert, c.TLS.Key, c.Ingest.MaxAckPending}
		want := []any{250, "/var/lib/aof/js", 4 * GiB, 8, true, "0.0.0.0:9100", "/srv/aof",
			"/etc/aof/c.pem", "/etc/aof/k.pem", 10}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %v\nwant %v", got, want)
		}
	})
	t.Run("env names", func(t *testing.T) {
		for key, want := range map[string]string{
			"tier0.cluster_max_bytes":   "AOF2_TIER0_CLUSTER_MAX_BYTES",
			"nats.embedded.port":        "AOF2_NATS_EMBEDDED_PORT",
			"tier2.create_bucket":       "AOF2_TIER2_CREATE_BUCKET",
			"metrics.listen":            "AOF2_METRICS_LISTEN",
			"data_root":                 "AOF2_DATA_ROOT",
			"tls.cert":                  "AOF2_TLS_CERT",
			"tier2.retry.base_delay_ms": "AOF2_TIER2_RETRY_BASE_DELAY_MS",
			"no.such_key":               "",
		} {
			if got := EnvName(key); got != want {
				t.Errorf("EnvName(%q) = %q, want %q", key, got, want)
			}
		}
		seen := map[string]string{}
		for _, k := range Keys() {
			if prev, dup := seen[EnvName(k)]; dup {
				t.Errorf("%s and %s share %s", prev, k, EnvName(k))
			}
			seen[EnvName(k)] = k
		}
	})
	t.Run("headers map from env replaces the file's", func(t *testing.T) {
		p := writeFile(t, baseTOML+"[tracing.headers]\nx-from-file = \"f\"\n")
		if c := mustLoad(t, opts(t, p)); !reflect.DeepEqual(c.Tracing.Headers, map[string]string{"x-from-file": "f"}) {
			t.Fatalf("file headers: %v", c.Tracing.Headers)
		}
		c := mustLoad(t, opts(t, p, "AOF2_TRACING_HEADERS=authorization=Bearer abc, x-team=ops"))
		want := map[string]string{"authorization": "Bearer abc", "x-team": "ops"}
		if !reflect.DeepEqual(c.Tracing.Headers, want) {
			t.Fatalf("got %v, want %v", c.Tracing.Headers, want)
		}
	})
}

func TestFlags(t *testing.T) {
	t.Run("aliases map flag names to keys", func(t *testing.T) {
		fs := pflag.NewFlagSet("gw", pflag.ContinueOnError)
		fs.String("data-root", "", "")
		fs.Bool("verbose", false, "not a config flag")
		if err := fs.Parse([]string{"--data-root=/alias", "--verbose"}); err != nil {
			t.Fatal(err)
		}
		o := opts(t, writeFile(t, baseTOML))
		o.Flags, o.FlagKeys = fs, map[string]string{"data-root": "data_root"}
		if c := mustLoad(t, o); c.DataRoot != "/alias" {
			t.Fatalf("data_root %q", c.DataRoot)
		}
	})
	t.Run("alias to unknown key is an error", func(t *testing.T) {
		fs := pflag.NewFlagSet("gw", pflag.ContinueOnError)
		fs.String("root", "", "")
		o := opts(t, writeFile(t, baseTOML))
		o.Flags, o.FlagKeys = fs, map[string]string{"root": "dataroot"}
		_, err := Load(o)
		if err == nil || err.Error() != `config: flag --root maps to unknown key "dataroot"` {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("bad flag value is rejected by the flag parser", func(t *testing.T) {
		fs := pflag.NewFlagSet("gw", pflag.ContinueOnError)
		fs.SetOutput(discard{})
		RegisterFlags(fs)
		if err := fs.Parse([]string{"--segment.target_bytes=64M"}); err == nil || !strings.Contains(err.Error(), "ambiguous unit") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("map flag", func(t *testing.T) {
		o := opts(t, writeFile(t, baseTOML))
		o.Flags = flags(t, "--tracing.headers=a=1,b=2")
		if c := mustLoad(t, o); !reflect.DeepEqual(c.Tracing.Headers, map[string]string{"a": "1", "b": "2"}) {
			t.Fatalf("headers %v", c.Tracing.Headers)
		}
	})
	t.Run("every key has a flag", func(t *testing.T) {
		fs := flags(t)
		for _, k := range Keys() {
			if fs.Lookup(k) == nil {
				t.Errorf("no flag for %s", k)
			}
		}
		if err := RegisterKeyFlags(fs, "tier0.nope"); err == nil {
			t.Error("RegisterKeyFlags accepted an unknown key")
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// secretsTOML holds one of every kind of secret.
const secretsTOML = `
[nats]
user = "gateway"
password = "nats-pass-XYZZY"
nkey = "SUAINLINESEEDXYZZY"
[tier2]
endpoint = "http://127.0.0.1:7070"
bucket = "aof-test"
access_key = "ACCESS-XYZZY"
secret_key = "SECRET-XYZZY"
[tracing.headers]
authorization = "Bearer TOKEN-XYZZY"
`

var leakProbes = []string{"nats-pass-XYZZY", "SUAINLINESEEDXYZZY", "ACCESS-XYZZY", "SECRET-XYZZY", "TOKEN-XYZZY", "XYZZY"}

func assertNoSecret(t *testing.T, where, text string) {
	t.Helper()
	for _, s := range leakProbes {
		if strings.Contains(text, s) {
			t.Errorf("%s leaks %q:\n%s", where, s, text)
		}
	}
}

func TestSecretsAreRedacted(t *testing.T) {
	c := mustLoad(t, opts(t, writeFile(t, secretsTOML)))
	if c.Tier2.SecretKey != "SECRET-XYZZY" || c.Tracing.Headers["authorization"] != "Bearer TOKEN-XYZZY" {
		t.Fatal("secrets not loaded")
	}

	s := c.String()
	assertNoSecret(t, "String()", s)
	for _, want := range []string{"tier2.secret_key = [REDACTED]", "nats.nkey = [REDACTED]", `tracing.headers = {"authorization" = "[REDACTED]"}`, `nats.user = "gateway"`} {
		if !strings.Contains(s, want) {
			t.Errorf("String() lacks %q", want)
		}
	}

	dump, err := json.Marshal(c.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, "Redacted()", string(dump))
	if tier2 := c.Redacted()["tier2"].(map[string]any); tier2["access_key"] != RedactedValue || tier2["bucket"] != "aof-test" {
		t.Errorf("Redacted tier2 = %v", tier2)
	}

	next := *c
	next.Tier2.SecretKey = "SECRET2-XYZZY"
	next.Tracing.Headers = map[string]string{"authorization": "Bearer NEW-XYZZY"}
	changes := Diff(c, &next)
	if len(changes) != 2 || changes[0].Key != "tier2.secret_key" || changes[1].Key != "tracing.headers" {
		t.Fatalf("Diff = %+v", changes)
	}
	assertNoSecret(t, "Diff", strings.ReplaceAll(strings.ReplaceAll(
		strings.Join([]string{changes[0].Old, changes[0].New, changes[1].Old, changes[1].New}, " "),
		"SECRET2", ""), "NEW", ""))
	if changes[0].Old != RedactedValue || changes[0].New != RedactedValue {
		t.Errorf("Diff secret change = %+v", changes[0])
	}

	// An nkey given as a file path is not a secret and stays readable.
	pathSeed := *c
	pathSeed.NATS.NKey = "/etc/aof/user.nk"
	if !strings.Contains(pathSeed.String(), `nats.nkey = "/etc/aof/user.nk"`) {
		t.Error("nkey path was redacted")
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	t.Run("Load", func(t *testing.T) {
		// Credentials pasted into the endpoint make its validation message
		// carry them; the message must still hide them.
		p := writeFile(t, secretsTOML+"[log]\nlevel = \"loud\"\n")
		_, err := Load(opts(t, p,
			"AOF2_TIER2_ENDPOINT=http://ACCESS-XYZZY:SECRET-XYZZY@s3.local/",
			"AOF2_NATS_CREDS=/etc/aof/user.creds",
			"AOF2_TRACING_SAMPLING_RATIO=SECRET-XYZZY",
		))
		if err == nil {
			t.Fatal("no error")
		}
		assertNoSecret(t, "Load error", err.Error())
	})
	t.Run("env parse error", func(t *testing.T) {
		_, err := Load(opts(t, writeFile(t, secretsTOML), "AOF2_TRACING_HEADERS=Bearer SECRET-XYZZY"))
		if err == nil {
			t.Fatal("no error")
		}
		assertNoSecret(t, "env error", err.Error())
	})
	t.Run("Validate", func(t *testing.T) {
		c := Default()
		c.Tier2.Endpoint, c.Tier2.Bucket = "https://ACCESS-XYZZY@s3.local/x", "b-XYZZY-bucket"
		c.Tier2.AccessKey, c.Tier2.SecretKey = "ACCESS-XYZZY", "SECRET-XYZZY"
		err := c.Validate()
		if err == nil {
			t.Fatal("no error")
		}
		assertNoSecret(t, "Validate", strings.ReplaceAll(err.Error(), "b-XYZZY-bucket", ""))
	})
}

func TestReloadable(t *testing.T) {
	for key, want := range map[string]bool{
		"tier0.cluster_max_bytes":               true,
		"tier1.max_bytes":                       true,
		"retention.max_age":                     true,
		"retention.max_bytes":                   true,
		"tier2.retry.max_attempts":              true,
		"tier1.compression_workers":             true,
		"tier1.hydration_workers":               true,
		"log.level":                             true,
		"segment.target_bytes":                  false,
		"nats.url":                              false,
		"metrics.listen":                        false,
		"ingest.stream_name":                    false,
		"tier2.secret_key":                      false,
		"no.such.key":                           false,
		"tier0.cluster_max_bytes.x":             false,
		"tier2.breaker.cooldown":                true,
		"log.format":                            false,
		"tier1.compression_level":               false,
		"tier2.concurrency":                     true,
		"tier0.activation_queue_warn_threshold": true,
	} {
		if got := Reloadable(key); got != want {
			t.Errorf("Reloadable(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestDiff(t *testing.T) {
	a := Default()
	b := Default()
	b.Tier0.ClusterMaxBytes = 4 * GiB
	b.Segment.TargetBytes = 32 * MiB
	b.Tracing.Headers = map[string]string{} // nil and empty are the same
	got := Diff(a, b)
	want := []Change{
		{Key: "segment.target_bytes", Old: "64MiB", New: "32MiB", Reloadable: false},
		{Key: "tier0.cluster_max_bytes", Old: "2GiB", New: "4GiB", Reloadable: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Diff = %+v\nwant %+v", got, want)
	}
	if d := Diff(a, Default()); len(d) != 0 {
		t.Fatalf("Diff of equal configs = %+v", d)
	}
}

func TestSectionTLSOverridesTopLevel(t *testing.T) {
	c := mustLoad(t, opts(t, writeFile(t, baseTOML+`
[tls]
ca = "/top/ca.pem"
cert = "/top/cert.pem"
key = "/top/key.pem"
[tier2.tls]
ca = "/s3/ca.pem"
`)))
	if got := c.NATSTLS(); got != (TLS{CA: "/top/ca.pem", Cert: "/top/cert.pem", Key: "/top/key.pem"}) {
		t.Errorf("NATSTLS = %+v", got)
	}
	if got := c.Tier2TLS(); got != (TLS{CA: "/s3/ca.pem"}) {
		t.Errorf("Tier2TLS = %+v, want the tier2 section whole", got)
	}
}

func TestTier2Endpoint(t *testing.T) {
	for _, tc := range []struct {
		endpoint, host string
		tls            bool
	}{
		{"http://127.0.0.1:7070", "127.0.0.1:7070", false},
		{"https://s3.example.com/", "s3.example.com", true},
		{"HTTPS://S3.example.com:443", "S3.example.com:443", true},
	} {
		t2 := Tier2{Endpoint: tc.endpoint}
		if t2.Host() != tc.host || t2.UseTLS() != tc.tls {
			t.Errorf("%s: Host %q UseTLS %v, want %q %v", tc.endpoint, t2.Host(), t2.UseTLS(), tc.host, tc.tls)
		}
	}
}

func TestExampleLocalConfigLoads(t *testing.T) {
	c := mustLoad(t, opts(t, filepath.Join("..", "examples", "aof2-demo", "config", "local.toml")))
	checks := []struct {
		name      string
		got, want any
	}{
		{"data_root", c.DataRoot, "./data/demo"},
		{"embedded", c.NATS.Embedded, Embedded{Enabled: true, Host: "127.0.0.1", Port: 4222}},
		{"store dir", c.EmbeddedStoreDir(), filepath.Join("data", "demo", "nats")},
		{"tier2 host", c.Tier2.Host(), "127.0.0.1:7070"},
		{"tier2 tls", c.Tier2.UseTLS(), false},
		{"bucket", c.Tier2.Bucket, "aof-demo"},
		{"access", c.Tier2.AccessKey, "aofdemo"},
		{"secret", c.Tier2.SecretKey, "aofdemo-secret"},
		{"create_bucket", c.Tier2.CreateBucket, true},
		{"segment", c.Segment.TargetBytes, 1 * MiB},
		{"metrics", c.Metrics.Listen, "127.0.0.1:9464"},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Bytes
		str  string
	}{
		{"64MiB", 64 * MiB, "64MiB"},
		{"1.5GB", 1_500_000_000, "1500MB"},
		{"1.5GiB", 1536 * MiB, "1536MiB"},
		{"4096", 4 * KiB, "4KiB"},
		{"1000", 1000, "1KB"},
		{"1001", 1001, "1001"},
		{"0", 0, "0"},
		{"512 kib", 512 * KiB, "512KiB"},
		{"2TiB", 2 * TiB, "2TiB"},
		{"-1MiB", -MiB, "-1MiB"},
		{"10B", 10, "10"},
	} {
		got, err := ParseBytes(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			continue
		}
		if got.String() != tc.str {
			t.Errorf("String(%d) = %q, want %q", got, got.String(), tc.str)
		}
		if back, err := ParseBytes(got.String()); err != nil || back != got {
			t.Errorf("round trip %q: %d, %v", got.String(), back, err)
		}
	}
	for _, bad := range []string{"", "MiB", "64M", "64 parsecs", "1.2.3GB", "99999999999TiB"} {
		if _, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) accepted", bad)
		}
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		str  string
	}{
		{"250ms", 250 * time.Millisecond, "250ms"},
		{"5m", 5 * time.Minute, "5m"},
		{"1h30m", 90 * time.Minute, "1h30m"},
		{"2h", 2 * time.Hour, "2h"},
		{"7d", 7 * 24 * time.Hour, "168h"},
		{"1d12h", 36 * time.Hour, "36h"},
		{"0", 0, "0s"},
		{"-1h", -time.Hour, "-1h"},
	} {
		got, err := ParseDuration(tc.in)
		if err != nil || got.D() != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got.D(), err, tc.want)
			continue
		}
		if got.String() != tc.str {
			t.Errorf("String(%v) = %q, want %q", got.D(), got.String(), tc.str)
		}
		if back, err := ParseDuration(got.String()); err != nil || back != got {
			t.Errorf("round trip %q: %v, %v", got.String(), back, err)
		}
	}
	for _, bad := range []string{"", "30", "1.5", "5 minutes", "d", "xd"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
}

func TestValidStreamName(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"orders", ""},
		{"Orders_2024-eu", ""},
		{strings.Repeat("a", 64), ""},
		{"", "stream name is empty"},
		{strings.Repeat("a", 65), "stream name is 65 characters long; at most 64 are allowed"},
		{"orders.eu", `stream name "orders.eu" has '.' at byte 6; only A-Z, a-z, 0-9, _ and - are allowed`},
		{"a*", `stream name "a*" has '*' at byte 1; only A-Z, a-z, 0-9, _ and - are allowed`},
		{"café", `stream name "café" has 'é' at byte 3; only A-Z, a-z, 0-9, _ and - are allowed`},
		{"a/b", `stream name "a/b" has '/' at byte 1; only A-Z, a-z, 0-9, _ and - are allowed`},
	} {
		err := ValidStreamName(tc.in)
		got := ""
		if err != nil {
			got = err.Error()
			if !errors.Is(err, ErrInvalidName) {
				t.Errorf("%q: error does not wrap ErrInvalidName", tc.in)
			}
		}
		if got != tc.want {
			t.Errorf("ValidStreamName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestURLCredentialsAreRedactedEverywhere(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":            "nats://127.0.0.1:4222",
		"nats://alice:s3cret@h:4222":       "nats://[REDACTED]@h:4222",
		"tls://a:4222,nats://tok@b:4222":   "tls://a:4222,nats://[REDACTED]@b:4222",
		"alice:s3cret@h:4222":              "[REDACTED]@h:4222",
		"http://key:s3cret@s3.example:443": "http://[REDACTED]@s3.example:443",
	} {
		if got := RedactUserinfo(in); got != want {
			t.Errorf("RedactUserinfo(%q) = %q, want %q", in, got, want)
		}
	}
	old, next := Default(), Default()
	old.NATS.URL = "nats://alice:old-s3cret@h:4222"
	next.NATS.URL = "nats://alice:new-s3cret@h:4222"
	var shown []string
	for _, ch := range Diff(old, next) {
		shown = append(shown, ch.Key, ch.Old, ch.New)
	}
	shown = append(shown, next.String(), fmt.Sprint(next.Redacted()))
	for _, s := range shown {
		if strings.Contains(s, "s3cret") {
			t.Fatalf("a URL password is shown: %s", s)
		}
	}
}
