package fsck

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/bop-aof/aof/tiers"
)

// Errors of a data root an offline command cannot use.
var (
	// ErrNoRoot: the command was given no data root.
	ErrNoRoot = errors.New("no data root given")
	// ErrRootMissing: the data root does not exist; an offline command
	// never creates one.
	ErrRootMissing = errors.New("data root does not exist")
)

// OpenOffline opens the store of a stopped gateway's data root, opts.Root,
// for the offline commands. opts are the options the configuration gives
// (package internal/options), as the gateway builds them: with library
// defaults a smaller Tier 1 budget would evict the artifacts of a root
// configured larger. opts.Tier2 may be nil (no Tier 2 configured): the
// store then reads what is local and reports Tier 2 residency from the
// manifest.
//
// Opening runs the store's recovery (manifest replay, trimming an unsealed
// tail segment, resuming pending compressions), exactly as the gateway's
// next start would, so it takes the writer's lock of the root: while a
// gateway has the root open it fails with an error that wraps
// tiers.ErrRootLocked, names the gateway's pid and points to the online
// command.
func OpenOffline(ctx context.Context, opts tiers.Options) (*tiers.Store, error) {
	root := opts.Root
	if err := checkRoot(root); err != nil {
		return nil, err
	}
	s, err := tiers.Open(ctx, opts)
	if err != nil {
		if errors.Is(err, tiers.ErrRootLocked) {
			return nil, rootInUse(err)
		}
		return nil, fmt.Errorf("open store at %s: %w", root, err)
	}
	return s, nil
}

// checkRoot refuses an empty or missing data root: an offline command
// must not create one.
func checkRoot(root string) error {
	if root == "" {
		return ErrNoRoot
	}
	if _, err := os.Stat(root); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %s", ErrRootMissing, root)
		}
		return fmt.Errorf("stat data root: %w", err)
	}
	return nil
}

// rootInUse explains a refused root lock to the operator of an offline
// command.
func rootInUse(err error) error {
	return fmt.Errorf("%w; offline commands (--root) need the gateway stopped: while it runs, leave out --root and the command asks the gateway", err)
}

// CheckOffline checks (and with repair, repairs) the data root of a stopped
// gateway, opts.Root: torn manifest tails and temp files first, then with a
// Tier 2 client (opts.Tier2) the damaged local segment copies, by opening
// the store with opts (see OpenOffline) and hydrating them back from Tier 2.
//
// A check only reads, so it takes the root's shared lock: several checks
// may run at once, none while a gateway (or another writer) has the root
// open, whose half-written tails would read as damage. A repair writes and
// takes the writer's exclusive lock.
func CheckOffline(ctx context.Context, opts tiers.Options, stream string, repair bool) (Report, error) {
	t2 := opts.Tier2
	rep, err := checkLocked(ctx, CheckOptions{FS: opts.FS, Root: opts.Root, Stream: stream, Tier2: t2, RepairManifest: repair})
	if err != nil || !repair || rep.Remaining() == 0 {
		return rep, err
	}
	if t2 == nil {
		for i := range rep.Problems {
			if !rep.Problems[i].Repaired && rep.Problems[i].RepairNote == "" {
				rep.Problems[i].RepairNote = "no Tier 2 configured to restore from"
			}
		}
		return rep, nil
	}
	s, err := OpenOffline(ctx, opts)
	if err != nil {
		return rep, err
	}
	RepairFromTier2(ctx, s, &rep)
	if err := s.Close(); err != nil {
		return rep, fmt.Errorf("close store: %w", err)
	}
	return rep, nil
}

// checkLocked runs Check under the root's lock: shared for a check,
// exclusive for a repair. The lock is released before the Tier 2 repair
// opens the store, which takes it again.
func checkLocked(ctx context.Context, opts CheckOptions) (Report, error) {
	if err := checkRoot(opts.Root); err != nil {
		return emptyReport(), err
	}
	lock := tiers.LockRootShared
	if opts.RepairManifest {
		lock = tiers.LockRoot
	}
	l, err := lock(opts.Root)
	if err != nil {
		if errors.Is(err, tiers.ErrRootLocked) {
			err = rootInUse(err)
		}
		return emptyReport(), err
	}
	defer l.Release()
	return Check(ctx, opts)
}
