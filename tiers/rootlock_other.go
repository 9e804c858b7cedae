//go:build !unix

package tiers

import "os"

// flock is not available here: the data root is not protected against a
// second writer on this platform (the gateway is built for Linux).
func flock(*os.File, bool) (bool, error) { return true, nil }
