package gateway

import (
	"errors"
	"fmt"
	"time"
)

// Status is the gateway's view of its models and replicas: what GET
// /admin/status returns and `bulwark status` prints.
type Status struct {
	Zone   string        `json:"zone"`
	Ready  bool          `json:"ready"`
	Models []ModelStatus `json:"models"`
	// Routing is where the routing table comes from, when a controller
	// feeds it.
	Routing *RoutingStatus `json:"routing,omitempty"`
}

// ModelStatus is one routed model.
type ModelStatus struct {
	Name      string `json:"name"`
	Available int    `json:"available"` // replicas that can take a request now
	Pending   int64  `json:"pending"`   // client requests in flight
	Vote      bool   `json:"vote"`
	// Versions is the traffic split, when the model has one.
	Versions []VersionStatus `json:"versions,omitempty"`
	Replicas []ReplicaStatus `json:"replicas"`
}

// VersionStatus is one version's share of a model's traffic.
type VersionStatus struct {
	Version   string `json:"version"`
	Weight    int    `json:"weight"`
	Replicas  int    `json:"replicas"`
	Available int    `json:"available"`
}

// ReplicaStatus is one replica as one model sees it.
type ReplicaStatus struct {
	Address             string     `json:"address"`
	Zone                string     `json:"zone,omitempty"`
	Version             string     `json:"version,omitempty"` // the model version it serves, when labelled
	State               string     `json:"state"`             // healthy, unhealthy, ejected, draining, breaker-open
	Breaker             string     `json:"breaker"`           // closed, open, half-open
	Outstanding         int64      `json:"outstanding"`
	Ejections           int        `json:"ejections"`
	EjectedUntil        *time.Time `json:"ejectedUntil,omitempty"`
	ConsecutiveFailures int        `json:"consecutiveFailures"`
	Disagreements       int        `json:"disagreements"`
	EWMALatencyMs       float64    `json:"ewmaLatencyMs"`
	Requests            uint64     `json:"requests"`
	Failures            uint64     `json:"failures"`
	LastError           string     `json:"lastError,omitempty"`
	LastHealthCheck     *time.Time `json:"lastHealthCheck,omitempty"`
}

// Status reports every model and replica, models by name, replicas in
// config order.
func (g *Gateway) Status() Status {
	tab := g.table()
	now := time.Now()
	st := Status{Zone: tab.cfg.Zone, Ready: g.Ready(), Models: make([]ModelStatus, 0, len(tab.names))}
	if f := g.follower.Load(); f != nil {
		rs := f.Status()
		st.Routing = &rs
	}
	for _, name := range tab.names {
		m := tab.models[name]
		p := m.policy.Load()
		ms := ModelStatus{Name: name, Available: m.available(now), Pending: m.pending.Load(), Vote: p.Vote.Enabled}
		set := m.set.Load()
		if set.weighted {
			for _, gr := range set.groups {
				ms.Versions = append(ms.Versions, VersionStatus{Version: gr.version, Weight: gr.weight})
			}
		}
		for i, r := range set.all {
			rs := r.status(now, p)
			rs.Version = set.version(i)
			if set.weighted {
				vs := &ms.Versions[set.group[i]]
				vs.Replicas++
				if r.view(now, p).usable {
					vs.Available++
				}
			}
			ms.Replicas = append(ms.Replicas, rs)
		}
		st.Models = append(st.Models, ms)
	}
	return st
}

func (r *replica) status(now time.Time, p *Policy) ReplicaStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	rs := ReplicaStatus{
		Address: r.addr, Zone: r.zone, State: r.stateLocked(now, p),
		Breaker:     r.breaker.current(now, &p.Breaker).String(),
		Outstanding: r.outstanding.Load(), Ejections: r.ejections,
		ConsecutiveFailures: r.consecFails, Disagreements: r.disagreements,
		EWMALatencyMs: r.lat.value(now) / float64(time.Millisecond),
		Requests:      r.requests.Load(), Failures: r.failures.Load(), LastError: r.lastErr,
	}
	if r.ejected {
		t := r.ejectedUntil
		rs.EjectedUntil = &t
	}
	if !r.lastCheck.IsZero() {
		t := r.lastCheck
		rs.LastHealthCheck = &t
	}
	return rs
}

// ErrUnknownReplica is returned by Drain and Undrain for an address no
// model routes to.
var ErrUnknownReplica = errors.New("no model has a replica with this address")

// Drain stops sending new requests to the replica at addr, in every model
// that has it; requests in flight on it finish normally. It returns the
// models concerned. The drain survives reloads that keep the replica.
func (g *Gateway) Drain(addr string) ([]string, error) { return g.setDrain(addr, true) }

// Undrain puts a drained replica back into rotation.
func (g *Gateway) Undrain(addr string) ([]string, error) { return g.setDrain(addr, false) }

func (g *Gateway) setDrain(addr string, on bool) ([]string, error) {
	tab := g.table()
	var models []string
	for _, name := range tab.names {
		m := tab.models[name]
		r := m.find(addr)
		if r == nil {
			continue
		}
		r.mu.Lock()
		changed := r.draining != on
		r.draining = on
		if changed && !on {
			r.lat = ewma{} // stale: let it be measured afresh
		}
		r.mu.Unlock()
		models = append(models, name)
		if changed && on {
			m.log.Info("replica draining", "replica", r.addr, "outstanding", r.outstanding.Load())
		} else if changed {
			m.log.Info("replica undrained", "replica", r.addr)
		}
	}
	if len(models) == 0 {
		return nil, fmt.Errorf("%s: %w", addr, ErrUnknownReplica)
	}
	return models, nil
}
