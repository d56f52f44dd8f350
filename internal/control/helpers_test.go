package control

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/state"
)

// catalog is a model store in a map: model → versions.
type catalog struct {
	mu     sync.Mutex
	models map[string][]string
}

func (c *catalog) Versions(name string) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	vs, ok := c.models[name]
	if !ok {
		return nil, fmt.Errorf("model %q %w", name, modelstore.ErrNotFound)
	}
	return vs, nil
}

func newCatalog() *catalog {
	return &catalog{models: map[string][]string{"iris": {"1", "2", "3"}, "resnet": {"a"}}}
}

func newTestService(t *testing.T) (*Service, state.Store, *catalog) {
	t.Helper()
	st := state.NewMemory()
	cat := newCatalog()
	svc, err := NewService(context.Background(), st, cat, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return svc, st, cat
}

// irisDoc is a valid deployment document; edits replace whole lines.
const irisDoc = `apiVersion: bulwark.dev/v1
kind: Deployment
metadata:
  name: iris
spec:
  model: iris
  versions:
    - {version: "1", weight: 90}
    - {version: "2", weight: 10}
  replicas: 3
  zones: [a, b, c]
  rollout: {maxSurge: 1, readyTimeout: 60s, observe: 30s, maxErrorRate: 0.05, maxP99Latency: 500ms}
  policy:
    hedge: {enabled: true}
  revisionHistoryLimit: 10
`

// edit replaces the line of irisDoc that starts with from (after
// indentation) by to, which keeps the indentation.
func edit(t *testing.T, doc, from, to string) string {
	t.Helper()
	lines := strings.Split(doc, "\n")
	for i, l := range lines {
		trimmed := strings.TrimLeft(l, " ")
		if strings.HasPrefix(trimmed, from) {
			lines[i] = l[:len(l)-len(trimmed)] + to
			return strings.Join(lines, "\n")
		}
	}
	t.Fatalf("no line starting with %q", from)
	return ""
}

func mustParse(t *testing.T, doc string) *Deployment {
	t.Helper()
	d, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, doc)
	}
	return d
}

func mustApply(t *testing.T, svc *Service, doc string) *ApplyResult {
	t.Helper()
	d := mustParse(t, doc)
	res, err := svc.Apply(context.Background(), d, d.Metadata.ResourceVersion)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return res
}

// snapshot is everything the service keeps, to prove a refused change
// wrote nothing.
func snapshot(t *testing.T, svc *Service) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	ds, err := svc.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "generation %d\n", svc.Generation())
	for _, d := range ds {
		revs, _ := svc.Revisions(ctx, d.Metadata.Name)
		evs, _ := svc.Events(ctx, d.Metadata.Name, 0)
		fmt.Fprintf(&b, "%+v %+v revisions %d events %d\n", d.Metadata, d.Spec, len(revs), len(evs))
	}
	return b.String()
}
