package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-ml/bulwark/internal/state"
)

// RevisionInfo is one kept revision of a deployment's spec.
type RevisionInfo struct {
	Revision int64     `json:"revision"`
	Created  time.Time `json:"created"`
	Current  bool      `json:"current"` // the revision the deployment is at
	Spec     Spec      `json:"spec"`
}

// Revisions lists the kept revisions of a deployment, oldest first.
func (s *Service) Revisions(ctx context.Context, name string) ([]RevisionInfo, error) {
	rec, err := s.store.Get(ctx, name)
	if err != nil {
		return nil, err // the store names the deployment
	}
	revs, err := s.store.Revisions(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("revisions of %s: %w", name, err)
	}
	out := make([]RevisionInfo, 0, len(revs))
	for _, r := range revs {
		info := RevisionInfo{Revision: r.Number, Created: r.Created, Current: r.Number == rec.Revision}
		if err := json.Unmarshal(r.Data, &info.Spec); err != nil {
			return nil, fmt.Errorf("decode revision %d of %s: %w", r.Number, name, err)
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Revision < out[j].Revision })
	return out, nil
}

// Rollback makes the spec of revision to the desired state again, as a new
// revision (history is kept, never rewritten); to 0 means the revision
// before the current one. The old spec must still validate against the
// model store. Rolling back to a spec equal to the current one writes
// nothing (Unchanged).
func (s *Service) Rollback(ctx context.Context, name string, to int64) (*ApplyResult, error) {
	for attempt := 0; ; attempt++ {
		rec, doc, err := s.read(ctx, name)
		if err != nil {
			return nil, err
		}
		revs, err := s.Revisions(ctx, name)
		if err != nil {
			return nil, err
		}
		target, err := pickRevision(name, revs, rec.Revision, to)
		if err != nil {
			return nil, err
		}
		d := &Deployment{APIVersion: APIVersion, Kind: Kind, Metadata: Metadata{Name: name}, Spec: target.Spec}
		if err := errors.Join(d.Validate(), d.checkCatalog(s.catalog)); err != nil {
			return nil, fmt.Errorf("revision %d of %s cannot be deployed again: %w", target.Revision, name, err)
		}
		if doc.Spec.equal(&target.Spec) {
			return &ApplyResult{Result: Unchanged, Revision: rec.Revision, RolledBackTo: target.Revision, Deployment: toDeployment(rec, doc)}, nil
		}
		next := rec.Revision + 1
		ev := Event{Time: s.now(), Type: EventNormal, Reason: "RolledBack",
			Message: fmt.Sprintf("rolled back to revision %d, as revision %d: %s", target.Revision, next, summary(&target.Spec))}
		doc.Spec = target.Spec
		change := state.Change{Record: state.Record{Name: name, Revision: next}, Expect: rec.ResourceVersion}
		out, err := s.write(ctx, change, doc, ev)
		if errors.Is(err, ErrConflict) && attempt < maxRetries {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("roll back %s: %w", name, err)
		}
		s.bump(ctx)
		return &ApplyResult{Result: RolledBack, Revision: next, RolledBackTo: target.Revision, Deployment: toDeployment(out, doc)}, nil
	}
}

func pickRevision(name string, revs []RevisionInfo, current, to int64) (*RevisionInfo, error) {
	kept := make([]string, len(revs))
	for i, r := range revs {
		kept[i] = strconv.FormatInt(r.Revision, 10)
	}
	for i := len(revs) - 1; i >= 0; i-- {
		if (to == 0 && revs[i].Revision < current) || (to != 0 && revs[i].Revision == to) {
			return &revs[i], nil
		}
	}
	if to == 0 {
		return nil, fmt.Errorf("deployment %s has no revision before %d to roll back to: %w", name, current, ErrNotFound)
	}
	return nil, fmt.Errorf("revision %d of deployment %s (kept: %s): %w", to, name, strings.Join(kept, ", "), ErrNotFound)
}

// SetStatus replaces a deployment's status. It is the reconciler's write:
// it bumps the resource version but creates no revision and wakes no
// watcher of desired state. A concurrent spec change is retried on, never
// overwritten.
func (s *Service) SetStatus(ctx context.Context, name string, st Status) (*Deployment, error) {
	for attempt := 0; ; attempt++ {
		rec, doc, err := s.read(ctx, name)
		if err != nil {
			return nil, err
		}
		st.UpdateTimestamp = s.now()
		doc.Status = st
		data, err := json.Marshal(doc)
		if err != nil {
			return nil, err
		}
		out, err := s.store.Apply(ctx, state.Change{
			Record: state.Record{Name: name, Revision: rec.Revision, Data: data},
			Expect: rec.ResourceVersion,
		})
		if errors.Is(err, ErrConflict) && attempt < maxRetries {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("set status of %s: %w", name, err)
		}
		return toDeployment(out, doc), nil
	}
}

// Events returns a deployment's most recent events, up to limit (0: all
// the store keeps).
func (s *Service) Events(ctx context.Context, name string, limit int) ([]Event, error) {
	if _, err := s.store.Get(ctx, name); err != nil {
		return nil, err // the store names the deployment
	}
	evs, err := s.store.Events(ctx, name, limit)
	if err != nil {
		return nil, fmt.Errorf("events of %s: %w", name, err)
	}
	return evs, nil
}

// AppendEvent records an event (the reconciler's: CrashLoop, Scaled, ...)
// without touching the deployment. A zero time is now; an empty type is
// Normal.
func (s *Service) AppendEvent(ctx context.Context, name string, ev Event) error {
	if ev.Time.IsZero() {
		ev.Time = s.now()
	}
	if ev.Type == "" {
		ev.Type = EventNormal
	}
	if err := s.store.AppendEvents(ctx, name, ev); err != nil {
		return fmt.Errorf("event for %s: %w", name, err)
	}
	return nil
}

// summary describes a spec in an event: "iris 1 (90%), 2 (10%); 3 replicas each".
func summary(s *Spec) string {
	vs := make([]string, len(s.Versions))
	for i, v := range s.Versions {
		vs[i] = fmt.Sprintf("%s (%d%%)", v.Version, v.Weight)
	}
	each := "replica"
	if s.Replicas != 1 {
		each = "replicas"
	}
	return fmt.Sprintf("%s %s; %d %s each", s.Model, strings.Join(vs, ", "), s.Replicas, each)
}

// changedFields names the spec fields that differ, for the Applied event.
func changedFields(old, cur *Spec) []string {
	var out []string
	ov, cv := reflect.ValueOf(*old), reflect.ValueOf(*cur)
	t := ov.Type()
	for i := 0; i < t.NumField(); i++ {
		a, _ := json.Marshal(ov.Field(i).Interface())
		b, _ := json.Marshal(cv.Field(i).Interface())
		if string(a) != string(b) {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			out = append(out, name)
		}
	}
	return out
}

// UnmarshalJSON reads a spec back from JSON, turning the whole numbers of
// the policy overrides (float64 in JSON) back into integers, so that
// they decode into the gateway's integer fields and compare equal to the
// spec as parsed from YAML.
func (s *Spec) UnmarshalJSON(b []byte) error {
	type plain Spec // without this method
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	p.Policy, _ = wholeNumbers(p.Policy).(map[string]any)
	*s = Spec(p)
	return nil
}

func wholeNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = wholeNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = wholeNumbers(e)
		}
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
	}
	return v
}
