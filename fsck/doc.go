// Package fsck checks and repairs a gateway's data root: every manifest
// chunk and snapshot, every Tier 0 segment, every Tier 1 artifact and,
// with a Tier 2 client, every Tier 2 object the manifest names. Damage is
// a Problem in the Report, naming the stream, the segment or chunk, the
// file and the byte offset.
//
// It serves two callers. aof2-admin runs it offline on a stopped gateway's
// data root (CheckOffline, OpenOffline), under the root's lock; the
// gateway's aof-admin service runs it online against its open store
// (CheckLive). It knows nothing of NATS or of the service's wire types:
// package control maps a Report to its own protocol.
package fsck
