package ingest

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseAckReply(t *testing.T) {
	cases := []struct {
		reply        string
		stream, cons uint64
		ok           bool
		why          string
	}{
		{"$JS.ACK.AOF_INGEST.gw.1.4821.97.1700000000000000000.12", 4821, 97, true, "old layout, 9 tokens"},
		{"$JS.ACK._.ACCHASH.AOF_INGEST.gw.1.4821.97.1700000000000000000.12.r4nd", 4821, 97, true, "new layout, 12 tokens"},
		{"$JS.ACK.hub.ACCHASH.AOF_INGEST.gw.3.18446744073709551.2.1700000000000000000.0", 18446744073709551, 2, true, "new layout without the last token"},
		{"$JS.ACK.AOF_INGEST.gw.1.4821.97.1700000000000000000", 0, 0, false, "8 tokens"},
		{"$JS.ACK._.H.AOF_INGEST.gw.1.4821.97.17", 0, 0, false, "10 tokens"},
		{"$JS.NAK.AOF_INGEST.gw.1.4821.97.1700000000000000000.12", 0, 0, false, "not an ack subject"},
		{"$JS.ACK.AOF_INGEST.gw.1.-4821.97.1700000000000000000.12", 0, 0, false, "signed sequence"},
		{"$JS.ACK.AOF_INGEST.gw.1..97.1700000000000000000.12", 0, 0, false, "empty sequence"},
		{"$JS.ACK.AOF_INGEST.gw.1.99999999999999999999.97.1.12", 0, 0, false, "sequence too long"},
		{"", 0, 0, false, "no reply"},
	}
	for _, c := range cases {
		s, cs, ok := parseAckReply(c.reply)
		if ok != c.ok || s != c.stream || cs != c.cons {
			t.Errorf("%s: parseAckReply(%q) = %d, %d, %v; want %d, %d, %v", c.why, c.reply, s, cs, ok, c.stream, c.cons, c.ok)
		}
	}
}

// FuzzParseAckReply checks parseAckReply against a plain split of the
// subject: whenever it accepts a reply, the sequences are the tokens at
// the positions of that layout.
func FuzzParseAckReply(f *testing.F) {
	f.Add("$JS.ACK.AOF_INGEST.gw.1.4821.97.1700000000000000000.12")
	f.Add("$JS.ACK._.ACCHASH.AOF_INGEST.gw.1.4821.97.1700000000000000000.12.r4nd")
	f.Add("$JS.ACK.a.b.c.d.e.f.g")
	f.Fuzz(func(t *testing.T, reply string) {
		s, c, ok := parseAckReply(reply)
		if !ok {
			return
		}
		tok := strings.Split(reply, ".")
		si := 5
		if len(tok) >= 11 {
			si = 7
		}
		ws, err1 := strconv.ParseUint(tok[si], 10, 64)
		wc, err2 := strconv.ParseUint(tok[si+1], 10, 64)
		if err1 != nil || err2 != nil || ws != s || wc != c {
			t.Fatalf("parseAckReply(%q) = %d, %d; tokens say %q, %q", reply, s, c, tok[si], tok[si+1])
		}
	})
}
