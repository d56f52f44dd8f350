package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-ml/bulwark/internal/state"
)

// Service is the controller's desired state: deployments, their immutable
// revisions, their status and events, over a state.Store. Every write is
// one compare-and-swap on the record that was read, so concurrent callers
// (API requests, the reconciler) never lose each other's changes. Methods
// are safe for concurrent use.
type Service struct {
	store   state.Store
	catalog ModelCatalog
	log     *slog.Logger
	now     func() time.Time

	mu      sync.Mutex
	gen     int64         // see watch.go
	changed chan struct{} // closed and replaced on every desired-state change

	routing *RoutingTable // published by the reconciler (routing.go)
}

// Options tune a Service; the zero value is fine.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time // for tests
}

// maxRetries bounds the compare-and-swap retries of a write whose caller
// did not pin a resource version; each retry re-reads the record.
const maxRetries = 16

// NewService opens the desired state kept in st; models are checked
// against catalog (the site's model store).
func NewService(ctx context.Context, st state.Store, catalog ModelCatalog, opt Options) (*Service, error) {
	s := &Service{store: st, catalog: catalog, log: opt.Logger, now: opt.Now, changed: make(chan struct{}), routing: newRoutingTable()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.loadGeneration(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Result says what an apply did.
type Result string

// Results of Apply and Rollback.
const (
	Created    Result = "created"
	Configured Result = "configured" // the spec changed: a new revision
	Unchanged  Result = "unchanged"  // the spec was already this: nothing written
	RolledBack Result = "rolled back"
)

// ApplyResult is the outcome of Apply or Rollback, and the deployment as
// stored afterwards (as it would be, for a dry run).
type ApplyResult struct {
	Result   Result `json:"result"`
	Revision int64  `json:"revision"`
	DryRun   bool   `json:"dryRun,omitempty"`
	// RolledBackTo is the revision whose spec a rollback restored.
	RolledBackTo int64       `json:"rolledBackTo,omitempty"`
	Deployment   *Deployment `json:"deployment"`
}

// document is what a state.Record holds: the spec, the reconciler's
// status, and when the deployment was created.
type document struct {
	Spec    Spec      `json:"spec"`
	Status  Status    `json:"status"`
	Created time.Time `json:"created"`
}

// Apply makes d the desired state of its deployment. A spec equal to the
// stored one writes nothing (Unchanged); any other creates the next
// revision. expect pins the stored resource version (usually
// d.Metadata.ResourceVersion): a different one, or none, is ErrConflict.
// With expect 0 a concurrent write is retried on what it left. The
// deployment is validated, against the model catalog too, before anything
// is written.
func (s *Service) Apply(ctx context.Context, d *Deployment, expect int64) (*ApplyResult, error) {
	return s.apply(ctx, d, expect, false)
}

// DryRun is Apply without the write: it validates d and says what Apply
// would do now.
func (s *Service) DryRun(ctx context.Context, d *Deployment, expect int64) (*ApplyResult, error) {
	return s.apply(ctx, d, expect, true)
}

func (s *Service) apply(ctx context.Context, d *Deployment, expect int64, dryRun bool) (*ApplyResult, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	if err := d.checkCatalog(s.catalog); err != nil {
		return nil, err
	}
	name := d.Metadata.Name
	for attempt := 0; ; attempt++ {
		rec, doc, err := s.read(ctx, name)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		if expect != 0 {
			if rec == nil {
				return nil, fmt.Errorf("deployment %s does not exist, so resourceVersion %d cannot match: %w", name, expect, ErrConflict)
			}
			if rec.ResourceVersion != expect {
				return nil, staleError(name, expect, rec.ResourceVersion)
			}
		}
		if rec != nil && doc.Spec.equal(&d.Spec) {
			return &ApplyResult{Result: Unchanged, Revision: rec.Revision, DryRun: dryRun, Deployment: toDeployment(rec, doc)}, nil
		}
		now := s.now()
		res := &ApplyResult{Result: Created, Revision: 1, DryRun: dryRun}
		ev := Event{Time: now, Type: EventNormal, Reason: "Created", Message: "revision 1: " + summary(&d.Spec)}
		change := state.Change{Record: state.Record{Name: name, Revision: 1}}
		if rec == nil {
			doc = &document{Created: now, Status: Status{Phase: PhasePending, DesiredReplicas: d.Spec.DesiredReplicas()}}
		} else {
			res.Result, res.Revision = Configured, rec.Revision+1
			ev.Reason = "Applied"
			ev.Message = fmt.Sprintf("revision %d: %s (changed: %s)", res.Revision, summary(&d.Spec), strings.Join(changedFields(&doc.Spec, &d.Spec), ", "))
			change.Expect, change.Record.Revision = rec.ResourceVersion, res.Revision
		}
		doc.Spec = d.Spec
		if dryRun {
			res.Deployment = toDeployment(&state.Record{Name: name, Revision: res.Revision, Updated: now}, doc)
			if rec != nil {
				res.Deployment.Metadata.ResourceVersion = rec.ResourceVersion
			}
			return res, nil
		}
		out, err := s.write(ctx, change, doc, ev)
		if errors.Is(err, ErrConflict) && expect == 0 && attempt < maxRetries {
			continue
		}
		if err != nil {
			if errors.Is(err, ErrConflict) && expect != 0 {
				return nil, staleError(name, expect, -1)
			}
			return nil, fmt.Errorf("apply deployment %s: %w", name, err)
		}
		s.bump(ctx)
		res.Deployment = toDeployment(out, doc)
		return res, nil
	}
}

// write stores doc as the record of change with a new revision holding its
// spec, pruning history to the spec's limit.
func (s *Service) write(ctx context.Context, change state.Change, doc *document, events ...Event) (*state.Record, error) {
	data, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	spec, err := json.Marshal(&doc.Spec)
	if err != nil {
		return nil, err
	}
	change.Record.Data = data
	change.Revision = &state.Revision{Name: change.Record.Name, Number: change.Record.Revision, Data: spec, Created: s.now()}
	change.Events = events
	// The limit counts old revisions, as in Kubernetes; the current one is
	// kept on top of them.
	change.KeepRevisions = doc.Spec.RevisionHistoryLimit + 1
	return s.store.Apply(ctx, change)
}

func staleError(name string, expect, stored int64) error {
	if stored < 0 {
		return fmt.Errorf("deployment %s: resourceVersion %d is stale (it changed meanwhile); get it again and reapply: %w", name, expect, ErrConflict)
	}
	return fmt.Errorf("deployment %s: resourceVersion %d is stale (now %d); get it again and reapply: %w", name, expect, stored, ErrConflict)
}

// read returns a deployment's record and decoded document.
func (s *Service) read(ctx context.Context, name string) (*state.Record, *document, error) {
	rec, err := s.store.Get(ctx, name)
	if err != nil {
		return nil, nil, err // the store names the deployment
	}
	var doc document
	if err := json.Unmarshal(rec.Data, &doc); err != nil {
		return nil, nil, fmt.Errorf("decode deployment %s: %w", name, err)
	}
	return rec, &doc, nil
}

func toDeployment(rec *state.Record, doc *document) *Deployment {
	st := doc.Status
	return &Deployment{
		APIVersion: APIVersion,
		Kind:       Kind,
		Metadata: Metadata{Name: rec.Name, ResourceVersion: rec.ResourceVersion, Revision: rec.Revision,
			CreationTimestamp: doc.Created, UpdateTimestamp: rec.Updated},
		Spec:   doc.Spec,
		Status: &st,
	}
}

// Get returns a deployment with its status; ErrNotFound if there is none.
func (s *Service) Get(ctx context.Context, name string) (*Deployment, error) {
	rec, doc, err := s.read(ctx, name)
	if err != nil {
		return nil, err
	}
	return toDeployment(rec, doc), nil
}

// List returns every deployment, by name.
func (s *Service) List(ctx context.Context) ([]*Deployment, error) {
	recs, err := s.store.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	out := make([]*Deployment, 0, len(recs))
	for _, rec := range recs {
		var doc document
		if err := json.Unmarshal(rec.Data, &doc); err != nil {
			return nil, fmt.Errorf("decode deployment %s: %w", rec.Name, err)
		}
		out = append(out, toDeployment(rec, &doc))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Metadata.Name < out[j].Metadata.Name })
	return out, nil
}

// Delete removes a deployment with its revisions and events. expect pins
// the resource version as in Apply; 0 deletes whatever is stored.
func (s *Service) Delete(ctx context.Context, name string, expect int64) error {
	for attempt := 0; ; attempt++ {
		rv := expect
		if rv == 0 {
			rec, err := s.store.Get(ctx, name)
			if err != nil {
				return err // the store names the deployment
			}
			rv = rec.ResourceVersion
		}
		err := s.store.Delete(ctx, name, rv)
		if errors.Is(err, ErrConflict) && expect == 0 && attempt < maxRetries {
			continue
		}
		if errors.Is(err, ErrConflict) {
			return staleError(name, expect, -1)
		}
		if err != nil {
			return fmt.Errorf("delete deployment %s: %w", name, err)
		}
		s.bump(ctx)
		return nil
	}
}
