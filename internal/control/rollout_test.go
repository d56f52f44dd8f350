package control

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func rolloutSpec(replicas, surge int, versions ...VersionWeight) *Spec {
	return &Spec{Model: "iris", Versions: versions, Replicas: replicas,
		Rollout: Rollout{MaxSurge: surge, ReadyTimeout: Duration(10 * time.Second), Observe: Duration(time.Second), MaxErrorRate: 0.05}}
}

func vw(v string, w int) VersionWeight { return VersionWeight{Version: v, Weight: w} }

// fakeReplicas is a deployment's replicas as the rollout logic sees them;
// the simulation starts them, makes them ready and stops them.
type fakeReplicas map[string]*replicaView

func (f fakeReplicas) add(version string, index int, ready bool, since time.Time) {
	name := fmt.Sprintf("iris-v%s-%d", version, index+1)
	r := &replicaView{Name: name, Version: version, Index: index, Ready: ready}
	if !ready {
		r.NotReadySince = since
	}
	f[name] = r
}

func (f fakeReplicas) views() []replicaView {
	var out []replicaView
	for _, r := range f {
		out = append(out, *r)
	}
	return out
}

func (f fakeReplicas) ready() int {
	n := 0
	for _, r := range f {
		if r.Ready {
			n++
		}
	}
	return n
}

func (f fakeReplicas) apply(p plan, now time.Time) {
	for _, n := range p.Stop {
		delete(f, n)
	}
	for _, s := range p.Start {
		f.add(s.Version, s.Index, false, now)
	}
}

func TestPlanCreatesEveryReplicaAtOnce(t *testing.T) {
	spec := rolloutSpec(3, 1, vw("1", 90), vw("2", 10))
	p := planRollout(planInput{Now: t0, Spec: spec})
	if len(p.Start) != 6 || len(p.Stop) != 0 || p.Converged || p.Desired != 6 {
		t.Fatalf("plan %+v", p)
	}
	f := fakeReplicas{}
	f.apply(p, t0)
	for _, r := range f {
		r.Ready = true
	}
	p = planRollout(planInput{Now: t0, Spec: spec, Replicas: f.views()})
	if !p.Converged || len(p.Start)+len(p.Stop) != 0 || p.Ready != 6 {
		t.Fatalf("converged plan %+v", p)
	}
	// A version with weight 0 gets no replicas.
	p = planRollout(planInput{Now: t0, Spec: rolloutSpec(2, 1, vw("1", 100), vw("2", 0))})
	if len(p.Start) != 2 || p.Start[0].Version != "1" || p.Desired != 2 {
		t.Fatalf("weight 0: %+v", p)
	}
}

