package tiers

import (
	"errors"
	"fmt"

	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/tier1"
)

// One owner for segment state. Where a segment is in its life and where
// its copies are (segInfo.st) changes at run time in one way: the log
// writes a manifest record and folds it into its view with the fold that
// replay uses (manifest.SegmentState.Apply), so the view after a restart
// is the view before it. When a record takes effect in the view follows
// the guarantee it carries:
//
//   - a record that removes a guarantee another tier may rely on (a copy
//     goes: LocalEvicted, UploadStarted, Tier2Deleted; a failure) takes
//     effect when it is appended, even if its commit then fails: once
//     pending it may commit with any later manifest write, so the copy
//     counts as gone from then on;
//   - a record that adds one (a copy or a phase others act on:
//     CompressionDone, UploadDone, HydrationDone, SealSegment) takes
//     effect once its commit returned, never while it may still be lost.
//
// The Tier 0 budget and the Tier 1 cache follow the result of each apply
// in one place, reactLocked. The recovery plan (recovery.go) builds the
// view at boot from the manifest index and the files found.

// takesEffectWhenAppended tells which records change the view as soon as
// the manifest takes them (see above). SegmentOpened is one: it adds no
// copy that another tier's removal relies on, and the active segment must
// be in the view before the next append.
func takesEffectWhenAppended(t manifest.RecordType) bool {
	switch t {
	case manifest.SealSegment, manifest.SegmentBounds, manifest.CompressionDone,
		manifest.UploadDone, manifest.HydrationDone:
		return false
	}
	return true
}

// appendRecordLocked appends r to the manifest and, when r removes a
// guarantee, folds it into the view at once. It returns r as appended
// (timestamped), for committedLocked. Called with mu held, or before the
// log is shared (recovery).
func (l *Log) appendRecordLocked(r manifest.Record) (manifest.Record, error) {
	if r.TimestampMS == 0 {
		r.TimestampMS = l.s.opts.Now().UnixMilli()
	}
	// A failed or refused manifest write is counted (metadata_failures) by
	// the manifest itself, whichever path wrote it.
	if _, err := l.man.Append(r); err != nil {
		return r, fmt.Errorf("manifest %s: %w", r.Type, err)
	}
	if takesEffectWhenAppended(r.Type) {
		l.applyLocked(r)
	}
	return r, nil
}

// committedLocked folds records whose commit the caller saw return nil
// and that wait for it (the others took effect when appended).
func (l *Log) committedLocked(rs ...manifest.Record) {
	for _, r := range rs {
		if !takesEffectWhenAppended(r.Type) {
			l.applyLocked(r)
		}
	}
}

// record appends a manifest record for this stream and commits it, so the
// transition it describes is durable before the caller reports it done.
// A refused Append leaves nothing behind; a failed Commit returns a
// *recordPendingError, because the record then stays pending (and a
// record that removes a guarantee has taken effect already).
//
// Records written through record take effect in the order the manifest
// holds them (recordMu): otherwise an UploadDone whose commit returned
// could take effect after the UploadStarted of a second upload of the
// segment appended behind it, and count an object the manifest no longer
// vouches for. (The records the log writes under mu alone, seals, opens
// and Tier 0 evictions, concern other segments or other copies.)
func (l *Log) record(r manifest.Record) error {
	l.recordMu.Lock()
	defer l.recordMu.Unlock()
	l.mu.Lock()
	r, err := l.appendRecordLocked(r)
	l.mu.Unlock()
	if err != nil {
		return err
	}
	if err := l.man.Commit(); err != nil {
		return &recordPendingError{Type: r.Type, Segment: r.Segment, Err: err}
	}
	l.mu.Lock()
	l.committedLocked(r)
	l.mu.Unlock()
	return nil
}

// applyLocked folds r into the view of its segment and has the Tier 0
// budget and the Tier 1 cache follow. It is the only run-time writer of
// segInfo.st besides clearNeedsRecovery.
func (l *Log) applyLocked(r manifest.Record) {
	si := l.segmentLocked(r.Segment)
	if si == nil {
		return
	}
	before := si.st
	si.st.Apply(r)
	if r.Type == manifest.UploadFailed {
		// The fold marks a segment whose upload failed with a codec
		// reason (a digest mismatch in transit) as needing recovery, and
		// a replay does so too; at run time the local copy the upload
		// read is intact, and the upload is retried, so the segment stays
		// readable and its ext_ids keep counting.
		si.st.NeedsRecovery, si.st.Reason = before.NeedsRecovery, before.Reason
	}
	if si.st.NeedsRecovery != before.NeedsRecovery {
		l.forgetMaxExt()
	}
	l.reactLocked(si, before, r.Type)
	l.cond.Broadcast()
}

// reactLocked makes the Tier 0 budget and the Tier 1 cache follow a change
// of segment si's copies made by a record of type t: a sealed Tier 0 file
// may be evicted once its Tier 1 copy exists (the budget counts the
// file's bytes until the file goes: evictTier0, dropSegment), and a Tier 1
// artifact may be evicted once it is known to match Tier 2: Tier 2
// confirmed its upload, or it was hydrated from Tier 2. (An artifact
// compressed again while Tier 2 already held the segment is not: a repair
// does that because the object is damaged, and its own upload marks it.)
// Neither call waits on a lock the caller may hold: the budget evicts on
// the admitting goroutine, and the cache only signals the store's Tier 1
// eviction goroutine.
func (l *Log) reactLocked(si *segInfo, before manifest.SegmentState, t manifest.RecordType) {
	key, after := newSegmentKey(l.name, si.id), si.st
	if after.Sealed && !before.Sealed {
		l.s.budget.MarkSealed(key)
	}
	if after.InTier1 != before.InTier1 {
		l.s.budget.MarkInTier1(key, after.InTier1)
	}
	confirmed := after.InTier2 && !before.InTier2 || t == manifest.HydrationDone && after.InTier2
	if after.InTier1 && confirmed {
		// ErrNotCached: the artifact went meanwhile; nothing to mark.
		l.s.bg.cache.MarkUploaded(tier1.Key{Stream: l.name, Segment: si.id})
	}
}

// clearNeedsRecovery is called once a repair re-upload is confirmed. It
// is the one run-time change of segment state that no record makes: the
// manifest fold has no record that clears NeedsRecovery, so a restart
// marks the repaired segment again from the manifest.
func (l *Log) clearNeedsRecovery(id uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if si := l.segmentLocked(id); si != nil && si.st.NeedsRecovery {
		si.st.NeedsRecovery, si.st.Reason = false, 0
		l.forgetMaxExt()
	}
}

// recordPendingError says the manifest took a record but could not commit
// it. The record stays pending and commits with the stream's next manifest
// write (or is lost with a crash before that), so the transition it
// describes may or may not become durable. The view therefore counts a
// copy the record removes as gone and one it adds as not there yet.
type recordPendingError struct {
	Type    manifest.RecordType
	Segment uint64
	Err     error
}

func (e *recordPendingError) Error() string {
	return fmt.Sprintf("manifest %s of segment %d not committed (pending, commits with the next manifest write): %v", e.Type, e.Segment, e.Err)
}

func (e *recordPendingError) Unwrap() error { return e.Err }

// isRecordPending reports whether err left its record pending.
func isRecordPending(err error) bool {
	var pe *recordPendingError
	return errors.As(err, &pe)
}
