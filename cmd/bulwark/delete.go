package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newDeleteCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete resources from the controller",
	}
	cmd.AddCommand(newDeleteDeploymentCmd(g))
	return cmd
}

func newDeleteDeploymentCmd(g *globals) *cobra.Command {
	var (
		rv int64
		cf controllerFlags
	)
	cmd := &cobra.Command{
		Use:     "deployment NAME",
		Aliases: []string{"deployments", "deploy"},
		Short:   "Delete a deployment with its revisions and events",
		Long: `Delete removes a deployment from the desired state, with its revision
history and events; the reconciler then stops its replicas. With
--resource-version the delete fails (exit 5) if the deployment changed
since that version.`,
		Example: "  bulwark delete deployment iris",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cf.client(g).Delete(cmd.Context(), args[0], rv); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]string{"result": "deleted", "name": args[0]})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deployment %s deleted\n", args[0])
			return nil
		},
	}
	cmd.Flags().Int64Var(&rv, "resource-version", 0, "delete only if the deployment is still at this resource version")
	cf.register(cmd)
	return cmd
}