// simulate runs a rolling update from version 1 to 2 of n replicas,
// making one started replica ready per step, and checks the invariants at
// every step: never more than n+surge replicas, never fewer than n-1 ready
// (n with a surge), old ones stopped only after new ones are ready.
func simulate(t *testing.T, n, surge int) int {
	t.Helper()
	f := fakeReplicas{}
	for i := range n {
		f.add("1", i, true, t0)
	}
	spec := rolloutSpec(n, surge, vw("2", 100))
	minReady := n
	if surge == 0 {
		minReady = n - 1
	}
	now := t0
	for step := 0; ; step++ {
		if step > 10*n {
			t.Fatalf("no convergence after %d steps: %v", step, f.views())
		}
		p := planRollout(planInput{Now: now, Spec: spec, Trial: map[string]bool{"2": true}, Replicas: f.views()})
		if p.Failed != "" {
			t.Fatalf("failed: %s", p.Failed)
		}
		if p.Converged {
			return step
		}
		f.apply(p, now)
		if len(f) > n+surge {
			t.Fatalf("step %d: %d replicas run, above %d+%d", step, len(f), n, surge)
		}
		if f.ready() < minReady {
			t.Fatalf("step %d: %d ready, below %d", step, f.ready(), minReady)
		}
		// One not-ready replica becomes ready.
		var names []string
		for name, r := range f {
			if !r.Ready {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		if len(names) > 0 {
			f[names[0]].Ready, f[names[0]].NotReadySince = true, time.Time{}
		}
		now = now.Add(time.Second)
	}
}

func TestPlanRollingUpdateKeepsReplicasReady(t *testing.T) {
	for _, c := range []struct{ n, surge int }{{3, 1}, {3, 0}, {3, 2}, {1, 1}, {1, 0}, {5, 3}} {
		t.Run(fmt.Sprintf("replicas=%d,maxSurge=%d", c.n, c.surge), func(t *testing.T) { simulate(t, c.n, c.surge) })
	}
}

func TestPlanSurgeStartsNoMoreThanMaxSurge(t *testing.T) {
	f := fakeReplicas{}
	for i := range 3 {
		f.add("1", i, true, t0)
	}
	p := planRollout(planInput{Now: t0, Spec: rolloutSpec(3, 1, vw("2", 100)), Replicas: f.views()})
	if len(p.Start) != 1 || len(p.Stop) != 0 || p.Old != 3 {
		t.Fatalf("first step: %+v", p)
	}
	// maxSurge 0 replaces in place: stop one, start one.
	p = planRollout(planInput{Now: t0, Spec: rolloutSpec(3, 0, vw("2", 100)), Replicas: f.views()})
	if len(p.Start) != 1 || len(p.Stop) != 1 {
		t.Fatalf("in place: %+v", p)
	}
}

func TestPlanOldReplicasWaitForAnUnprovenVersion(t *testing.T) {
	f := fakeReplicas{}
	for i := range 3 {
		f.add("1", i, true, t0)
	}
	f.add("2", 0, true, t0) // the surge replica of the new version, ready
	in := planInput{Now: t0, Spec: rolloutSpec(3, 1, vw("2", 100)), Trial: map[string]bool{"2": true},
		Unproven: map[string]bool{"2": true}, Replicas: f.views()}
	if p := planRollout(in); len(p.Stop) != 0 || len(p.Start) != 0 {
		t.Fatalf("with version 2 unproven: %+v", p)
	}
	in.Unproven = nil
	if p := planRollout(in); len(p.Stop) != 1 || !strings.HasPrefix(p.Stop[0], "iris-v1-") {
		t.Fatalf("with version 2 proven: %+v", p)
	}
}

func TestPlanStopsOldReplicasThatAreNotReadyFirst(t *testing.T) {
	f := fakeReplicas{}
	f.add("2", 0, true, t0)
	f.add("2", 1, true, t0)
	f.add("2", 2, true, t0)
	f.add("3", 0, false, t0) // a failed new version, being rolled back
	p := planRollout(planInput{Now: t0, Spec: rolloutSpec(3, 1, vw("2", 100)), Replicas: f.views()})
	if !slices.Equal(p.Stop, []string{"iris-v3-1"}) || len(p.Start) != 0 || p.Converged {
		t.Fatalf("plan %+v", p)
	}
	// Scaling down stops the highest slots, keeping enough ready.
	f = fakeReplicas{}
	for i := range 4 {
		f.add("2", i, true, t0)
	}
	p = planRollout(planInput{Now: t0, Spec: rolloutSpec(2, 1, vw("2", 100)), Replicas: f.views()})
	if !slices.Equal(p.Stop, []string{"iris-v2-4", "iris-v2-3"}) {
		t.Fatalf("scale down: %+v", p)
	}
}

func TestPlanReadinessDeadline(t *testing.T) {
	spec := rolloutSpec(3, 1, vw("3", 100))
	f := fakeReplicas{}
	for i := range 3 {
		f.add("2", i, true, t0)
	}
	f.add("3", 0, false, t0)
	f["iris-v3-1"].Reason = "checksum mismatch"
	trial := map[string]bool{"3": true}
	if p := planRollout(planInput{Now: t0.Add(9 * time.Second), Spec: spec, Trial: trial, Replicas: f.views()}); p.Failed != "" {
		t.Fatalf("failed before the deadline: %s", p.Failed)
	}
	p := planRollout(planInput{Now: t0.Add(11 * time.Second), Spec: spec, Trial: trial, Replicas: f.views()})
	if !strings.Contains(p.Failed, "iris-v3-1 (version 3) not ready after 10s: checksum mismatch") {
		t.Fatalf("failed: %q", p.Failed)
	}
	// The old replicas stay while the new one is not ready.
	if len(p.Stop) != 0 {
		t.Fatalf("stopped %v while the new version is not ready", p.Stop)
	}
	// Not on trial (nothing to roll back to): stuck, not failed.
	p = planRollout(planInput{Now: t0.Add(11 * time.Second), Spec: spec, Replicas: f.views()})
	if p.Failed != "" || !strings.Contains(p.Stuck, "iris-v3-1") {
		t.Fatalf("without trial: failed %q stuck %q", p.Failed, p.Stuck)
	}
}

func TestTrialVersions(t *testing.T) {
	good := rolloutSpec(3, 1, vw("1", 100))
	if got := trialVersions(rolloutSpec(3, 1, vw("1", 90), vw("2", 10)), good); !got["2"] || got["1"] || len(got) != 1 {
		t.Fatalf("canary trial: %v", got)
	}
	if got := trialVersions(rolloutSpec(5, 1, vw("1", 100)), good); len(got) != 0 {
		t.Fatalf("scaling is no trial: %v", got)
	}
	if got := trialVersions(good, nil); got != nil {
		t.Fatalf("no good revision: %v", got)
	}
}

func TestPlanReplacesReplicasOfAnotherModel(t *testing.T) {
	f := fakeReplicas{}
	for i := range 2 {
		f.add("1", i, true, t0)
		f[fmt.Sprintf("iris-v1-%d", i+1)].Stale = true
	}
	p := planRollout(planInput{Now: t0, Spec: rolloutSpec(2, 1, vw("1", 100)), Replicas: f.views()})
	if p.Old != 2 || len(p.Start) != 1 || p.Converged {
		t.Fatalf("plan %+v", p)
	}
}
