package control

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/state"
)

func TestApplyCreatesRevisionsOnlyOnChange(t *testing.T) {
	svc, _, _ := newTestService(t)
	ctx := context.Background()
	if r := mustApply(t, svc, irisDoc); r.Result != Created || r.Revision != 1 || r.Deployment.Metadata.ResourceVersion != 1 {
		t.Fatalf("first apply: %+v", r)
	}
	gen := svc.Generation()
	r := mustApply(t, svc, irisDoc)
	if r.Result != Unchanged || r.Revision != 1 || r.Deployment.Metadata.ResourceVersion != 1 || svc.Generation() != gen {
		t.Fatalf("identical apply: %+v, generation %d → %d", r, gen, svc.Generation())
	}
	// Spelling a default out is the same spec.
	if r := mustApply(t, svc, edit(t, irisDoc, "revisionHistoryLimit: 10", "")); r.Result != Unchanged {
		t.Fatalf("apply without a defaulted field: %+v", r)
	}
	r = mustApply(t, svc, edit(t, irisDoc, "replicas: 3", "replicas: 4"))
	if r.Result != Configured || r.Revision != 2 || r.Deployment.Spec.Replicas != 4 || svc.Generation() != gen+1 {
		t.Fatalf("changed apply: %+v", r)
	}
	revs, err := svc.Revisions(ctx, "iris")
	if err != nil || len(revs) != 2 || revs[0].Spec.Replicas != 3 || !revs[1].Current || revs[1].Spec.Replicas != 4 {
		t.Fatalf("revisions %+v %v", revs, err)
	}
	evs, err := svc.Events(ctx, "iris", 0)
	if err != nil || len(evs) != 2 || evs[0].Reason != "Created" || evs[1].Reason != "Applied" || !strings.Contains(evs[1].Message, "changed: replicas") {
		t.Fatalf("events %+v %v", evs, err)
	}
	d, err := svc.Get(ctx, "iris")
	if err != nil || d.Status.Phase != PhasePending || d.Status.DesiredReplicas != 6 || d.Metadata.CreationTimestamp.IsZero() {
		t.Fatalf("get %+v %v", d, err)
	}
}

func TestRefusedApplyChangesNothing(t *testing.T) {
	svc, _, _ := newTestService(t)
	ctx := context.Background()
	mustApply(t, svc, irisDoc)
	before := snapshot(t, svc)
	cases := []struct{ name, doc, want string }{
		{"invalid YAML", "spec: [", "yaml: line"},
		{"unknown field", edit(t, irisDoc, "replicas: 3", "replicas: 4\n  replica: 3"), "line 11: spec.replica: unknown field"},
		{"unknown model", edit(t, irisDoc, "model: iris", "model: bert"), `line 6: spec.model: model "bert" is not in the model store`},
		{"unknown version", edit(t, irisDoc, `- {version: "2", weight: 10}`, `- {version: "9", weight: 10}`), `line 9: spec.versions[1].version: model iris has no version "9" (it has 1, 2, 3)`},
		{"replicas below 1", edit(t, irisDoc, "replicas: 3", "replicas: 0"), "line 10: spec.replicas: must be at least 1, got 0"},
		{"weights not 100", edit(t, irisDoc, `- {version: "2", weight: 10}`, `- {version: "2", weight: 5}`), "line 7: spec.versions: weights must sum to 100, got 95"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := Parse([]byte(c.doc))
			if err == nil {
				_, err = svc.Apply(ctx, d, 0)
			}
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v\nwant ErrInvalid containing %q", err, c.want)
			}
			if after := snapshot(t, svc); after != before {
				t.Fatalf("state changed:\n%s\n%s", before, after)
			}
		})
	}
}

func TestStaleResourceVersionConflicts(t *testing.T) {
	svc, _, _ := newTestService(t)
	ctx := context.Background()
	mustApply(t, svc, irisDoc)
	mustApply(t, svc, edit(t, irisDoc, "replicas: 3", "replicas: 4")) // resourceVersion 2
	before := snapshot(t, svc)
	stale := mustParse(t, edit(t, edit(t, irisDoc, "name: iris", "name: iris\n  resourceVersion: 1"), "replicas: 3", "replicas: 5"))
	if _, err := svc.Apply(ctx, stale, 1); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "resourceVersion 1 is stale (now 2)") {
		t.Fatalf("stale apply: %v", err)
	}
	if _, err := svc.DryRun(ctx, stale, 1); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale dry run: %v", err)
	}
	if snapshot(t, svc) != before {
		t.Fatal("a stale apply changed the state")
	}
	if r, err := svc.Apply(ctx, stale, 2); err != nil || r.Revision != 3 || r.Deployment.Metadata.ResourceVersion != 3 {
		t.Fatalf("current apply: %+v %v", r, err)
	}
	if _, err := svc.Apply(ctx, mustParse(t, strings.Replace(irisDoc, "name: iris", "name: new", 1)), 5); !errors.Is(err, ErrConflict) {
		t.Fatalf("pinned create: %v", err)
	}
}

