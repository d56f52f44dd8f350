package control

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/bulwark-ml/bulwark/internal/gateway"
	"github.com/bulwark-ml/bulwark/internal/supervisor"
)

// defaultMetricsWindow is the health window of a rollout whose observe is 0.
const defaultMetricsWindow = 30 * time.Second

// deployState is what the reconciler remembers of a deployment between
// passes (the status holds the rest, durably).
type deployState struct {
	revision     int64     // the revision being acted on
	observeStart time.Time // when the revision converged, for rollout.observe
	rollbackTo   int64     // the revision our automatic rollback created
	rollingBack  bool      // the current revision is that rollback
	failed       string    // why the current revision failed; it is not retried
	policy       gateway.Policy
	goodRev      int64 // goodSpec's revision
	goodSpec     *Spec
	startErr     string // the last failure to start a replica, reported once
	// trialReady is when each version on trial first had a ready replica.
	trialReady map[string]time.Time
}

func (r *Reconciler) deploy(name string) *deployState {
	st := r.deploys[name]
	if st == nil {
		st = &deployState{}
		r.deploys[name] = st
	}
	return st
}

// statusUpdate is a status to write once the pass has published the
// routing table, so that a status saying "ready" never runs ahead of
// the table that routes to those replicas.
type statusUpdate struct {
	name       string
	prev, next Status
}

// reconcileDeployment is one step for one deployment: pick up a new
// revision, check a rollout's health, start and stop replicas; it returns
// the status to report.
func (r *Reconciler) reconcileDeployment(ctx context.Context, d *Deployment, reps []*replica) statusUpdate {
	now := r.now()
	name, rev, spec := d.Metadata.Name, d.Metadata.Revision, &d.Spec
	ds := r.deploy(name)
	prev := *d.Status
	status := prev
	status.Conditions = slices.Clone(prev.Conditions)
	if ds.revision != rev {
		ds.revision, ds.observeStart, ds.failed, ds.trialReady = rev, time.Time{}, "", nil
		ds.rollingBack = ds.rollbackTo == rev
		if p, err := d.EffectivePolicy(); err == nil {
			ds.policy = p
		} else {
			ds.policy = gateway.DefaultPolicy()
		}
		if running := runningVersions(reps); len(running) > 0 && !slices.Equal(running, sortedCopy(weightedVersions(spec))) {
			how := ""
			if ds.rollingBack {
				how = " (automatic rollback)"
			}
			r.event(ctx, name, EventNormal, "RolloutStarted", fmt.Sprintf("rolling out revision %d%s: %s (running now: version %s)",
				rev, how, summary(spec), strings.Join(running, ", ")))
		}
	}
	good := status.LastGoodRevision
	var trial map[string]bool
	if good != 0 && good != rev {
		trial = trialVersions(spec, r.goodSpec(ctx, ds, name, good))
	}
	views := make([]replicaView, len(reps))
	for i, rep := range reps {
		views[i] = rep.view()
		views[i].Stale = rep.Model != spec.Model
		rep.setScrape(trial[rep.Version])
		// A zone is only a label in the routing table: relabel in place.
		if z := zoneOf(spec, rep.Index); rep.Zone != z {
			rep.Zone, r.dirty = z, true
		}
	}
	p := planRollout(planInput{Now: now, Spec: spec, Trial: trial, Unproven: r.unproven(spec, ds, reps, trial, now), Replicas: views})

	if len(trial) > 0 && ds.failed == "" {
		reason := p.Failed
		if reason == "" {
			reason = r.trialVerdict(spec, ds, reps, trial, now)
		}
		if reason != "" {
			r.rollBack(ctx, d, ds, &status, reason)
			return statusUpdate{name, prev, status}
		}
	}
	r.act(ctx, d, ds, reps, p)
	r.noteProcesses(ctx, name, reps)

	status.ObservedRevision = rev
	status.ReadyReplicas, status.DesiredReplicas, status.Versions = p.Ready, p.Desired, p.Versions
	status.Message = ""
	progress := Condition{Type: "Progressing", Status: "True", Reason: "NewRevision", Message: fmt.Sprintf("revision %d is rolling out", rev)}
	switch {
	case ds.failed != "":
		status.Phase, status.Message = PhaseDegraded, fmt.Sprintf("revision %d failed: %s", rev, ds.failed)
		progress = Condition{Type: "Progressing", Status: "False", Reason: "RolloutFailed", Message: status.Message}
	case p.Converged && !r.observed(spec, ds, trial, now):
		left := time.Duration(spec.Rollout.Observe) - now.Sub(ds.observeStart)
		status.Phase = PhaseProgressing
		status.Message = fmt.Sprintf("observing version(s) %s: %s left", strings.Join(sortedKeys(trial), ", "), left.Round(100*time.Millisecond))
		progress.Reason, progress.Message = "Observing", status.Message
	case p.Converged:
		status.Phase = PhaseAvailable
		if status.LastGoodRevision != rev {
			status.LastGoodRevision = rev
			r.event(ctx, name, EventNormal, "RolloutComplete", fmt.Sprintf("revision %d is available: %s", rev, summary(spec)))
		}
		progress = Condition{Type: "Progressing", Status: "True", Reason: "RolloutComplete", Message: fmt.Sprintf("revision %d is available", rev)}
	case p.Stuck != "":
		status.Phase, status.Message = PhaseDegraded, p.Stuck
		progress = Condition{Type: "Progressing", Status: "False", Reason: "ProgressDeadlineExceeded", Message: p.Stuck}
	case rev == good:
		status.Phase = PhaseDegraded
		status.Message = fmt.Sprintf("%d of %d replicas ready", p.Ready, p.Desired)
		progress.Reason, progress.Message = "ReplicasRecovering", status.Message
	case ds.rollingBack:
		status.Phase = PhaseRollingBack
		progress.Reason = "RollingBack"
	default:
		status.Phase = PhaseProgressing
	}
	ready := 0
	for _, v := range views {
		if v.Ready {
			ready++
		}
	}
	avail := Condition{Type: "Available", Status: "True", Reason: "MinimumReplicasAvailable",
		Message: fmt.Sprintf("%d replica(s) ready", ready)}
	if ready < max(1, p.Desired-1) {
		avail.Status, avail.Reason = "False", "MinimumReplicasUnavailable"
	}
	conds := []Condition{avail, progress}
	for _, rep := range reps {
		if rep.crashLooping {
			conds = append(conds, Condition{Type: "ReplicaFailure", Status: "True", Reason: "CrashLoop",
				Message: fmt.Sprintf("replica %s is crash-looping (last exit: %s)", rep.Name, rep.proc.Status().LastExit)})
			break
		}
	}
	status.Conditions = mergeConditions(prev.Conditions, conds, now, false)
	return statusUpdate{name, prev, status}
}

