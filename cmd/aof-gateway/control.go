package main

import (
	"context"

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
		Handover:    g.handover,
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
func (g *gateway) startRead(router readservice.Router) error {
	svc, err := readservice.New(g.nc, g.store, readservice.Options{
		SubjectPrefix: g.cfg.Read.SubjectPrefix,
		MaxConcurrent: g.cfg.Read.MaxConcurrent,
		Logger:        g.log,
		Router:        router,
	})
	if err != nil {
		return err
	}
	g.read = svc
	g.log.Info("read_api_started", "subject", g.cfg.Read.SubjectPrefix+".*")
	return nil
}
