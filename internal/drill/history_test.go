package drill

import (
	"strings"
	"testing"
	"time"
)

func historyOf(revs map[string]map[int64]time.Time, models map[string]time.Time) *history {
	h := &history{Deployments: map[string]deploymentHistory{}, Models: models}
	for name, rs := range revs {
		dh := deploymentHistory{Revisions: map[int64]revision{}}
		for n, at := range rs {
			dh.Revisions[n] = revision{Created: at, Spec: `{"model":"iris","versions":[{"version":"1","weight":100}]}`}
			dh.Current = max(dh.Current, n)
		}
		h.Deployments[name] = dh
	}
	return h
}

// What the lost site had and the backup did not is listed, oldest first;
// what the backup had must all be back, and nothing else may appear.
func TestLostChangesAndVerifyState(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	snap := t0.Add(10 * time.Second)
	before := historyOf(map[string]map[int64]time.Time{"iris": {1: t0, 2: t0.Add(5 * time.Second), 3: t0.Add(20 * time.Second), 4: t0.Add(15 * time.Second)}},
		map[string]time.Time{"iris:1": t0, "iris:2": t0.Add(12 * time.Second)})
	restored := historyOf(map[string]map[int64]time.Time{"iris": {1: t0, 2: t0.Add(5 * time.Second)}},
		map[string]time.Time{"iris:1": t0})

	lost := lostChanges(before, restored)
	var what []string
	for _, l := range lost {
		what = append(what, l.Kind+" "+l.What)
	}
	want := []string{"model-version model version iris:2", "revision deployment iris revision 4 (iris:1)", "revision deployment iris revision 3 (iris:1)"}
	if strings.Join(what, "|") != strings.Join(want, "|") {
		t.Errorf("lost:\n%s\nwant:\n%s", strings.Join(what, "\n"), strings.Join(want, "\n"))
	}

	r := &Runner{rep: &Report{}}
	r.verifyState(before, restored, snap)
	if v := r.rep.Verification; !v.DeploymentsMatch || len(v.Differences) != 0 || len(v.Deployments) != 1 {
		t.Errorf("a faithful restore: %+v", v)
	}

	// A revision the backup held missing, one changed, and a deployment
	// the lost site never had: each named.
	bad := historyOf(map[string]map[int64]time.Time{"iris": {1: t0}, "ghost": {1: t0}}, map[string]time.Time{"iris:1": t0})
	dh := bad.Deployments["iris"]
	dh.Revisions[1] = revision{Created: t0, Spec: `{"model":"iris","versions":[{"version":"9","weight":100}]}`}
	r = &Runner{rep: &Report{}}
	r.verifyState(before, bad, snap)
	v := r.rep.Verification
	diffs := strings.Join(v.Differences, "\n")
	for _, w := range []string{"revision 2 is missing", "revision 1 differs", "deployment ghost was not on the lost site"} {
		if !strings.Contains(diffs, w) {
			t.Errorf("differences lack %q:\n%s", w, diffs)
		}
	}
	if v.DeploymentsMatch {
		t.Error("a wrong restore matched")
	}
}
