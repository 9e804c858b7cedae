package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bop-aof/aof/internal/options"
	"github.com/bop-aof/aof/tiers/tier2"
)

// tier2StartCheck bounds the bucket check at start: a store that has not
// answered by then counts as down, and the gateway starts degraded.
const tier2StartCheck = 10 * time.Second

// tier2RecheckMax caps the delay between background bucket checks.
const tier2RecheckMax = 30 * time.Second

// openTier2 builds the Tier 2 client and checks the bucket once. A store
// that is down, slow or failing does not stop the start, as it does not
// stop a running gateway: appends and reads from the local tiers go on,
// uploads wait and retry, and the bucket check goes on in the background.
// Only a configuration that can never work stops it: credentials or a
// bucket name the store refuses, a client that cannot be built.
func (g *gateway) openTier2(ctx context.Context) (*tier2.Client, error) {
	o := options.Tier2(g.cfg)
	o.Logger, o.Instruments = g.log, g.inst
	c, err := tier2.Open(o)
	if err != nil {
		return nil, tier2ConfigError(err)
	}
	cctx, cancel := context.WithTimeout(ctx, tier2StartCheck)
	err = c.CheckBucket(cctx)
	cancel()
	switch {
	case err == nil:
		g.log.Info("tier2_bucket_checked", "bucket", g.cfg.Tier2.Bucket)
	case tier2.Refused(err) != tier2.NotRefused:
		return nil, tier2ConfigError(err)
	default:
		g.log.Warn("tier2_degraded_at_start", "bucket", g.cfg.Tier2.Bucket, "err", err, "detail", tier2Hint(err))
		go g.recheckTier2(ctx, c)
	}
	return c, nil
}

// recheckTier2 repeats the bucket check until it succeeds, so that a
// gateway started during an outage confirms the bucket (and creates it
// with tier2.create_bucket) once the store is back. Uploads do not wait
// for it; they retry on their own.
func (g *gateway) recheckTier2(ctx context.Context, c *tier2.Client) {
	delay := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		err := c.CheckBucket(ctx)
		switch {
		case err == nil:
			g.log.Info("tier2_available", "bucket", g.cfg.Tier2.Bucket)
			return
		case ctx.Err() != nil:
			return
		case tier2.Refused(err) != tier2.NotRefused:
			// Too late to refuse the start: say which key to fix, and
			// keep checking so that a fix on the store's side is seen.
			g.log.Error("tier2_refused", "err", tier2ConfigError(err), "retry_in", delay)
		default:
			g.log.Warn("tier2_still_unavailable", "err", err, "retry_in", delay, "detail", tier2Hint(err))
		}
		delay = min(delay*2, tier2RecheckMax)
	}
}

// tier2Hint says what a Tier 2 outage means for the gateway, and what to
// do when the configuration can fix it.
func tier2Hint(err error) string {
	if errors.Is(err, tier2.ErrBucketMissing) {
		return "the bucket named by tier2.bucket does not exist: create it or set tier2.create_bucket = true; ingest and local reads go on, uploads wait until it exists"
	}
	return "running without Tier 2: ingest and local reads go on, uploads wait until the object store answers"
}

// tier2ConfigError says which configuration key to fix for a Tier 2
// client that cannot work, with the exit code of the refusal: 3 for
// credentials, 1 for the rest (REFERENCE.md).
func tier2ConfigError(err error) error {
	switch tier2.Refused(err) {
	case tier2.RefusedCredentials:
		return withCode(exitAuth, fmt.Errorf("tier 2 refused the credentials: check tier2.access_key and tier2.secret_key (AOF2_TIER2_ACCESS_KEY, AOF2_TIER2_SECRET_KEY) and the key's access to tier2.bucket: %w", err))
	case tier2.RefusedBucketName:
		return withCode(exitUsage, fmt.Errorf("tier 2 refused the bucket name: check tier2.bucket (AOF2_TIER2_BUCKET): %w", err))
	}
	return withCode(exitUsage, fmt.Errorf("tier 2 client: check tier2.endpoint and the TLS files (tier2.tls.*, tls.*): %w", err))
}

// tier2Status is Tier 2 in /readyz and in the control service status.
type tier2Status struct {
	// State is "ok", "degraded" (the bucket is not confirmed, the breaker
	// is not closed or the last call failed: uploads wait, ingest goes
	// on) or "disabled" (tier2.enabled = false).
	State         string `json:"state"`
	BucketChecked bool   `json:"bucket_checked"`
	Breaker       string `json:"breaker,omitempty"`
	LastError     string `json:"last_error,omitempty"`
}

func tier2StatusOf(c *tier2.Client) tier2Status {
	if c == nil {
		return tier2Status{State: "disabled"}
	}
	h := c.Health()
	st := tier2Status{State: "ok", BucketChecked: h.BucketChecked, Breaker: h.Breaker.String(), LastError: h.LastError}
	if h.Degraded() {
		st.State = "degraded"
	}
	return st
}
