package segment

import (
	"encoding/binary"
	"hash/crc64"
)

// nvmeSlicing8 holds the slicing-by-8 tables for CRC-64/NVME. The standard
// library builds such tables only for ISO and ECMA and rebuilds them on every
// large update for other polynomials, so the segment writer, which checksums
// every group commit, keeps its own.
var nvmeSlicing8 = func() *[8]crc64.Table {
	var t [8]crc64.Table
	t[0] = *nvme
	for i := 0; i < 256; i++ {
		c := nvme[i]
		for j := 1; j < 8; j++ {
			c = nvme[c&0xff] ^ (c >> 8)
			t[j][i] = c
		}
	}
	return &t
}()

// crc64Update extends a CRC-64/NVME value with p. It returns the same result
// as crc64.Update(crc, nvme, p).
func crc64Update(crc uint64, p []byte) uint64 {
	t := nvmeSlicing8
	crc = ^crc
	for len(p) >= 8 {
		crc ^= binary.LittleEndian.Uint64(p)
		crc = t[7][crc&0xff] ^
			t[6][(crc>>8)&0xff] ^
			t[5][(crc>>16)&0xff] ^
			t[4][(crc>>24)&0xff] ^
			t[3][(crc>>32)&0xff] ^
			t[2][(crc>>40)&0xff] ^
			t[1][(crc>>48)&0xff] ^
			t[0][crc>>56]
		p = p[8:]
	}
	for _, v := range p {
		crc = t[0][byte(crc)^v] ^ (crc >> 8)
	}
	return ^crc
}