// observed reports whether a converged revision has been watched for
// rollout.observe (only versions on trial need watching).
func (r *Reconciler) observed(spec *Spec, ds *deployState, trial map[string]bool, now time.Time) bool {
	if len(trial) == 0 || spec.Rollout.Observe <= 0 {
		return true
	}
	if ds.observeStart.IsZero() {
		ds.observeStart = now
	}
	return now.Sub(ds.observeStart) >= time.Duration(spec.Rollout.Observe)
}

// act starts and stops replicas as planned.
func (r *Reconciler) act(ctx context.Context, d *Deployment, ds *deployState, reps []*replica, p plan) {
	name := d.Metadata.Name
	if len(p.Stop) > 0 {
		byName := map[string]*replica{}
		for _, rep := range reps {
			byName[rep.Name] = rep
		}
		for _, n := range p.Stop {
			if rep := byName[n]; rep != nil {
				r.stopReplica(rep)
			}
		}
		r.event(ctx, name, EventNormal, "ScaledDown", "stopped "+strings.Join(p.Stop, ", "))
	}
	var started []string
	for _, s := range p.Start {
		rep, err := r.startReplica(d, s)
		if err != nil {
			// Retried every pass; said once.
			if msg := fmt.Sprintf("start a replica of version %s: %v", s.Version, err); msg != ds.startErr {
				ds.startErr = msg
				r.event(ctx, name, EventWarning, "FailedStart", msg)
			}
			continue
		}
		ds.startErr = ""
		started = append(started, fmt.Sprintf("%s (port %d, pid %d)", rep.Name, rep.Port, rep.PID))
	}
	if len(started) > 0 {
		r.event(ctx, name, EventNormal, "ScaledUp", "started "+strings.Join(started, ", "))
	}
}

