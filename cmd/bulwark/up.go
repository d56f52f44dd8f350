package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/gateway"
	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/sample"
)

const defaultGatewayAddr = "127.0.0.1:8000"

func newUpCmd(g *globals) *cobra.Command {
	var (
		listen   string
		replicas int
		chaos    bool
		token    string
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a whole site on this machine with embedded defaults",
		Long: `Up creates the site directory if it is missing, pushes the sample model
when the store has none, starts node replicas (each its own process, so one
can die alone, restarted by a supervisor if it does), puts a gateway in
front of them, and prints a curl command that gets a prediction through the
gateway. Ctrl-C stops everything cleanly.

The admin token for the gateway (and for chaos mode) is --admin-token, or
the one kept in <site>/admin-token, created on first use; bulwark status
reads it from there.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if replicas < 1 {
				return usageError{errors.New("--replicas must be at least 1")}
			}
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			models, err := ensureSampleModel(ctx, out, g.site)
			if err != nil {
				return err
			}
			token = tokenFromEnv(token)
			if token == "" {
				if token, err = siteAdminToken(g.site, true); err != nil {
					return err
				}
			}
			reps, err := startReplicas(ctx, g, replicas, chaos, token)
			if err != nil {
				return err
			}
			defer stopReplicas(reps)
			cfg := upGatewayConfig(listen, token, models, reps)
			gw, err := gateway.New(cfg, gateway.Options{Logger: g.log})
			if err != nil {
				return err
			}
			ln, err := listenTCP(cfg.Listen)
			if err != nil {
				return err
			}
			for _, r := range reps {
				fmt.Fprintf(out, "replica %s: %s (zone %s, pid %d)\n", r.name, r.addr, r.zone, r.proc.Status().PID)
			}
			printTour(out, ln.Addr().String(), chaos)
			return gw.Serve(ctx, ln)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", defaultGatewayAddr, "address of the gateway that clients use")
	f.IntVar(&replicas, "replicas", 3, "node replicas to run")
	f.BoolVar(&chaos, "chaos", false, "enable the nodes' fault-injection API (for drills and demos)")
	f.StringVar(&token, "admin-token", "", "bearer token for the admin APIs (default: kept in <site>/admin-token)")
	return cmd
}

// upGatewayConfig routes every model in the store to every local replica,
// with the default policies.
func upGatewayConfig(listen, token string, models []string, reps []*localReplica) *gateway.Config {
	cfg := &gateway.Config{Listen: listen, Admin: gateway.AdminConfig{Token: token}, Defaults: gateway.DefaultPolicy(), Models: map[string]gateway.ModelConfig{}}
	var rcs []gateway.ReplicaConfig
	for _, r := range reps {
		rcs = append(rcs, gateway.ReplicaConfig{Address: r.addr, Zone: r.zone})
	}
	for _, m := range models {
		cfg.Models[m] = gateway.ModelConfig{Replicas: rcs, Policy: gateway.DefaultPolicy()}
	}
	return cfg
}

// ensureSampleModel pushes the sample model unless the store has a model,
// and returns the store's model names.
func ensureSampleModel(ctx context.Context, out io.Writer, site string) ([]string, error) {
	store, err := modelstore.Open(site)
	if err != nil {
		return nil, err
	}
	if names, err := store.Names(); err == nil && len(names) > 0 {
		fmt.Fprintf(out, "site %s: serving %d model(s) from the store\n", site, len(names))
		return names, nil
	}
	res := sample.Build()
	tmp, err := os.MkdirTemp("", "bulwark-sample-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	file := filepath.Join(tmp, "iris.onnx")
	if err := os.WriteFile(file, res.ONNX, 0o644); err != nil {
		return nil, err
	}
	m, err := store.Push(ctx, sample.ModelName, file, inspectModel, modelstore.PushOptions{})
	if err != nil && !errors.Is(err, modelstore.ErrExists) {
		return nil, fmt.Errorf("push sample model: %w", err)
	}
	if m != nil {
		fmt.Fprintf(out, "site %s: trained the sample model (held-out accuracy %.1f%%) and pushed it as %s\n", site, 100*res.Accuracy, m.Ref())
	}
	return []string{sample.ModelName}, nil
}

func printTour(out io.Writer, addr string, chaos bool) {
	ex := sample.Example()[0]
	body := fmt.Sprintf(`{"inputs":[{"name":"%s","shape":[1,4],"datatype":"FP32","data":[%g,%g,%g,%g]}]}`,
		sample.InputName, ex[0], ex[1], ex[2], ex[3])
	base := "http://" + addr
	fmt.Fprintf(out, `
Bulwark is serving on %[1]s (gateway in front of the replicas above)

Get a prediction (label 0=setosa, 1=versicolor, 2=virginica):

  curl -s -X POST %[1]s/v2/models/%[2]s/infer -H 'Content-Type: application/json' \
    -d '%[3]s'

Replica health:  bulwark status          (kill a replica's pid: requests keep succeeding)
Model metadata:  curl -s %[1]s/v2/models/%[2]s
Metrics:         curl -s %[1]s/metrics
`, base, sample.ModelName, body)
	if chaos {
		fmt.Fprintln(out, "Chaos mode:      on (PUT /admin/chaos on a replica, with the admin token)")
	}
	fmt.Fprintln(out, "\nPress Ctrl-C to stop.")
}
