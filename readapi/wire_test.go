package readapi

import (
	"encoding/json"
	"testing"
)

// TestWireJSONIsStable pins the JSON of every wire type: a change here is
// a protocol change and needs a new APIVersion.
func TestWireJSONIsStable(t *testing.T) {
	cases := []struct {
		name string
		v    any
		want string
	}{
		{"empty request", Request{}, `{}`},
		{"request", Request{StartOffset: 1, StartSeq: 2, StartTime: "2026-01-02T03:04:05Z", EndOffset: 3, MaxMsgs: 4, MaxBytes: 5, Follow: true, HeartbeatMS: 6, ExpiresMS: 7, Pack: true},
			`{"start_offset":1,"start_seq":2,"start_time":"2026-01-02T03:04:05Z","end_offset":3,"max_msgs":4,"max_bytes":5,"follow":true,"heartbeat_ms":6,"expires_ms":7,"pack":true}`},
		{"end of batch", EndOfBatch{Stream: "s", NextOffset: 1, Records: 2, Bytes: 3, Pending: 4, AtTail: true, Reason: ReasonTail},
			`{"stream":"s","next_offset":1,"records":2,"bytes":3,"pending":4,"at_tail":true,"reason":"tail"}`},
		{"error", Error{Code: StatusUnavailable, Description: "d", Stream: "s", Retryable: true, Records: 1, NextOffset: 2},
			`{"code":"503","description":"d","stream":"s","retryable":true,"records":1,"next_offset":2}`},
	}
	for _, c := range cases {
		b, err := json.Marshal(c.v)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if string(b) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, b, c.want)
		}
	}
}

// TestHeaderAndStatusNamesAreStable pins the names a client in another
// language matches on.
func TestHeaderAndStatusNamesAreStable(t *testing.T) {
	got := []string{APIVersionHeader, HeaderSubject, HeaderStream, HeaderOffset, HeaderSeq, HeaderTime, HeaderRaw,
		HeaderStatus, HeaderDescription, HeaderNextOffset, HeaderPending, HeaderPack,
		StatusHeartbeat, StatusEndOfBatch, StatusBadRequest, StatusNotFound, StatusGone, StatusTooLarge,
		StatusBeyondEnd, StatusInternal, StatusNotImplemented, StatusUnavailable, StatusVersionMismatch}
	want := []string{"Aof-Api-Version", "Aof-Subject", "Aof-Stream", "Aof-Offset", "Aof-Seq", "Aof-Time", "Aof-Raw",
		"Aof-Status", "Aof-Description", "Aof-Next-Offset", "Aof-Pending", "Aof-Pack",
		"100", "204", "400", "404", "410", "413", "416", "500", "501", "503", "505"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("name %d: got %q, want %q", i, got[i], want[i])
		}
	}
}
