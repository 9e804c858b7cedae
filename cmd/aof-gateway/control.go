package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/cluster"
	"github.com/bop-aof/aof/control"
	"github.com/bop-aof/aof/readservice"
)

// startControl starts the aof-admin NATS micro service that aof2-admin
// talks to.
func (g *gateway) startControl(opts runOptions, router control.Router) error {
	svc, err := control.New(g.nc, g.store, control.Options{
		Name:          g.cfg.Control.ServiceName,
		SubjectPrefix: g.cfg.Control.SubjectPrefix,
		Version:       version,
		Logger:        g.log,
		Status:        func() any { return g.status() },
		Reload: func(context.Context) (any, error) {
			return g.reload(opts.ConfigLoader)
		},
		Instruments: g.inst,
		Router:      router,
		Drain:       g.drain,
		ClusterView: func(ctx context.Context) (any, error) {
			cfg := g.cfg
			return cluster.ReadView(ctx, g.js, cluster.ViewOptions{Bucket: cfg.Cluster.Bucket, IngestStream: cfg.Ingest.StreamName,
				SubjectPrefix: cfg.Ingest.SubjectPrefix, Partitions: g.partitions, LeaseTTL: cfg.Cluster.LeaseTTL.D()})
		},
	})
	if err != nil {
		return err
	}
	g.control = svc
	return nil
}

// startRead starts the read API (docs/reading.md) next to the admin
// service, on its own subjects so NATS permissions can grant reading
// without administration.
//
// It runs on a NATS connection of its own: a scan sends one message per
// record, and on the ingest connection those would queue in the same
// write buffer (and flusher) as the pipelines' acks and the lease
// renewals, ahead of them.
func (g *gateway) startRead(router readservice.Router) error {
	opts := append(append([]nats.Option(nil), g.natsOpts...), nats.Name(readConnName))
	nc, err := nats.Connect(g.natsURL, opts...)
	if err != nil {
		// The client's error may quote the URL with its user info.
		return fmt.Errorf("connect the read service to NATS at %s: %s", redactURL(g.natsURL), redactURL(err.Error()))
	}
	svc, err := readservice.New(nc, g.store, readservice.Options{
		SubjectPrefix: g.cfg.Read.SubjectPrefix,
		MaxConcurrent: g.cfg.Read.MaxConcurrent,
		Logger:        g.log,
		Router:        g.readRouter(router),
		Replica:       g.replica,
	})
	if err != nil {
		nc.Close()
		return err
	}
	g.read, g.readNC = svc, nc
	g.log.Info("read_api_started", "subject", g.cfg.Read.SubjectPrefix+".*")
	return nil
}

// readConnName is the NATS connection name of the read service.
const readConnName = "aof-gateway-read"

// stopRead stops the read service and then closes its connection, once
// the answers it published are flushed.
func (g *gateway) stopRead() {
	g.read.Stop()
	if err := g.readNC.Drain(); err != nil {
		g.readNC.Close()
		return
	}
	for i := 0; i < 50 && !g.readNC.IsClosed(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	g.readNC.Close()
}
