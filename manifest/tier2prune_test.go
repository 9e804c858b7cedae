package manifest

import (
	"fmt"
	"testing"
)

// Tier 2 keeps the fallback snapshot and everything newer, and every chunk
// from the fallback's position on; the rest goes.
func TestTier2PrunePlanKeepsTheFallbackAndWhatItNeeds(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		chunks, snaps             []uint64
		fallbackID, fallbackChunk uint64
		dropChunks, dropSnaps     []uint64
	}{
		{"steady state", []uint64{3, 4, 5, 6, 7, 8}, []uint64{4, 5, 6}, 5, 6, []uint64{3, 4, 5}, []uint64{4}},
		{"a newer snapshot waits for its chunk", []uint64{6, 7}, []uint64{5, 6, 7}, 5, 6, nil, nil},
		{"fallback and anchor share a chunk", []uint64{1, 2, 3}, []uint64{1, 2, 3}, 2, 3, []uint64{1, 2}, []uint64{1}},
		{"nothing older", []uint64{0, 1}, []uint64{1, 2}, 1, 0, nil, nil},
	} {
		dc, ds := Tier2PrunePlan(tc.chunks, tc.snaps, tc.fallbackID, tc.fallbackChunk)
		if fmt.Sprint(dc) != fmt.Sprint(tc.dropChunks) || fmt.Sprint(ds) != fmt.Sprint(tc.dropSnaps) {
			t.Errorf("%s: drop chunks %v snapshots %v, want %v %v", tc.name, dc, ds, tc.dropChunks, tc.dropSnaps)
		}
	}
}
