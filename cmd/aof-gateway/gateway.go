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

	"github.com/bop-aof/aof/config"
	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/internal/options"
	"github.com/bop-aof/aof/readservice"
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
	read     *readservice.Service

	mu      sync.Mutex
	ready   bool
	lastErr error
}

func run(ctx context.Context, cfg *config.Config, opts runOptions) (err error) {
	// Background work started here (the Tier 2 bucket recheck) ends with run.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g := &gateway{cfg: cfg}
	g.log, g.level = tracing.NewLogger(cfg.Log.Level, cfg.Log.Format, os.Stderr)
	g.log.Info("gateway_starting", "version", version, "config", cfg.File, "data_root", cfg.DataRoot)
	for _, w := range cfg.Warnings() {
		g.log.Warn("config_warning", "key", w.Key, "detail", w.Msg)
	}
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
	if err := g.startRead(); err != nil {
		return withCode(exitIO, err)
	}
	defer g.read.Stop()

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
		nats.ErrorHandler(natsErrorHandler(g.log)),
	}
	login, err := options.NATSLogin(cfg)
	if err != nil {
		return withCode(exitUsage, err)
	}
	opts = append(opts, login...)
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
// being down does not stop it (openTier2).
func (g *gateway) openStore(ctx context.Context) error {
	cfg := g.cfg
	so := options.Store(cfg)
	if cfg.Tier2.Enabled {
		t2, err := g.openTier2(ctx)
		if err != nil {
			return err
		}
		so.Tier2 = t2
	} else {
		g.log.Warn("tier2_disabled", "detail", "segments stay in Tier 1 only; Tier 2 is the durable copy in production")
	}
	if g.js != nil {
		p, err := newManifestPublisher(ctx, g.js, cfg)
		if err != nil {
			return withCode(exitIO, err)
		}
		so.Publisher = p
	}
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

func (g *gateway) provision(ctx context.Context) error {
	cfg := g.cfg
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := ingest.EnsureIngestStream(pctx, g.js, options.IngestStream(cfg)); err != nil {
		return withCode(exitIO, err)
	}
	if err := ingest.EnsureDeadLetterStream(pctx, g.js, options.DeadLetterStream(cfg), cfg.Ingest.DeadletterPrefix); err != nil {
		return withCode(exitIO, err)
	}
	recovered, markerDone := tiers.TakeRecoveredMarker(nil, cfg.DataRoot)
	if recovered {
		g.log.Warn("ingest_replay_after_recovery", "detail",
			"data root was rebuilt from Tier 2: re-reading the ingest stream from its first message; messages already in Tier 2 are skipped by sequence")
	}
	ingestOpts := options.Ingest(cfg)
	ingestOpts.Consumer.ReplayFromStart = recovered
	ingestOpts.OnReplayStarted = func() {
		if err := markerDone(); err != nil {
			g.log.Error("remove_recovery_marker_failed", "err", err)
		}
	}
	ingestOpts.Logger, ingestOpts.Tracer, ingestOpts.Instruments = g.log, g.prov.Tracer(tracing.InstrumentationName), g.inst
	p, err := ingest.NewPipeline(g.js, g.store, ingestOpts)
	if err != nil {
		return withCode(exitIO, err)
	}
	g.mu.Lock()
	g.pipeline = p
	g.mu.Unlock()
	return nil
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
	Tier2     *tier2Status   `json:"tier2,omitempty"`
	Ingest    *ingest.Status `json:"ingest,omitempty"`
	LastError string         `json:"last_error,omitempty"`
	Version   string         `json:"version"`
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
	if store != nil {
		c, _ := store.Tier2().(*tier2.Client) // nil when tier2.enabled = false
		t2 := tier2StatusOf(c)
		st.Tier2 = &t2
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
