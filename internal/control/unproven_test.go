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
		{"too few requests to judge, observed long enough", 5, 5, time.Minute, false},
		{"too few requests to judge, not observed long enough", 5, 5, time.Second, true},
	} {
		ds := &deployState{trialReady: map[string]time.Time{"2": now.Add(-tc.readyFor)}}
		got := r.unproven(spec, ds, []*replica{newRep(tc.total, tc.errors)}, trial, now)
		if got["2"] != tc.wantUnproven {
			t.Errorf("%s: unproven %v, want %v", tc.name, got["2"], tc.wantUnproven)
		}
	}
}
