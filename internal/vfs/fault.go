package vfs

import (
	"errors"
	"os"
	"sync"
	"syscall"
)

// ErrInjected is the error FaultFS returns for an injected failure unless a
// Fault names another.
var ErrInjected = errors.New("vfs: injected fault")

// Op names an operation a Fault can target.
type Op int

const (
	OpWrite Op = iota + 1
	OpSync
	OpOpen
	OpRename
	OpRemove
	OpSyncDir
	OpTruncate
)

// Fault decides whether one operation fails. For writes it may also let the
// first ShortBytes bytes through before failing, which models a torn write.
type Fault struct {
	Op Op
	// Match restricts the fault to file names it returns true for; nil matches all.
	Match func(name string) bool
	// After lets this many matching operations succeed before the fault fires.
	After int
	// Times is how often the fault fires once armed; 0 means forever.
	Times int
	// Err is the error returned; nil means ErrInjected.
	Err error
	// ShortBytes, for OpWrite, writes this many bytes of the buffer before failing.
	ShortBytes int

	seen, fired int
	fs          *FaultFS
}

// Fired returns how often the fault has fired.
func (ft *Fault) Fired() int {
	ft.fs.mu.Lock()
	defer ft.fs.mu.Unlock()
	return ft.fired
}

// ENOSPC is the error a full disk returns.
var ENOSPC error = syscall.ENOSPC

// FaultFS wraps an FS and fails operations according to its faults. It is
// safe for concurrent use.
type FaultFS struct {
	FS FS

	mu     sync.Mutex
	faults []*Fault
	crash  *crashPoint
}

// ErrCrashed is what every operation that would change the disk returns
// once a crash point armed with CrashAfter was reached.
var ErrCrashed = errors.New("vfs: crashed")

// crashPoint is the operation after which the machine stops.
type crashPoint struct {
	op      Op
	match   func(name string) bool
	after   int
	seen    int
	crashed bool
}

// CrashAfter arms a crash: once the (after+1)-th operation of kind op on a
// name match accepts (nil matches all) has succeeded, every later operation
// that would change the disk (writes, fsyncs, truncates, renames, removes,
// directory fsyncs, opens for writing) fails with ErrCrashed. What is on
// disk then is what a crash right after that operation leaves, with the
// writes that reached a file counted as having reached the disk; the test
// reopens the directory with another FS as the restart.
func (f *FaultFS) CrashAfter(op Op, match func(name string) bool, after int) {
	f.mu.Lock()
	f.crash = &crashPoint{op: op, match: match, after: after}
	f.mu.Unlock()
}

// Crash stops the machine now: every later operation that would change
// the disk fails with ErrCrashed.
func (f *FaultFS) Crash() {
	f.mu.Lock()
	f.crash = &crashPoint{crashed: true}
	f.mu.Unlock()
}

// Crashed reports whether the armed crash point was reached.
func (f *FaultFS) Crashed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.crash != nil && f.crash.crashed
}

// down returns ErrCrashed once the crash point was reached.
func (f *FaultFS) down() error {
	if f.Crashed() {
		return ErrCrashed
	}
	return nil
}

// done counts a successful operation towards the crash point.
func (f *FaultFS) done(op Op, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.crash
	if c == nil || c.crashed || c.op != op || (c.match != nil && !c.match(name)) {
		return
	}
	c.seen++
	if c.seen > c.after {
		c.crashed = true
	}
}

// NewFaultFS wraps inner (Default when nil).
func NewFaultFS(inner FS) *FaultFS {
	if inner == nil {
		inner = Default
	}
	return &FaultFS{FS: inner}
}

// Inject adds a fault. It returns the fault so a test can inspect it.
func (f *FaultFS) Inject(ft Fault) *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := &ft
	p.fs = f
	f.faults = append(f.faults, p)
	return p
}

// Reset removes every fault.
func (f *FaultFS) Reset() {
	f.mu.Lock()
	f.faults = nil
	f.mu.Unlock()
}