// noteProcesses records restarts and crash loops the supervisor reports.
func (r *Reconciler) noteProcesses(ctx context.Context, name string, reps []*replica) {
	for _, rep := range reps {
		st := rep.proc.Status()
		if st.Restarts > rep.restarts {
			r.event(ctx, name, EventWarning, "ReplicaRestarted", fmt.Sprintf("replica %s restarted (last exit: %s); pid %d → %d",
				rep.Name, st.LastExit, rep.PID, st.PID))
			rep.restarts = st.Restarts
		}
		if st.PID != rep.PID && st.State == supervisor.Running {
			rep.PID = st.PID
			rep.Started = st.StartedAt
			r.dirty = true
		}
		switch ready, _ := rep.readiness(); {
		case st.State == supervisor.CrashLoop && !rep.crashLooping:
			rep.crashLooping = true
			r.event(ctx, name, EventWarning, "CrashLoop", fmt.Sprintf("replica %s keeps exiting (last exit: %s, %d restarts); still retrying with backoff",
				rep.Name, st.LastExit, st.Restarts))
		case rep.crashLooping && ready:
			rep.crashLooping = false
		}
	}
}

// unproven lists the versions on trial that have a ready replica and
// have not been judged yet: fewer than MinRequests requests served in the
// observation window, and watched for less than rollout.observe since
// their first replica got ready. Old ready replicas wait for them, so a
// version that answers errors is rolled back while the old replicas still
// take most of the traffic. Without an observation window (observe 0)
// every version is proven once ready.
func (r *Reconciler) unproven(spec *Spec, ds *deployState, reps []*replica, trial map[string]bool, now time.Time) map[string]bool {
	observe := time.Duration(spec.Rollout.Observe)
	if len(trial) == 0 || observe <= 0 {
		return nil
	}
	var out map[string]bool
	for v := range trial {
		var served metricSample
		ready := false
		for _, rep := range reps {
			if rep.Version != v {
				continue
			}
			if ok, _ := rep.readiness(); ok {
				ready = true
			}
			if d, ok := rep.sampleWindow(now, observe); ok {
				served = addSample(served, d)
			}
		}
		if !ready {
			continue
		}
		if ds.trialReady == nil {
			ds.trialReady = map[string]time.Time{}
		}
		since, seen := ds.trialReady[v]
		if !seen {
			since, ds.trialReady[v] = now, now
		}
		// A version whose window already fails the limits stays unproven
		// until the rollback: never stop an old replica for it, not even
		// in the pass between the scrape and the verdict. Once observed
		// for the whole window, any traffic counts (see trialMinRequests).
		observedFully := now.Sub(since) >= observe
		failing := healthVerdict(served, spec.Rollout, observe, r.trialMinRequests(observedFully)) != ""
		if !failing && (served.Total >= float64(r.opt.MinRequests) || observedFully) {
			continue
		}
		if out == nil {
			out = map[string]bool{}
		}
		out[v] = true
	}
	return out
}

// trialVerdict judges the versions on trial by their replicas' metrics.
func (r *Reconciler) trialVerdict(spec *Spec, ds *deployState, reps []*replica, trial map[string]bool, now time.Time) string {
	window := time.Duration(spec.Rollout.Observe)
	if window <= 0 {
		window = defaultMetricsWindow
	}
	var sum metricSample
	for _, rep := range reps {
		if trial[rep.Version] {
			if d, ok := rep.sampleWindow(now, window); ok {
				sum = addSample(sum, d)
			}
		}
	}
	observedFully := len(ds.trialReady) > 0
	for v := range trial {
		since, ok := ds.trialReady[v]
		observedFully = observedFully && ok && now.Sub(since) >= window
	}
	return healthVerdict(sum, spec.Rollout, window, r.trialMinRequests(observedFully))
}

