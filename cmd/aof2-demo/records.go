package main

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"

	"github.com/bop-aof/aof/control"
)

// Headers the demo sets on every record so a record read back names the
// run and the index it was published under, whatever offset the store
// gave it (the stream may hold records of earlier runs or other
// producers).
const (
	HeaderRun   = "Aof-Demo-Run"
	HeaderIndex = "Aof-Demo-Index"
)

// Record sizes the demo accepts, in bytes of body.
const (
	MinRecordBytes = 64
	MaxRecordBytes = 512 << 10 // below ingest.max_record_bytes (1 MiB) with room for the envelope
)

// words fill record bodies: text of a small vocabulary compresses the way
// application events do (neither random bytes nor one repeated letter).
var words = []string{
	"order", "created", "shipped", "paid", "refund", "customer", "warehouse",
	"sku", "quantity", "price", "eur", "usd", "express", "standard", "berlin",
	"lisbon", "osaka", "denver", "status", "ok", "retry", "pending", "done",
}

// RecordBody returns the body of record i of run: a JSON object naming the
// run and the index, filled to exactly size bytes with words drawn from a
// generator seeded by (run, i). The same arguments always give the same
// bytes, so a reader can check a record without having kept it.
func RecordBody(run string, i, size int) []byte {
	h := fnv.New64a()
	h.Write([]byte(run))
	rng := rand.New(rand.NewPCG(h.Sum64(), uint64(i)))
	b := make([]byte, 0, size)
	b = fmt.Appendf(b, `{"run":%q,"i":%d,"data":"`, run, i)
	const tail = `"}`
	for len(b) < size-len(tail) {
		w := words[rng.IntN(len(words))]
		room := size - len(tail) - len(b)
		if len(w)+1 > room {
			b = append(b, bytes.Repeat([]byte{'.'}, room)...)
			break
		}
		b = append(b, w...)
		b = append(b, ' ')
	}
	return append(b, tail...)
}

// Published is what the producer knows about one run: its name, the body
// size, and the JetStream stream sequence each record was acked with (0:
// not acked).
type Published struct {
	Run         string
	RecordBytes int
	Seq         []uint64
}

// Verify checks that m, read back from the store at offset want, is a
// record of this run whose body is byte-identical to what was published
// and whose ext_id is the JetStream sequence of its ack. It returns the
// record's index.
func (p *Published) Verify(m control.Message, want uint64) (int, error) {
	if m.Offset != want {
		return -1, fmt.Errorf("asked for offset %d, got offset %d", want, m.Offset)
	}
	if m.Raw {
		return -1, fmt.Errorf("offset %d: payload is not a NATS message envelope", m.Offset)
	}
	run := first(m.Header, HeaderRun)
	if run != p.Run {
		return -1, fmt.Errorf("offset %d: record of run %q, not of this run %q", m.Offset, run, p.Run)
	}
	i, err := strconv.Atoi(first(m.Header, HeaderIndex))
	if err != nil || i < 0 || i >= len(p.Seq) {
		return -1, fmt.Errorf("offset %d: bad %s header %q", m.Offset, HeaderIndex, first(m.Header, HeaderIndex))
	}
	if body := RecordBody(p.Run, i, p.RecordBytes); !bytes.Equal(m.Body, body) {
		return i, fmt.Errorf("offset %d (record %d): body differs from the published one (%d bytes read, %d published)", m.Offset, i, len(m.Body), len(body))
	}
	if p.Seq[i] == 0 {
		return i, fmt.Errorf("offset %d (record %d): stored, but its publish was never acked", m.Offset, i)
	}
	if m.ExtID != p.Seq[i] {
		return i, fmt.Errorf("offset %d (record %d): ext_id %d, but JetStream acked it as sequence %d", m.Offset, i, m.ExtID, p.Seq[i])
	}
	return i, nil
}

func first(h map[string][]string, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}
