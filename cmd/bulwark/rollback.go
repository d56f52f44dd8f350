package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/control"
)

func newRollbackCmd(g *globals) *cobra.Command {
	var (
		to int64
		cf controllerFlags
	)
	cmd := &cobra.Command{
		Use:   "rollback NAME",
		Short: "Make an earlier revision of a deployment the desired state again",
		Long: `Rollback takes the spec of an earlier revision (by default the one before
the current) and applies it as a new revision: history is never rewritten,
so a rollback can itself be rolled back. The old spec must still be valid:
its model versions must still be in the model store.`,
		Example: "  bulwark rollback iris\n  bulwark rollback iris --to-revision 3",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to < 0 {
				return usageError{fmt.Errorf("--to-revision must be positive")}
			}
			r, err := cf.client(g).Rollback(cmd.Context(), args[0], to)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), r)
			}
			if r.Result == control.Unchanged {
				fmt.Fprintf(cmd.OutOrStdout(), "deployment %s unchanged: revision %d already has the spec of revision %d\n", args[0], r.Revision, r.RolledBackTo)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deployment %s rolled back to revision %d (now revision %d)\n", args[0], r.RolledBackTo, r.Revision)
			return nil
		},
	}
	cmd.Flags().Int64Var(&to, "to-revision", 0, "revision to go back to (default: the previous one)")
	cf.register(cmd)
	return cmd
}
