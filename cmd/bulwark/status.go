package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/gateway"
	"github.com/bulwark-ml/bulwark/internal/schedule"
)

func newStatusCmd(g *globals) *cobra.Command {
	var addr, token, controllerURL string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print the gateway's replica health table",
		Long: `Status asks a gateway's admin API for the state of every model and
replica: healthy, unhealthy, ejected, draining or breaker-open, with
outstanding requests, failures, ejections and latency. When the controller
(--controller) runs scheduled backups, a backups block follows: the age of
the last good local and off-site backup (the current RPO), its size and
duration, and the last error.`,
		Example: "  bulwark status\n  bulwark status --gateway http://10.0.0.5:8000 --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			token = tokenFromEnv(token)
			if token == "" {
				token, _ = siteAdminToken(g.site, false)
			}
			st, err := gateway.NewAdminClient(addr, token).Status(cmd.Context())
			if err != nil {
				return fmt.Errorf("gateway %s: %w", addr, err)
			}
			// The backups block is extra: a controller that does not
			// answer, or runs no schedule, leaves it out.
			backups, _ := fetchBackups(cmd.Context(), controllerURL, token)
			if g.json {
				if backups != nil {
					return printJSON(cmd.OutOrStdout(), struct {
						*gateway.Status
						Backups *schedule.Status `json:"backups"`
					}{st, backups})
				}
				return printJSON(cmd.OutOrStdout(), st)
			}
			out := cmd.OutOrStdout()
			ready := "ready"
			if !st.Ready {
				ready = "NOT READY"
			}
			fmt.Fprintf(out, "gateway %s: %s\n\n", addr, ready)
			t := newTable(out, "MODEL", "REPLICA", "ZONE", "STATE", "BREAKER", "INFLIGHT", "REQUESTS", "FAILURES", "EJECTIONS", "EWMA", "LAST ERROR")
			for _, m := range st.Models {
				for _, r := range m.Replicas {
					t.row(m.Name, r.Address, dash(r.Zone), stateWithUntil(r), r.Breaker, r.Outstanding, r.Requests, r.Failures, r.Ejections,
						fmt.Sprintf("%.2fms", r.EWMALatencyMs), dash(truncate(r.LastError, 50)))
				}
			}
			if err := t.flush(); err != nil {
				return err
			}
			if backups != nil {
				return printBackups(out, backups)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "gateway", "http://"+defaultGatewayAddr, "gateway base URL")
	cmd.Flags().StringVar(&controllerURL, "controller", envOr("BULWARK_CONTROLLER", "http://"+defaultControllerAddr), "controller base URL, asked for its backup schedule [$BULWARK_CONTROLLER]")
	cmd.Flags().StringVar(&token, "admin-token", "", "bearer token for the admin API [$BULWARK_ADMIN_TOKEN]")
	return cmd
}

// printBackups prints the controller's backup schedule: per target, how
// old the last good backup is (the RPO).
func printBackups(out io.Writer, st *schedule.Status) error {
	fmt.Fprintf(out, "\nbackups (every %s):\n", time.Duration(st.IntervalSeconds*float64(time.Second)))
	t := newTable(out, "TARGET", "LAST GOOD (RPO)", "SNAPSHOT", "SIZE", "DURATION", "FAILURES", "LAST ERROR")
	row := func(name string, ts schedule.TargetStatus) {
		age := "never"
		if ts.AgeSeconds >= 0 {
			age = time.Duration(ts.AgeSeconds*float64(time.Second)).Round(time.Second).String() + " ago"
		}
		snap := ts.Snapshot
		if len(snap) > 8 {
			snap = snap[:8]
		}
		t.row(name, age, dash(snap), humanBytes(ts.Bytes), time.Duration(ts.DurationSeconds*float64(time.Second)).Round(time.Millisecond),
			ts.ConsecutiveFailures, dash(truncate(ts.LastError, 50)))
	}
	row(schedule.TargetLocal, st.Local)
	if st.Offsite != nil {
		row(schedule.TargetOffsite, *st.Offsite)
	}
	return t.flush()
}

func stateWithUntil(r gateway.ReplicaStatus) string {
	if r.State == gateway.StateEjected && r.EjectedUntil != nil {
		return fmt.Sprintf("%s (%s)", r.State, time.Until(*r.EjectedUntil).Round(time.Second))
	}
	return r.State
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func truncate(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
