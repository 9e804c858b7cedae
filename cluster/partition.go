package cluster

import (
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// PartitionOf returns the partition of stream among partitions. It is the
// hash nats-server's subject transform function partition(P, 1) computes
// for a subject <prefix>.<stream> (subject_transform.go, getHashPartition:
// FNV-1a 32 of the wildcard token, modulo P), so the partition the gateway
// computes and the one the server writes into the stored subject never
// disagree. TestPartitionOfMatchesTheServer holds them together.
func PartitionOf(stream string, partitions int) int {
	if partitions <= 0 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(stream))
	return int(h.Sum32() % uint32(partitions))
}

// PartitionSubjectTransform is the subject transform of the ingest stream
// that stores a message published on <prefix>.<stream> under
// <prefix>.<partition>.<stream> (see PartitionSubject), so a consumer per
// partition filters on a literal token.
func PartitionSubjectTransform(prefix string, partitions int) jetstream.SubjectTransformConfig {
	return jetstream.SubjectTransformConfig{
		Source:      prefix + ".*",
		Destination: fmt.Sprintf("%s.{{partition(%d,1)}}.{{wildcard(1)}}", prefix, partitions),
	}
}

// PartitionSubject is the subject under which the ingest stream stores
// stream's messages once PartitionSubjectTransform applies.
func PartitionSubject(prefix string, partitions int, stream string) string {
	return fmt.Sprintf("%s.%d.%s", prefix, PartitionOf(stream, partitions), stream)
}

// PartitionFilter is the consumer filter subject of partition p.
func PartitionFilter(prefix string, p int) string {
	return fmt.Sprintf("%s.%d.*", prefix, p)
}

// PartitionsOf returns the partition count of an ingest stream's subject
// transform made by PartitionSubjectTransform for prefix, and false when
// the stream has no such transform (it stores subjects as published).
// The stream, not the configuration, is the authority: the count is fixed
// when the stream is provisioned.
func PartitionsOf(t *jetstream.SubjectTransformConfig, prefix string) (int, bool) {
	if t == nil || t.Source != prefix+".*" {
		return 0, false
	}
	var n int
	var rest string
	if _, err := fmt.Sscanf(strings.TrimPrefix(t.Destination, prefix+"."), "{{partition(%d,1)}}%s", &n, &rest); err != nil || n <= 0 {
		return 0, false
	}
	if PartitionSubjectTransform(prefix, n) != *t {
		return 0, false
	}
	return n, true
}
