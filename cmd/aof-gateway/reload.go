package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/bop-aof/aof/config"
	"github.com/bop-aof/aof/internal/options"
	"github.com/bop-aof/aof/tiers/tier2"
)

// reloadResult says what a configuration reload changed.
type reloadResult struct {
	Applied  []config.Change `json:"applied"`
	Rejected []config.Change `json:"rejected,omitempty"`
}

// reload re-reads the configuration and applies the keys that can change
// at runtime. Keys that cannot are refused by name and keep their running
// value; the rest still apply.
func (g *gateway) reload(load func() (*config.Config, error)) (reloadResult, error) {
	var res reloadResult
	if load == nil {
		return res, errors.New("reload: no configuration source")
	}
	next, err := load()
	if err != nil {
		return res, fmt.Errorf("reload: %w", err)
	}
	g.mu.Lock()
	cur := g.cfg
	g.mu.Unlock()
	for _, ch := range config.Diff(cur, next) {
		if !ch.Reloadable {
			res.Rejected = append(res.Rejected, ch)
			continue
		}
		if err := g.apply(ch.Key, next); errors.Is(err, errNotLive) {
			res.Rejected = append(res.Rejected, ch)
			continue
		} else if err != nil {
			return res, fmt.Errorf("reload %s: %w", ch.Key, err)
		}
		res.Applied = append(res.Applied, ch)
		g.log.Info("config_reloaded", "key", ch.Key, "old", ch.Old, "new", ch.New)
	}
	for _, ch := range res.Rejected {
		g.log.Warn("config_reload_rejected", "key", ch.Key, "old", ch.Old, "new", ch.New,
			"reason", "not reloadable at runtime; restart the gateway to apply")
	}
	if len(res.Rejected) > 0 {
		keys := make([]string, len(res.Rejected))
		for i, ch := range res.Rejected {
			keys[i] = ch.Key
		}
		err = fmt.Errorf("reload: not reloadable at runtime (restart to apply): %s", strings.Join(keys, ", "))
	}
	return res, err
}

// errNotLive marks a key the schema calls reloadable that this gateway
// version still reads only at start: it is refused by name rather than
// silently ignored.
var errNotLive = errors.New("not applied at runtime by this version")

// apply sets one reloadable key on the running gateway. The new values
// are built by package options, as at start, so a reload sets exactly
// what a restart with the same file would.
func (g *gateway) apply(key string, next *config.Config) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.store == nil {
		return errors.New("the store is being reopened; reload again in a moment")
	}
	so := options.Store(next)
	switch key {
	case "tier0.cluster_max_bytes":
		if err := g.store.SetTier0MaxBytes(so.Tier0MaxBytes); err != nil {
			return err
		}
		g.cfg.Tier0.ClusterMaxBytes = next.Tier0.ClusterMaxBytes
	case "tier1.max_bytes":
		g.store.SetTier1MaxBytes(so.Tier1MaxBytes)
		g.cfg.Tier1.MaxBytes = next.Tier1.MaxBytes
	case "retention.max_age", "retention.max_bytes":
		g.store.SetRetention(so.RetentionMaxAge, so.RetentionMaxBytes)
		g.cfg.Retention = next.Retention
	case "tier2.retry.max_attempts", "tier2.retry.base_delay_ms", "tier2.retry.jitter":
		t2, _ := g.store.Tier2().(*tier2.Client)
		if t2 == nil {
			return errNotLive
		}
		if err := t2.SetRetry(options.Tier2Retry(next)); err != nil {
			return err
		}
		g.cfg.Tier2.Retry = next.Tier2.Retry
	case "tier1.compression_workers":
		g.store.SetCompressionWorkers(so.CompressionWorkers)
		ensureProcs(so.CompressionWorkers, g.log)
		g.cfg.Tier1.CompressionWorkers = next.Tier1.CompressionWorkers
	case "tier1.hydration_workers":
		g.store.SetHydrationWorkers(so.HydrationWorkers)
		g.cfg.Tier1.HydrationWorkers = next.Tier1.HydrationWorkers
	case "tier1.retry_backoff", "tier1.max_retries":
		g.store.SetJobRetry(so.JobRetryBackoff, so.JobMaxRetries)
		g.cfg.Tier1.RetryBackoff, g.cfg.Tier1.MaxRetries = next.Tier1.RetryBackoff, next.Tier1.MaxRetries
	case "tier0.activation_queue_warn_threshold":
		g.store.SetActivationQueueWarnThreshold(so.ActivationQueueWarnThreshold)
		g.cfg.Tier0.ActivationQueueWarnThreshold = next.Tier0.ActivationQueueWarnThreshold
	case "tier2.breaker.failures", "tier2.breaker.cooldown":
		t2, _ := g.store.Tier2().(*tier2.Client)
		if t2 == nil {
			return errNotLive
		}
		t2.SetBreaker(options.Tier2Breaker(next))
		g.cfg.Tier2.Breaker = next.Tier2.Breaker
	case "tier2.concurrency":
		g.store.SetUploadWorkers(so.Tier2Concurrency)
		g.cfg.Tier2.Concurrency = next.Tier2.Concurrency
	case "log.level":
		lvl, err := parseLevel(next.Log.Level)
		if err != nil {
			return err
		}
		g.level.Set(lvl)
		g.cfg.Log.Level = next.Log.Level
	default:
		return errNotLive
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}
