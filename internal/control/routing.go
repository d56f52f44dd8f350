package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bulwark-ml/bulwark/internal/gateway"
)

// The routing table is what gateways route by: per model, the addresses
// of the ready replicas of the versions that get traffic, each labelled
// with its version, the versions' weights, and the deployment's effective
// gateway policy. The reconciler publishes it; gateways long-poll
// GET /api/v1/routing for it (bulwark gateway --controller). Its
// generation increases on every change of the table (a replica ready or
// not, added or removed, a policy changed), and, like the desired-state
// generation, once more on every controller start.
//
// Weights: the gateway splits a model's requests between its versions by
// their weights (a canary), then balances inside each version; a version
// with no replica available passes its share to the others. During a
// rolling update that replaces a version (replicas of versions the spec no
// longer routes are still running), the table lists the ready replicas of
// old and new versions alike, labelled but without weights: each ready
// replica takes an equal part, as behind a Kubernetes Service, so the old
// ones serve until the new ones are ready to replace them.
//
// A restarted controller publishes nothing until its reconciler has
// adopted the running replicas and made its first pass: a gateway that
// asks before then waits, and after the wait gets 503, and keeps the
// table it has rather than an empty one.

// RoutingResponse is the body of GET /api/v1/routing.
type RoutingResponse struct {
	Generation int64 `json:"generation"`
	// Config is a gateway configuration document with the models section
	// only (gateway.ParseConfig reads it; YAML is a superset of JSON).
	// Each model's policy is the full effective policy.
	Config json.RawMessage `json:"config"`
	// Versions is, per model, which replicas serve which version at what
	// weight.
	Versions map[string][]RoutedVersion `json:"versions"`
}

// RoutedVersion is one version's share of a model's routing.
type RoutedVersion struct {
	Version  string   `json:"version"`
	Weight   int      `json:"weight"`
	Replicas []string `json:"replicas"` // addresses
}

// ReplicaInfo is one replica the reconciler runs (GET /api/v1/replicas).
type ReplicaInfo struct {
	Name       string    `json:"name"`
	Deployment string    `json:"deployment"`
	Model      string    `json:"model"`
	Version    string    `json:"version"`
	Address    string    `json:"address"`
	Zone       string    `json:"zone,omitempty"`
	PID        int       `json:"pid"`
	State      string    `json:"state"` // the supervisor's: running, backoff, crash-loop, stopped
	Ready      bool      `json:"ready"`
	Reason     string    `json:"reason,omitempty"` // why it is not ready
	Restarts   int       `json:"restarts"`
	Adopted    bool      `json:"adopted,omitempty"` // left running by a previous controller
	Stopping   bool      `json:"stopping,omitempty"`
	Started    time.Time `json:"started"`
}

// ReplicaList is the body of GET /api/v1/replicas.
type ReplicaList struct {
	Items []ReplicaInfo `json:"items"`
}

// ErrRoutingNotBuilt: the reconciler has not published a table since the
// controller started (or runs no reconciler).
var ErrRoutingNotBuilt = errors.New("the routing table is not built yet: the controller's reconciler has not made its first pass (or is off)")

// RoutingTable holds the published table; safe for concurrent use.
type RoutingTable struct {
	mu       sync.Mutex
	resp     RoutingResponse
	built    bool   // a table was published since the start
	body     []byte // resp without the generation, to detect changes
	changed  chan struct{}
	replicas []ReplicaInfo
}

func newRoutingTable() *RoutingTable {
	return &RoutingTable{changed: make(chan struct{}),
		resp: RoutingResponse{Config: json.RawMessage(`{"models":{}}`), Versions: map[string][]RoutedVersion{}}}
}

// Routing is the routing table the reconciler publishes.
func (s *Service) Routing() *RoutingTable { return s.routing }

// Current returns the table as it is.
func (t *RoutingTable) Current() RoutingResponse {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.resp
}

// Wait returns the table once its generation is not since, or when ctx
// ends (then as it is, with ctx's error). Before the first table is
// built it waits for it, and returns ErrRoutingNotBuilt when ctx ends
// first: an empty table would make a gateway drop every model.
func (t *RoutingTable) Wait(ctx context.Context, since int64) (RoutingResponse, error) {
	for {
		t.mu.Lock()
		resp, built, ch := t.resp, t.built, t.changed
		t.mu.Unlock()
		if built && resp.Generation != since {
			return resp, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			if !built {
				return resp, ErrRoutingNotBuilt
			}
			return resp, ctx.Err()
		}
	}
}

// Replicas returns the replicas as last published.
func (t *RoutingTable) Replicas() []ReplicaInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]ReplicaInfo(nil), t.replicas...)
}

// setGeneration starts the count (the reconciler loads it from the state).
func (t *RoutingTable) setGeneration(gen int64) {
	t.mu.Lock()
	t.resp.Generation = gen
	t.mu.Unlock()
	t.wake()
}

