package control

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/supervisor"
)

// The reconciler's loop with fake processes, probes and metrics: what it
// starts and stops, the status and events it writes, the rollbacks it
// makes. The real-process test (reconcile_e2e_test.go) runs the same with
// node processes.

type fakeProc struct {
	mu    sync.Mutex
	name  string
	st    supervisor.Status
	stops int
}

func (p *fakeProc) Status() supervisor.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

func (p *fakeProc) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st.State = supervisor.Stopped
	p.stops++
}

// fakeWorld stands in for processes and nodes.
type fakeWorld struct {
	mu       sync.Mutex
	procs    []*fakeProc
	adopted  []int
	notReady map[string]bool    // version → its replicas never get ready
	errRate  map[string]float64 // version → share of 5xx answers
	served   map[string]float64 // replica → requests so far
}

func (w *fakeWorld) running() map[string]*fakeProc {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]*fakeProc{}
	for _, p := range w.procs {
		if p.Status().State == supervisor.Running {
			out[p.name] = p
		}
	}
	return out
}

func (w *fakeWorld) set(f func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f()
}

func newFakeReconciler(t *testing.T, svc *Service, w *fakeWorld) *Reconciler {
	t.Helper()
	r, err := NewReconciler(svc, ReconcilerOptions{Binary: "/bin/false", Site: t.TempDir(),
		ProbeInterval: 5 * time.Millisecond, ScrapeInterval: 5 * time.Millisecond, Resync: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := func(spec supervisor.Spec, pid int) (process, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		// Every fake runs as this test process: alive, so it can be adopted.
		p := &fakeProc{name: spec.Name, st: supervisor.Status{Name: spec.Name, PID: pid, State: supervisor.Running, StartedAt: time.Now()}}
		w.procs = append(w.procs, p)
		return p, nil
	}
	r.launch = func(spec supervisor.Spec) (process, error) { return start(spec, os.Getpid()) }
	r.adoptPID = func(spec supervisor.Spec, pid int) (process, error) {
		w.set(func() { w.adopted = append(w.adopted, pid) })
		return start(spec, pid)
	}
	r.identify = func(context.Context, replicaRecord) bool { return true }
	r.probe = func(_ context.Context, rep *replica) (bool, string) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.notReady[rep.Version] {
			return false, "model " + rep.Model + ":" + rep.Version + " is not ready: checksum mismatch"
		}
		return true, ""
	}
	r.scrape = func(_ context.Context, rep *replica) (metricSample, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.served[rep.Name] += 10
		n := w.served[rep.Name]
		return metricSample{At: time.Now(), Total: n, Errors: n * w.errRate[rep.Version]}, nil
	}
	return r
}

func runReconciler(t *testing.T, r *Reconciler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually polls cond until it holds, failing the test at the deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func rolledOut(t *testing.T, svc *Service, name string, revision int64) func() bool {
	return func() bool {
		d, err := svc.Get(context.Background(), name)
		return err == nil && d.Metadata.Revision == revision && d.Done() && d.Status.LastGoodRevision == revision
	}
}

func hasEvent(t *testing.T, svc *Service, name, reason, text string) bool {
	t.Helper()
	evs, err := svc.Events(context.Background(), name, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Reason == reason && strings.Contains(e.Message, text) {
			return true
		}
	}
	return false
}

const fakeDoc = `apiVersion: bulwark.dev/v1
kind: Deployment
metadata: {name: iris}
spec:
  model: iris
  versions: [{version: "1"}]
  replicas: 3
  zones: [a, b]
  rollout: {maxSurge: 1, readyTimeout: 300ms, observe: 50ms, maxErrorRate: 0.05}
`

func TestReconcilerRollsOutAndBack(t *testing.T) {
	svc, _, _ := newTestService(t)
	w := &fakeWorld{notReady: map[string]bool{}, errRate: map[string]float64{}, served: map[string]float64{}}
	runReconciler(t, newFakeReconciler(t, svc, w))
	ctx := context.Background()

	mustApply(t, svc, fakeDoc)
	eventually(t, "revision 1 available", rolledOut(t, svc, "iris", 1))
	if n := len(w.running()); n != 3 {
		t.Fatalf("%d replicas run, want 3", n)
	}
	eventually(t, "3 replicas routed", func() bool {
		rt := svc.Routing().Current()
		return len(rt.Versions["iris"]) == 1 && len(rt.Versions["iris"][0].Replicas) == 3
	})

	// A crash-looping replica is reported, in an event and a condition,
	// until it serves again.
	var looping *fakeProc
	for _, p := range w.running() {
		looping = p
		break
	}
	looping.mu.Lock()
	looping.st.State, looping.st.LastExit, looping.st.Restarts = supervisor.CrashLoop, "exit status 1", 5
	looping.mu.Unlock()
	eventually(t, "CrashLoop reported", func() bool {
		d, _ := svc.Get(ctx, "iris")
		return hasEvent(t, svc, "iris", "CrashLoop", looping.name+" keeps exiting (last exit: exit status 1") &&
			slices.ContainsFunc(d.Status.Conditions, func(c Condition) bool { return c.Type == "ReplicaFailure" && c.Reason == "CrashLoop" })
	})
	looping.mu.Lock()
	looping.st.State = supervisor.Running
	looping.mu.Unlock()
	eventually(t, "CrashLoop cleared", func() bool {
		d, _ := svc.Get(ctx, "iris")
		return d.Done() && !slices.ContainsFunc(d.Status.Conditions, func(c Condition) bool { return c.Type == "ReplicaFailure" })
	})
	if !hasEvent(t, svc, "iris", "ReplicaRestarted", looping.name+" restarted (last exit: exit status 1)") {
		t.Fatal("no ReplicaRestarted event")
	}

	// A new version rolls out and becomes the last good revision.
	mustApply(t, svc, strings.Replace(fakeDoc, `version: "1"`, `version: "2"`, 1))
	eventually(t, "revision 2 available", rolledOut(t, svc, "iris", 2))
	for name := range w.running() {
		if !strings.HasPrefix(name, "iris-v2-") {
			t.Fatalf("%s still runs after the rollout", name)
		}
	}
	if !hasEvent(t, svc, "iris", "RolloutStarted", "revision 2") || !hasEvent(t, svc, "iris", "RolloutComplete", "revision 2") {
		t.Fatal("no rollout events")
	}

	// A version that never gets ready is rolled back: revision 4 is
	// revision 2 again, and version 2 never stopped serving.
	w.set(func() { w.notReady["3"] = true })
	mustApply(t, svc, strings.Replace(fakeDoc, `version: "1"`, `version: "3"`, 1))
	eventually(t, "rollback to revision 4", rolledOut(t, svc, "iris", 4))
	if !hasEvent(t, svc, "iris", "RolledBack", "revision 3 failed: replica iris-v3-1 (version 3) not ready after 300ms: model iris:3 is not ready: checksum mismatch") {
		t.Fatal("no RolledBack event with the reason")
	}
	d, _ := svc.Get(ctx, "iris")
	if d.Spec.Versions[0].Version != "2" {
		t.Fatalf("after the rollback: %+v", d.Spec.Versions)
	}
	for _, p := range w.procs {
		if strings.HasPrefix(p.name, "iris-v2-") && p.stops > 0 {
			t.Fatalf("%s was stopped during the failed rollout", p.name)
		}
	}

	// A version that answers with errors is rolled back too.
	w.set(func() { w.errRate["1"] = 0.5 })
	mustApply(t, svc, fakeDoc)
	eventually(t, "rollback to revision 6", rolledOut(t, svc, "iris", 6))
	if !hasEvent(t, svc, "iris", "RolledBack", "revision 5 failed: error rate 50.0%") {
		t.Fatal("no RolledBack event for the error rate")
	}

	// Deleting the deployment stops its replicas and empties the routing.
	if err := svc.Delete(ctx, "iris", 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replicas stopped", func() bool { return len(w.running()) == 0 })
	eventually(t, "routing emptied", func() bool { return len(svc.Routing().Current().Versions) == 0 })
}

func TestReconcilerAdoptsRecordedReplicas(t *testing.T) {
	svc, _, _ := newTestService(t)
	w := &fakeWorld{notReady: map[string]bool{}, errRate: map[string]float64{}, served: map[string]float64{}}
	stop := runReconciler(t, newFakeReconciler(t, svc, w))
	mustApply(t, svc, fakeDoc)
	eventually(t, "revision 1 available", rolledOut(t, svc, "iris", 1))
	stop()
	if n := len(w.running()); n != 3 {
		t.Fatalf("%d replicas run after the reconciler stopped, want 3 (they outlive it)", n)
	}
	w2 := &fakeWorld{notReady: map[string]bool{}, errRate: map[string]float64{}, served: map[string]float64{}}
	runReconciler(t, newFakeReconciler(t, svc, w2))
	eventually(t, "adoption", func() bool { return len(w2.running()) == 3 })
	w2.mu.Lock()
	adopted := len(w2.adopted)
	w2.mu.Unlock()
	if adopted != 3 || !hasEvent(t, svc, "iris", "Adopted", "adopted 3 running replica(s)") {
		t.Fatalf("adopted %d, want 3", adopted)
	}
	eventually(t, "adopted replicas listed", func() bool {
		infos := svc.Routing().Replicas()
		for _, in := range infos {
			if !in.Adopted || in.PID != os.Getpid() || !in.Ready {
				return false
			}
		}
		return len(infos) == 3
	})
	eventually(t, "still available", rolledOut(t, svc, "iris", 1))
}
