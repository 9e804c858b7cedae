//go:build unix

package tiers

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// flock tries to take f's lock without waiting; false when another open
// file description holds a conflicting one.
func flock(f *os.File, shared bool) (bool, error) {
	how := unix.LOCK_EX | unix.LOCK_NB
	if shared {
		how = unix.LOCK_SH | unix.LOCK_NB
	}
	for {
		err := unix.Flock(int(f.Fd()), how)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EWOULDBLOCK):
			return false, nil
		default:
			return false, err
		}
	}
}
