package tier1

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
)

// fakeSegment builds segment-like bytes: a 64-byte header, records of a
// 32-byte header plus a JSON-ish payload of mixed size, and a 48-byte
// footer. It returns the bytes and the record boundaries.
func fakeSegment(seed uint64, records int, base uint64) ([]byte, []RecordBoundary) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	buf := make([]byte, 64, records*400)
	copy(buf, "AOF2SEGM")
	var bounds []RecordBoundary
	kinds := []string{"order.created", "order.paid", "user.login", "sensor.reading", "audit.write"}
	for i := range records {
		var payload []byte
		switch rng.IntN(10) {
		case 0: // a large blob now and then
			payload = fmt.Appendf(nil, `{"kind":"blob","id":%d,"data":"`, i)
			for range 2000 + rng.IntN(6000) {
				payload = append(payload, "abcdefghijklmnopqrstuvwxyz0123456789"[rng.IntN(36)])
			}
			payload = append(payload, `"}`...)
		default:
			payload = fmt.Appendf(nil, `{"kind":%q,"id":%d,"user":"u-%d","amount":%d.%02d,"ts":%d,"tags":["a","b%d"],"note":"%x"}`,
				kinds[rng.IntN(len(kinds))], i, rng.IntN(5000), rng.IntN(100000), rng.IntN(100), 1700000000000+int64(i)*7, rng.IntN(9), rng.Uint64())
		}
		bounds = append(bounds, RecordBoundary{ByteOffset: int64(len(buf)), LogicalOffset: base + uint64(i)})
		var h [32]byte
		binary.LittleEndian.PutUint32(h[0:], uint32(len(payload)))
		binary.LittleEndian.PutUint64(h[8:], base+uint64(i))
		binary.LittleEndian.PutUint64(h[16:], 1700000000000+uint64(i))
		binary.LittleEndian.PutUint64(h[24:], uint64(i+1))
		buf = append(buf, h[:]...)
		buf = append(buf, payload...)
	}
	buf = append(buf, make([]byte, 48)...)
	return buf, bounds
}
