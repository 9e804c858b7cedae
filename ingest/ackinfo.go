package ingest

import (
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// deliverySequences returns a JetStream message's stream and consumer
// sequences. It reads them straight from the reply subject, without the
// allocations of Msg.Metadata, which decodes every field; a reply it does
// not recognise goes to Metadata for the decoding and its error.
//
// The reply is $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>
// (9 tokens), or, from newer servers, with <domain>.<account hash> after
// $JS.ACK and possibly a last token more (11 or more tokens), the layouts
// nats.go's own parser accepts.
func deliverySequences(m jetstream.Msg) (stream, consumer uint64, err error) {
	if s, c, ok := parseAckReply(m.Reply()); ok {
		return s, c, nil
	}
	meta, err := m.Metadata()
	if err != nil {
		return 0, 0, err
	}
	return meta.Sequence.Stream, meta.Sequence.Consumer, nil
}

// parseAckReply extracts the stream and consumer sequences of an ack reply
// subject; ok is false unless it is a well-formed one.
func parseAckReply(reply string) (stream, consumer uint64, ok bool) {
	rest, found := strings.CutPrefix(reply, "$JS.ACK.")
	if !found {
		return 0, 0, false
	}
	// Tokens after $JS.ACK: 7 in the old layout, 9 or more in the new.
	sseqAt := 0
	switch n := strings.Count(rest, ".") + 1; {
	case n == 7:
		sseqAt = 3
	case n >= 9:
		sseqAt = 5
	default:
		return 0, 0, false
	}
	for range sseqAt {
		_, rest, _ = strings.Cut(rest, ".")
	}
	sTok, rest, _ := strings.Cut(rest, ".")
	cTok, _, _ := strings.Cut(rest, ".")
	if stream, ok = parseSeq(sTok); !ok {
		return 0, 0, false
	}
	if consumer, ok = parseSeq(cTok); !ok {
		return 0, 0, false
	}
	return stream, consumer, true
}

// parseSeq parses a sequence token: decimal digits, no sign, and not so
// many that the value could overflow.
func parseSeq(tok string) (uint64, bool) {
	if len(tok) == 0 || len(tok) > 19 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}
