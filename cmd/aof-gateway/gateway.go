package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/cluster"
	"github.com/bop-aof/aof/config"
	"github.com/bop-aof/aof/control"
	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/internal/options"
	"github.com/bop-aof/aof/ownership"
	"github.com/bop-aof/aof/readservice"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tracing"
)

type runOptions struct {
	SealOnShutdown bool
	// ConfigLoader re-reads the configuration on SIGHUP.
	ConfigLoader func() (*config.Config, error)
	Follower     bool // --follower: own no partition, serve reads (replica.go)
}

// gateway is one running aof-gateway process.
type gateway struct {
	cfg      *config.Config
	log      *slog.Logger
	baseLog  *slog.Logger // log without the node attribute
	level    *slog.LevelVar
	prov     *tracing.Providers
	inst     *tracing.Instruments
	embedded *server.Server
	nc       *nats.Conn
	// natsURL and natsOpts dial the connections of their own (the read
	// service's) to the server nc is on.
	natsURL  string
	natsOpts []nats.Option
	js       jetstream.JetStream
	store    *tiers.Store
	control  interface{ Stop() error }
	read     *readservice.Service
	readNC   *nats.Conn // the read service's own connection
	replica  *tiers.Replica
	follower bool

	// Ownership: the cluster bucket, this gateway's node id, the
	// partition count the ingest stream was provisioned with, and the
	// pipelines of the partitions it owns.
	bucket     *cluster.Bucket
	node       string
	partitions int
	ingest     *partitionIngest
	manager    *cluster.Manager
	// draining is set by an operator's drain (or handover): the gateway
	// takes no partition until the drain is lifted or it restarts.
	draining atomic.Bool

	mu      sync.Mutex
	ready   bool
	lastErr error
}

func run(ctx context.Context, cfg *config.Config, opts runOptions) (err error) {
	// Background work started here (the Tier 2 bucket recheck) ends with run.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g := &gateway{cfg: cfg, follower: opts.Follower}
	g.log, g.level = tracing.NewLogger(cfg.Log.Level, cfg.Log.Format, os.Stderr)
	g.log.Info("gateway_starting", "version", version, "config", cfg.File, "data_root", cfg.DataRoot)
	for _, w := range cfg.Warnings() {
		g.log.Warn("config_warning", "key", w.Key, "detail", w.Msg)
	}
	ensureProcs(cfg.Tier1.CompressionWorkers, g.log)
	defer func() {
		if err != nil {
			g.log.Error("gateway_failed", "err", err)
		}
	}()

	g.prov, err = tracing.Setup(ctx, options.Tracing(cfg, version, instanceID()), tracing.WithGlobalProviders())
	if err != nil {
		return withCode(exitUsage, err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g.prov.Shutdown(sctx)
	}()
	if g.inst, err = g.prov.Instruments(); err != nil {
		return withCode(exitIO, err)
	}

	httpSrv, err := g.serveHTTP()
	if err != nil {
		return withCode(exitIO, err)
	}
	if httpSrv != nil {
		defer httpSrv.Close()
	}

	if err := g.connectNATS(ctx); err != nil {
		return err
	}
	defer g.closeNATS()

	if err := g.provision(ctx); err != nil {
		return err
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if _, err := g.reload(opts.ConfigLoader); err != nil {
					g.log.Error("config_reload_failed", "err", err)
				}
			}
		}
	}()

	for {
		restart, err := g.session(ctx, opts)
		if err != nil || !restart || ctx.Err() != nil {
			// A restart asked while the gateway is stopping is moot: the
			// session handed every partition over already.
			return err
		}
		g.log.Warn("gateway_store_reopening", "detail",
			"a partition taken over holds a stream whose local copy another owner archived past; the store is reopened to drop it")
	}
}

