package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/control"
	"github.com/bulwark-ml/bulwark/internal/gateway"
	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/sample"
	"github.com/bulwark-ml/bulwark/internal/supervisor"
)

const defaultGatewayAddr = "127.0.0.1:8000"

func newUpCmd(g *globals) *cobra.Command {
	var (
		listen, controllerListen string
		replicas                 int
		chaos                    bool
		token                    string
		backups                  upBackupFlags
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a whole site on this machine with embedded defaults",
		Long: `Up runs a whole site on this machine: it creates the site directory if it
is missing, pushes the sample model when the store has none, starts a
controller (its own process, restarted if it dies), applies a deployment
for each model in the store (latest version, --replicas replicas spread
over zones a, b, c) when the controller has none, and serves a gateway
that takes its routing table from the controller. The controller runs
every replica as its own bulwark node process, restarts one that dies and
rolls deployments out and back. When everything serves it prints a curl
command that gets a prediction through the gateway. Ctrl-C stops
everything cleanly: the gateway finishes its requests, then the
controller stops the replicas.

The pieces depend on each other only over their APIs, as on many
machines: kill the controller and the gateway keeps serving from its last
routing table while the controller restarts and adopts the running
replicas.

The admin token (gateway, controller and chaos mode) is --admin-token, or
the one kept in <site>/admin-token, created on first use; bulwark status,
get, apply and friends read it from there.`,
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
			ctl, err := startSiteController(ctx, g, controllerListen, token, chaos, backups.args())
			if err != nil {
				return err
			}
			// After the gateway has finished its requests, never before:
			// stopping the controller stops the replicas.
			defer ctl.stop()
			client := control.NewClient(ctl.url, token)
			if err := ensureDeployments(ctx, out, client, g.site, models, replicas); err != nil {
				return err
			}
			gw, follower, err := startFollowingGateway(g, followFlags{listen: listen, token: token, controller: ctl.url,
				cache: filepath.Join(g.site, "gateway", "routing.json")})
			if err != nil {
				return err
			}
			ln, err := listenTCP(gw.Config().Listen)
			if err != nil {
				return err
			}
			go follower.Run(ctx)
			failing, err := waitServing(ctx, client, gw)
			if err != nil {
				ln.Close()
				return err
			}
			if err := printSite(ctx, out, client, ctl, failing); err != nil {
				ln.Close()
				return err
			}
			printTour(out, ln.Addr().String(), ctl.url, chaos)
			return gw.Serve(ctx, ln)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", defaultGatewayAddr, "address of the gateway that clients use")
	f.StringVar(&controllerListen, "controller-listen", defaultControllerAddr, "address of the controller's API (port 0: any free port)")
	f.IntVar(&replicas, "replicas", 3, "replicas of each deployment up creates")
	f.BoolVar(&chaos, "chaos", false, "enable the replicas' fault-injection API (for drills and demos)")
	f.StringVar(&token, "admin-token", "", "bearer token for the admin APIs (default: kept in <site>/admin-token)")
	f.StringVar(&backups.repo, "backup-repo", "", "back the site up on a schedule into this repository (passwords from $BULWARK_PASSWORD[_FILE])")
	f.DurationVar(&backups.interval, "backup-interval", time.Hour, "time between scheduled backups")
	f.IntVar(&backups.keepLast, "backup-keep-last", 0, "after each scheduled backup, keep only this many snapshots (0: keep all)")
	f.DurationVar(&backups.pruneEvery, "backup-prune-every", 0, "with --backup-keep-last: prune the repository this often, freeing what forgotten snapshots held (0: never)")
	f.StringVar(&backups.offsite, "offsite-repo", "", "copy each scheduled backup to this repository, e.g. s3:https://host/bucket ($BULWARK_OFFSITE_PASSWORD[_FILE])")
	return cmd
}

// upBackupFlags are the schedule flags up passes to its controller.
type upBackupFlags struct {
	repo, offsite string
	interval      time.Duration
	keepLast      int
	pruneEvery    time.Duration
}

func (b upBackupFlags) args() []string {
	if b.repo == "" {
		if b.offsite != "" {
			return []string{"--offsite-repo", b.offsite} // the controller refuses it with the reason
		}
		return nil
	}
	args := []string{"--backup-repo", b.repo, "--backup-interval", b.interval.String()}
	if b.keepLast > 0 {
		args = append(args, "--backup-keep-last", fmt.Sprint(b.keepLast))
	}
	if b.pruneEvery != 0 {
		args = append(args, "--backup-prune-every", b.pruneEvery.String())
	}
	if b.offsite != "" {
		args = append(args, "--offsite-repo", b.offsite)
	}
	return args
}

// ensureDeployments applies, when the controller has no deployment, one
// per model in the store: its latest version, replicas replicas spread
// over up to three zones.
func ensureDeployments(ctx context.Context, out io.Writer, c *control.Client, site string, models []string, replicas int) error {
	have, err := c.List(ctx)
	if err != nil {
		return fmt.Errorf("list deployments: %w", err)
	}
	if len(have) > 0 {
		names := make([]string, len(have))
		for i, d := range have {
			names[i] = d.Metadata.Name
		}
		fmt.Fprintf(out, "controller: %d deployment(s) already applied (%s); leaving them as they are\n", len(have), strings.Join(names, ", "))
		return nil
	}
	store, err := modelstore.Open(site)
	if err != nil {
		return err
	}
	zones := replicaZones[:min(replicas, len(replicaZones))]
	for _, m := range models {
		v, err := store.Latest(m)
		if err != nil {
			return err
		}
		doc := fmt.Sprintf("apiVersion: bulwark.dev/v1\nkind: Deployment\nmetadata: {name: %q}\nspec:\n  model: %q\n  versions: [{version: %q}]\n  replicas: %d\n  zones: [%s]\n",
			m, m, v, replicas, strings.Join(zones, ", "))
		res, err := c.Apply(ctx, []byte(doc), "application/yaml", false)
		if err != nil {
			return fmt.Errorf("apply a deployment of %s:%s: %w", m, v, err)
		}
		fmt.Fprintf(out, "deployment %s %s: model %s:%s, %d replica(s)\n", m, res.Result, m, v, replicas)
	}
	return nil
}

// replicaZones are the pretend zones up spreads replicas over, so that
// the gateway's zone handling is visible on one machine.
var replicaZones = []string{"a", "b", "c"}

// siteController is the controller `up` runs: its own process, so that
// it can die (or be killed) alone, restarted by a supervisor; it adopts
// the replicas still running when it comes back.
type siteController struct {
	url  string
	log  string // its output
	proc *supervisor.Proc
	out  *os.File
}

// startSiteController starts `bulwark controller` on listen (a free port
// for port 0, kept across restarts) and waits until its API answers.
func startSiteController(ctx context.Context, g *globals, listen, token string, chaos bool, extra []string) (*siteController, error) {
	ln, err := net.Listen("tcp", listen)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("controller address %s: %w (is another bulwark running? choose another address with --controller-listen)", listen, err)
	}
	if err != nil {
		return nil, fmt.Errorf("controller address %s: %w", listen, err)
	}
	addr := ln.Addr().String()
	ln.Close()
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(g.site, "logs", "controller.log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("controller log: %w", err)
	}
	// --stop-replicas-on-exit: up owns the whole site, and Ctrl-C stops it
	// all. --exit-with-parent: if up itself is killed, the controller
	// stops too, and with it the replicas, rather than linger unseen.
	args := []string{"--site", g.site, "--log-level", g.logLevel, "--log-format", g.logFormat,
		"controller", "--listen", addr, "--stop-replicas-on-exit", "--exit-with-parent"}
	if chaos {
		args = append(args, "--chaos")
	}
	args = append(args, extra...)
	// Not tied to ctx: up stops it after the gateway has drained.
	proc, err := supervisor.Start(context.Background(), supervisor.Spec{Name: "controller", Path: exe, Args: args,
		Env: []string{"BULWARK_ADMIN_TOKEN=" + token}, Stdout: out, Stderr: out},
		supervisor.Options{Logger: g.log, StopTimeout: time.Minute})
	if err != nil {
		out.Close()
		return nil, err
	}
	c := &siteController{url: "http://" + addr, log: logPath, proc: proc, out: out}
	if err := c.waitUp(ctx, token); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// waitUp waits until the controller's API answers, or it exits (a
// corrupt state file, say: its log says why).
func (c *siteController) waitUp(ctx context.Context, token string) error {
	client := control.NewClient(c.url, token)
	deadline := time.Now().Add(time.Minute)
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := client.List(rctx)
		cancel()
		if err == nil {
			return nil
		}
		if st := c.proc.Status(); st.LastExit != "" {
			err := fmt.Errorf("the controller exited (%s); the end of %s:\n%s", st.LastExit, c.log, logTail(c.log, 10))
			// Its exit code says why (4: a corrupt state file): up exits
			// with the same, for scripts.
			var code int
			if _, serr := fmt.Sscanf(st.LastExit, "exit status %d", &code); serr == nil && code > exitUsage {
				return childExitError{code: code, err: err}
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the controller at %s does not answer after a minute: %v; see %s", c.url, err, c.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// childExitError passes a child's meaningful exit code on as bulwark's.
type childExitError struct {
	code int
	err  error
}

func (e childExitError) Error() string { return e.err.Error() }

func (c *siteController) stop() {
	c.proc.Stop()
	c.out.Close()
}

// logTail is the last n lines of a file.
func logTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// waitServing waits until every deployment serves through the gateway
// (rolled out, its replicas routed), or has settled on failing: each of its replicas
// runs and says its model version is not ready (it failed to load), which
// waiting will not change. It returns a line for each failing one.
func waitServing(ctx context.Context, c *control.Client, gw *gateway.Gateway) ([]string, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		failing, pending, err := servingState(ctx, c, gw)
		if err == nil && len(pending) == 0 {
			return failing, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New(strings.Join(pending, "; "))
			}
			return nil, fmt.Errorf("not serving after 2m: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func servingState(ctx context.Context, c *control.Client, gw *gateway.Gateway) (failing, pending []string, err error) {
	ds, err := c.List(ctx)
	if err != nil {
		return nil, nil, err
	}
	reps, err := c.Replicas(ctx)
	if err != nil {
		return nil, nil, err
	}
	available := map[string]int{}
	for _, m := range gw.Status().Models {
		available[m.Name] = m.Available
	}
	for _, d := range ds {
		var mine []control.ReplicaInfo
		loadFailed := true
		for _, r := range reps {
			if r.Deployment == d.Metadata.Name {
				mine = append(mine, r)
				// The node's own words for a version it could not load.
				loadFailed = loadFailed && r.State == string(supervisor.Running) && !r.Ready && strings.Contains(r.Reason, " is not ready: ")
			}
		}
		switch {
		case d.Done() && available[d.Spec.Model] >= d.Status.DesiredReplicas && modelAnswers(ctx, gw, d.Spec.Model):
		case len(mine) > 0 && loadFailed:
			failing = append(failing, fmt.Sprintf("deployment %s serves nothing: replica %s: %s", d.Metadata.Name, mine[0].Name, mine[0].Reason))
		case len(mine) == 0:
			pending = append(pending, "deployment "+d.Metadata.Name+": no replica yet")
		default:
			pending = append(pending, fmt.Sprintf("deployment %s: replica %s: %s", d.Metadata.Name, mine[0].Name, dash(mine[0].Reason)))
		}
	}
	return failing, pending, nil
}

// modelAnswers asks the gateway, in process, whether the model is ready:
// the gateway forwards the question to a replica, so a yes proves the
// routing works end to end. A replica the gateway has not health-checked
// yet counts as available, which alone could say "serving" about
// addresses nothing listens on.
func modelAnswers(ctx context.Context, gw *gateway.Gateway, model string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "/v2/models/"+url.PathEscape(model)+"/ready", nil)
	if err != nil {
		return false
	}
	rec := &statusOnly{header: http.Header{}, code: http.StatusOK}
	gw.Handler().ServeHTTP(rec, req)
	return rec.code == http.StatusOK
}

// statusOnly is a ResponseWriter that keeps the status and drops the body.
type statusOnly struct {
	header http.Header
	code   int
}

func (w *statusOnly) Header() http.Header         { return w.header }
func (w *statusOnly) Write(b []byte) (int, error) { return len(b), nil }
func (w *statusOnly) WriteHeader(code int)        { w.code = code }

// printSite lists the controller, the deployments that do not serve and
// the replicas.
func printSite(ctx context.Context, out io.Writer, c *control.Client, ctl *siteController, failing []string) error {
	reps, err := c.Replicas(ctx)
	if err != nil {
		return fmt.Errorf("list replicas: %w", err)
	}
	fmt.Fprintf(out, "\ncontroller %s (pid %d, log %s)\n", ctl.url, ctl.proc.Status().PID, ctl.log)
	for _, r := range reps {
		fmt.Fprintf(out, "replica %s: %s (zone %s, pid %d)\n", r.Name, r.Address, dash(r.Zone), r.PID)
	}
	for _, f := range failing {
		fmt.Fprintf(out, "WARNING: %s\n", f)
	}
	return nil
}

// ensureSampleModel pushes the sample model unless the store has a model,
// and returns the store's model names.
func ensureSampleModel(ctx context.Context, out io.Writer, site string) ([]string, error) {
	store, err := modelstore.Open(site)
	if err != nil {
		return nil, err
	}
	if names, err := store.Names(); err == nil && len(names) > 0 {
		fmt.Fprintf(out, "site %s: %d model(s) in the store\n", site, len(names))
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

func printTour(out io.Writer, addr, controllerURL string, chaos bool) {
	// Flags the commands below need when up does not run on the defaults.
	ctlFlag, gwFlag := "", ""
	if controllerURL != "http://"+defaultControllerAddr {
		ctlFlag = " --controller " + controllerURL
	}
	if addr != defaultGatewayAddr {
		gwFlag = " --gateway http://" + addr
	}
	ex := sample.Example()[0]
	body := fmt.Sprintf(`{"inputs":[{"name":"%s","shape":[1,4],"datatype":"FP32","data":[%g,%g,%g,%g]}]}`,
		sample.InputName, ex[0], ex[1], ex[2], ex[3])
	base := "http://" + addr
	fmt.Fprintf(out, `
Bulwark is serving on %[1]s (gateway in front of the replicas above, routed by the controller)

Get a prediction (label 0=setosa, 1=versicolor, 2=virginica):

  curl -s -X POST %[1]s/v2/models/%[2]s/infer -H 'Content-Type: application/json' \
    -d '%[3]s'

Replica health:  bulwark status%[5]s   (kill a replica's pid: requests keep succeeding, it is replaced)
Deployments:     bulwark get deployments%[4]s   (apply -f, rollout status, rollback)
Model metadata:  curl -s %[1]s/v2/models/%[2]s
Metrics:         curl -s %[1]s/metrics
`, base, sample.ModelName, body, ctlFlag, gwFlag)
	if chaos {
		fmt.Fprintln(out, "Chaos mode:      on (PUT /admin/chaos on a replica, with the admin token)")
	}
	fmt.Fprintln(out, "\nPress Ctrl-C to stop.")
}
