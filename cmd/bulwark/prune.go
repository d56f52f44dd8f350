package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/repository"
)

func newPruneCmd(g *globals) *cobra.Command {
	var rf repoFlags
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Free the data no snapshot uses",
		Long: `Prune removes the blobs that no snapshot uses any more (after forget):
packs holding only such blobs are deleted, packs holding mostly such blobs
are rewritten, and a new index is written before anything old is deleted,
so an interrupted prune (even SIGKILL) leaves a consistent repository that
the next prune finishes cleaning.

Prune takes the repository's exclusive lock: it waits for no one and fails
(exit code 7) while a backup or another prune holds a lock. A lock whose
holder stopped refreshing it is stale and removed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			repo, err := rf.open(ctx, g)
			if err != nil {
				return err
			}
			defer repo.Backend().Close()
			report, err := runPrune(ctx, g, repo)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), report)
			}
			printPrune(cmd.OutOrStdout(), report)
			return nil
		},
	}
	rf.register(cmd)
	return cmd
}

// runPrune prunes with a progress display.
func runPrune(ctx context.Context, g *globals, repo *repository.Repository) (*repository.PruneReport, error) {
	bar := newProgress(g, "prune")
	report, err := repo.Prune(ctx, func(p repository.Progress) {
		bar.setPhase("prune " + p.Phase)
		bar.update(progressState{Done: p.Done, Total: p.Total, Unit: p.Unit})
	})
	bar.done()
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	return report, nil
}

func printPrune(w io.Writer, r *repository.PruneReport) {
	fmt.Fprintf(w, "prune: %d packs removed, %d rewritten, %d blobs removed, %s freed\n",
		r.PacksRemoved, r.PacksRewritten, r.BlobsRemoved, humanBytes(r.BytesFreed))
}
