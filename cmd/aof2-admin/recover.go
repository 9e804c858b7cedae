package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/bop-aof/aof/control"
	"github.com/bop-aof/aof/tiers"
)

func (a *app) recoverCommand() *cobra.Command {
	var root string
	var fromTier2, force bool
	cmd := &cobra.Command{
		Use:   "recover",
		Short: "Rebuild a data root from Tier 2 after Tier 0 and Tier 1 are lost",
		Long: `recover --from-tier2 rebuilds the data root of a stopped gateway from what
Tier 2 holds: the uploaded manifest chunks and snapshots are downloaded, and
every segment the rebuilt manifest does not show as uploaded (sealed after the
last uploaded manifest chunk) is restored as a verified sealed Tier 0 file.
Every uploaded record is readable afterwards; segments hydrate from Tier 2 on
first read.

The data root must be empty (or --force). recover leaves a marker file in it:
the next gateway start re-reads the ingest stream from its first message, so
messages that were acknowledged before the loss but never uploaded are stored
again if JetStream still holds them; messages already in Tier 2 are skipped by
sequence. Tier 2 comes from the configuration (tier2.* keys, AOF2_TIER2_*).`,
		Example: `  aof2-admin recover --from-tier2 --root /var/lib/aof
  AOF2_TIER2_ENDPOINT=https://s3.example.com aof2-admin recover --from-tier2 --root ./data/demo`,
		Args: cobra.NoArgs,
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			if !fromTier2 {
				return usagef("recover needs --from-tier2 (the only source this version rebuilds from)")
			}
			if root == "" {
				return usagef("recover needs --root, the data root to rebuild")
			}
			t2, err := a.tier2Client(cmd)
			if err != nil {
				return err
			}
			if t2 == nil {
				return usagef("recover needs Tier 2: set tier2.endpoint and tier2.bucket (or AOF2_TIER2_ENDPOINT, AOF2_TIER2_BUCKET)")
			}
			lock, err := lockRootForRecovery(root)
			if err != nil {
				return err
			}
			defer lock.Release()
			rep, err := tiers.RecoverFromTier2(cmd.Context(), tiers.RecoverOptions{Root: root, Tier2: t2, Force: force})
			if err != nil {
				return control.Errorf(control.CodeInternal, "%v", err)
			}
			if a.jsonOut {
				return a.printJSON(rep)
			}
			for _, s := range rep.Streams {
				fmt.Fprintf(a.stdout, "stream %s: %d manifest chunk(s), %d snapshot(s), %d segment object(s); %d segment(s) restored to tier 0; last ext_id in tier 2 %d\n",
					s.Stream, s.ManifestChunks, s.Snapshots, s.Segments, len(s.Restored), s.LastExtID)
				if len(s.NotInTier2) > 0 {
					fmt.Fprintf(a.stdout, "  segments with no copy in tier 2 (lost unless the ingest stream still holds them): %v\n", s.NotInTier2)
				}
				if len(s.Unbounded) > 0 {
					fmt.Fprintf(a.stdout, "  WARNING: segments %v held records stored again by an earlier recovery; their sequences cannot be bounded and are not stored again\n", s.Unbounded)
				}
				for _, h := range s.Holes {
					fmt.Fprintf(a.stdout, "  ingest sequences %d to %d were in those segments, below ones that survived: stored again on replay if the ingest stream still holds them\n", h.From+1, h.To)
				}
			}
			fmt.Fprintf(a.stdout, "%d stream(s) recovered into %s; the next gateway start re-reads the ingest stream once\n", len(rep.Streams), root)
			return nil
		}),
	}
	cmd.Flags().StringVar(&root, "root", "", "data root to rebuild (empty, gateway stopped)")
	cmd.Flags().BoolVar(&fromTier2, "from-tier2", false, "rebuild from the Tier 2 bucket of the configuration")
	cmd.Flags().BoolVar(&force, "force", false, "allow a data root that still holds files")
	return cmd
}

// lockRootForRecovery creates root if needed and takes its writer lock, so
// that a recovery never rewrites a root a gateway has open.
func lockRootForRecovery(root string) (*tiers.RootLock, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("create data root: %w", err)
	}
	lock, err := tiers.LockRoot(root)
	if errors.Is(err, tiers.ErrRootLocked) {
		return nil, fmt.Errorf("%w; stop it before recovering into this root", err)
	}
	return lock, err
}