// session opens the store and runs the partitions this gateway can own
// until ctx ends (SIGTERM: every partition is handed over first) or a
// takeover needs the store reopened (restart true).
func (g *gateway) session(ctx context.Context, opts runOptions) (restart bool, err error) {
	store := &ownedStore{}
	runner := ownership.NewRunner(ownership.Options{Records: records{g.bucket}, Store: store, Ingest: g.ingest,
		PartitionOf: g.partitionOf, Logger: g.log})
	if err := g.openStore(ctx, runner.EpochOf); err != nil {
		return false, err
	}
	store.s = g.store
	g.ingest.store = g.store
	defer func() {
		if cerr := g.store.Close(); cerr != nil {
			g.log.Error("store_close_failed", "err", cerr)
			err = errors.Join(err, withCode(exitIO, cerr))
		}
		g.mu.Lock()
		g.store = nil
		g.mu.Unlock()
	}()

	restartc := make(chan struct{}, 1)
	m, err := cluster.NewManager(g.bucket, g.managerOptions(), cluster.HandlerFunc(func(hctx context.Context, l cluster.Lease, handover <-chan struct{}) {
		g.inst.IncOwnershipChange(hctx, "acquired")
		err := runner.Acquired(hctx, leaseOf{l: l, ctx: hctx}, handover)
		if errors.Is(context.Cause(hctx), cluster.ErrLeaseLost) {
			g.inst.IncOwnershipChange(context.WithoutCancel(hctx), "lost")
		} else {
			g.inst.IncOwnershipChange(context.WithoutCancel(hctx), "released")
		}
		if errors.Is(err, ownership.ErrRestart) {
			select {
			case restartc <- struct{}{}:
			default:
			}
		}
	}))
	if err != nil {
		return false, withCode(exitUsage, err)
	}
	if g.draining.Load() {
		// Drained before this session reopened the store: stay drained.
		if err := m.Drain(ctx, true); err != nil {
			g.log.Warn("drain_failed", "err", err)
		}
	}
	unregister, err := g.registerOwnershipGauges(m, runner)
	if err != nil {
		return false, withCode(exitIO, err)
	}
	defer unregister()
	mctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	owners := cluster.NewOwners(g.bucket, g.partitions, g.node, m.Owned, g.log)
	go owners.Run(mctx, time.Second)

	if err := g.startControl(opts, owners); err != nil {
		return false, withCode(exitIO, err)
	}
	if g.control != nil {
		defer g.control.Stop()
	}
	if err := g.openReplica(); err != nil {
		return false, withCode(exitIO, err)
	}
	defer g.closeReplica()
	if err := g.startRead(owners); err != nil {
		return false, withCode(exitIO, err)
	}
	defer g.stopRead()

	done := make(chan error, 1)
	go func() { done <- m.Run(mctx) }()
	g.mu.Lock()
	g.manager = m
	g.mu.Unlock()
	g.waitSettled(ctx, m)
	g.setReady(true, nil)
	g.log.Info("gateway_ready", "nats", g.nc.ConnectedUrlRedacted(), "ingest", g.cfg.Ingest.SubjectPrefix+".>",
		"node", g.node, "partitions", g.partitions)
	select {
	case <-ctx.Done():
	case <-restartc:
		restart = true
	case err := <-done:
		g.setReady(false, err)
		return false, withCode(exitIO, fmt.Errorf("partition ownership stopped: %w", err))
	}
	g.setReady(false, nil)
	g.log.Info("gateway_stopping", "handover", true)
	hctx, cancel := context.WithTimeout(context.Background(), 2*g.cfg.Cluster.LeaseTTL.D()+30*time.Second)
	// Draining first tells the other gateways to count this one out, so
	// they take its partitions at once rather than after a grace.
	if err := m.Drain(hctx, true); err != nil {
		g.log.Warn("partition_release_incomplete", "err", err)
	}
	cancel()
	stop()
	<-done
	g.mu.Lock()
	g.manager = nil
	g.mu.Unlock()
	return restart, nil
}

func (g *gateway) setReady(ready bool, err error) {
	g.mu.Lock()
	g.ready, g.lastErr = ready, err
	g.mu.Unlock()
}

