package tier2

import "testing"

// Keys carry the writer's epoch; epoch 0 is the layout before epochs, and
// both layouts parse back to the same fields.
func TestObjectKeysCarryTheEpochAndParseInBothLayouts(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want ObjectKey
	}{
		{SegmentKeyAt("orders", 0, 42), ObjectKey{KindSegment, "orders", 0, 42}},
		{SegmentKeyAt("orders", 7, 42), ObjectKey{KindSegment, "orders", 7, 42}},
		{ManifestKeyAt("orders", 3, 5), ObjectKey{KindManifest, "orders", 3, 5}},
		{SnapshotKeyAt("orders", 3, 9), ObjectKey{KindSnapshot, "orders", 3, 9}},
	} {
		got, ok := ParseKey(tc.key)
		if !ok || got != tc.want {
			t.Errorf("ParseKey(%q) = %+v %v, want %+v", tc.key, got, ok, tc.want)
		}
	}
	for _, tc := range []struct{ got, want string }{
		{SegmentKeyAt("orders", 0, 42), "segments/orders/42.zst"},
		{SegmentKeyAt("orders", 7, 42), "segments/orders/7/42.zst"},
		{ManifestKeyAt("orders", 7, 5), "manifest/orders/7/5.mlog"},
		{SnapshotKeyAt("orders", 7, 9), "snapshots/orders/7/9.bin"},
		{SegmentKey("orders", 42), "segments/orders/42.zst"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
	for _, bad := range []string{
		"segments/orders/0/42.zst",  // epoch 0 has no epoch part
		"segments/orders/07/42.zst", // not canonical
		"segments/orders/1/2/42.zst",
		"segments/orders/x/42.zst",
		"manifest/orders/1/5.zst",
		"other/orders/1/5.zst",
		"segments//1/5.zst",
	} {
		if k, ok := ParseKey(bad); ok {
			t.Errorf("ParseKey accepted %q as %+v", bad, k)
		}
	}
}

// Two writers of different epochs never share a key for the same segment,
// chunk or snapshot, whatever the ids.
func TestKeysOfDifferentEpochsNeverCollide(t *testing.T) {
	seen := map[string]ObjectKey{}
	for epoch := uint64(0); epoch < 4; epoch++ {
		for id := uint64(0); id < 20; id++ {
			for _, k := range []ObjectKey{{KindSegment, "s", epoch, id}, {KindManifest, "s", epoch, id}, {KindSnapshot, "s", epoch, id}} {
				key := k.String()
				if prev, dup := seen[key]; dup {
					t.Fatalf("%+v and %+v share key %s", prev, k, key)
				}
				seen[key] = k
			}
		}
	}
}
