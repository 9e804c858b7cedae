package ingest

import (
	"fmt"
	"strconv"
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

// storedSubject is what a message's stored subject says: the producer's
// stream, the partition token (partitioned form only), and the subject
// the producer published to.
type storedSubject struct {
	stream    string
	partition int  // -1 in the unpartitioned form
	legacy    bool // unpartitioned form on a partitioned stream
	producer  string
}

// parseStoredSubject reads subject as stored in the ingest stream: with
// partitions > 0 either <prefix>.<p>.<stream> (stored through the
// stream's partition transform) or <prefix>.<stream> (stored before the
// stream was partitioned); with partitions 0, <prefix>.<stream> only.
func parseStoredSubject(prefix, subject string, partitions int) (storedSubject, error) {
	if partitions > 0 {
		if rest, ok := strings.CutPrefix(subject, prefix+"."); ok {
			if tok, name, two := strings.Cut(rest, "."); two {
				p, err := strconv.Atoi(tok)
				if err != nil || p < 0 || p >= partitions || strconv.Itoa(p) != tok {
					return storedSubject{}, fmt.Errorf("subject %q: %q is not a partition below %d", subject, tok, partitions)
				}
				producer := prefix + "." + name
				stream, err := StreamFromSubject(prefix, producer)
				if err != nil {
					// The error names the producer's subject, as the
					// dead letter does.
					return storedSubject{partition: p, producer: producer}, err
				}
				return storedSubject{stream: stream, partition: p, producer: producer}, nil
			}
		}
	}
	stream, err := StreamFromSubject(prefix, subject)
	if err != nil {
		return storedSubject{}, err
	}
	return storedSubject{stream: stream, partition: -1, legacy: partitions > 0, producer: subject}, nil
}

// PartitionFilter is the stored subjects of partition p: <prefix>.<p>.*.
func PartitionFilter(prefix string, p int) string {
	return prefix + "." + strconv.Itoa(p) + ".*"
}

// legacyFilter is the subjects stored before the stream was partitioned.
func legacyFilter(prefix string) string { return prefix + ".*" }
