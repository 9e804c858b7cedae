package tiers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/tier2"
)

// ErrStreamOpen is returned by Adopt for a stream this store has open: its
// copy must be dropped first, which only a reopen of the store does (see
// Options.Discard).
var ErrStreamOpen = errors.New("tiers: the stream is open in this store")

// epochOf is the epoch stream's log opens at.
func (s *Store) epochOf(stream string) uint64 {
	if s.opts.EpochOf != nil {
		if e := s.opts.EpochOf(stream); e > 0 {
			return e
		}
	}
	return s.opts.Epoch
}

// streamDirs are the directories that hold a stream's local copy.
func streamDirs(root, stream string) []string {
	return []string{
		filepath.Join(root, "tier0", stream),
		filepath.Join(root, "tier1", stream),
		filepath.Join(root, "manifest", stream),
	}
}

// discardStale removes the streams opts.Discard calls stale, before Open
// reads anything of them.
func discardStale(opts Options) error {
	if opts.Discard == nil {
		return nil
	}
	s := &Store{opts: opts, fs: opts.FS}
	names, err := s.discoverStreams()
	if err != nil {
		return err
	}
	for _, name := range names {
		epoch, _, err := manifest.LocalEpoch(opts.FS, filepath.Join(opts.Root, "manifest", name))
		if err != nil {
			return fmt.Errorf("tiers: stream %s: %w", name, err)
		}
		if !opts.Discard(name, epoch) {
			continue
		}
		if err := removeStream(opts, name); err != nil {
			return err
		}
		opts.Logger.Warn("stream_local_copy_discarded", "stream", name, "epoch", epoch,
			"detail", "another owner archived the stream further; it is adopted from Tier 2 when this gateway takes it over")
	}
	return nil
}

// removeStream removes a stream's local copy, its manifest last: a crash
// part way leaves a copy whose epoch file says it is stale, or none, and
// the next Open discards it again.
func removeStream(opts Options, stream string) error {
	for _, d := range streamDirs(opts.Root, stream) {
		if err := removeTree(opts.FS, d); err != nil {
			return fmt.Errorf("tiers: remove %s: %w", d, err)
		}
		if err := opts.FS.SyncDir(filepath.Dir(d)); err != nil {
			return fmt.Errorf("tiers: sync %s: %w", filepath.Dir(d), err)
		}
	}
	return nil
}

// removeTree removes dir and everything under it through fs.
func removeTree(fs vfs.FS, dir string) error {
	entries, err := fs.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			err = removeTree(fs, p)
		} else {
			err = fs.Remove(p)
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := fs.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// LocalEpoch returns the epoch the local copy of stream was written under,
// and false when the store holds no copy of it. A copy from before epochs
// is at epoch 0.
func (s *Store) LocalEpoch(stream string) (uint64, bool) {
	l, err := s.existing(stream)
	if err != nil {
		return 0, false
	}
	return l.man.Epoch(), true
}

// SetEpoch makes stream's later Tier 2 objects carry epoch: its manifest
// seals the active chunk and anchors the new epoch's chain with a snapshot
// (manifest.Log.SetEpoch). A stream already at epoch is left as it is.
func (s *Store) SetEpoch(stream string, epoch uint64) error {
	l, err := s.existing(stream)
	if err != nil {
		return err
	}
	if l.man.Epoch() == epoch {
		return nil
	}
	return l.man.SetEpoch(epoch)
}

// Archived returns how far Tier 2 holds stream (manifest.Log.Archived).
func (s *Store) Archived(stream string) (manifest.Archived, error) {
	l, err := s.existing(stream)
	if err != nil {
		return manifest.Archived{}, err
	}
	return l.man.Archived(), nil
}

// ArchiveNow sends the record of stream's latest upload to Tier 2 now
// rather than within manifest.archive_interval (manifest.Log.ArchiveNow).
// Someone waits for the archive (a handover, a drain): compression stops
// yielding to ingest for a while (pacing.go).
func (s *Store) ArchiveNow(stream string) error {
	s.pacer.hurry()
	l, err := s.existing(stream)
	if err != nil {
		return err
	}
	return l.man.ArchiveNow()
}

// Adopt makes stream's local copy the archived state Tier 2 holds for
// rec, the stream's archived-through record: the manifest chain of
// rec.Epoch up to rec.Position, or that epoch's newer chain when pruning
// took the position's away (AdoptFromTier2), with every segment left in
// Tier 2 to be hydrated on demand, and opens it at epoch. The adopted copy
// must archive at least through rec.Through and rec.NextOffset, else
// nothing is adopted and the error wraps ErrAdoptIncomplete. Records after
// the archived ones are not restored: the new owner reads them again from
// the ingest stream, and those of sealed segments the position covers but
// Tier 2 does not hold are stored again as a disaster recovery's (see
// HolesFile). The stream must not be open here (ErrStreamOpen); any files
// of it on disk are removed first.
func (s *Store) Adopt(ctx context.Context, stream string, rec manifest.Archived, epoch uint64) error {
	if _, err := s.existing(stream); err == nil {
		return fmt.Errorf("adopt %s: %w", stream, ErrStreamOpen)
	}
	t2 := bucketOrNil(s.opts.Tier2)
	if t2 == nil {
		return fmt.Errorf("adopt %s: no Tier 2 bucket to adopt from", stream)
	}
	if err := s.adoptLocked(ctx, stream, rec, t2); err != nil {
		return err
	}
	l, err := s.Log(ctx, stream)
	if err != nil {
		return err
	}
	if l.man.Epoch() < epoch {
		return l.man.SetEpoch(epoch)
	}
	return nil
}

// adoptLocked rebuilds stream's copy under openMu, and loads the lost
// ranges the adoption recorded for its Log to open with: the store read
// HolesFile at Open, before they existed.
func (s *Store) adoptLocked(ctx context.Context, stream string, rec manifest.Archived, t2 tier2.Bucket) error {
	s.openMu.Lock()
	defer s.openMu.Unlock()
	if err := removeStream(s.opts, stream); err != nil {
		return err
	}
	o := RecoverOptions{Root: s.opts.Root, Tier2: t2, FS: s.fs, Logger: s.log}
	if _, err := AdoptFromTier2(ctx, o, stream, rec); err != nil {
		// The copy is gone: so are the lost ranges recorded for it.
		if herr := setStreamHoles(s.fs, s.opts.Root, stream, streamHoles{}); herr != nil {
			s.log.Error("stream_adopt_cleanup_failed", "stream", stream, "file", HolesFile, "err", herr)
		}
		delete(s.holes, stream)
		return err
	}
	holes, err := loadHoles(s.fs, s.opts.Root)
	if err != nil {
		return err
	}
	if s.holes == nil {
		s.holes = map[string]streamHoles{}
	}
	if h, ok := holes[stream]; ok {
		s.holes[stream] = h
	} else {
		delete(s.holes, stream)
	}
	return nil
}
