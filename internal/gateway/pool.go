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
	mx      *modelMetrics // this model's hot-path series

	policy atomic.Pointer[Policy]
	set    atomic.Pointer[replicaSet]

	pending atomic.Int64
	lat     latencyWindow
	retries *budget
	hedges  *budget

	ejectMu sync.Mutex // serializes ejections so the cap holds
}

func newModel(name string, p *Policy, log *slog.Logger, mt *metrics) *model {
	m := &model{
		name: name, log: log.With("model", name), metrics: mt, mx: newModelMetrics(mt, name),
		retries: newBudget(p.Retry.Budget, p.Retry.MinPerSecond),
		hedges:  newBudget(p.Hedge.Budget, 0),
	}
	// A hedge budget starts empty: the first requests earn the first hedge.
	m.hedges.tokens = 0
	m.policy.Store(p)
	m.set.Store(&replicaSet{})
	return m
}

func (m *model) setPolicy(p *Policy) {
	m.policy.Store(p)
	m.retries.set(p.Retry.Budget, p.Retry.MinPerSecond)
	m.hedges.set(p.Hedge.Budget, 0)
}

// replicas is the current replica list (read it, do not modify it).
func (m *model) replicas() []*replica { return m.set.Load().all }

// pick chooses a replica for the next try by the power of two choices:
// two random candidates, the one with fewer tries in flight wins, the
// lower latency EWMA breaks a tie. Least-outstanding steers away from a
// replica that stalls (its requests pile up) without a global view, and
// two random choices avoid the herd that "pick the least loaded" causes.
//
// Candidates are the usable replicas skip does not reject; of version
// only, when it is not empty and some replica carries that label. A model
// that splits by weight first draws a version among those with a
// candidate, so a version with nothing available passes its share to the
// others. Then the candidates are restricted to the gateway's zone while
// that zone has at least zones.minHealthy usable replicas. A half-open
// replica is picked first so that its breaker's trial happens promptly
// rather than when chance allows.
func (m *model) pick(now time.Time, p *Policy, zone, only string, skip func(*replica) bool) *replica {
	set := m.set.Load()
	pinned := -1
	if only != "" && set.group != nil {
		pinned = set.groupOf(only)
	}
	split := set.weighted && pinned < 0
	var buf [16]view
	var localBuf [8]int
	views, local, localAll := buf[:0], localBuf[:], 0
	if split && len(set.groups) > len(localBuf) {
		local = make([]int, len(set.groups))
	}
	for i, r := range set.all {
		g := 0
		if set.group != nil {
			if g = set.group[i]; pinned >= 0 && g != pinned {
				continue
			}
		}
		v := r.view(now, p)
		if !v.usable {
			continue
		}
		v.group = g
		if zone != "" && v.zone == zone {
			localAll++
			if split {
				local[g]++
			}
		}
		if skip == nil || !skip(r) {
			views = append(views, v)
		}
	}
	if split && len(views) > 1 {
		var g int
		views, g = set.choose(views)
		localAll = local[g]
	}
	if zone != "" && localAll >= max(1, p.Zones.MinHealthy) {
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
func (m *model) acquire(now time.Time, p *Policy, zone, only string, skip func(*replica) bool) (r *replica, trial bool) {
	var lost []*replica
	for range 4 {
		r = m.pick(now, p, zone, only, func(x *replica) bool {
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
func (m *model) available(now time.Time) int { return m.availableOf(now, "") }

// availableOf counts the usable replicas of version only (all when only
// is empty or labels no replica).
func (m *model) availableOf(now time.Time, only string) int {
	p := m.policy.Load()
	set := m.set.Load()
	n := 0
	for i, r := range set.all {
		if set.in(i, only) && r.view(now, p).usable {
			n++
		}
	}
	return n
}

// unavailableMsg explains why no replica can take a request, e.g. "no
// healthy replica for model iris: 3 replicas: 2 unhealthy, 1 ejected;
// last error: ...". The last error is often the real answer (a model
// that fails to load on every replica says why).
func (m *model) unavailableMsg(now time.Time, only string) string {
	p := m.policy.Load()
	set := m.set.Load()
	counts := map[string]int{}
	total := 0
	var lastErr string
	var lastAt time.Time
	for i, r := range set.all {
		if !set.in(i, only) {
			continue
		}
		total++
		r.mu.Lock()
		s := r.stateLocked(now, p)
		if r.lastErr != "" && !r.lastCheck.Before(lastAt) {
			lastErr, lastAt = r.lastErr, r.lastCheck
		}
		r.mu.Unlock()
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
	what := "model " + m.name
	if only != "" && set.group != nil && set.groupOf(only) >= 0 {
		what += " version " + only
	}
	msg := fmt.Sprintf("no healthy replica for %s: %d replicas", what, total)
	if len(parts) > 0 {
		msg += ": " + strings.Join(parts, ", ")
	}
	if lastErr != "" {
		msg += "; last error: " + lastErr
	}
	return msg
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
	reps := m.replicas()
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
	for _, r := range m.replicas() {
		if r.addr == addr {
			return r
		}
	}
	return nil
}
