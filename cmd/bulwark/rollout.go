package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/control"
)

func newRolloutCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Follow the rollout of a deployment's revisions",
	}
	cmd.AddCommand(newRolloutStatusCmd(g))
	return cmd
}

// errRolloutNotDone is any rollout state other than done (exit 1).
var errRolloutNotDone = errors.New("rollout not done")

func newRolloutStatusCmd(g *globals) *cobra.Command {
	var (
		watch   bool
		timeout time.Duration
		every   time.Duration
		cf      controllerFlags
	)
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show whether the current revision is rolled out and ready",
		Long: `Rollout status compares the revision the reconciler has observed with the
desired one, and ready replicas with desired ones. It exits 0 when the
desired revision is Available, and 1 otherwise (Pending, Progressing,
Degraded, RollingBack). With --watch it waits, printing each change,
until the revision is Available (exit 0), the rollout is being rolled back
(exit 1), or --timeout passes (exit 1).`,
		Example: "  bulwark rollout status iris\n  bulwark rollout status iris --watch --timeout 10m",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, out := cmd.Context(), cf.client(g), cmd.OutOrStdout()
			deadline := time.Now().Add(timeout)
			last := ""
			for {
				sv, err := c.Status(ctx, args[0])
				if err != nil {
					return err
				}
				line := rolloutLine(sv)
				if !g.json && line != last {
					fmt.Fprintln(out, line)
					last = line
				}
				done := sv.Status.Phase == control.PhaseAvailable && sv.Status.ObservedRevision == sv.Revision
				final := done || !watch || sv.Status.Phase == control.PhaseRollingBack || time.Now().After(deadline)
				if !final {
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(every):
					}
					continue
				}
				if g.json {
					if err := printJSON(out, sv); err != nil {
						return err
					}
				}
				switch {
				case done:
					return nil
				case watch && sv.Status.Phase != control.PhaseRollingBack:
					return fmt.Errorf("%w after %v: %s", errRolloutNotDone, timeout, line)
				}
				return fmt.Errorf("%w: deployment %s is %s", errRolloutNotDone, args[0], phaseOrPending(sv.Status.Phase))
			}
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "wait until the rollout is done")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "with --watch, how long to wait")
	cmd.Flags().DurationVar(&every, "interval", time.Second, "with --watch, how often to ask")
	cf.register(cmd)
	return cmd
}

// rolloutLine is "deployment iris: revision 3 (observed 2), 4/6 ready, Progressing: message".
func rolloutLine(sv *control.StatusView) string {
	st := sv.Status
	observed := "not yet observed"
	if st.ObservedRevision > 0 {
		observed = fmt.Sprintf("observed %d", st.ObservedRevision)
	}
	s := fmt.Sprintf("deployment %s: revision %d (%s), %d/%d ready, %s", sv.Name, sv.Revision, observed, st.ReadyReplicas, st.DesiredReplicas, phaseOrPending(st.Phase))
	if st.Message != "" {
		s += ": " + st.Message
	}
	return s
}

func phaseOrPending(p control.Phase) control.Phase {
	if p == "" {
		return control.PhasePending
	}
	return p
}
