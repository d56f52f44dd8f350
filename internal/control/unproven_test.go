package control

import (
	"testing"
	"time"
)

// A version on trial whose window fails the rollout's limits stays
// unproven, even with enough requests or a full observation window:
// otherwise a pass between the scrape and the verdict could stop an old
// replica for a version about to be rolled back.
func TestFailingTrialStaysUnproven(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	spec := &Spec{Rollout: Rollout{Observe: Duration(30 * time.Second), MaxErrorRate: 0.05}}
	r := &Reconciler{opt: ReconcilerOptions{MinRequests: 20}}
	trial := map[string]bool{"2": true}
	newRep := func(total, errors float64) *replica {
		rep := &replica{replicaRecord: replicaRecord{Name: "m-v2-1", Version: "2"}, ready: true}
		rep.samples = []metricSample{{At: now.Add(-40 * time.Second)}, {At: now, Total: total, Errors: errors}}
		return rep
	}
	for _, tc := range []struct {
		name          string
		total, errors float64
		readyFor      time.Duration
		wantUnproven  bool
	}{
		{"healthy, enough requests", 22, 0, time.Second, false},
		{"failing, enough requests", 22, 22, time.Second, true},
		{"failing, observed long enough", 22, 22, time.Minute, true},
		{"few requests, all good, observed long enough", 5, 0, time.Minute, false},
		// The gateway starved it of traffic by ejecting it: what it got
		// all failed, and that is enough once the window is over.
		{"few requests, failing, observed long enough", 5, 5, time.Minute, true},
		{"too few requests to judge, not observed long enough", 5, 5, time.Second, true},
	} {
		ds := &deployState{trialReady: map[string]time.Time{"2": now.Add(-tc.readyFor)}}
		got := r.unproven(spec, ds, []*replica{newRep(tc.total, tc.errors)}, trial, now)
		if got["2"] != tc.wantUnproven {
			t.Errorf("%s: unproven %v, want %v", tc.name, got["2"], tc.wantUnproven)
		}
	}
}

// The verdict on a version on trial waits for MinRequests while it is
// observed, and once the window is over judges whatever it served.
func TestTrialVerdictAfterTheWindowJudgesFewRequests(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	spec := &Spec{Rollout: Rollout{Observe: Duration(30 * time.Second), MaxErrorRate: 0.05}}
	r := &Reconciler{opt: ReconcilerOptions{MinRequests: 20}}
	trial := map[string]bool{"2": true}
	rep := &replica{replicaRecord: replicaRecord{Name: "m-v2-1", Version: "2"}, ready: true}
	rep.samples = []metricSample{{At: now.Add(-40 * time.Second)}, {At: now, Total: 5, Errors: 5}}
	early := &deployState{trialReady: map[string]time.Time{"2": now.Add(-time.Second)}}
	if v := r.trialVerdict(spec, early, []*replica{rep}, trial, now); v != "" {
		t.Errorf("5 failures in the first second: verdict %q, want none yet", v)
	}
	late := &deployState{trialReady: map[string]time.Time{"2": now.Add(-time.Minute)}}
	if v := r.trialVerdict(spec, late, []*replica{rep}, trial, now); v == "" {
		t.Error("5 of 5 failed over a whole window: no verdict")
	}
}
