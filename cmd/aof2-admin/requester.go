package main

import (
	"os"
	"os/user"
)

// requester names who runs this command, user@host, for the gateway's log
// of destructive requests. It is what this machine says, not an identity
// NATS vouches for.
func requester() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if name == "" {
		name = "unknown"
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return name + "@" + host
}
