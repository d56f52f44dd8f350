package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/bulwark-ml/bulwark/internal/supervisor"
)

// The reconciler runs inside `bulwark controller` and makes this machine
// match the desired state: for every deployment, spec.replicas `bulwark
// node` processes per version that gets traffic (and, during a rollout,
// the old ones still needed), each on its own loopback port and serving
// exactly one model version. The supervisor restarts a replica that dies;
// the reconciler watches their readiness, rolls out new revisions
// (rollout.go), rolls back automatically, and reports through the status,
// events and the routing table (routing.go).
//
// Replicas outlive the controller: they run in their own process groups,
// not under the controller's context, and are recorded in the state
// (meta key "replicas") on every change, so a restarted controller adopts
// the ones still running instead of restarting them. Nodes and gateways
// keep serving while the controller is down (static stability). Only
// deleting a deployment, or StopOnExit, stops them.

// Meta keys of the state store the reconciler owns.
const (
	replicasKey          = "replicas"
	routingGenerationKey = "routing.generation"
)

// ReconcilerOptions configure a Reconciler; Binary and Site are required.
type ReconcilerOptions struct {
	Binary   string   // the bulwark executable, run as `bulwark node`
	Site     string   // passed to every node as --site
	NodeArgs []string // more arguments for every node (log level, format)
	// LogDir receives each replica's output as NAME.log [<Site>/logs/replicas].
	LogDir string
	// StopOnExit stops every replica when Run returns; by default they keep
	// serving and the next controller adopts them.
	StopOnExit bool
	Logger     *slog.Logger
	// Supervisor tunes restarts (backoff, crash loops) of every replica.
	Supervisor supervisor.Options
	// ProbeInterval is how often each replica's readiness is checked [100ms].
	ProbeInterval time.Duration
	// ProbeFailures is how many probes in a row must fail before a ready
	// replica whose process runs counts as not ready [3]; a process that
	// exits counts at once.
	ProbeFailures int
	// ScrapeInterval is how often a version on trial has its metrics read [1s].
	ScrapeInterval time.Duration
	// Resync is the longest the reconciler waits between passes [250ms];
	// readiness changes and desired-state changes start a pass at once.
	Resync time.Duration
	// MinRequests a health verdict on a rollout needs [DefaultMinRequests].
	MinRequests int
}

// Reconciler converges the machine to the desired state of a Service.
type Reconciler struct {
	svc *Service
	opt ReconcilerOptions
	log *slog.Logger
	hc  *http.Client

	// Owned by Run's goroutine.
	replicas map[string]*replica // active, by name
	draining map[*replica]bool   // being stopped
	deploys  map[string]*deployState
	dirty    bool // the recorded replicas are out of date

	kick    chan struct{}
	stopped chan *replica
	wg      sync.WaitGroup // probers and stops

	// Seams for tests.
	now      func() time.Time
	launch   func(spec supervisor.Spec) (process, error)
	adoptPID func(spec supervisor.Spec, pid int) (process, error)
	probe    func(ctx context.Context, rep *replica) (bool, string)
	scrape   func(ctx context.Context, rep *replica) (metricSample, error)
	identify func(ctx context.Context, rec replicaRecord) bool
	freePort func() (int, error)
}

// process is a supervised replica process (*supervisor.Proc).
type process interface {
	Status() supervisor.Status
	Stop()
}

// NewReconciler returns a reconciler for svc; Run starts it.
func NewReconciler(svc *Service, opt ReconcilerOptions) (*Reconciler, error) {
	if opt.Binary == "" || opt.Site == "" {
		return nil, errors.New("reconciler: Binary and Site are required")
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.LogDir == "" {
		opt.LogDir = filepath.Join(opt.Site, "logs", "replicas")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opt.ProbeInterval, 100*time.Millisecond)
	def(&opt.ScrapeInterval, time.Second)
	def(&opt.Resync, 250*time.Millisecond)
	if opt.MinRequests <= 0 {
		opt.MinRequests = DefaultMinRequests
	}
	if opt.ProbeFailures <= 0 {
		opt.ProbeFailures = 3
	}
	opt.Supervisor.Logger = opt.Logger
	r := &Reconciler{
		svc: svc, opt: opt, log: opt.Logger.With("component", "reconciler"),
		hc:       &http.Client{Timeout: time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second}},
		replicas: map[string]*replica{}, draining: map[*replica]bool{}, deploys: map[string]*deployState{},
		kick: make(chan struct{}, 1), stopped: make(chan *replica, 16),
		now: time.Now, freePort: freeLoopbackPort,
	}
	// Replicas are not tied to any context of the controller: they must
	// outlive it. They stop only through Stop.
	r.launch = func(spec supervisor.Spec) (process, error) {
		return supervisor.Start(context.Background(), spec, r.opt.Supervisor)
	}
	r.adoptPID = func(spec supervisor.Spec, pid int) (process, error) {
		return supervisor.Adopt(context.Background(), spec, pid, r.opt.Supervisor)
	}
	r.probe, r.scrape, r.identify = r.httpProbe, r.httpScrape, r.httpIdentify
	return r, nil
}

