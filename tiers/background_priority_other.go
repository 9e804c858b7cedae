//go:build !linux

package tiers

// lowerWorkerPriority does nothing where threads have no nice value of
// their own: background work runs at the gateway's priority.
func lowerWorkerPriority() bool { return false }
