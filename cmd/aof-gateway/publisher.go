package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/config"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/manifest/natsmanifest"
)

// newManifestPublisher provisions AOF_MANIFEST and returns the publisher
// the store's manifest outbox feeds.
func newManifestPublisher(ctx context.Context, js jetstream.JetStream, cfg *config.Config) (manifest.Publisher, error) {
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := natsmanifest.EnsureStream(pctx, js, natsmanifest.StreamConfig{
		Name:     cfg.Manifest.StreamName,
		Prefix:   cfg.Manifest.SubjectPrefix,
		Replicas: cfg.Ingest.Replicas,
	}); err != nil {
		return nil, fmt.Errorf("provision manifest stream: %w", err)
	}
	return natsmanifest.NewPublisher(js,
		natsmanifest.WithPrefix(cfg.Manifest.SubjectPrefix),
		natsmanifest.WithStreamName(cfg.Manifest.StreamName)), nil
}
