//go:build !linux

package tiers

import "errors"

// runLowered runs work at the process's priority: thread priorities are
// set on Linux only (priority_linux.go).
func runLowered(work func(), failed func(error)) {
	failed(errors.New("thread priorities are set on Linux only"))
	work()
}

func threadNice() (int, error) { return 0, errors.New("thread priorities are read on Linux only") }