// trialMinRequests is how many requests a verdict on a version on trial
// needs. While it is observed, MinRequests, so that one early failure does
// not roll a good version back. Once observed for the whole window, one:
// a version the gateway kept starving of traffic (it ejects a replica
// that fails) would otherwise be promoted on too few requests to judge,
// all of them failures, and the old replicas stopped for it.
func (r *Reconciler) trialMinRequests(observedFully bool) int {
	if observedFully {
		return 1
	}
	return r.opt.MinRequests
}

// rollBack answers a failed rollout: back to the last good revision, as a
// new revision, which the next passes converge to.
func (r *Reconciler) rollBack(ctx context.Context, d *Deployment, ds *deployState, status *Status, reason string) {
	name, rev, good := d.Metadata.Name, d.Metadata.Revision, status.LastGoodRevision
	ds.failed = reason
	status.ObservedRevision = rev
	res, err := r.svc.Rollback(ctx, name, good)
	if err != nil {
		msg := fmt.Sprintf("revision %d failed: %s; cannot roll back to revision %d: %v", rev, reason, good, err)
		r.event(ctx, name, EventWarning, "RolloutFailed", msg)
		status.Phase, status.Message = PhaseDegraded, msg
		return
	}
	ds.rollbackTo = res.Revision
	msg := fmt.Sprintf("revision %d failed: %s; rolled back automatically to revision %d (as revision %d)", rev, reason, good, res.Revision)
	r.log.Warn("rollout failed; rolled back", "deployment", name, "revision", rev, "reason", reason, "to", good)
	r.event(ctx, name, EventWarning, "RolledBack", msg)
	status.Phase, status.Message = PhaseRollingBack, msg
	status.Conditions = mergeConditions(status.Conditions, []Condition{{Type: "Progressing", Status: "False", Reason: "RolloutFailed", Message: msg}}, r.now(), true)
}

// goodSpec is the spec of the last good revision, cached; nil if it is no
// longer kept.
func (r *Reconciler) goodSpec(ctx context.Context, ds *deployState, name string, good int64) *Spec {
	if ds.goodRev == good && ds.goodSpec != nil {
		return ds.goodSpec
	}
	rv, err := r.svc.store.Revision(ctx, name, good)
	if err != nil {
		return nil
	}
	var s Spec
	if err := json.Unmarshal(rv.Data, &s); err != nil {
		return nil
	}
	ds.goodRev, ds.goodSpec = good, &s
	return &s
}

// writeStatus stores the new status unless it says what the old one said.
func (r *Reconciler) writeStatus(ctx context.Context, u statusUpdate) error {
	u.prev.UpdateTimestamp, u.next.UpdateTimestamp = time.Time{}, time.Time{}
	a, _ := json.Marshal(u.prev)
	b, _ := json.Marshal(u.next)
	if string(a) == string(b) {
		return nil
	}
	_, err := r.svc.SetStatus(ctx, u.name, u.next)
	return err
}

// mergeConditions sets conds over prev, keeping a condition's transition
// time while its status stays. With keep, the types of prev that conds
// do not set stay as they were; without, they are dropped.
func mergeConditions(prev, conds []Condition, now time.Time, keep bool) []Condition {
	out := slices.Clone(conds)
	for i := range out {
		out[i].LastTransitionTime = now
		for _, p := range prev {
			if p.Type == out[i].Type && p.Status == out[i].Status {
				out[i].LastTransitionTime = p.LastTransitionTime
			}
		}
	}
	for _, p := range prev {
		if keep && !slices.ContainsFunc(conds, func(c Condition) bool { return c.Type == p.Type }) {
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out
}

// event records an event; failing to is logged, never fatal.
func (r *Reconciler) event(ctx context.Context, name, typ, reason, msg string) {
	if err := r.svc.AppendEvent(context.WithoutCancel(ctx), name, Event{Type: typ, Reason: reason, Message: msg}); err != nil {
		r.log.Warn("record event", "deployment", name, "reason", reason, "err", err)
	}
}

// zoneOf is the zone of a slot: the spec's zones round-robin.
func zoneOf(spec *Spec, index int) string {
	if len(spec.Zones) == 0 {
		return ""
	}
	return spec.Zones[index%len(spec.Zones)]
}

func runningVersions(reps []*replica) []string {
	seen := map[string]bool{}
	for _, rep := range reps {
		seen[rep.Version] = true
	}
	return sortedKeys(seen)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}