// check returns the fault that fires for op on name, if any.
func (f *FaultFS) check(op Op, name string) *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ft := range f.faults {
		if ft.Op != op || (ft.Match != nil && !ft.Match(name)) {
			continue
		}
		ft.seen++
		if ft.seen <= ft.After {
			continue
		}
		if ft.Times > 0 && ft.fired >= ft.Times {
			continue
		}
		ft.fired++
		return ft
	}
	return nil
}

func (ft *Fault) err() error {
	if ft.Err != nil {
		return ft.Err
	}
	return ErrInjected
}

func (f *FaultFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if flag&(os.O_WRONLY|os.O_RDWR|os.O_CREATE|os.O_TRUNC) != 0 {
		if err := f.down(); err != nil {
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
	}
	if ft := f.check(OpOpen, name); ft != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: ft.err()}
	}
	inner, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	f.done(OpOpen, name)
	return &faultFile{File: inner, fs: f}, nil
}

func (f *FaultFS) Remove(name string) error {
	if err := f.down(); err != nil {
		return &os.PathError{Op: "remove", Path: name, Err: err}
	}
	if ft := f.check(OpRemove, name); ft != nil {
		return &os.PathError{Op: "remove", Path: name, Err: ft.err()}
	}
	return f.after(OpRemove, name, f.FS.Remove(name))
}

func (f *FaultFS) Rename(oldpath, newpath string) error {
	if err := f.down(); err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	if ft := f.check(OpRename, newpath); ft != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: ft.err()}
	}
	return f.after(OpRename, newpath, f.FS.Rename(oldpath, newpath))
}

func (f *FaultFS) MkdirAll(path string, perm os.FileMode) error { return f.FS.MkdirAll(path, perm) }
func (f *FaultFS) ReadDir(name string) ([]os.DirEntry, error)   { return f.FS.ReadDir(name) }
func (f *FaultFS) Stat(name string) (os.FileInfo, error)        { return f.FS.Stat(name) }

func (f *FaultFS) SyncDir(dir string) error {
	if err := f.down(); err != nil {
		return &os.PathError{Op: "sync", Path: dir, Err: err}
	}
	if ft := f.check(OpSyncDir, dir); ft != nil {
		return &os.PathError{Op: "sync", Path: dir, Err: ft.err()}
	}
	return f.after(OpSyncDir, dir, f.FS.SyncDir(dir))
}

type faultFile struct {
	File
	fs *FaultFS
}

// after counts a successful operation towards the crash point and returns
// its error.
func (f *FaultFS) after(op Op, name string, err error) error {
	if err == nil {
		f.done(op, name)
	}
	return err
}

func (f *faultFile) Write(p []byte) (int, error) {
	if err := f.fs.down(); err != nil {
		return 0, &os.PathError{Op: "write", Path: f.Name(), Err: err}
	}
	if ft := f.fs.check(OpWrite, f.Name()); ft != nil {
		n := 0
		if ft.ShortBytes > 0 {
			short := ft.ShortBytes
			if short > len(p) {
				short = len(p)
			}
			n, _ = f.File.Write(p[:short])
		}
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: ft.err()}
	}
	n, err := f.File.Write(p)
	return n, f.fs.after(OpWrite, f.Name(), err)
}

func (f *faultFile) Sync() error {
	if err := f.fs.down(); err != nil {
		return &os.PathError{Op: "sync", Path: f.Name(), Err: err}
	}
	if ft := f.fs.check(OpSync, f.Name()); ft != nil {
		return &os.PathError{Op: "sync", Path: f.Name(), Err: ft.err()}
	}
	return f.fs.after(OpSync, f.Name(), f.File.Sync())
}

func (f *faultFile) Truncate(size int64) error {
	if err := f.fs.down(); err != nil {
		return &os.PathError{Op: "truncate", Path: f.Name(), Err: err}
	}
	if ft := f.fs.check(OpTruncate, f.Name()); ft != nil {
		return &os.PathError{Op: "truncate", Path: f.Name(), Err: ft.err()}
	}
	return f.fs.after(OpTruncate, f.Name(), f.File.Truncate(size))
}
