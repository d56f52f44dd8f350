package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/control"
	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/state"
)

const defaultControllerAddr = "127.0.0.1:8100"

func newControllerCmd(g *globals) *cobra.Command {
	var listen, statePath, token, nodeBinary string
	var reconcile, stopOnExit, chaos, exitWithParent bool
	var backups backupScheduleFlags
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
			if exitWithParent {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				defer cancel()
				go cancelWhenOrphaned(ctx, cancel, g)
			}
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
			bolt, err := state.OpenBolt(statePath, state.BoltOptions{})
			if err != nil {
				return err
			}
			defer bolt.Close()
			st := withTestPause(bolt, os.Getenv(testPauseEnv))
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
				if chaos {
					// Replicas inherit the environment: their chaos API
					// takes the controller's token.
					os.Setenv("BULWARK_ADMIN_TOKEN", token)
				}
				if rec, err = newReconciler(g, svc, nodeBinary, stopOnExit, chaos); err != nil {
					return err
				}
			}
			// Long-polls end when the server stops, instead of holding
			// the shutdown for their 30 seconds.
			base, stop := context.WithCancel(context.Background())
			defer stop()
			handler := control.NewAPI(svc, token, log)
			sched, err := backups.newScheduler(ctx, g, "http://"+ln.Addr().String(), token)
			if err != nil {
				ln.Close()
				return err
			}
			if sched != nil {
				if handler, err = withBackupRoutes(handler, sched, token); err != nil {
					ln.Close()
					return err
				}
			}
			srv := &http.Server{
				Handler:           handler,
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
			// Scheduled backups go through this controller's API, so they
			// stop before it does.
			schedDone := make(chan struct{})
			go func() {
				defer close(schedDone)
				if sched != nil {
					sched.Run(recCtx)
				}
			}()
			defer func() { recStop(); <-schedDone }()
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
			}
			recStop()
			<-recDone
			<-schedDone
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
	f.BoolVar(&chaos, "chaos", false, "start replicas in chaos mode: fault injection through their /admin/chaos, with the admin token (for drills)")
	f.BoolVar(&exitWithParent, "exit-with-parent", false, "stop as on SIGTERM when the process that started this one ends")
	f.MarkHidden("exit-with-parent") // bulwark up's own
	backups.register(cmd)
	return cmd
}

// cancelWhenOrphaned cancels when this process's parent has gone (it is
// re-parented): bulwark up's controller must not outlive up.
func cancelWhenOrphaned(ctx context.Context, cancel context.CancelFunc, g *globals) {
	parent := os.Getppid()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if os.Getppid() != parent {
				g.log.Warn("the process that started the controller has gone; stopping", "component", "controller", "parent", parent)
				cancel()
				return
			}
		}
	}
}

// newReconciler builds the controller's reconciler for the site.
func newReconciler(g *globals, svc *control.Service, binary string, stopOnExit, chaos bool) (*control.Reconciler, error) {
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
	args := []string{"--log-level", g.logLevel, "--log-format", g.logFormat}
	if chaos {
		args = append(args, "--chaos")
	}
	return control.NewReconciler(svc, control.ReconcilerOptions{
		Binary: binary, Site: site, StopOnExit: stopOnExit, Logger: g.log, NodeArgs: args,
	})
}

// testPauseEnv names a point of an apply where the controller stops dead,
// for the fault tests that SIGKILL it there; unset in normal use.
const testPauseEnv = "BULWARK_TEST_PAUSE_AT"

// Points testPauseEnv may name, in the order an apply (or rollback)
// passes them.
const (
	pauseBeforeWrite      = "apply-before-write"     // validated, nothing written
	pauseAfterWrite       = "apply-after-write"      // record, revision and event committed
	pauseAfterGeneration  = "apply-after-generation" // the watch generation bumped, no answer sent
	testPauseAnnouncement = "test hook: paused at "
)

// withTestPause wraps st so that the first spec change reaching point
// stops the controller there: it says so on stderr and blocks forever,
// for the test to kill it. Any other point leaves st as it is.
func withTestPause(st state.Store, point string) state.Store {
	switch point {
	case pauseBeforeWrite, pauseAfterWrite, pauseAfterGeneration:
		return &pausingStore{Store: st, point: point}
	}
	return st
}

type pausingStore struct {
	state.Store
	point string
	wrote atomic.Bool // a spec change was committed: the next generation write is its
}

func (p *pausingStore) Apply(ctx context.Context, c state.Change) (*state.Record, error) {
	spec := c.Revision != nil // a status write carries no revision
	if spec && p.point == pauseBeforeWrite {
		p.pause()
	}
	rec, err := p.Store.Apply(ctx, c)
	if spec && err == nil {
		if p.point == pauseAfterWrite {
			p.pause()
		}
		p.wrote.Store(true)
	}
	return rec, err
}

func (p *pausingStore) PutMeta(ctx context.Context, key string, value []byte) error {
	err := p.Store.PutMeta(ctx, key, value)
	// "control.generation" is the control package's meta key of the
	// desired-state generation (watch.go), which an apply bumps last.
	if p.point == pauseAfterGeneration && key == "control.generation" && p.wrote.Load() {
		p.pause()
	}
	return err
}

func (p *pausingStore) pause() {
	fmt.Fprintln(os.Stderr, testPauseAnnouncement+p.point)
	select {}
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