func (g *gateway) connectNATS(ctx context.Context) error {
	cfg := g.cfg
	url := cfg.NATS.URL
	if cfg.NATS.Embedded.Enabled {
		dir := cfg.EmbeddedStoreDir()
		if dir == "" {
			dir = filepath.Join(cfg.DataRoot, "nats")
		}
		srv, err := server.NewServer(&server.Options{
			ServerName: "aof-gateway-dev",
			Host:       cfg.NATS.Embedded.Host,
			Port:       cfg.NATS.Embedded.Port,
			JetStream:  true,
			StoreDir:   dir,
			NoSigs:     true,
			NoLog:      true,
		})
		if err != nil {
			return withCode(exitUsage, fmt.Errorf("embedded nats-server: %w", err))
		}
		go srv.Start()
		if !srv.ReadyForConnections(10 * time.Second) {
			srv.Shutdown()
			return withCode(exitIO, fmt.Errorf("embedded nats-server did not start on %s:%d (port in use?)", cfg.NATS.Embedded.Host, cfg.NATS.Embedded.Port))
		}
		g.embedded = srv
		url = srv.ClientURL()
		g.log.Info("embedded_nats_started", "url", url, "store_dir", dir)
	}
	if url == "" {
		return withCode(exitUsage, errors.New("no NATS server: set nats.url (--nats-url, AOF2_NATS_URL) or use --dev"))
	}
	opts := []nats.Option{
		nats.Name("aof-gateway"),
		nats.Timeout(5 * time.Second),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			g.log.Warn("nats_disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { g.log.Info("nats_reconnected", "url", nc.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(natsErrorHandler(g.log)),
	}
	login, err := options.NATSLogin(cfg)
	if err != nil {
		return withCode(exitUsage, err)
	}
	opts = append(opts, login...)
	g.natsURL, g.natsOpts = url, opts
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		code := exitIO
		if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || strings.Contains(strings.ToLower(err.Error()), "authorization") {
			code = exitAuth
		}
		// The client's error may quote the URL, user info and all: the
		// message is rebuilt from redacted text, not wrapped.
		return withCode(code, fmt.Errorf("connect to NATS at %s: %s", redactURL(url), redactURL(err.Error())))
	}
	g.mu.Lock()
	g.nc = nc
	g.mu.Unlock()
	js, err := jetstream.New(nc)
	if err != nil {
		return withCode(exitIO, err)
	}
	// JetStream must answer: a NATS server without JetStream would
	// otherwise fail later with a less clear error.
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(actx); err != nil {
		return withCode(exitIO, fmt.Errorf("JetStream not available at %s: %w", redactURL(url), err))
	}
	g.js = js
	return nil
}

func (g *gateway) closeNATS() {
	if g.nc != nil {
		g.nc.Drain()
		for i := 0; i < 50 && !g.nc.IsClosed(); i++ {
			time.Sleep(20 * time.Millisecond)
		}
		g.nc.Close()
	}
	if g.embedded != nil {
		g.embedded.Shutdown()
		g.embedded.WaitForShutdown()
	}
}

// redactURL hides user info in NATS URLs, with or without a scheme.
func redactURL(u string) string { return config.RedactUserinfo(u) }

// openStore opens the store at data_root with its Tier 2 client. Tier 2
// being down does not stop it (openTier2). Local copies of streams that
// another owner archived past are discarded as it opens, and a stream
// opens at the epoch epochOf gives it.
func (g *gateway) openStore(ctx context.Context, epochOf func(string) uint64) error {
	cfg := g.cfg
	so := options.Store(cfg)
	if cfg.Tier2.Enabled {
		t2, err := g.openTier2(ctx)
		if err != nil {
			return err
		}
		so.Tier2 = t2
	} else {
		g.log.Warn("tier2_disabled", "detail", "segments stay in Tier 1 only and nothing is ever archived, so AOF_INGEST keeps every message; Tier 2 is the durable copy in production")
	}
	p, err := newManifestPublisher(ctx, g.js, cfg)
	if err != nil {
		return withCode(exitIO, err)
	}
	so.Publisher = p
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	discard, err := staleCopies(rctx, g.bucket)
	cancel()
	if err != nil {
		return withCode(exitIO, err)
	}
	so.Discard, so.EpochOf = discard, epochOf
	so.Logger, so.Tracer, so.Instruments = g.log, g.prov.Tracer(tracing.InstrumentationName), g.inst
	store, err := tiers.Open(ctx, so)
	if err != nil {
		return withCode(exitIO, err)
	}
	g.mu.Lock()
	g.store = store
	g.mu.Unlock()
	g.log.Info("store_opened", "root", cfg.DataRoot, "streams", len(store.Streams()))
	return nil
}

