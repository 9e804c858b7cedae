// Command aof2-admin is the operator CLI of the bop AOF gateway: residency
// dumps, seal, flush, hydrate, segments, manifest check/inspect, read and
// tail, online through the gateway's aof-admin NATS micro service or, with
// --root, offline on a stopped gateway's data root. See `aof2-admin --help`.
//
// Exit codes: 0 success, 1 usage error, 2 segment or stream not found,
// 3 authentication failure or NATS permission refusal, 4 I/O error.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, nil))
}
