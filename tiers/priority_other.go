//go:build !linux

package tiers

import "errors"

// lowerThreadPriority is Linux only (priority_linux.go): elsewhere
// compression runs at the process's priority.
func lowerThreadPriority() error { return errors.New("thread priorities are set on Linux only") }

func threadNice() (int, error) { return 0, errors.New("thread priorities are read on Linux only") }