// provision creates or updates the ingest and dead-letter streams and the
// cluster bucket, and prepares the per-partition pipelines. The partition
// count is the ingest stream's: fixed when it was first provisioned.
func (g *gateway) provision(ctx context.Context) error {
	cfg := g.cfg
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	settings := options.IngestStream(cfg)
	st, err := ingest.EnsureIngestStream(pctx, g.js, settings)
	if err != nil {
		return withCode(exitIO, err)
	}
	g.partitions = cfg.Cluster.Partitions
	if n, ok := cluster.PartitionsOf(st.CachedInfo().Config.SubjectTransform, cfg.Ingest.SubjectPrefix); ok {
		g.partitions = n
	}
	if err := ingest.EnsureDeadLetterStream(pctx, g.js, options.DeadLetterStream(cfg), cfg.Ingest.DeadletterPrefix); err != nil {
		return withCode(exitIO, err)
	}
	if g.bucket, err = cluster.EnsureBucket(pctx, g.js, options.ClusterBucket(cfg)); err != nil {
		return withCode(exitIO, err)
	}
	g.node = options.NodeID(cfg)
	g.baseLog = g.log
	g.log = g.log.With("node", g.node)
	if recovered, done := tiers.TakeRecoveredMarker(nil, cfg.DataRoot); recovered {
		// A takeover reads the ingest stream from its first message
		// anyway; the marker has nothing more to say.
		g.log.Info("data_root_recovered_from_tier2", "detail", "partitions taken over re-read AOF_INGEST from its first message; what the store holds is skipped by sequence")
		if err := done(); err != nil {
			g.log.Error("remove_recovery_marker_failed", "err", err)
		}
	}
	ingestOpts := options.Ingest(cfg)
	ingestOpts.Partitions, ingestOpts.PartitionOf = g.partitions, g.partitionOf
	ingestOpts.Logger, ingestOpts.Tracer, ingestOpts.Instruments = g.log, g.prov.Tracer(tracing.InstrumentationName), g.inst
	po := options.IngestPurger(cfg)
	po.Partitions, po.PartitionOf, po.Logger = g.partitions, g.partitionOf, g.log
	purger, err := ingest.NewPurger(g.js, po)
	if err != nil {
		return withCode(exitUsage, err)
	}
	g.ingest = &partitionIngest{js: g.js, opts: ingestOpts, purger: purger, log: g.log, pipelines: newPipelineSet()}
	return nil
}

// waitSettled returns once the first round of ownership has settled, so
// that ready means serving: every partition has an owner, and the
// pipeline of each partition this gateway took has positioned its
// consumer. It gives up after one lease TTL and a few seconds (an owner
// that died keeps its partitions that long), or when ctx ends.
func (g *gateway) waitSettled(ctx context.Context, m *cluster.Manager) {
	deadline := time.Now().Add(g.cfg.Cluster.LeaseTTL.D() + 5*time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if g.settled(ctx, m) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.log.Warn("ownership_not_settled", "detail", "some partitions have no owner yet, or their pipelines have not started; ready anyway",
		"owned", len(m.Owned()))
}

func (g *gateway) settled(ctx context.Context, m *cluster.Manager) bool {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	leases, err := g.bucket.ListLeases(rctx)
	if err != nil || len(leases) < g.partitions {
		return false
	}
	held := map[int]bool{}
	for _, l := range m.Owned() {
		if !g.ingest.pipelines.positioned(l.Partition) {
			return false
		}
		held[l.Partition] = true
	}
	for _, l := range leases {
		if l.Node == g.node && !held[l.Partition] {
			// A lease of this node's previous process (killed): it
			// expires within the TTL, and this process takes it then.
			return false
		}
	}
	return true
}

// drain serves an operator's cluster.drain (and cluster.handover): every
// owned partition is handed over (archived, recorded, purged, released)
// and no other is taken until the drain is lifted (off) or the gateway
// restarts, so it can be stopped with nothing for the next owner to
// re-read.
func (g *gateway) drain(ctx context.Context, off bool) (control.DrainResponse, error) {
	res := control.DrainResponse{Node: g.node, Draining: !off}
	g.mu.Lock()
	m := g.manager
	g.mu.Unlock()
	if m == nil {
		return res, control.Errorf(control.CodeUnavailable, "gateway %s is not running its partitions (starting or reopening its store)", g.node)
	}
	g.draining.Store(!off)
	started := time.Now()
	if !off {
		for _, l := range m.Owned() {
			res.Released = append(res.Released, l.Partition)
		}
		sort.Ints(res.Released)
		if !g.othersActive(ctx) {
			res.Warning = "no other active gateway: every partition stays unowned, and ingest stops, until a gateway joins or the drain is lifted"
			g.log.Warn("drain_leaves_partitions_unowned", "detail", res.Warning)
		}
	}
	g.log.Info("drain_requested", "on", !off, "partitions", len(res.Released))
	err := m.Drain(ctx, !off)
	res.TookMS = time.Since(started).Milliseconds()
	if err != nil {
		return res, fmt.Errorf("drain of %s: %w", g.node, err)
	}
	return res, nil
}

// othersActive reports whether another gateway heartbeats as active (not
// draining, not a follower); true when the bucket cannot be read.
func (g *gateway) othersActive(ctx context.Context) bool {
	nodes, err := g.bucket.ListNodes(ctx)
	if err != nil {
		return true
	}
	for _, n := range nodes {
		if n.Node != g.node && !n.Draining && !n.Follower {
			return true
		}
	}
	return false
}

// registerOwnershipGauges exports owned_partitions, unarchived_messages
// and archive_lag_seconds for one store session.
func (g *gateway) registerOwnershipGauges(m *cluster.Manager, runner *ownership.Runner) (func(), error) {
	var unregs []func()
	for name, fn := range map[string]func() int64{
		tracing.MetricOwnedPartitions:    func() int64 { return int64(len(m.Owned())) },
		tracing.MetricUnarchivedMessages: func() int64 { return int64(runner.Stats().Unarchived) },
		tracing.MetricArchiveLagSeconds:  func() int64 { return int64(runner.Stats().ArchiveLag.Seconds()) },
	} {
		u, err := g.inst.RegisterGauge(name, fn)
		if err != nil {
			for _, u := range unregs {
				u()
			}
			return nil, err
		}
		unregs = append(unregs, u)
	}
	return func() {
		for _, u := range unregs {
			u()
		}
	}, nil
}

// partitionOf is the partition of stream.
func (g *gateway) partitionOf(stream string) int { return cluster.PartitionOf(stream, g.partitions) }

// managerOptions are the lease manager's options.
func (g *gateway) managerOptions() cluster.ManagerOptions {
	o := options.ClusterManager(g.cfg)
	// The manager names the node in its events itself.
	o.Node, o.Partitions, o.Logger = g.node, g.partitions, g.baseLog
	o.Follower = g.follower
	return o
}

// serveHTTP starts /healthz, /readyz and /metrics on metrics.listen.
func (g *gateway) serveHTTP() (*http.Server, error) {
	addr := g.cfg.Metrics.Listen
	if addr == "" {
		return nil, nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		st := g.status()
		w.Header().Set("Content-Type", "application/json")
		if !st.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(st)
	})
	mux.Handle("/metrics", g.prov.MetricsHandler())
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	g.log.Info("http_listening", "addr", ln.Addr().String())
	return srv, nil
}

