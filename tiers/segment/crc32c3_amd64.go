package segment

import "golang.org/x/sys/cpu"

var hasSSE42 = cpu.X86.HasSSE42

//go:noescape
func castagnoli3SSE42(c0, c1, c2 uint32, p0, p1, p2 *byte, n int) (r0, r1, r2 uint32)

// checksum3 returns the CRC-32C (Castagnoli) of a, b and c, the same values
// as crc32.Checksum(x, castagnoli) for each. The common prefix of the three
// runs through one interleaved loop: a record of a few hundred bytes is too
// short for hash/crc32's own three-way split, and checksumming records one
// after another waits on the instruction's latency three times over.
func checksum3(a, b, c []byte) (uint32, uint32, uint32) {
	n := min(len(a), len(b), len(c))
	if !hasSSE42 || n == 0 {
		return checksum3Generic(a, b, c)
	}
	r0, r1, r2 := castagnoli3SSE42(^uint32(0), ^uint32(0), ^uint32(0), &a[0], &b[0], &c[0], n)
	return finish(^r0, a[n:]), finish(^r1, b[n:]), finish(^r2, c[n:])
}

// finish extends crc with the bytes of one buffer past the common prefix,
// usually none.
func finish(crc uint32, rest []byte) uint32 {
	if len(rest) == 0 {
		return crc
	}
	return crc32Update(crc, rest)
}
