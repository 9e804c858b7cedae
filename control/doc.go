// Package control is the gateway's administration surface: the NATS micro
// service "aof-admin" (discoverable with standard micro tooling: $SRV.PING,
// $SRV.INFO, $SRV.STATS), its typed Client, and the same operations as
// plain functions over a *tiers.Store or a data root, so aof2-admin can run
// them offline on a stopped gateway's data root.
//
// # Wire protocol
//
// Every endpoint is a request/reply subject <prefix>.<endpoint> (prefix
// control.subject_prefix, default "aof.admin"). The request body is a JSON
// object (empty means the zero request); the answer is a JSON object. The
// endpoints and their types (api.go):
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
