package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMemoryConformance(t *testing.T) {
	testStore(t, func(t *testing.T) Store { return NewMemory() })
}

func TestBoltConformance(t *testing.T) {
	testStore(t, func(t *testing.T) Store { return openTestBolt(t, filepath.Join(t.TempDir(), "state.db")) })
}

func openTestBolt(t *testing.T, path string) *Bolt {
	t.Helper()
	b, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// restoreSnapshot opens a snapshot as a store of the same kind as s. A new
// Store implementation adds its case here.
func restoreSnapshot(t *testing.T, s Store, data []byte) Store {
	t.Helper()
	switch s.(type) {
	case *Memory:
		m, err := ReadMemory(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		return m
	case *Bolt:
		path := filepath.Join(t.TempDir(), "snapshot.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return openTestBolt(t, path)
	}
	t.Fatalf("no way to open a snapshot of a %T", s)
	return nil
}

// testStore is the contract of Store; every implementation runs it.
func testStore(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()
	apply := func(t *testing.T, s Store, c Change) *Record {
		t.Helper()
		r, err := s.Apply(ctx, c)
		if err != nil {
			t.Fatalf("apply %q expect %d: %v", c.Record.Name, c.Expect, err)
		}
		return r
	}
	create := func(t *testing.T, s Store, name, data string) *Record {
		t.Helper()
		return apply(t, s, Change{Record: Record{Name: name, Data: []byte(data)}})
	}
	wantErr := func(t *testing.T, err, target error) {
		t.Helper()
		if !errors.Is(err, target) {
			t.Fatalf("err = %v, want %v", err, target)
		}
	}

	t.Run("CRUD", func(t *testing.T) {
		s := open(t)
		_, err := s.Get(ctx, "web")
		wantErr(t, err, ErrNotFound)
		before := time.Now().Add(-time.Second)
		r := create(t, s, "web", "v1")
		if r.ResourceVersion != 1 || r.Updated.Before(before) || string(r.Data) != "v1" {
			t.Fatalf("created %+v", r)
		}
		r.Data[0] = 'X' // the caller owns what it gets back
		got, err := s.Get(ctx, "web")
		if err != nil || got.ResourceVersion != 1 || string(got.Data) != "v1" || !got.Updated.Equal(r.Updated) {
			t.Fatalf("get = %+v, %v", got, err)
		}
		r = apply(t, s, Change{Record: Record{Name: "web", Data: []byte("v2")}, Expect: 1})
		if r.ResourceVersion != 2 {
			t.Fatalf("update gave resource version %d", r.ResourceVersion)
		}
		create(t, s, "api", "a")
		create(t, s, "zoo", "z")
		list, err := s.List(ctx)
		if err != nil || len(list) != 3 || list[0].Name != "api" || list[1].Name != "web" || string(list[1].Data) != "v2" || list[2].Name != "zoo" {
			t.Fatalf("list = %v, %v", list, err)
		}
		if _, err := s.Apply(ctx, Change{}); err == nil {
			t.Fatal("apply with no name succeeded")
		}
	})

	t.Run("Conflicts", func(t *testing.T) {
		s := open(t)
		create(t, s, "web", "v1")
		apply(t, s, Change{Record: Record{Name: "web", Data: []byte("v2")}, Expect: 1})
		ev := []Event{{Type: "Normal", Reason: "Applied"}}
		_, err := s.Apply(ctx, Change{Record: Record{Name: "web", Data: []byte("v3")}, Expect: 1, Events: ev})
		wantErr(t, err, ErrConflict)
		if !strings.Contains(err.Error(), `deployment "web": resource version 1 is stale (current 2)`) {
			t.Fatalf("stale message: %v", err)
		}
		_, err = s.Apply(ctx, Change{Record: Record{Name: "web"}, Expect: 0, Events: ev})
		wantErr(t, err, ErrConflict)
		_, err = s.Apply(ctx, Change{Record: Record{Name: "ghost"}, Expect: 3})
		wantErr(t, err, ErrConflict)
		_, err = s.Get(ctx, "ghost")
		wantErr(t, err, ErrNotFound)
		got, _ := s.Get(ctx, "web")
		events, _ := s.Events(ctx, "web", 0)
		if got.ResourceVersion != 2 || string(got.Data) != "v2" || len(events) != 0 {
			t.Fatalf("a failed apply changed something: %+v, %d events", got, len(events))
		}
	})

	t.Run("Revisions", func(t *testing.T) {
		s := open(t)
		var rv int64
		for n := int64(1); n <= 5; n++ {
			r := apply(t, s, Change{Record: Record{Name: "web", Revision: n}, Expect: rv,
				Revision: &Revision{Number: n, Data: []byte(fmt.Sprint("spec ", n))}})
			rv = r.ResourceVersion
		}
		revs, err := s.Revisions(ctx, "web")
		if err != nil || len(revs) != 5 {
			t.Fatalf("revisions = %d, %v", len(revs), err)
		}
		for i, r := range revs {
			if r.Number != int64(i+1) || r.Name != "web" || string(r.Data) != fmt.Sprint("spec ", i+1) || r.Created.IsZero() {
				t.Fatalf("revision %d = %+v", i, r)
			}
		}
		if r, err := s.Revision(ctx, "web", 3); err != nil || string(r.Data) != "spec 3" {
			t.Fatalf("revision 3 = %+v, %v", r, err)
		}
		_, err = s.Revision(ctx, "web", 9)
		wantErr(t, err, ErrNotFound)
		_, err = s.Revisions(ctx, "ghost")
		wantErr(t, err, ErrNotFound)
		// Numbers only grow, and a record cannot point at nothing.
		if _, err := s.Apply(ctx, Change{Record: Record{Name: "web", Revision: 5}, Expect: rv, Revision: &Revision{Number: 5}}); err == nil {
			t.Fatal("a reused revision number was accepted")
		}
		if _, err := s.Apply(ctx, Change{Record: Record{Name: "web", Revision: 7}, Expect: rv}); err == nil {
			t.Fatal("a record pointing to a missing revision was accepted")
		}
		// Roll back to 2 while adding 6, keeping 2: 2 survives as the one
		// pointed to, 5 and 6 as the newest.
		apply(t, s, Change{Record: Record{Name: "web", Revision: 2}, Expect: rv, Revision: &Revision{Number: 6}, KeepRevisions: 2})
		revs, _ = s.Revisions(ctx, "web")
		if got := numbersOf(revs); got != "2 5 6" {
			t.Fatalf("after pruning: %s, want 2 5 6", got)
		}
	})

	t.Run("Events", func(t *testing.T) {
		s := open(t)
		r := apply(t, s, Change{Record: Record{Name: "web"}, Events: []Event{{Type: "Normal", Reason: "Applied", Message: "0"}}})
		for i := 1; i < 5; i++ {
			if err := s.AppendEvents(ctx, "web", Event{Type: "Warning", Reason: "CrashLoop", Message: strconv.Itoa(i)}); err != nil {
				t.Fatal(err)
			}
		}
		all, err := s.Events(ctx, "web", 0)
		if err != nil || messagesOf(all) != "0 1 2 3 4" || all[0].Time.IsZero() || all[1].Reason != "CrashLoop" {
			t.Fatalf("events = %v, %v", all, err)
		}
		if last, _ := s.Events(ctx, "web", 2); messagesOf(last) != "3 4" {
			t.Fatalf("newest 2 = %s", messagesOf(last))
		}
		if got, _ := s.Get(ctx, "web"); got.ResourceVersion != r.ResourceVersion {
			t.Fatal("AppendEvents changed the resource version")
		}
		wantErr(t, s.AppendEvents(ctx, "ghost", Event{Reason: "x"}), ErrNotFound)
		_, err = s.Events(ctx, "ghost", 0)
		wantErr(t, err, ErrNotFound)
		many := make([]Event, DefaultMaxEvents+5)
		for i := range many {
			many[i] = Event{Reason: "Tick", Message: strconv.Itoa(i)}
		}
		if err := s.AppendEvents(ctx, "web", many...); err != nil {
			t.Fatal(err)
		}
		all, _ = s.Events(ctx, "web", 0)
		if len(all) != DefaultMaxEvents || all[0].Message != "5" || all[len(all)-1].Message != strconv.Itoa(len(many)-1) {
			t.Fatalf("kept %d events from %q to %q", len(all), all[0].Message, all[len(all)-1].Message)
		}
	})

	t.Run("Meta", func(t *testing.T) {
		s := open(t)
		_, err := s.Meta(ctx, "replicas")
		wantErr(t, err, ErrNotFound)
		for _, v := range []string{"one", "two"} {
			if err := s.PutMeta(ctx, "replicas", []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		// A caller's key never collides with the store's own metadata.
		if err := s.PutMeta(ctx, "schema_version", []byte("not a number")); err != nil {
			t.Fatal(err)
		}
		if v, err := s.Meta(ctx, "replicas"); err != nil || string(v) != "two" {
			t.Fatalf("meta = %q, %v", v, err)
		}
		if v, _ := s.Meta(ctx, "schema_version"); string(v) != "not a number" {
			t.Fatalf("schema_version meta = %q", v)
		}
		if err := s.PutMeta(ctx, "", nil); err == nil {
			t.Fatal("empty meta key accepted")
		}
	})

	t.Run("DeleteCascades", func(t *testing.T) {
		s := open(t)
		apply(t, s, Change{Record: Record{Name: "web", Revision: 1}, Revision: &Revision{Number: 1}, Events: []Event{{Reason: "Applied"}}})
		wantErr(t, s.Delete(ctx, "web", 7), ErrConflict)
		wantErr(t, s.Delete(ctx, "ghost", 1), ErrNotFound)
		if err := s.Delete(ctx, "web", 1); err != nil {
			t.Fatal(err)
		}
		_, err := s.Get(ctx, "web")
		wantErr(t, err, ErrNotFound)
		_, err = s.Revision(ctx, "web", 1)
		wantErr(t, err, ErrNotFound)
		// Recreated, it starts over: nothing of the old one shows through.
		r := apply(t, s, Change{Record: Record{Name: "web", Revision: 1}, Revision: &Revision{Number: 1, Data: []byte("new")}})
		revs, _ := s.Revisions(ctx, "web")
		events, _ := s.Events(ctx, "web", 0)
		if r.ResourceVersion != 1 || len(revs) != 1 || string(revs[0].Data) != "new" || len(events) != 0 {
			t.Fatalf("recreated: %+v, %d revisions, %d events", r, len(revs), len(events))
		}
	})

	t.Run("ConcurrentApplyOneWins", func(t *testing.T) {
		s := open(t)
		create(t, s, "web", "v1")
		var wg sync.WaitGroup
		errs := make([]error, 10)
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = s.Apply(ctx, Change{Record: Record{Name: "web", Data: []byte(strconv.Itoa(i))}, Expect: 1})
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrConflict):
				t.Fatalf("loser got %v, want a conflict", err)
			}
		}
		if got, _ := s.Get(ctx, "web"); won != 1 || got.ResourceVersion != 2 {
			t.Fatalf("%d winners, resource version %d", won, got.ResourceVersion)
		}
	})

	t.Run("Snapshot", func(t *testing.T) {
		s := open(t)
		for i, name := range []string{"web", "api"} {
			apply(t, s, Change{Record: Record{Name: name, Revision: 1, Data: []byte(name)},
				Revision: &Revision{Number: 1, Data: []byte("spec")}, Events: []Event{{Reason: strconv.Itoa(i)}}})
		}
		if err := s.PutMeta(ctx, "replicas", []byte("r")); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if n, err := s.Snapshot(ctx, &buf); err != nil || n != int64(buf.Len()) {
			t.Fatalf("snapshot: %d bytes (wrote %d), %v", n, buf.Len(), err)
		}
		if got, want := dump(t, restoreSnapshot(t, s, buf.Bytes())), dump(t, s); got != want {
			t.Fatalf("restored snapshot differs:\n%s\nwant\n%s", got, want)
		}
	})

	t.Run("SnapshotWhileWriting", func(t *testing.T) {
		s := open(t)
		r := create(t, s, "web", "1")
		stop := make(chan struct{})
		done := make(chan error)
		go func() {
			rv := r.ResourceVersion
			for {
				select {
				case <-stop:
					done <- nil
					return
				default:
				}
				r, err := s.Apply(ctx, Change{Record: Record{Name: "web", Data: []byte(strconv.FormatInt(rv+1, 10))}, Expect: rv})
				if err != nil {
					done <- err
					return
				}
				rv = r.ResourceVersion
			}
		}()
		for range 3 {
			var buf bytes.Buffer
			if _, err := s.Snapshot(ctx, &buf); err != nil {
				t.Fatal(err)
			}
			got, err := restoreSnapshot(t, s, buf.Bytes()).Get(ctx, "web")
			if err != nil || string(got.Data) != strconv.FormatInt(got.ResourceVersion, 10) {
				t.Fatalf("snapshot holds %+v, %v: not one committed state", got, err)
			}
		}
		close(stop)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("CanceledContext", func(t *testing.T) {
		s := open(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Apply(cctx, Change{Record: Record{Name: "web"}}); !errors.Is(err, context.Canceled) {
			t.Fatalf("apply with a canceled context: %v", err)
		}
		_, err := s.Get(ctx, "web")
		wantErr(t, err, ErrNotFound)
	})
}

func numbersOf(revs []*Revision) string {
	var s []string
	for _, r := range revs {
		s = append(s, strconv.FormatInt(r.Number, 10))
	}
	return strings.Join(s, " ")
}

func messagesOf(events []Event) string {
	var s []string
	for _, e := range events {
		s = append(s, e.Message)
	}
	return strings.Join(s, " ")
}

// dump renders everything reachable through the interface, for comparing
// two stores.
func dump(t *testing.T, s Store) string {
	t.Helper()
	ctx := context.Background()
	type deployment struct {
		Record    *Record
		Revisions []*Revision
		Events    []Event
	}
	var all []deployment
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range list {
		revs, err1 := s.Revisions(ctx, r.Name)
		events, err2 := s.Events(ctx, r.Name, 0)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		all = append(all, deployment{r, revs, events})
	}
	meta, _ := s.Meta(ctx, "replicas")
	out, err := json.MarshalIndent(map[string]any{"deployments": all, "meta": meta}, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
