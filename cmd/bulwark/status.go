package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/gateway"
)

func newStatusCmd(g *globals) *cobra.Command {
	var addr, token string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print the gateway's replica health table",
		Long: `Status asks a gateway's admin API for the state of every model and
replica: healthy, unhealthy, ejected, draining or breaker-open, with
outstanding requests, failures, ejections and latency.`,
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
			if g.json {
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
			return t.flush()
		},
	}
	cmd.Flags().StringVar(&addr, "gateway", "http://"+defaultGatewayAddr, "gateway base URL")
	cmd.Flags().StringVar(&token, "admin-token", "", "bearer token for the admin API [$BULWARK_ADMIN_TOKEN]")
	return cmd
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
