package main

import "testing"

type fixedOwners map[string]string

func (fixedOwners) Self() string                 { return "me" }
func (o fixedOwners) Owner(stream string) string { return o[stream] }

// A partition this gateway holds is its own for reads only once its
// takeover is done: before, its store may hold a stale copy.
func TestReadsCountAPartitionOwnedOnceItsTakeoverIsDone(t *testing.T) {
	done := map[int]bool{1: true}
	r := takeoverRouter{Router: fixedOwners{"a": "me", "b": "me", "c": "other"},
		partitionOf: func(s string) int { return map[string]int{"a": 1, "b": 2, "c": 3}[s] },
		done:        func(p int) bool { return done[p] }}
	for stream, want := range map[string]string{"a": "me", "b": "", "c": "other", "d": ""} {
		if got := r.Owner(stream); got != want {
			t.Errorf("owner of %s = %q, want %q", stream, got, want)
		}
	}
}

// A term is done once its pipeline has positioned its consumer, and stays
// done while the pipeline stops for a handover; a new term starts over.
func TestATermIsDoneOncePositionedUntilTheLeaseChanges(t *testing.T) {
	epoch, held, positioned := uint64(3), true, false
	d := &termsDone{term: func(int) (uint64, bool) { return epoch, held }, positioned: func(int) bool { return positioned },
		done: map[int]uint64{}}
	steps := []struct {
		name                 string
		epoch                uint64
		held, positioned, ok bool
	}{
		{"taken, not positioned", 3, true, false, false},
		{"positioned", 3, true, true, true},
		{"handing over: pipeline stopped", 3, true, false, true},
		{"released", 3, false, false, false},
		{"taken again, stale copy open", 5, true, false, false},
		{"positioned again", 5, true, true, true},
	}
	for _, s := range steps {
		epoch, held, positioned = s.epoch, s.held, s.positioned
		if got := d.isDone(1); got != s.ok {
			t.Fatalf("%s: done %v, want %v", s.name, got, s.ok)
		}
	}
}
