package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/control"
	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/state"
)

const defaultControllerAddr = "127.0.0.1:8100"

func newControllerCmd(g *globals) *cobra.Command {
	var listen, statePath, token, nodeBinary string
	var reconcile, stopOnExit bool
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Serve the deployments API: desired state, revisions, rollbacks, events",
		Long: `Controller keeps the site's desired state: deployments applied with
bulwark apply, every spec change as an immutable revision to roll back to,
the status the reconciler reports, and events. Every change is one ACID
transaction in the state file, fsynced before it is acknowledged.

The API (docs/deployments.md) needs the bearer token: --admin-token,
$BULWARK_ADMIN_TOKEN, or <site>/admin-token (created on first use). A state
file that fails its checks is never modified: the controller refuses to
start and says how to recover (exit code 4).

The reconciler (on unless --reconcile=false) runs every deployment's
replicas on this machine as bulwark node processes, one model version
each, on loopback ports: it restarts them, rolls new revisions out, rolls
back automatically when a new version fails its readiness or health
checks, and publishes the routing table gateways poll
(GET /api/v1/routing). Replicas outlive the controller: stopping or
killing it leaves them serving, and the next controller adopts them.
Only deleting a deployment, or --stop-replicas-on-exit, stops them.
Replica output goes to <site>/logs/replicas/NAME.log.`,
		Example: "  bulwark controller\n  bulwark controller --listen 0.0.0.0:8100 --state /var/lib/bulwark/controller.db",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if statePath == "" {
				statePath = filepath.Join(g.site, "state", "controller.db")
			}
			token = tokenFromEnv(token)
			var err error
			if token == "" {
				if token, err = siteAdminToken(g.site, true); err != nil {
					return err
				}
			}
			models, err := modelstore.Open(g.site)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(statePath), 0o755); err != nil {
				return fmt.Errorf("state directory: %w", err)
			}
			// A corrupt file's error carries the state package's recovery
			// advice; exitCode maps it to 4.
			st, err := state.OpenBolt(statePath, state.BoltOptions{})
			if err != nil {
				return err
			}
			defer st.Close()
			log := g.log.With("component", "controller")
			svc, err := control.NewService(ctx, st, models, control.Options{Logger: log})
			if err != nil {
				return err
			}
			ln, err := listenTCP(listen)
			if err != nil {
				return err
			}
			var rec *control.Reconciler
			if reconcile {
				if rec, err = newReconciler(g, svc, nodeBinary, stopOnExit); err != nil {
					return err
				}
			}
			// Long-polls end when the server stops, instead of holding
			// the shutdown for their 30 seconds.
			base, stop := context.WithCancel(context.Background())
			defer stop()
			srv := &http.Server{
				Handler:           control.NewAPI(svc, token, log),
				ReadHeaderTimeout: 10 * time.Second,
				ReadTimeout:       30 * time.Second,
				IdleTimeout:       2 * time.Minute,
				BaseContext:       func(net.Listener) context.Context { return base },
			}
			fmt.Fprintf(cmd.OutOrStdout(), "controller serving on http://%s (state %s)\n", ln.Addr(), statePath)
			errc := make(chan error, 2)
			go func() { errc <- srv.Serve(ln) }()
			// The reconciler ends with the controller; the replicas do not.
			recCtx, recStop := context.WithCancel(context.WithoutCancel(ctx))
			recDone := make(chan struct{})
			go func() {
				defer close(recDone)
				if rec != nil {
					if err := rec.Run(recCtx); err != nil {
						errc <- err
					}
				}
			}()
			defer func() { recStop(); <-recDone }()
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
			}
			recStop()
			<-recDone
			stop()
			shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", defaultControllerAddr, "address of the controller API")
	f.StringVar(&statePath, "state", "", "state file (default <site>/state/controller.db)")
	f.StringVar(&token, "admin-token", "", "bearer token for the API [$BULWARK_ADMIN_TOKEN]")
	f.BoolVar(&reconcile, "reconcile", true, "run the deployments' replicas on this machine (reconciler and rollout engine)")
	f.StringVar(&nodeBinary, "node-binary", "", "bulwark executable the replicas run (default: this one)")
	f.BoolVar(&stopOnExit, "stop-replicas-on-exit", false, "stop every replica when the controller exits (by default they keep serving and the next controller adopts them)")
	return cmd
}

// newReconciler builds the controller's reconciler for the site.
func newReconciler(g *globals, svc *control.Service, binary string, stopOnExit bool) (*control.Reconciler, error) {
	if binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("--node-binary: %w", err)
		}
		binary = exe
	}
	site, err := filepath.Abs(g.site)
	if err != nil {
		return nil, err
	}
	return control.NewReconciler(svc, control.ReconcilerOptions{
		Binary: binary, Site: site, StopOnExit: stopOnExit, Logger: g.log,
		NodeArgs: []string{"--log-level", g.logLevel, "--log-format", g.logFormat},
	})
}

// controllerFlags are the flags of every command that talks to a
// controller.
type controllerFlags struct {
	url, token string
}

func (f *controllerFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.url, "controller", envOr("BULWARK_CONTROLLER", "http://"+defaultControllerAddr), "controller base URL [$BULWARK_CONTROLLER]")
	cmd.Flags().StringVar(&f.token, "admin-token", "", "bearer token for the controller API [$BULWARK_ADMIN_TOKEN, else <site>/admin-token]")
}

func (f *controllerFlags) client(g *globals) *control.Client {
	tok := tokenFromEnv(f.token)
	if tok == "" {
		tok, _ = siteAdminToken(g.site, false)
	}
	return control.NewClient(f.url, tok)
}
