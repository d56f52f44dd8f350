package control

import (
	"fmt"
	"sort"
	"time"
)

// The rollout engine's decisions, kept free of processes, clocks and I/O so
// that they can be tested with made-up replicas: given the desired spec and
// the replicas that run, which to start and which to stop now, and whether
// a version on trial has failed its readiness check.
//
// The rules, as in a Kubernetes rolling update with maxUnavailable 0 (or 1
// when maxSurge is 0, replacing in place):
//
//   - every version with a weight above 0 wants spec.replicas replicas, in
//     slots 0..replicas-1; a replica in such a slot is current, any other
//     (an old version, a slot above a scale-down) is old;
//   - replicas run at most desired+maxSurge at a time while old ones remain;
//   - an old replica that is not ready is stopped at once (it serves
//     nothing); a ready one only while the ready count stays at least
//     desired-maxUnavailable afterwards, so a deployment never has fewer
//     than desired-1 ready replicas because of a rollout;
//   - a replica of a version on trial (not in the last good revision) that
//     is not ready for readyTimeout fails the rollout, which the reconciler
//     answers with an automatic rollback;
//   - old ready replicas wait while a version on trial is unproven (ready,
//     but not yet judged on its error rate and latency: see
//     Reconciler.unproven), so a version that fails under traffic is
//     caught while the old replicas still serve, not after it replaced
//     them all.

// slot is one desired replica: a version and its place among that
// version's replicas.
type slot struct {
	Version string
	Index   int
}

// replicaView is what the rollout logic knows of a running replica.
type replicaView struct {
	Name    string
	Version string
	Index   int
	Ready   bool
	// NotReadySince is when it started or last stopped being ready; zero
	// while ready.
	NotReadySince time.Time
	Reason        string // why it is not ready, as its ready endpoint said
	// Stale: it cannot fill a slot whatever its version (it serves
	// another model), so it is old.
	Stale bool
}

// planInput is the state the rollout logic decides on.
type planInput struct {
	Now   time.Time
	Spec  *Spec
	Trial map[string]bool // versions new since the last good revision
	// Unproven are versions on trial with a ready replica that have not
	// been judged yet: old ready replicas are not stopped meanwhile.
	Unproven map[string]bool
	Replicas []replicaView
}

// plan is what to do now, and what the state is.
type plan struct {
	Start []slot
	Stop  []string // replica names
	// Failed says why a version on trial failed its readiness check; empty
	// if none did.
	Failed string
	// Stuck says which replica not on trial is not ready past readyTimeout
	// (the deployment is degraded, there is nothing to roll back).
	Stuck string
	// Converged: every slot has a ready replica and no old replica runs.
	Converged bool
	// Old is how many old replicas run (before this plan's stops).
	Old      int
	Ready    int // ready replicas of the desired versions, at most desired
	Desired  int
	Versions []VersionStatus
}

// weightedVersions are the versions that get traffic, in spec order.
func weightedVersions(s *Spec) []string {
	var out []string
	for _, v := range s.Versions {
		if v.Weight > 0 {
			out = append(out, v.Version)
		}
	}
	return out
}

// trialVersions are the versions of cur that get traffic and did not in
// good: the ones a rollout must prove. Nil when there is no good revision
// to compare with (nothing to roll back to).
func trialVersions(cur, good *Spec) map[string]bool {
	if good == nil {
		return nil
	}
	had := map[string]bool{}
	for _, v := range weightedVersions(good) {
		had[v] = true
	}
	out := map[string]bool{}
	for _, v := range weightedVersions(cur) {
		if !had[v] {
			out[v] = true
		}
	}
	return out
}

// planRollout decides the next step.
func planRollout(in planInput) plan {
	spec := in.Spec
	versions := weightedVersions(spec)
	p := plan{Desired: len(versions) * spec.Replicas}
	want := map[slot]bool{}
	for _, v := range versions {
		for i := range spec.Replicas {
			want[slot{v, i}] = true
		}
	}
	reps := append([]replicaView(nil), in.Replicas...)
	sort.Slice(reps, func(i, j int) bool { return reps[i].Name < reps[j].Name })
	have := map[slot]replicaView{}
	var old []replicaView
	ready := 0
	readyOf := map[string]int{}
	for _, r := range reps {
		if r.Ready {
			ready++
			readyOf[r.Version]++
		}
		s := slot{r.Version, r.Index}
		if _, dup := have[s]; want[s] && !dup && !r.Stale {
			have[s] = r
			continue
		}
		old = append(old, r)
	}
	p.Old = len(old)

	var missing []slot
	allReady := true
	for _, v := range versions {
		for i := range spec.Replicas {
			r, ok := have[slot{v, i}]
			switch {
			case !ok:
				missing = append(missing, slot{v, i})
				allReady = false
			case !r.Ready:
				allReady = false
				p.checkDeadline(in, r)
			}
		}
	}
	p.Converged = len(missing) == 0 && len(old) == 0 && allReady

	// Stop old replicas: the ones not ready first (they serve nothing),
	// then the ready ones while enough stay ready.
	sort.SliceStable(old, func(i, j int) bool {
		if old[i].Ready != old[j].Ready {
			return !old[i].Ready
		}
		return old[i].Name > old[j].Name
	})
	maxUnavailable := 0
	if spec.Rollout.MaxSurge == 0 {
		maxUnavailable = 1
	}
	minReady := max(p.Desired-maxUnavailable, 0)
	for _, r := range old {
		if r.Ready {
			if ready-1 < minReady || len(in.Unproven) > 0 {
				continue
			}
			ready--
		}
		p.Stop = append(p.Stop, r.Name)
	}

	// Start missing replicas, within the surge while old ones remain.
	running := len(reps) - len(p.Stop)
	limit := p.Desired + spec.Rollout.MaxSurge
	for _, s := range missing {
		if running >= limit {
			break
		}
		p.Start = append(p.Start, s)
		running++
	}

	// What the status reports: every version of the spec, and old versions
	// still running (desired 0).
	listed := map[string]bool{}
	for _, v := range spec.Versions {
		desired := 0
		if v.Weight > 0 {
			desired = spec.Replicas
			p.Ready += min(readyOf[v.Version], desired)
		}
		p.Versions = append(p.Versions, VersionStatus{Version: v.Version, Ready: readyOf[v.Version], Desired: desired})
		listed[v.Version] = true
	}
	for _, r := range old {
		if !listed[r.Version] {
			listed[r.Version] = true
			p.Versions = append(p.Versions, VersionStatus{Version: r.Version, Ready: readyOf[r.Version]})
		}
	}
	return p
}

// checkDeadline records a current replica that has not been ready for
// longer than readyTimeout: a failed rollout if its version is on trial.
func (p *plan) checkDeadline(in planInput, r replicaView) {
	timeout := time.Duration(in.Spec.Rollout.ReadyTimeout)
	if r.NotReadySince.IsZero() || timeout <= 0 || in.Now.Sub(r.NotReadySince) < timeout {
		return
	}
	msg := fmt.Sprintf("replica %s (version %s) not ready after %s", r.Name, r.Version, timeout)
	if r.Reason != "" {
		msg += ": " + r.Reason
	}
	if in.Trial[r.Version] {
		if p.Failed == "" {
			p.Failed = msg
		}
	} else if p.Stuck == "" {
		p.Stuck = msg
	}
}