// Run reconciles until ctx ends. It first adopts (or relaunches) the
// replicas recorded by a previous controller. On return the replicas keep
// running, unless StopOnExit.
func (r *Reconciler) Run(ctx context.Context) error {
	if err := os.MkdirAll(r.opt.LogDir, 0o755); err != nil {
		return fmt.Errorf("reconciler: log directory: %w", err)
	}
	if err := r.loadRoutingGeneration(ctx); err != nil {
		return err
	}
	if err := r.adoptRecorded(ctx); err != nil {
		return err
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go r.watch(watchCtx)
	tick := time.NewTicker(r.opt.Resync)
	defer tick.Stop()
	for {
		r.pass(ctx)
		select {
		case <-ctx.Done():
			r.shutdown()
			return nil
		case <-r.kick:
		case <-tick.C:
		case rep := <-r.stopped:
			r.finishStop(rep)
		}
	}
}

// watch wakes the loop on every desired-state change.
func (r *Reconciler) watch(ctx context.Context) {
	var gen int64
	for {
		g, err := r.svc.Changes(ctx, gen)
		if err != nil {
			return
		}
		gen = g
		r.wake()
	}
}

func (r *Reconciler) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// pass is one round: every deployment, replicas of deleted ones, the
// routing table, the record of replicas.
func (r *Reconciler) pass(ctx context.Context) {
	for {
		select {
		case rep := <-r.stopped:
			r.finishStop(rep)
			continue
		default:
		}
		break
	}
	ds, err := r.svc.List(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Error("list deployments", "err", err)
		}
		return
	}
	byDeploy := map[string][]*replica{}
	for _, rep := range r.replicas {
		byDeploy[rep.Deployment] = append(byDeploy[rep.Deployment], rep)
	}
	live := map[string]bool{}
	var updates []statusUpdate
	for _, d := range ds {
		live[d.Metadata.Name] = true
		updates = append(updates, r.reconcileDeployment(ctx, d, byDeploy[d.Metadata.Name]))
	}
	for name, reps := range byDeploy {
		if !live[name] {
			r.log.Info("deployment deleted; stopping its replicas", "deployment", name, "replicas", len(reps))
			for _, rep := range reps {
				r.stopReplica(rep)
			}
		}
	}
	for name := range r.deploys {
		if !live[name] {
			delete(r.deploys, name)
		}
	}
	r.publishRouting(ctx, ds)
	r.saveRecords(ctx)
	for _, u := range updates {
		if err := r.writeStatus(ctx, u); err != nil && ctx.Err() == nil && !errors.Is(err, ErrNotFound) {
			r.log.Error("write status", "deployment", u.name, "err", err)
		}
	}
}

// shutdown ends the probers and either stops every replica (StopOnExit)
// or leaves them serving, recorded for the next controller.
func (r *Reconciler) shutdown() {
	ctx := context.Background()
	if r.opt.StopOnExit {
		for _, rep := range r.replicas {
			r.stopReplica(rep)
		}
	}
	for _, rep := range r.replicas {
		rep.stopProbe()
	}
	for len(r.draining) > 0 {
		r.finishStop(<-r.stopped)
	}
	r.wg.Wait()
	r.saveRecords(ctx)
}

// loadRoutingGeneration continues the routing generation from the state,
// one above the last one, as the desired-state generation does.
func (r *Reconciler) loadRoutingGeneration(ctx context.Context) error {
	var gen int64
	b, err := r.svc.store.Meta(ctx, routingGenerationKey)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return fmt.Errorf("read routing generation: %w", err)
	default:
		if gen, err = strconv.ParseInt(string(b), 10, 64); err != nil {
			return fmt.Errorf("read routing generation %q: %w", b, err)
		}
	}
	gen++
	if err := r.svc.store.PutMeta(ctx, routingGenerationKey, []byte(strconv.FormatInt(gen, 10))); err != nil {
		return fmt.Errorf("write routing generation: %w", err)
	}
	r.svc.routing.setGeneration(gen)
	return nil
}

// publishRouting rebuilds the routing table from what is ready now.
func (r *Reconciler) publishRouting(ctx context.Context, ds []*Deployment) {
	var rds []routedDeployment
	for _, d := range ds {
		st := r.deploys[d.Metadata.Name]
		if st == nil {
			continue
		}
		rd := routedDeployment{Model: d.Spec.Model, Policy: st.policy, Versions: d.Spec.Versions}
		for _, rep := range r.replicas {
			if rep.Deployment == d.Metadata.Name {
				ready, _ := rep.readiness()
				rd.Replicas = append(rd.Replicas, routedReplica{Address: rep.address(), Zone: rep.Zone, Version: rep.Version, Ready: ready})
			}
		}
		rds = append(rds, rd)
	}
	resp, err := buildRouting(rds)
	if err != nil {
		r.log.Error("routing table", "err", err)
		return
	}
	gen, changed := r.svc.routing.publish(resp, r.replicaInfos())
	if changed {
		if err := r.svc.store.PutMeta(ctx, routingGenerationKey, []byte(strconv.FormatInt(gen, 10))); err != nil {
			r.log.Warn("persist routing generation", "generation", gen, "err", err)
		}
	}
}
