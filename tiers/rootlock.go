package tiers

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// RootLockFile is the lock file of a data root. The process that has the
// root open for writing holds an exclusive flock on it for its lifetime
// and writes its pid into it, so that a second writer fails at once and
// can name the holder. The kernel drops the lock when the process dies,
// however it dies, so a crash never leaves the root locked.
const RootLockFile = "LOCK"

// ErrRootLocked matches (errors.Is) a *RootLockedError.
var ErrRootLocked = errors.New("tiers: data root is locked")

// RootLockedError is returned when another open file description (another
// process, or another Open in this one) holds the lock of a data root.
type RootLockedError struct {
	Root string
	// PID is the pid the holder wrote into the lock file; 0 when it names
	// none (the holder has not written it yet).
	PID int
	// Shared is set when a shared lock was asked for: the holder is a
	// writer.
	Shared bool
}

func (e *RootLockedError) Error() string {
	holder := "another process (pid not recorded yet)"
	if e.PID > 0 {
		holder = "pid " + strconv.Itoa(e.PID)
	}
	return fmt.Sprintf("data root %s is locked by %s (another aof-gateway or aof2-admin --root holds it)", e.Root, holder)
}

// Is makes errors.Is(err, ErrRootLocked) true.
func (e *RootLockedError) Is(target error) bool { return target == ErrRootLocked }

// RootLock is a held flock on <root>/LOCK. Release it once.
type RootLock struct {
	once sync.Once
	f    *os.File
}

// LockRoot takes the exclusive lock of a writer on root, which must exist.
// It does not wait: when another holds the lock (exclusive or shared) it
// returns a *RootLockedError naming the holder's pid.
func LockRoot(root string) (*RootLock, error) { return lockRoot(root, false) }

// LockRootShared takes a shared lock on root for a command that only reads
// its files: readers exclude writers but not each other.
func LockRootShared(root string) (*RootLock, error) { return lockRoot(root, true) }

func lockRoot(root string, shared bool) (*RootLock, error) {
	path := filepath.Join(root, RootLockFile)
	// The lock goes through os, not the store's vfs.FS: flock needs a real
	// descriptor, and a fault injected into the data files must not fake
	// or hide a second writer.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil && shared {
		// A reader of a root on a read-only mount: flock works on a
		// read-only descriptor, the pid just cannot be recorded.
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("tiers: open lock file: %w", err)
	}
	held, err := flock(f, shared)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("tiers: lock %s: %w", path, err)
	}
	if !held {
		pid := lockHolder(f)
		f.Close()
		return nil, &RootLockedError{Root: root, PID: pid, Shared: shared}
	}
	// The pid is for the error of the next one who tries; several shared
	// holders overwrite each other, and any of them is a true answer.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &RootLock{f: f}, nil
}

// lockHolder reads the pid the holder wrote; 0 when there is none.
func lockHolder(f *os.File) int {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// Release drops the lock. The file stays: removing it would let a process
// that opened it before the removal lock a file no one else sees.
func (l *RootLock) Release() error {
	if l == nil {
		return nil
	}
	var err error
	l.once.Do(func() {
		if l.f != nil {
			err = l.f.Close() // closing the last descriptor drops the flock
		}
	})
	return err
}
