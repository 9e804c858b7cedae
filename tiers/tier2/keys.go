package tier2

import (
	"fmt"
	"strconv"
	"strings"
)

// SegmentKey is the key of a segment artifact: segments/<stream>/<segment_id>.zst.
func SegmentKey(stream string, id uint64) string {
	return fmt.Sprintf("segments/%s/%d.zst", stream, id)
}

// ManifestKey is the key of a manifest chunk: manifest/<stream>/<chunk_index>.mlog.
func ManifestKey(stream string, chunk uint64) string {
	return fmt.Sprintf("manifest/%s/%d.mlog", stream, chunk)
}

// SnapshotKey is the key of a manifest snapshot: snapshots/<stream>/<snapshot_id>.bin.
func SnapshotKey(stream string, id uint64) string {
	return fmt.Sprintf("snapshots/%s/%d.bin", stream, id)
}

// ParseSegmentKey is the inverse of SegmentKey, for rebuilding from List.
func ParseSegmentKey(key string) (stream string, id uint64, ok bool) {
	rest, found := strings.CutPrefix(key, "segments/")
	if !found {
		return "", 0, false
	}
	stream, file, found := strings.Cut(rest, "/")
	num, isZst := strings.CutSuffix(file, ".zst")
	if !found || !isZst || stream == "" {
		return "", 0, false
	}
	id, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return "", 0, false
	}
	return stream, id, true
}