func TestConcurrentAppliesWithOneResourceVersionOneWins(t *testing.T) {
	svc, _, _ := newTestService(t)
	mustApply(t, svc, irisDoc)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := mustParse(t, edit(t, irisDoc, "replicas: 3", fmt.Sprintf("replicas: %d", 10+i)))
			_, errs[i] = svc.Apply(context.Background(), d, 1)
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrConflict):
			t.Fatalf("unexpected error %v", err)
		}
	}
	revs, _ := svc.Revisions(context.Background(), "iris")
	if won != 1 || len(revs) != 2 {
		t.Fatalf("%d applies won, %d revisions; want 1 and 2", won, len(revs))
	}
	// Unpinned applies all succeed: each is retried on what the others left.
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := mustParse(t, edit(t, irisDoc, "replicas: 3", fmt.Sprintf("replicas: %d", 20+i)))
			_, errs[i] = svc.Apply(context.Background(), d, 0)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("unpinned concurrent apply: %v", err)
		}
	}
}

func TestRollback(t *testing.T) {
	svc, _, cat := newTestService(t)
	ctx := context.Background()
	mustApply(t, svc, irisDoc)                                        // 1: replicas 3
	mustApply(t, svc, edit(t, irisDoc, "replicas: 3", "replicas: 4")) // 2
	mustApply(t, svc, edit(t, irisDoc, "replicas: 3", "replicas: 5")) // 3
	gen := svc.Generation()
	r, err := svc.Rollback(ctx, "iris", 0)
	if err != nil || r.Result != RolledBack || r.Revision != 4 || r.Deployment.Spec.Replicas != 4 || svc.Generation() != gen+1 {
		t.Fatalf("rollback to previous: %+v %v", r, err)
	}
	r, err = svc.Rollback(ctx, "iris", 1)
	if err != nil || r.Revision != 5 || r.Deployment.Spec.Replicas != 3 {
		t.Fatalf("rollback to 1: %+v %v", r, err)
	}
	revs, _ := svc.Revisions(ctx, "iris")
	if len(revs) != 5 || revs[0].Spec.Replicas != 3 || !revs[4].Current {
		t.Fatalf("history after rollbacks: %+v", revs)
	}
	if r, err := svc.Rollback(ctx, "iris", 1); err != nil || r.Result != Unchanged || r.Revision != 5 {
		t.Fatalf("rollback to the current spec: %+v %v", r, err)
	}
	if _, err := svc.Rollback(ctx, "iris", 42); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "kept: 1, 2, 3, 4, 5") {
		t.Fatalf("rollback to a missing revision: %v", err)
	}
	if _, err := svc.Rollback(ctx, "nope", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rollback of a missing deployment: %v", err)
	}
	evs, _ := svc.Events(ctx, "iris", 2)
	if len(evs) != 2 || evs[1].Reason != "RolledBack" || !strings.Contains(evs[1].Message, "rolled back to revision 1, as revision 5") {
		t.Fatalf("events %+v", evs)
	}
	// A revision whose model version has left the store is refused.
	mustApply(t, svc, edit(t, irisDoc, `- {version: "2", weight: 10}`, `- {version: "3", weight: 10}`)) // 6
	cat.models["iris"] = []string{"1", "3"}
	before := snapshot(t, svc)
	if _, err := svc.Rollback(ctx, "iris", 5); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `no version "2"`) {
		t.Fatalf("rollback to a revision with a deleted version: %v", err)
	}
	if snapshot(t, svc) != before {
		t.Fatal("refused rollback changed the state")
	}
}

func TestRollbackOfFirstRevision(t *testing.T) {
	svc, _, _ := newTestService(t)
	mustApply(t, svc, irisDoc)
	if _, err := svc.Rollback(context.Background(), "iris", 0); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no revision before 1") {
		t.Fatalf("rollback of revision 1: %v", err)
	}
}

func TestRevisionHistoryLimit(t *testing.T) {
	svc, _, _ := newTestService(t)
	ctx := context.Background()
	doc := edit(t, irisDoc, "revisionHistoryLimit: 10", "revisionHistoryLimit: 2")
	for i := 1; i <= 5; i++ {
		mustApply(t, svc, edit(t, doc, "replicas: 3", fmt.Sprintf("replicas: %d", i)))
	}
	revs, _ := svc.Revisions(ctx, "iris")
	if len(revs) != 3 || revs[0].Revision != 3 || revs[2].Revision != 5 || !revs[2].Current {
		t.Fatalf("kept %+v, want revisions 3, 4, 5", revs)
	}
	if _, err := svc.Rollback(ctx, "iris", 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rollback to a pruned revision: %v", err)
	}
	// The limit can be 0: only the current revision is kept.
	mustApply(t, svc, edit(t, doc, "revisionHistoryLimit: 2", "revisionHistoryLimit: 0"))
	if revs, _ := svc.Revisions(ctx, "iris"); len(revs) != 1 || revs[0].Revision != 6 {
		t.Fatalf("kept %+v with limit 0", revs)
	}
}

