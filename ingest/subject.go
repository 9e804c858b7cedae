package ingest

import (
	"fmt"
	"strings"

	"github.com/bop-aof/aof/config"
)

// StreamFromSubject returns the store stream a message on subject belongs
// to: the single token after prefix ("aof.ingest.orders" -> "orders").
func StreamFromSubject(prefix, subject string) (string, error) {
	rest, ok := strings.CutPrefix(subject, prefix+".")
	if !ok {
		return "", fmt.Errorf("subject %q is not under %s.>", subject, prefix)
	}
	if strings.Contains(rest, ".") {
		return "", fmt.Errorf("subject %q: stream must be one token after %s., got %q", subject, prefix, rest)
	}
	if err := config.ValidStreamName(rest); err != nil {
		return "", fmt.Errorf("subject %q: %w", subject, err)
	}
	return rest, nil
}
