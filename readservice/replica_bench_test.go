package readservice

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/aofclient"
	"github.com/bop-aof/aof/config"
	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/tier2"
)

const (
	replicaBenchRecords = 64 << 10 // of 1 KiB: 64 MiB of bodies
	replicaBenchStream  = "bench"
)

// BenchmarkReplicaReadVsOwner reads one archived stream in full through
// the read API twice in the same run: from its owner (its own store, the
// segments still in Tier 1 as after an upload) and from a gateway that
// never owned it (an empty store and a replica: the copy adopted from
// Tier 2 through the archived record, the segments read from versitygw
// with read-ahead as aof-gateway runs it). It reports both rates and the
// non-owner's as a fraction of the owner's; the first non-owner read
// includes the adoption.
func BenchmarkReplicaReadVsOwner(b *testing.B) {
	ctx := context.Background()
	s3 := harness.StartS3(b)
	t2, err := tier2.New(ctx, tier2.Options{Endpoint: s3.Endpoint, Bucket: s3.Bucket, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey})
	if err != nil {
		b.Fatal(err)
	}
	read := config.Default().Read
	so := tiers.Options{Tier2: t2, PrefetchSegments: read.PrefetchSegments, PrefetchBytes: int64(read.PrefetchBytes),
		SegmentTargetBytes: 8 << 20, Epoch: 1, ManifestArchiveInterval: 50 * time.Millisecond}
	owner := benchOwner(b, so)
	rec := benchArchived(b, owner)

	ownerNATS, followerNATS := harness.StartNATS(b), harness.StartNATS(b)
	svc, err := New(ownerNATS.Connect(b), owner, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(svc.Stop)
	empty, err := tiers.Open(ctx, tiers.Options{Root: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { empty.Close() })
	rso := so
	rso.Epoch, rso.SegmentTargetBytes = 0, 0
	rep, err := tiers.OpenReplica(tiers.ReplicaOptions{Root: b.TempDir() + "/replica", Store: rso,
		Record: func(context.Context, string) (manifest.Archived, error) { return rec, nil }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rep.Close() })
	fsvc, err := New(followerNATS.Connect(b), empty, Options{Router: &staticRouter{self: "follower",
		owners: map[string]string{replicaBenchStream: "owner"}}, Replica: rep})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(fsvc.Stop)

	b.ResetTimer()
	for range b.N {
		ownerRate := benchReadAll(b, ownerNATS.Connect(b))
		firstRate := benchReadAll(b, followerNATS.Connect(b))
		againRate := benchReadAll(b, followerNATS.Connect(b))
		b.ReportMetric(ownerRate, "owner_rec/s")
		b.ReportMetric(firstRate, "nonowner_first_rec/s")
		b.ReportMetric(againRate, "nonowner_rec/s")
		b.ReportMetric(againRate/ownerRate, "nonowner/owner")
	}
}

// benchOwner is an owner's store holding the whole stream, archived.
func benchOwner(b *testing.B, so tiers.Options) *tiers.Store {
	b.Helper()
	ctx := context.Background()
	so.Root = b.TempDir()
	s, err := tiers.Open(ctx, so)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	body := make([]byte, 1024)
	for from := 0; from < replicaBenchRecords; from += 1024 {
		recs := make([]tiers.Record, 0, 1024)
		for i := from; i < from+1024; i++ {
			copy(body, fmt.Sprintf("%08d", i))
			env := ingest.Envelope{Subject: "aof.ingest." + replicaBenchStream, Body: body}
			recs = append(recs, tiers.Record{Payload: ingest.AppendEnvelope(nil, env), ExtID: uint64(i + 1)})
		}
		if err := s.AppendDurable(ctx, replicaBenchStream, recs); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.Seal(ctx, replicaBenchStream, false); err != nil {
		b.Fatal(err)
	}
	return s
}

// benchArchived waits until the owner has archived the whole stream and
// returns the record it would write.
func benchArchived(b *testing.B, s *tiers.Store) manifest.Archived {
	b.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		a, err := s.Archived(replicaBenchStream)
		if err == nil && a.NextOffset == replicaBenchRecords {
			return a
		}
		if time.Now().After(deadline) {
			b.Fatalf("archived %+v (%v), want the whole stream", a, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// benchReadAll reads the stream [0, end) with the Go client's defaults
// and returns records per second.
func benchReadAll(b *testing.B, nc *nats.Conn) float64 {
	b.Helper()
	c, err := aofclient.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	n := 0
	for rec, err := range c.Read(context.Background(), replicaBenchStream, aofclient.ToOffset(replicaBenchRecords)) {
		if err != nil {
			b.Fatalf("read after %d records: %v", n, err)
		}
		if rec.Offset != uint64(n) {
			b.Fatalf("record %d at offset %d", n, rec.Offset)
		}
		n++
	}
	if n != replicaBenchRecords {
		b.Fatalf("read %d records, want %d", n, replicaBenchRecords)
	}
	return float64(n) / time.Since(start).Seconds()
}
