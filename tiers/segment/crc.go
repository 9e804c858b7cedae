package segment

import "github.com/minio/crc64nvme"

// crc64Update extends a CRC-64/NVME value with p. It returns the same result
// as crc64.Update(crc, nvme, p), using minio/crc64nvme's carry-less
// multiplication code where the CPU has it: the writer checksums every byte
// it writes, so the table-driven standard library version would cost a
// noticeable share of a core at full ingest speed.
func crc64Update(crc uint64, p []byte) uint64 {
	return crc64nvme.Update(crc, p)
}
