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
