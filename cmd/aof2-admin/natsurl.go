package main

import (
	"net"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/config"
	"github.com/bop-aof/aof/control"
)

// gatewayNATSURL is where the gateway of cfg reaches NATS, so that
// aof2-admin with the same configuration finds it without --nats-url:
// its embedded server when nats.embedded.enabled (the gateway then
// ignores nats.url), nats.url when set, else nats.embedded.host:port, for
// a gateway started with --dev: nats.url cannot be told unset from set to
// its default, and with the default embedded address both are
// nats://127.0.0.1:4222.
func gatewayNATSURL(cfg *config.Config) string {
	n := cfg.NATS
	if !n.Embedded.Enabled && n.URL != "" && n.URL != config.Default().NATS.URL {
		return n.URL
	}
	if n.Embedded.Port <= 0 {
		return first(n.URL, nats.DefaultURL)
	}
	return "nats://" + net.JoinHostPort(dialHost(n.Embedded.Host), strconv.Itoa(n.Embedded.Port))
}

// dialHost is the address to dial for a server listening on host: the
// loopback address for every interface.
func dialHost(host string) string {
	switch host {
	case "", "0.0.0.0":
		return "127.0.0.1"
	case "::", "[::]":
		return "::1"
	}
	return host
}

// redactedConnectError is the error of a failed connect to url, with the
// user info of every URL in it hidden: the client's own error may quote
// the URL, password and all.
func redactedConnectError(url string, auth bool, err error) error {
	shown, msg := config.RedactUserinfo(url), config.RedactUserinfo(err.Error())
	if auth {
		return control.Errorf(control.CodeUnauthorized, "connect to %s: authentication failed: %s", shown, msg)
	}
	return control.Errorf(control.CodeInternal, "connect to %s: %s", shown, msg)
}
