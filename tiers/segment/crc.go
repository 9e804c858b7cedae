package segment

import (
	"hash/crc32"

	"github.com/minio/crc64nvme"
)

// crc64Update extends a CRC-64/NVME value with p. It returns the same result
// as crc64.Update(crc, nvme, p), using minio/crc64nvme's carry-less
// multiplication code where the CPU has it: the writer checksums every byte
// it writes, so the table-driven standard library version would cost a
// noticeable share of a core at full ingest speed.
func crc64Update(crc uint64, p []byte) uint64 {
	return crc64nvme.Update(crc, p)
}

// crc32Update extends a CRC-32C value with p.
func crc32Update(crc uint32, p []byte) uint32 {
	return crc32.Update(crc, castagnoli, p)
}

// checksum3Generic is checksum3 one buffer at a time.
func checksum3Generic(a, b, c []byte) (uint32, uint32, uint32) {
	return crc32.Checksum(a, castagnoli), crc32.Checksum(b, castagnoli), crc32.Checksum(c, castagnoli)
}
