package tier2

import (
	"strconv"
	"strings"
)

// Object keys carry the epoch of the writer that owned the stream when it
// wrote them (DESIGN.md, "Ownership, failover and scale-out", point 3):
//
//	segments/<stream>/<epoch>/<segment_id>.zst
//	manifest/<stream>/<epoch>/<chunk_index>.mlog
//	snapshots/<stream>/<epoch>/<snapshot_id>.bin
//
// Two owners of different epochs therefore never write the same key, so a
// zombie owner (paused past its lease, then resumed) cannot overwrite an
// object the new owner references. Epoch 0 is the layout written before
// epochs existed, without the epoch part (segments/<stream>/<id>.zst):
// keys written then read as epoch 0, and a store without ownership keeps
// writing them. Stream names never contain "/" (config.ValidStreamName),
// so the two layouts cannot be confused.

// Kinds of object, named by the first part of the key.
const (
	KindSegment  = "segments"
	KindManifest = "manifest"
	KindSnapshot = "snapshots"
)

var kindExt = map[string]string{KindSegment: ".zst", KindManifest: ".mlog", KindSnapshot: ".bin"}

// ObjectKey is a parsed object key.
type ObjectKey struct {
	Kind   string // KindSegment, KindManifest or KindSnapshot
	Stream string
	Epoch  uint64 // 0 for keys without an epoch part
	ID     uint64 // segment id, chunk index or snapshot id
}

// String formats the key in its epoch's layout.
func (k ObjectKey) String() string {
	var b strings.Builder
	b.WriteString(k.Kind)
	b.WriteByte('/')
	b.WriteString(k.Stream)
	b.WriteByte('/')
	if k.Epoch > 0 {
		b.WriteString(strconv.FormatUint(k.Epoch, 10))
		b.WriteByte('/')
	}
	b.WriteString(strconv.FormatUint(k.ID, 10))
	b.WriteString(kindExt[k.Kind])
	return b.String()
}

// SegmentKeyAt is the key of a segment artifact written under epoch.
func SegmentKeyAt(stream string, epoch, id uint64) string {
	return ObjectKey{Kind: KindSegment, Stream: stream, Epoch: epoch, ID: id}.String()
}

// ManifestKeyAt is the key of a manifest chunk written under epoch.
func ManifestKeyAt(stream string, epoch, chunk uint64) string {
	return ObjectKey{Kind: KindManifest, Stream: stream, Epoch: epoch, ID: chunk}.String()
}

// SnapshotKeyAt is the key of a manifest snapshot written under epoch.
func SnapshotKeyAt(stream string, epoch, id uint64) string {
	return ObjectKey{Kind: KindSnapshot, Stream: stream, Epoch: epoch, ID: id}.String()
}

// SegmentKey is the epoch-0 key of a segment artifact,
// segments/<stream>/<segment_id>.zst: the layout before epochs. Code that
// writes names the epoch (SegmentKeyAt); a reader follows the key the
// manifest recorded.
func SegmentKey(stream string, id uint64) string { return SegmentKeyAt(stream, 0, id) }

// ManifestKey is the epoch-0 key of a manifest chunk,
// manifest/<stream>/<chunk_index>.mlog.
func ManifestKey(stream string, chunk uint64) string { return ManifestKeyAt(stream, 0, chunk) }

// SnapshotKey is the epoch-0 key of a manifest snapshot,
// snapshots/<stream>/<snapshot_id>.bin.
func SnapshotKey(stream string, id uint64) string { return SnapshotKeyAt(stream, 0, id) }

// ParseKey parses an object key of either layout. Keys of other shapes
// (temporary objects, foreign files) are not ok.
func ParseKey(key string) (ObjectKey, bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 3 && len(parts) != 4 {
		return ObjectKey{}, false
	}
	k := ObjectKey{Kind: parts[0], Stream: parts[1]}
	ext, known := kindExt[k.Kind]
	if !known || k.Stream == "" {
		return ObjectKey{}, false
	}
	if len(parts) == 4 {
		e, ok := parseNumber(parts[2])
		if !ok || e == 0 {
			return ObjectKey{}, false // epoch 0 has no epoch part
		}
		k.Epoch = e
	}
	num, found := strings.CutSuffix(parts[len(parts)-1], ext)
	id, ok := parseNumber(num)
	if !found || !ok {
		return ObjectKey{}, false
	}
	k.ID = id
	return k, true
}

// parseNumber accepts only the canonical decimal form, so one object has
// one key ("007.zst" is not segment 7).
func parseNumber(s string) (uint64, bool) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != s {
		return 0, false
	}
	return n, true
}

// ParseSegmentKey parses a segment key of either layout, for rebuilding
// from List; ParseKey also returns the epoch.
func ParseSegmentKey(key string) (stream string, id uint64, ok bool) {
	k, ok := ParseKey(key)
	if !ok || k.Kind != KindSegment {
		return "", 0, false
	}
	return k.Stream, k.ID, true
}