func TestSetStatusWritesNoRevision(t *testing.T) {
	svc, _, _ := newTestService(t)
	ctx := context.Background()
	mustApply(t, svc, irisDoc)
	gen := svc.Generation()
	d, err := svc.SetStatus(ctx, "iris", Status{Phase: PhaseAvailable, ObservedRevision: 1, LastGoodRevision: 1, ReadyReplicas: 6, DesiredReplicas: 6,
		Versions: []VersionStatus{{"1", 3, 3}, {"2", 3, 3}}, Conditions: []Condition{{Type: "Available", Status: "True"}}})
	if err != nil || d.Metadata.ResourceVersion != 2 || d.Metadata.Revision != 1 || !d.Done() {
		t.Fatalf("set status: %+v %v", d, err)
	}
	if revs, _ := svc.Revisions(ctx, "iris"); len(revs) != 1 || svc.Generation() != gen {
		t.Fatalf("status write made %d revisions, generation %d → %d", len(revs), gen, svc.Generation())
	}
	// The status is not part of the spec: the same document is unchanged,
	// and a new spec keeps the status until the reconciler writes it.
	if r := mustApply(t, svc, irisDoc); r.Result != Unchanged {
		t.Fatalf("apply after status: %+v", r)
	}
	r := mustApply(t, svc, edit(t, irisDoc, "replicas: 3", "replicas: 1"))
	if r.Deployment.Status.ObservedRevision != 1 || r.Deployment.Done() {
		t.Fatalf("status after a spec change: %+v", r.Deployment.Status)
	}
	if _, err := svc.SetStatus(ctx, "nope", Status{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("status of a missing deployment: %v", err)
	}
	if err := svc.AppendEvent(ctx, "iris", Event{Type: EventWarning, Reason: "CrashLoop", Message: "replica 2 exited 3 times"}); err != nil {
		t.Fatal(err)
	}
	if evs, _ := svc.Events(ctx, "iris", 1); len(evs) != 1 || evs[0].Reason != "CrashLoop" || evs[0].Time.IsZero() {
		t.Fatalf("appended event: %+v", evs)
	}
}

func TestDelete(t *testing.T) {
	svc, _, _ := newTestService(t)
	ctx := context.Background()
	mustApply(t, svc, irisDoc)
	mustApply(t, svc, edit(t, irisDoc, "replicas: 3", "replicas: 4"))
	if err := svc.Delete(ctx, "iris", 1); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale delete: %v", err)
	}
	gen := svc.Generation()
	if err := svc.Delete(ctx, "iris", 2); err != nil || svc.Generation() != gen+1 {
		t.Fatalf("delete: %v", err)
	}
	if _, err := svc.Get(ctx, "iris"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := svc.Delete(ctx, "iris", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	// Created again, it starts over at revision 1.
	if r := mustApply(t, svc, irisDoc); r.Result != Created || r.Revision != 1 {
		t.Fatalf("re-create: %+v", r)
	}
}

func TestChangesWaitsForDesiredStateChanges(t *testing.T) {
	svc, _, _ := newTestService(t)
	ctx := context.Background()
	gen, err := svc.Changes(ctx, 0)
	if err != nil || gen != svc.Generation() {
		t.Fatalf("changes since 0: %d %v", gen, err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if got, err := svc.Changes(short, gen); got != gen || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("changes with nothing changing: %d %v", got, err)
	}
	got := make(chan int64, 1)
	go func() {
		g, _ := svc.Changes(ctx, gen)
		got <- g
	}()
	time.Sleep(10 * time.Millisecond)
	mustApply(t, svc, irisDoc)
	select {
	case g := <-got:
		if g != gen+1 {
			t.Fatalf("woke with generation %d, want %d", g, gen+1)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watcher not woken by an apply")
	}
	// A generation from the future (a restored state) returns at once.
	if g, err := svc.Changes(ctx, gen+100); err != nil || g != gen+1 {
		t.Fatalf("changes since a future generation: %d %v", g, err)
	}
}

func TestBoltStateSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "controller.db")
	ctx := context.Background()
	st, err := state.OpenBolt(path, state.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := NewService(ctx, st, newCatalog(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, svc, irisDoc)
	mustApply(t, svc, edit(t, irisDoc, "replicas: 3", "replicas: 2"))
	gen := svc.Generation()
	st.Close()

	st, err = state.OpenBolt(path, state.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err = NewService(ctx, st, newCatalog(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Generation() <= gen {
		t.Fatalf("generation after restart %d, before %d: a restart must read as a change", svc.Generation(), gen)
	}
	if r := mustApply(t, svc, edit(t, irisDoc, "replicas: 3", "replicas: 2")); r.Result != Unchanged || r.Revision != 2 {
		t.Fatalf("apply after restart: %+v", r)
	}
	if r, err := svc.Rollback(ctx, "iris", 0); err != nil || r.Revision != 3 || r.Deployment.Spec.Replicas != 3 {
		t.Fatalf("rollback after restart: %+v %v", r, err)
	}
}
