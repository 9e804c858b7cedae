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
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/bop-aof/aof/config"
	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tracing"
)

type runOptions struct {
	SealOnShutdown bool
	// ConfigLoader re-reads the configuration on SIGHUP.
	ConfigLoader func() (*config.Config, error)
}

// gateway is one running aof-gateway process.
type gateway struct {
	cfg      *config.Config
	log      *slog.Logger
	level    *slog.LevelVar
	prov     *tracing.Providers
	inst     *tracing.Instruments
	embedded *server.Server
	nc       *nats.Conn
	js       jetstream.JetStream
	store    *tiers.Store
	pipeline *ingest.Pipeline
	control  interface{ Stop() error }

	mu      sync.Mutex
	ready   bool
	lastErr error
}

func run(ctx context.Context, cfg *config.Config, opts runOptions) (err error) {
	g := &gateway{cfg: cfg}
	g.log, g.level = tracing.NewLogger(cfg.Log.Level, cfg.Log.Format, os.Stderr)
	g.log.Info("gateway_starting", "version", version, "config", cfg.File, "data_root", cfg.DataRoot)
	defer func() {
		if err != nil {
			g.log.Error("gateway_failed", "err", err)
		}
	}()

	g.prov, err = tracing.Setup(ctx, tracing.Config{
		Exporter:       cfg.Tracing.Exporter,
		Endpoint:       cfg.Tracing.Endpoint,
		TracesEndpoint: cfg.Tracing.TracesEndpoint,
		Headers:        cfg.Tracing.Headers,
		Insecure:       cfg.Tracing.Insecure,
		SamplingRatio:  cfg.Tracing.SamplingRatio,
		ServiceName:    cfg.Tracing.ServiceName,
		ServiceVersion: version,
		InstanceID:     instanceID(),
	}, tracing.WithGlobalProviders())
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

	if err := g.openStore(ctx); err != nil {
		return err
	}
	defer func() {
		if cerr := g.store.Close(); cerr != nil {
			g.log.Error("store_close_failed", "err", cerr)
			err = errors.Join(err, withCode(exitIO, cerr))
		}
	}()

	if err := g.provision(ctx); err != nil {
		return err
	}
	if err := g.startControl(opts); err != nil {
		return withCode(exitIO, err)
	}
	if g.control != nil {
		defer g.control.Stop()
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

	g.setReady(true, nil)
	g.log.Info("gateway_ready", "nats", g.nc.ConnectedUrlRedacted(), "ingest", cfg.Ingest.SubjectPrefix+".>")
	g.consume(ctx)
	g.setReady(false, nil)

	g.log.Info("gateway_stopping", "seal_on_shutdown", opts.SealOnShutdown)
	if opts.SealOnShutdown {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for _, s := range g.store.Streams() {
			if id, err := g.store.Seal(sctx, s, false); err != nil {
				g.log.Error("seal_on_shutdown_failed", "stream", s, "err", err)
			} else if id > 0 {
				g.log.Info("sealed_on_shutdown", "stream", s, "segment", id)
			}
		}
		cancel()
	}
	return nil
}

// consume runs the ingest pipeline until ctx ends. A store failure stops
// the pipeline with nothing after it acked; it restarts after a pause and
// redelivery resumes at the ack floor.
func (g *gateway) consume(ctx context.Context) {
	const minBackoff = 250 * time.Millisecond
	backoff := minBackoff
	for ctx.Err() == nil {
		started := time.Now()
		err := g.pipeline.Run(ctx)
		if err == nil {
			return
		}
		if time.Since(started) > time.Minute {
			// It ran fine for a while: this is a new failure, not the
			// same one repeating.
			backoff = minBackoff
		}
		g.setReady(true, err)
		g.log.Error("ingest_pipeline_stopped", "err", err, "restart_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		// Ready again while the pipeline restarts; a repeated failure
		// sets the error again.
		g.setReady(true, nil)
		backoff = min(backoff*2, 10*time.Second)
	}
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
	}
	if c := cfg.NATS.Creds; c != "" {
		opts = append(opts, nats.UserCredentials(c))
	}
	if k := cfg.NATS.NKey; k != "" {
		o, err := nkeyOption(k)
		if err != nil {
			return withCode(exitUsage, err)
		}
		opts = append(opts, o)
	}
	if cfg.NATS.User != "" {
		opts = append(opts, nats.UserInfo(cfg.NATS.User, cfg.NATS.Password))
	}
	if t := cfg.NATSTLS(); !t.IsZero() {
		if t.CA != "" {
			opts = append(opts, nats.RootCAs(t.CA))
		}
		if t.Cert != "" || t.Key != "" {
			opts = append(opts, nats.ClientCert(t.Cert, t.Key))
		}
	}
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

// nkeyOption authenticates with an nkey given either as a seed file path or
// as the seed itself (it starts with "S"). Errors never contain the seed.
func nkeyOption(k string) (nats.Option, error) {
	if strings.HasPrefix(k, "S") && !strings.ContainsAny(k, `/\.`) {
		kp, err := nkeys.FromSeed([]byte(k))
		if err != nil {
			return nil, errors.New("nats.nkey: the inline seed is not a valid nkey seed")
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, errors.New("nats.nkey: the inline seed is not a valid nkey seed")
		}
		return nats.Nkey(pub, func(nonce []byte) ([]byte, error) { return kp.Sign(nonce) }), nil
	}
	o, err := nats.NkeyOptionFromSeed(k)
	if err != nil {
		return nil, fmt.Errorf("nats.nkey: cannot read the seed file named in nats.nkey (%s)", errors.Unwrap(err))
	}
	return o, nil
}

func (g *gateway) openStore(ctx context.Context) error {
	cfg := g.cfg
	var t2 *tier2.Client
	if cfg.Tier2.Enabled {
		tlsCfg := cfg.Tier2TLS()
		var err error
		t2, err = tier2.New(ctx, tier2.Options{
			Endpoint:     cfg.Tier2.Endpoint,
			Bucket:       cfg.Tier2.Bucket,
			AccessKey:    cfg.Tier2.AccessKey,
			SecretKey:    cfg.Tier2.SecretKey,
			Region:       cfg.Tier2.Region,
			CAFile:       tlsCfg.CA,
			CreateBucket: cfg.Tier2.CreateBucket,
			Prefix:       cfg.Tier2.Prefix,
			Retry: tier2.RetryPolicy{
				MaxAttempts: cfg.Tier2.Retry.MaxAttempts,
				BaseDelay:   time.Duration(cfg.Tier2.Retry.BaseDelayMS) * time.Millisecond,
				Jitter:      cfg.Tier2.Retry.Jitter,
			},
			Breaker:     tier2.BreakerPolicy{Failures: cfg.Tier2.Breaker.Failures, Cooldown: cfg.Tier2.Breaker.Cooldown.D()},
			Logger:      g.log,
			Instruments: g.inst,
		})
		if err != nil {
			code := exitIO
			var oe *tier2.OpError
			if errors.As(err, &oe) && oe.Reason() == 2 {
				code = exitAuth
			}
			return withCode(code, fmt.Errorf("tier 2: %w", err))
		}
	} else {
		g.log.Warn("tier2_disabled", "detail", "segments stay in Tier 1 only; Tier 2 is the durable copy in production")
	}
	var pub manifest.Publisher
	if g.js != nil {
		p, err := newManifestPublisher(ctx, g.js, cfg)
		if err != nil {
			return withCode(exitIO, err)
		}
		pub = p
	}
	store, err := tiers.Open(ctx, tiers.Options{
		Root:                         cfg.DataRoot,
		Tier0MaxBytes:                int64(cfg.Tier0.ClusterMaxBytes),
		SegmentTargetBytes:           int64(cfg.Segment.TargetBytes),
		SegmentMaxAge:                cfg.Segment.MaxAge.D(),
		Tier1MaxBytes:                int64(cfg.Tier1.MaxBytes),
		FrameBytes:                   int(cfg.Tier1.FrameBytes),
		CompressionLevel:             cfg.Tier1.CompressionLevel,
		CompressionWorkers:           cfg.Tier1.CompressionWorkers,
		HydrationWorkers:             cfg.Tier1.HydrationWorkers,
		JobRetryBackoff:              cfg.Tier1.RetryBackoff.D(),
		JobMaxRetries:                cfg.Tier1.MaxRetries,
		ActivationQueueWarnThreshold: cfg.Tier0.ActivationQueueWarnThreshold,
		SealOnPressure:               cfg.Tier0.SealOnPressure,
		Tier2:                        t2,
		Tier2Concurrency:             cfg.Tier2.Concurrency,
		ManifestChunkCapacity:        int64(cfg.Manifest.ChunkCapacity),
		ManifestRotationPeriod:       cfg.Manifest.RotationPeriod.D(),
		SnapshotInterval:             cfg.Manifest.SnapshotInterval.D(),
		Publisher:                    pub,
		RetentionMaxAge:              cfg.Retention.MaxAge.D(),
		RetentionMaxBytes:            int64(cfg.Retention.MaxBytes),
		Logger:                       g.log,
		Tracer:                       g.prov.Tracer(tracing.InstrumentationName),
		Instruments:                  g.inst,
	})
	if err != nil {
		return withCode(exitIO, err)
	}
	g.mu.Lock()
	g.store = store
	g.mu.Unlock()
	g.log.Info("store_opened", "root", cfg.DataRoot, "streams", len(store.Streams()))
	return nil
}

func (g *gateway) provision(ctx context.Context) error {
	cfg := g.cfg
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := ingest.EnsureIngestStream(pctx, g.js, ingest.StreamSettings{
		Name:       cfg.Ingest.StreamName,
		Subjects:   []string{cfg.Ingest.SubjectPrefix + ".>"},
		MaxBytes:   int64(cfg.Ingest.StreamMaxBytes),
		MaxAge:     cfg.Ingest.StreamMaxAge.D(),
		DiscardNew: cfg.Ingest.Discard == "new",
		Replicas:   cfg.Ingest.Replicas,
	}); err != nil {
		return withCode(exitIO, err)
	}
	if err := ingest.EnsureDeadLetterStream(pctx, g.js, deadLetterStreamName(cfg), cfg.Ingest.DeadletterPrefix); err != nil {
		return withCode(exitIO, err)
	}
	recovered, markerDone := tiers.TakeRecoveredMarker(nil, cfg.DataRoot)
	if recovered {
		g.log.Warn("ingest_replay_after_recovery", "detail",
			"data root was rebuilt from Tier 2: re-reading the ingest stream from its first message; messages already in Tier 2 are skipped by sequence")
	}
	p, err := ingest.NewPipeline(g.js, g.store, ingest.Options{
		Consumer: ingest.ConsumerSettings{
			Stream:          cfg.Ingest.StreamName,
			Durable:         cfg.Ingest.ConsumerName,
			AckWait:         cfg.Ingest.AckWait.D(),
			MaxAckPending:   cfg.Ingest.MaxAckPending,
			ReplayFromStart: recovered,
		},
		OnReplayStarted: func() {
			if err := markerDone(); err != nil {
				g.log.Error("remove_recovery_marker_failed", "err", err)
			}
		},
		SubjectPrefix:    cfg.Ingest.SubjectPrefix,
		DeadLetterPrefix: cfg.Ingest.DeadletterPrefix,
		BatchSize:        cfg.Ingest.BatchSize,
		MaxRecordBytes:   int(cfg.Ingest.MaxRecordBytes),
		Logger:           g.log,
		Tracer:           g.prov.Tracer(tracing.InstrumentationName),
		Instruments:      g.inst,
	})
	if err != nil {
		return withCode(exitIO, err)
	}
	g.mu.Lock()
	g.pipeline = p
	g.mu.Unlock()
	return nil
}

func deadLetterStreamName(cfg *config.Config) string { return cfg.Ingest.StreamName + "_DEADLETTER" }

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
	Ready         bool           `json:"ready"`
	NATSConnected bool           `json:"nats_connected"`
	StoreOpen     bool           `json:"store_open"`
	Ingest        *ingest.Status `json:"ingest,omitempty"`
	LastError     string         `json:"last_error,omitempty"`
	Version       string         `json:"version"`
}

func (g *gateway) status() gatewayStatus {
	// /readyz may be asked while run is still wiring the gateway.
	g.mu.Lock()
	ready, lastErr := g.ready, g.lastErr
	nc, store, pipeline := g.nc, g.store, g.pipeline
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
	if pipeline != nil {
		is := pipeline.Status()
		st.Ingest = &is
	}
	return st
}

func instanceID() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", h, os.Getpid())
}
