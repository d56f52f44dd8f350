package gateway

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// model is one routed model: its replicas, its policy and the state its
// requests share (pending count, budgets, latency window). Update swaps
// the replica set and policy atomically, so a request reads one consistent
// snapshot of each, and a model kept across reloads keeps all its state.
type model struct {
	name    string
	log     *slog.Logger
	metrics *metrics

	policy   atomic.Pointer[Policy]
	replicas atomic.Pointer[[]*replica]

	pending atomic.Int64
	lat     latencyWindow
	retries *budget
	hedges  *budget

	ejectMu sync.Mutex // serializes ejections so the cap holds
}

func newModel(name string, p *Policy, log *slog.Logger, mt *metrics) *model {
	m := &model{
		name: name, log: log.With("model", name), metrics: mt,
		retries: newBudget(p.Retry.Budget, p.Retry.MinPerSecond),
		hedges:  newBudget(p.Hedge.Budget, 0),
	}
	// A hedge budget starts empty: the first requests earn the first hedge.
	m.hedges.tokens = 0
	m.policy.Store(p)
	m.replicas.Store(&[]*replica{})
	return m
}

func (m *model) setPolicy(p *Policy) {
	m.policy.Store(p)
	m.retries.set(p.Retry.Budget, p.Retry.MinPerSecond)
	m.hedges.set(p.Hedge.Budget, 0)
}

// pick chooses a replica for the next try by the power of two choices:
// two random candidates, the one with fewer tries in flight wins, the
// lower latency EWMA breaks a tie. Least-outstanding steers away from a
// replica that stalls (its requests pile up) without a global view, and
// two random choices avoid the herd that "pick the least loaded" causes.
//
// Candidates are the usable replicas skip does not reject, restricted to
// the gateway's zone while that zone has at least zones.minHealthy usable
// replicas. A half-open replica is picked first so that its breaker's
// trial happens promptly rather than when chance allows.
func (m *model) pick(now time.Time, p *Policy, zone string, skip func(*replica) bool) *replica {
	reps := *m.replicas.Load()
	var buf [16]view
	views, local := buf[:0], 0
	for _, r := range reps {
		v := r.view(now, p)
		if !v.usable {
			continue
		}
		if zone != "" && v.zone == zone {
			local++
		}
		if skip == nil || !skip(r) {
			views = append(views, v)
		}
	}
	if zone != "" && local >= max(1, p.Zones.MinHealthy) {
		n := 0
		for _, v := range views {
			if v.zone == zone {
				views[n] = v
				n++
			}
		}
		if n > 0 { // else every local one is skipped: go elsewhere
			views = views[:n]
		}
	}
	switch len(views) {
	case 0:
		return nil
	case 1:
		return views[0].r
	}
	for _, v := range views {
		if v.trial {
			return v.r
		}
	}
	i := rand.IntN(len(views))
	j := rand.IntN(len(views) - 1)
	if j >= i {
		j++
	}
	a, b := views[i], views[j]
	if b.inflight < a.inflight || (b.inflight == a.inflight && b.cost < a.cost) {
		return b.r
	}
	return a.r
}

// acquire picks a replica and claims it for a try, re-picking if the
// chosen one changed state in between. It returns nil, false when no
// replica is left.
func (m *model) acquire(now time.Time, p *Policy, zone string, skip func(*replica) bool) (r *replica, trial bool) {
	var lost []*replica
	for range 4 {
		r = m.pick(now, p, zone, func(x *replica) bool {
			for _, l := range lost {
				if l == x {
					return true
				}
			}
			return skip != nil && skip(x)
		})
		if r == nil {
			return nil, false
		}
		if trial, ok := r.begin(now, p); ok {
			return r, trial
		}
		lost = append(lost, r)
	}
	return nil, false
}

// available counts usable replicas.
func (m *model) available(now time.Time) int {
	p := m.policy.Load()
	n := 0
	for _, r := range *m.replicas.Load() {
		if r.view(now, p).usable {
			n++
		}
	}
	return n
}

// unavailableMsg explains why no replica can take a request, e.g. "no
// healthy replica for model iris: 3 replicas: 2 unhealthy, 1 ejected".
func (m *model) unavailableMsg(now time.Time) string {
	p := m.policy.Load()
	reps := *m.replicas.Load()
	counts := map[string]int{}
	for _, r := range reps {
		s := r.state(now, p)
		if s == StateHealthy {
			s = "busy" // its breaker's single half-open trial is taken
		}
		counts[s]++
	}
	var parts []string
	for _, s := range slices.Concat(allStates[1:], []string{"busy"}) {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	return fmt.Sprintf("no healthy replica for model %s: %d replicas: %s", m.name, len(reps), strings.Join(parts, ", "))
}

// finish records a try's outcome on its replica and applies the
// consequences: breaker transitions are logged, and a run of failures
// ejects the replica.
func (m *model) finish(r *replica, trial bool, o outcome, took time.Duration, errMsg string) {
	now := time.Now()
	p := m.policy.Load()
	consec, moved := r.end(now, p, o, took, p.Retry.PerTryTimeout, trial, errMsg)
	if moved {
		r.mu.Lock()
		st := r.breaker.state
		r.mu.Unlock()
		if st == breakerClosed {
			m.log.Info("circuit breaker closed", "replica", r.addr)
		} else {
			m.log.Warn("circuit breaker opened", "replica", r.addr, "open_for", p.Breaker.OpenFor, "last_error", errMsg)
		}
	}
	if o == outcomeFailure && p.Outlier.ConsecutiveFailures > 0 && consec >= p.Outlier.ConsecutiveFailures {
		m.eject(r, now, fmt.Sprintf("%d consecutive failures, last: %s", consec, errMsg))
	}
}

// eject takes r out of rotation unless that would put more than
// maxEjectedPercent of the model's replicas out: ejection protects the
// clients from a bad replica, and must never be what takes the model down.
func (m *model) eject(r *replica, now time.Time, reason string) bool {
	p := m.policy.Load()
	m.ejectMu.Lock()
	defer m.ejectMu.Unlock()
	reps := *m.replicas.Load()
	others := 0
	for _, x := range reps {
		if x != r {
			x.mu.Lock()
			if x.ejected {
				others++
			}
			x.mu.Unlock()
		}
	}
	if (others+1)*100 > p.Outlier.MaxEjectedPercent*len(reps) {
		m.log.Debug("ejection skipped: too many replicas ejected", "replica", r.addr, "ejected", others, "replicas", len(reps), "reason", reason)
		return false
	}
	r.mu.Lock()
	if r.ejected {
		r.mu.Unlock()
		return false
	}
	d := r.ejectLocked(now, &p.Outlier)
	n := r.ejections
	r.mu.Unlock()
	m.metrics.ejections.WithLabelValues(m.name, r.addr).Inc()
	m.log.Warn("replica ejected", "replica", r.addr, "for", d, "ejections", n, "reason", reason)
	return true
}

// find returns the model's replica with the given address.
func (m *model) find(addr string) *replica {
	addr = normalizeAddress(addr)
	for _, r := range *m.replicas.Load() {
		if r.addr == addr {
			return r
		}
	}
	return nil
}
