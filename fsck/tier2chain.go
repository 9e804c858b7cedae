package fsck

import (
	"bytes"
	"context"
	"fmt"

	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/tier2"
)

// Problem kinds of a stream's manifest history in Tier 2.
const (
	// KindTier2Snapshot: a snapshot object in Tier 2 does not verify.
	KindTier2Snapshot = "tier2-snapshot"
	// KindTier2Chain: the chain a recovery from Tier 2 would replay has a
	// missing or damaged chunk.
	KindTier2Chain = "tier2-chain"
)

// checkTier2Chain checks the manifest history Tier 2 holds of the stream
// as `recover --from-tier2` reads it: objects of both key layouts, the
// chain chosen by manifest.ChooseTier2Chain (the highest epoch with a
// usable snapshot), then every chunk that chain replays, present, without
// a gap and intact. A newer snapshot passed over for a corrupt object or a
// gap after it is reported; one not yet continued by its chunk is normal
// while a gateway runs and is not.
func (c *streamCheck) checkTier2Chain(ctx context.Context) error {
	b := c.opts.Tier2
	objs, err := tiers.ListTier2Manifest(ctx, b, c.stream)
	if err != nil {
		return tier2Failure("list", err)
	}
	load := func(epoch, id uint64) ([]byte, error) {
		data, err := getObject(ctx, b, manifest.SnapshotKeyAt(c.stream, epoch, id))
		if tier2.Reason(err) == tier2.ReasonCodec {
			return nil, fmt.Errorf("%w: %w", manifest.ErrObjectCorrupt, err)
		}
		return data, err
	}
	chain, skipped, err := manifest.ChooseTier2Chain(objs, load)
	if err != nil {
		return tier2Failure("read snapshot", err)
	}
	for _, sk := range skipped {
		key := manifest.SnapshotKeyAt(c.stream, sk.Epoch, sk.ID)
		switch {
		case sk.Err != nil:
			c.add(Problem{Kind: KindTier2Snapshot, File: key, Reason: sk.Err.Error()})
		case !sk.Stale:
			c.add(Problem{Kind: KindTier2Chain, File: key, Reason: fmt.Sprintf(
				"a chunk after the snapshot's position %s is missing from epoch %d's chain; a recovery from Tier 2 falls back to epoch %d",
				sk.Position, sk.Epoch, chain.Epoch)})
		}
	}
	c.counts.Tier2Epoch = chain.Epoch
	return c.checkChainChunks(ctx, chain)
}

// checkChainChunks verifies the chunks the chain replays: from the
// snapshot's chunk (chunk 0 without one) to the last, each present and
// intact.
func (c *streamCheck) checkChainChunks(ctx context.Context, chain manifest.Tier2Chain) error {
	if len(chain.Chunks) == 0 {
		return nil
	}
	var from uint64
	if chain.Snapshot != nil {
		from = chain.Snapshot.Position.Chunk
	}
	have := map[uint64]bool{}
	for _, ch := range chain.Chunks {
		have[ch] = true
	}
	for ch := from; ch <= chain.Chunks[len(chain.Chunks)-1]; ch++ {
		key := manifest.ChunkKeyAt(c.stream, chain.Epoch, ch)
		if !have[ch] {
			c.add(Problem{Kind: KindTier2Chain, Chunk: chunkPtr(ch), File: key,
				Reason: fmt.Sprintf("chunk missing from the chain of epoch %d: a recovery from Tier 2 stops before it", chain.Epoch)})
			continue
		}
		c.counts.Tier2ManifestChunks++
		data, err := getObject(ctx, c.opts.Tier2, key)
		switch {
		case err == nil:
			if _, _, err := manifest.ReadChunk(data); err != nil {
				c.add(Problem{Kind: KindTier2Chain, Chunk: chunkPtr(ch), File: key, Reason: err.Error()})
			}
		case tier2.Reason(err) == tier2.ReasonCodec || tier2.Reason(err) == tier2.ReasonMissing:
			c.add(Problem{Kind: KindTier2Chain, Chunk: chunkPtr(ch), File: key, Reason: err.Error()})
		default:
			return tier2Failure("read chunk "+key, err)
		}
	}
	return nil
}

func getObject(ctx context.Context, b tier2.Bucket, key string) ([]byte, error) {
	var buf bytes.Buffer
	_, err := b.Get(ctx, key, &buf)
	return buf.Bytes(), err
}

func tier2Failure(what string, err error) error {
	if tier2.Reason(err) == tier2.ReasonAuth {
		return fmt.Errorf("%w: %w", ErrTier2Auth, err)
	}
	return fmt.Errorf("check tier 2 manifest: %s: %w", what, err)
}
