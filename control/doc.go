// Package control is the gateway's administration surface: the NATS micro
// service "aof-admin" (discoverable with standard micro tooling: $SRV.PING,
// $SRV.INFO, $SRV.STATS), its typed Client, its wire types, and the
// read-only operations (dump, segments, inspect, read, snapshot list) as
// plain functions over a *tiers.Store or a data root, so aof2-admin can run
// them offline on a stopped gateway's data root. Checking and repairing a
// data root is package fsck's job; manifest.check runs it online and maps
// its report to the wire.
//
// # Wire protocol
//
// Every endpoint is a request/reply subject <prefix>.<endpoint> (prefix
// control.subject_prefix, default "aof.admin"). The request body is a JSON
// object (empty means the zero request); the answer is a JSON object. The
// bodies are the protocol's own types (wire.go), mapped from the store's
// next to the handlers, so a storage change never changes them; their
// JSON is pinned by TestWireJSONIsStable.
//
// The protocol has a version, APIVersion ("1"), carried in the header
// Aof-Api-Version of every request and answer and in the service's micro
// metadata "api_version". A message without the header is version 1. The
// service refuses a request of another version with 501; the Client
// refuses an answer of another version the same way.
//
// The endpoints and their types:
//
//	status            -                        StatusResponse
//	dump              DumpRequest              DumpResponse
//	seal              SealRequest              SealResponse
//	flush             FlushRequest             FlushResponse
//	hydrate           HydrateRequest           HydrateResponse
//	segments.list     SegmentsListRequest      SegmentsListResponse
//	segments.delete   SegmentsDeleteRequest    SegmentsDeleteResponse
//	manifest.check    ManifestCheckRequest     CheckReport
//	manifest.inspect  ManifestInspectRequest   ManifestInspectResponse
//	read              ReadRequest              ReadResponse (bodies base64)
//	snapshot.create   StreamRequest            SnapshotResponse
//	snapshot.list     StreamRequest            SnapshotListResponse
//	config.reload     -                        ReloadResponse
//
// An error answer carries the micro headers Nats-Service-Error-Code (an
// HTTP-like code: 400 bad request, 401 authentication, 404 stream, segment
// or offset not found, 409 refused by an invariant, 500 I/O or corruption,
// 501 not supported, 503 retry later) and Nats-Service-Error (the
// message), with the body {"code":..,"message":..}. ExitCode maps them to
// the aof2-admin exit codes: 1 usage (400, 409, 501), 2 not found (404),
// 3 authentication (401), 4 I/O (everything else).
package control
