package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/control"
)

func newGetCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get",
		Short: "List resources of the controller",
	}
	cmd.AddCommand(newGetDeploymentsCmd(g))
	return cmd
}

func newGetDeploymentsCmd(g *globals) *cobra.Command {
	var cf controllerFlags
	cmd := &cobra.Command{
		Use:     "deployments [NAME]",
		Aliases: []string{"deployment", "deploy"},
		Short:   "List deployments: versions and weights, readiness, revision, phase",
		Long: `Get deployments prints one row per deployment: its model, versions with
their traffic weights, ready/desired replicas, current revision, the
reconciler's phase, and age. --json prints the deployments as the API
returns them, which bulwark apply accepts back.`,
		Example: "  bulwark get deployments\n  bulwark get deployment iris --json",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := cf.client(g)
			var ds []*control.Deployment
			if len(args) == 1 {
				d, err := c.Get(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				ds = []*control.Deployment{d}
			} else {
				var err error
				if ds, err = c.List(cmd.Context()); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			if g.json {
				if len(args) == 1 {
					return printJSON(out, ds[0])
				}
				return printJSON(out, control.DeploymentList{Items: ds})
			}
			if len(ds) == 0 {
				fmt.Fprintln(out, "no deployments (create one with bulwark apply -f FILE)")
				return nil
			}
			t := newTable(out, "NAME", "MODEL", "VERSIONS(WEIGHTS)", "REPLICAS", "REVISION", "PHASE", "AGE")
			for _, d := range ds {
				t.row(d.Metadata.Name, d.Spec.Model, versionWeights(d.Spec.Versions), readyOf(d), d.Metadata.Revision, phaseOf(d), age(d.Metadata.CreationTimestamp))
			}
			return t.flush()
		},
	}
	cf.register(cmd)
	return cmd
}

// versionWeights is "1(90),2(10)".
func versionWeights(vs []control.VersionWeight) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = fmt.Sprintf("%s(%d)", v.Version, v.Weight)
	}
	return strings.Join(parts, ",")
}

// readyOf is "ready/desired", the desired count from the spec until the
// reconciler reports one.
func readyOf(d *control.Deployment) string {
	ready, desired := 0, d.Spec.DesiredReplicas()
	if d.Status != nil {
		ready = d.Status.ReadyReplicas
		if d.Status.DesiredReplicas > 0 {
			desired = d.Status.DesiredReplicas
		}
	}
	return fmt.Sprintf("%d/%d", ready, desired)
}

func phaseOf(d *control.Deployment) control.Phase {
	if d.Status == nil || d.Status.Phase == "" {
		return control.PhasePending
	}
	return d.Status.Phase
}

// age is how long ago t was, as kubectl prints it: 45s, 12m, 5h, 3d.
func age(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
