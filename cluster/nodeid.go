package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"

	"github.com/bop-aof/aof/config"
)

// DefaultNodeID derives a node id from the host name and the data root:
// "<host>-<8 hex digits of SHA-256 of the absolute root>". It is stable
// across restarts of the same gateway, tells two gateways on one host apart
// and is one valid KV key token (config.ValidStreamName): characters other
// than [A-Za-z0-9_-] in the host name become '-', and the host part is cut
// so the whole id fits config.MaxStreamNameLen.
func DefaultNodeID(hostname, dataRoot string) string {
	if abs, err := filepath.Abs(dataRoot); err == nil {
		dataRoot = abs
	}
	sum := sha256.Sum256([]byte(filepath.Clean(dataRoot)))
	suffix := "-" + hex.EncodeToString(sum[:4])
	host := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '-'
	}, hostname)
	if host == "" {
		host = "node"
	}
	if max := config.MaxStreamNameLen - len(suffix); len(host) > max {
		host = host[:max]
	}
	return host + suffix
}
