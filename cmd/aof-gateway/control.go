package main

import (
	"context"

	"github.com/bop-aof/aof/control"
)

// startControl starts the aof-admin NATS micro service that aof2-admin
// talks to.
func (g *gateway) startControl(opts runOptions) error {
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
	})
	if err != nil {
		return err
	}
	g.control = svc
	return nil
}
