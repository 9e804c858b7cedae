package control

import (
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bop-aof/aof/tiers"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// wireTypes is every body that crosses NATS, by the name the golden file
// uses. Responses first, then requests and the error body.
func wireTypes() []struct {
	name string
	v    any
} {
	return []struct {
		name string
		v    any
	}{
		{"StatusResponse", &StatusResponse{}},
		{"DumpResponse", &DumpResponse{}},
		{"SealResponse", &SealResponse{}},
		{"FlushResponse", &FlushResponse{}},
		{"HydrateResponse", &HydrateResponse{}},
		{"SegmentsListResponse", &SegmentsListResponse{}},
		{"SegmentsDeleteResponse", &SegmentsDeleteResponse{}},
		{"CheckReport", &CheckReport{}},
		{"ManifestInspectResponse", &ManifestInspectResponse{}},
		{"ReadResponse", &ReadResponse{}},
		{"SnapshotResponse", &SnapshotResponse{}},
		{"SnapshotListResponse", &SnapshotListResponse{}},
		{"ReloadResponse", &ReloadResponse{}},
		{"Error", &Error{}},
		{"StreamRequest", &StreamRequest{}},
		{"SealRequest", &SealRequest{}},
		{"FlushRequest", &FlushRequest{}},
		{"HydrateRequest", &HydrateRequest{}},
		{"SegmentsListRequest", &SegmentsListRequest{}},
		{"SegmentsDeleteRequest", &SegmentsDeleteRequest{}},
		{"ManifestCheckRequest", &ManifestCheckRequest{}},
		{"ManifestInspectRequest", &ManifestInspectRequest{}},
		{"ReadRequest", &ReadRequest{}},
	}
}

// TestWireJSONIsStable pins the JSON of every request and answer of the
// aof-admin service: aof2-admin --json output, docs/cli-reference.md and
// clients of other versions depend on its field names and value types.
// Each type is pinned twice: its zero value (which fields are omitted
// when empty) and with every field set (so omitempty fields show) to a value derived from
// its JSON path, never from the Go field name, so the golden file was
// written from the types before they became the protocol's own and
// proves that the move changed no byte. A change here is a protocol
// change: it needs a new APIVersion.
func TestWireJSONIsStable(t *testing.T) {
	var b strings.Builder
	for _, w := range wireTypes() {
		// The zero value, then one element in every slice and map with
		// zero leaves, pin which fields are omitted when empty.
		zero, err := json.Marshal(w.v)
		if err != nil {
			t.Fatalf("marshal zero %s: %v", w.name, err)
		}
		fillForWire(reflect.ValueOf(w.v).Elem(), w.name, false)
		empty, err := json.Marshal(w.v)
		if err != nil {
			t.Fatalf("marshal %s: %v", w.name, err)
		}
		fillForWire(reflect.ValueOf(w.v).Elem(), w.name, true)
		data, err := json.Marshal(w.v)
		if err != nil {
			t.Fatalf("marshal %s: %v", w.name, err)
		}
		fmt.Fprintf(&b, "%s zero %s\n%s empty %s\n%s %s\n", w.name, zero, w.name, empty, w.name, data)
	}
	golden := filepath.Join("testdata", "wire_json.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read %s (run with -update to write it): %v", golden, err)
	}
	gotLines, wantLines := strings.Split(b.String(), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < max(len(gotLines), len(wantLines)); i++ {
		var g, w string
		if i < len(gotLines) {
			g = gotLines[i]
		}
		if i < len(wantLines) {
			w = wantLines[i]
		}
		if g != w {
			t.Errorf("wire JSON changed:\n got  %s\n want %s", g, w)
		}
	}
}

// fillForWire gives every slice and map reachable from v one element and
// every pointer a value. With leaves it sets every exported field to a
// value derived from its JSON path: strings are the path, numbers a hash
// of it (1 to 100, to fit every width), booleans true, raw JSON an object
// naming the path; without, scalars stay zero.
func fillForWire(v reflect.Value, path string, leaves bool) {
	if !leaves && v.Kind() != reflect.Struct && v.Kind() != reflect.Pointer &&
		(v.Kind() != reflect.Slice || v.Type().Elem().Kind() == reflect.Uint8) && v.Kind() != reflect.Map {
		v.SetZero()
		return
	}
	if v.Type() == reflect.TypeOf(json.RawMessage(nil)) {
		v.SetBytes(fmt.Appendf(nil, `{"path":%q}`, path))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" && f.Anonymous {
				fillForWire(v.Field(i), path, leaves)
				continue
			}
			if name == "" {
				name = f.Name
			}
			fillForWire(v.Field(i), path+"."+name, leaves)
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillForWire(v.Elem(), path, leaves)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte(path))
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fillForWire(v.Index(0), path+"[0]", leaves)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		fillForWire(k, path+".key", true)
		e := reflect.New(v.Type().Elem()).Elem()
		fillForWire(e, path+"[key]", leaves)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.String:
		v.SetString(path)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(pathNumber(path)))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(pathNumber(path))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(pathNumber(path)) + 0.5)
	}
}

func pathNumber(path string) uint64 {
	h := fnv.New32a()
	h.Write([]byte(path))
	return uint64(h.Sum32()%100) + 1
}

// The store's segment states reach the wire as the typed constants, with
// the strings the protocol has always used: a live store's segments are
// sealed and active, and a segment without a readable copy is
// needs_recovery.
func TestSegmentStatesKeepTheirWireNames(t *testing.T) {
	_, s := buildDemoRoot(t, nil)
	defer s.Close()
	res, err := ListSegments(s, SegmentsListRequest{Stream: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	var got []SegmentState
	for _, seg := range res.Segments {
		got = append(got, seg.State)
	}
	if want := []SegmentState{StateSealed, StateSealed, StateActive}; !reflect.DeepEqual(got, want) {
		t.Fatalf("states of two sealed segments and the active one: %v, want %v", got, want)
	}
	cases := []struct {
		store tiers.SegmentStatus
		state SegmentState
		want  string
	}{
		{tiers.SegmentStatus{State: "active"}, StateActive, `"state":"active"`},
		{tiers.SegmentStatus{State: "sealed"}, StateSealed, `"state":"sealed"`},
		{tiers.SegmentStatus{State: "needs_recovery", NeedsRecovery: true}, StateNeedsRecovery, `"state":"needs_recovery"`},
	}
	for _, c := range cases {
		seg := segmentOf(c.store)
		if seg.State != c.state {
			t.Errorf("store state %q maps to %q, want %q", c.store.State, seg.State, c.state)
		}
		b, err := json.Marshal(seg)
		if err != nil || !strings.Contains(string(b), c.want) {
			t.Errorf("segment in state %q encodes as %s (%v), want %s", c.store.State, b, err, c.want)
		}
	}
}
