//go:build !amd64

package segment

// checksum3 returns the CRC-32C (Castagnoli) of a, b and c.
func checksum3(a, b, c []byte) (uint32, uint32, uint32) {
	return checksum3Generic(a, b, c)
}