// gatewayStatus is the body of /readyz and of the control service status.
type gatewayStatus struct {
	Ready         bool `json:"ready"`
	NATSConnected bool `json:"nats_connected"`
	StoreOpen     bool `json:"store_open"`
	// Tier2 is reported, not required: a degraded Tier 2 leaves the
	// gateway ready, since ingest and local reads go on without it.
	Tier2  *tier2Status   `json:"tier2,omitempty"`
	Ingest *ingest.Status `json:"ingest,omitempty"`
	// Node is this gateway's node id, OwnedPartitions the partitions it
	// holds leases for now (none for a standby).
	Node            string `json:"node,omitempty"`
	OwnedPartitions []int  `json:"owned_partitions"`
	LastError       string `json:"last_error,omitempty"`
	Version         string `json:"version"`
}

func (g *gateway) status() gatewayStatus {
	// /readyz may be asked while run is still wiring the gateway.
	g.mu.Lock()
	ready, lastErr := g.ready, g.lastErr
	nc, store, m := g.nc, g.store, g.manager
	g.mu.Unlock()
	st := gatewayStatus{
		NATSConnected: nc != nil && nc.IsConnected(),
		StoreOpen:     store != nil,
		Version:       version,
	}
	st.Ready = ready && st.NATSConnected && st.StoreOpen && lastErr == nil
	if lastErr != nil {
		st.LastError = lastErr.Error()
	}
	if store != nil {
		c, _ := store.Tier2().(*tier2.Client) // nil when tier2.enabled = false
		t2 := tier2StatusOf(c)
		st.Tier2 = &t2
	}
	if g.ingest != nil {
		st.Ingest = g.ingest.pipelines.status()
	}
	st.Node = g.node
	if m != nil {
		for _, l := range m.Owned() {
			st.OwnedPartitions = append(st.OwnedPartitions, l.Partition)
		}
		sort.Ints(st.OwnedPartitions)
	}
	return st
}

func instanceID() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", h, os.Getpid())
}
