// Package integration holds the end-to-end tests: the real aof-gateway
// binary, an embedded JetStream nats-server and a real versitygw S3 server,
// driven by a plain nats.go producer the way any user's client would.
package integration
