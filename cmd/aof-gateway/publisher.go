package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/config"
	"github.com/bop-aof/aof/internal/options"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/manifest/natsmanifest"
)

// newManifestPublisher provisions AOF_MANIFEST and returns the publisher
// the store's manifest outbox feeds.
func newManifestPublisher(ctx context.Context, js jetstream.JetStream, cfg *config.Config) (manifest.Publisher, error) {
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sc := options.ManifestStream(cfg)
	if _, err := natsmanifest.EnsureStream(pctx, js, sc); err != nil {
		return nil, fmt.Errorf("provision manifest stream: %w", err)
	}
	return natsmanifest.NewPublisher(js, natsmanifest.WithPrefix(sc.Prefix), natsmanifest.WithStreamName(sc.Name)), nil
}