// publish installs a new table; it reports whether it differs from the
// current one, in which case the generation went up by one.
func (t *RoutingTable) publish(resp RoutingResponse, replicas []ReplicaInfo) (int64, bool) {
	resp.Generation = 0
	body, _ := json.Marshal(resp)
	t.mu.Lock()
	t.replicas = replicas
	if bytes.Equal(body, t.body) {
		gen := t.resp.Generation
		t.mu.Unlock()
		return gen, false
	}
	t.body = body
	resp.Generation = t.resp.Generation + 1
	t.resp, t.built = resp, true
	t.mu.Unlock()
	t.wake()
	return resp.Generation, true
}

func (t *RoutingTable) wake() {
	t.mu.Lock()
	close(t.changed)
	t.changed = make(chan struct{})
	t.mu.Unlock()
}

// routedReplica is a replica as the routing table sees it.
type routedReplica struct {
	Address, Zone, Version string
	Ready                  bool
}

// routedDeployment is one deployment's input to the table.
type routedDeployment struct {
	Model    string
	Policy   gateway.Policy
	Versions []VersionWeight
	Replicas []routedReplica
}

// buildRouting makes the table (without its generation). A model whose
// routed replicas are none of them ready lists every running one instead,
// so that it does not vanish from the gateway (404) during a blip: the
// gateway's own health checks keep them out of rotation and its answer
// says why (503). A model with no replica at all is left out. Two
// deployments of one model share its entry, with the first one's policy;
// their weights add up per version.
func buildRouting(ds []routedDeployment) (RoutingResponse, error) {
	type modelDoc struct {
		Replicas []map[string]string `json:"replicas"`
		Versions []map[string]any    `json:"versions,omitempty"`
		Policy   map[string]any      `json:"policy"`
		rolling  bool
		weights  map[string]int
		order    []string
	}
	models := map[string]*modelDoc{}
	var names []string
	versions := map[string][]RoutedVersion{}
	for _, d := range ds {
		weight := map[string]int{}
		for _, v := range d.Versions {
			if v.Weight > 0 {
				weight[v.Version] = v.Weight
			}
		}
		// Replicas of a version the spec no longer routes are the old side
		// of a rolling update: they serve until they are stopped.
		rolling := false
		for _, r := range d.Replicas {
			_, routed := weight[r.Version]
			rolling = rolling || !routed
		}
		serves := func(r routedReplica) bool {
			_, routed := weight[r.Version]
			return routed || rolling
		}
		readyAny := false
		for _, r := range d.Replicas {
			readyAny = readyAny || (serves(r) && r.Ready)
		}
		var reps []routedReplica
		for _, r := range d.Replicas {
			if serves(r) && (r.Ready || !readyAny) {
				reps = append(reps, r)
			}
		}
		if len(reps) == 0 {
			continue
		}
		sort.Slice(reps, func(i, j int) bool { return reps[i].Address < reps[j].Address })
		m := models[d.Model]
		if m == nil {
			pol, err := policyDocument(d.Policy)
			if err != nil {
				return RoutingResponse{}, fmt.Errorf("routing for %s: %w", d.Model, err)
			}
			m = &modelDoc{Policy: pol, weights: map[string]int{}}
			models[d.Model] = m
			names = append(names, d.Model)
		}
		m.rolling = m.rolling || rolling
		for _, r := range reps {
			m.Replicas = append(m.Replicas, map[string]string{"address": r.Address, "zone": r.Zone, "version": r.Version})
		}
		for _, v := range d.Versions {
			if v.Weight == 0 {
				continue
			}
			if _, seen := m.weights[v.Version]; !seen {
				m.order = append(m.order, v.Version)
			}
			m.weights[v.Version] += v.Weight
			rv := RoutedVersion{Version: v.Version, Weight: v.Weight, Replicas: []string{}}
			for _, r := range reps {
				if r.Version == v.Version {
					rv.Replicas = append(rv.Replicas, r.Address)
				}
			}
			versions[d.Model] = append(versions[d.Model], rv)
		}
		if rolling {
			old := map[string][]string{}
			for _, r := range reps {
				if _, routed := weight[r.Version]; !routed {
					old[r.Version] = append(old[r.Version], r.Address)
				}
			}
			for _, v := range sortedKeys(boolSet(old)) {
				versions[d.Model] = append(versions[d.Model], RoutedVersion{Version: v, Replicas: old[v]})
			}
		}
	}
	for _, name := range names {
		m := models[name]
		if m.rolling {
			continue // no split while a version is being replaced
		}
		for _, v := range m.order {
			m.Versions = append(m.Versions, map[string]any{"version": v, "weight": m.weights[v]})
		}
	}
	cfg, err := json.Marshal(map[string]any{"models": models})
	if err != nil {
		return RoutingResponse{}, err
	}
	return RoutingResponse{Config: cfg, Versions: versions}, nil
}

func boolSet[V any](m map[string]V) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// policyDocument writes a gateway policy as the configuration file spells
// it (durations as "2s", hedge.delay as "adaptive" or a duration), by way
// of the gateway's own YAML field names, so that the gateway's parser
// reads it back to the same policy.
func policyDocument(p gateway.Policy) (map[string]any, error) {
	b, err := yaml.Marshal(p)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if h, ok := doc["hedge"].(map[string]any); ok {
		h["delay"] = p.Hedge.Delay.String()
	}
	return doc, nil
}
