package gateway

import (
	"sync"
	"sync/atomic"
	"time"
)

// Replica states as reported by Status and the replica_state metric, in
// the order they win when several hold at once: a drained replica is
// "draining" whatever its health.
const (
	StateHealthy     = "healthy"
	StateUnhealthy   = "unhealthy"
	StateEjected     = "ejected"
	StateDraining    = "draining"
	StateBreakerOpen = "breaker-open"
)

var allStates = []string{StateHealthy, StateUnhealthy, StateEjected, StateDraining, StateBreakerOpen}

// replica is one OIP server as one model sees it. The same server behind
// two models is two replicas: its health, ejection and breaker are about
// that model (the model may be broken on it while another serves fine).
// A replica outlives config reloads that keep its address, so its
// counters and state survive them.
type replica struct {
	addr    string    // normalized base URL, the identity
	addrHdr []string  // addr as an X-Bulwark-Replica header value
	pool    *connPool // pooled HTTP/1.1 connections; nil for https (net/http is used)

	outstanding atomic.Int64 // tries in flight
	requests    atomic.Uint64
	failures    atomic.Uint64

	mu            sync.Mutex
	zone          string
	checked       bool // a health check has run: before it, trust the config
	healthy       bool
	rise, fall    int // consecutive health check successes / failures
	draining      bool
	ejected       bool
	ejectedUntil  time.Time
	ejections     int
	consecFails   int
	disagreements int
	breaker       breaker
	lat           ewma
	lastErr       string
	lastCheck     time.Time
	lastOK        time.Time // a try's last good answer
}

func newReplica(rc ReplicaConfig) *replica {
	// Optimistic start: a new replica takes traffic until its first health
	// check says otherwise, and retries cover a dead one meanwhile. Starting
	// pessimistic would make a freshly started gateway refuse everything
	// for an interval.
	addr := normalizeAddress(rc.Address)
	return &replica{addr: addr, addrHdr: []string{addr}, pool: newConnPool(addr), zone: rc.Zone, healthy: true}
}

// stateLocked is the replica's reported state. Caller holds r.mu.
func (r *replica) stateLocked(now time.Time, p *Policy) string {
	switch {
	case r.draining:
		return StateDraining
	case r.ejected:
		return StateEjected
	case !r.healthy:
		return StateUnhealthy
	case r.breaker.current(now, &p.Breaker) != breakerClosed:
		return StateBreakerOpen
	}
	return StateHealthy
}

func (r *replica) state(now time.Time, p *Policy) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stateLocked(now, p)
}

// view is what the balancer needs of a replica, read under one lock.
type view struct {
	r        *replica
	usable   bool // may take a new try now
	zone     string
	trial    bool // half-open: its trial is waiting, so try it first
	cost     float64
	inflight int64
	group    int // in the model's replicaSet
}

func (r *replica) view(now time.Time, p *Policy) view {
	r.mu.Lock()
	defer r.mu.Unlock()
	usable := !r.draining && !r.ejected && r.healthy && r.breaker.allows(now, &p.Breaker)
	return view{
		r: r, usable: usable, zone: r.zone,
		trial:    usable && r.breaker.state == breakerHalfOpen,
		cost:     r.lat.value(now),
		inflight: r.outstanding.Load(),
	}
}

// begin claims the replica for one try. It fails if the replica stopped
// being usable since it was chosen (its half-open trial taken by another
// request, say). trial tells end whether this try is the breaker's trial.
func (r *replica) begin(now time.Time, p *Policy) (trial, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.draining || r.ejected || !r.healthy || !r.breaker.allows(now, &p.Breaker) {
		return false, false
	}
	r.outstanding.Add(1)
	r.requests.Add(1)
	return r.breaker.begin(now, &p.Breaker), true
}

// outcome of a try as far as the replica's health goes.
type outcome uint8

const (
	outcomeOK        outcome = iota // answered (2xx, or a 4xx that is the client's fault)
	outcomeFailure                  // connection error, 5xx, timeout: the replica's fault
	outcomeCancelled                // we gave up on it (hedge lost, client gone): tells nothing
	outcomeBusy                     // 429: alive but shedding; retry elsewhere, no blame
)

// end records a finished try. failPenalty is the latency charged for a
// failure: a replica that fails fast must not look fast, or least-loaded
// balancing would pour traffic into it. It returns the consecutive failure
// count and whether the breaker changed state.
func (r *replica) end(now time.Time, p *Policy, o outcome, took, failPenalty time.Duration, trial bool, errMsg string) (consec int, moved bool) {
	r.outstanding.Add(-1)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch o {
	case outcomeOK:
		r.consecFails = 0
		r.lastOK = now
		r.lat.observe(now, took)
		moved = r.breaker.record(now, &p.Breaker, true, trial)
	case outcomeFailure:
		r.failures.Add(1)
		r.consecFails++
		r.lastErr = errMsg
		r.lat.observe(now, max(took, failPenalty))
		moved = r.breaker.record(now, &p.Breaker, false, trial)
	case outcomeCancelled:
		// It was at least this slow; remembering that keeps a stalled
		// replica from winning every tie and being hedged every time.
		if took > time.Duration(r.lat.value(now)) {
			r.lat.observe(now, took)
		}
		r.breaker.release(trial)
	case outcomeBusy:
		r.breaker.release(trial)
	}
	return r.consecFails, moved
}

// ejectionFor is the n-th ejection's length: base × 2^(n-1), capped, so a
// replica that keeps failing stays out longer each time.
func ejectionFor(o *OutlierPolicy, n int) time.Duration {
	d := o.BaseEjection
	for i := 1; i < n && d < o.MaxEjection; i++ {
		d *= 2
	}
	return min(d, o.MaxEjection)
}

// ejectLocked takes the replica out of rotation. Caller holds r.mu.
func (r *replica) ejectLocked(now time.Time, o *OutlierPolicy) time.Duration {
	r.ejections++
	d := ejectionFor(o, r.ejections)
	r.ejected, r.ejectedUntil = true, now.Add(d)
	r.consecFails, r.disagreements = 0, 0
	return d
}

// healthChange is what a health check result did to the replica.
type healthChange uint8

const (
	healthSame     healthChange = iota
	healthUp                    // unhealthy → healthy
	healthDown                  // healthy → unhealthy
	healthReturned              // back from ejection after a passed probe
)

// recordHealth counts a health check. An unchecked replica takes the first
// result at once; after that rise/fall consecutive results flip it. An
// ejected replica whose time is up returns on one passed probe.
// answeredSince reports whether a try got a good answer after t.
func (r *replica) answeredSince(t time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastOK.After(t)
}

func (r *replica) recordHealth(now time.Time, h *HealthPolicy, ok bool, errMsg string) healthChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastCheck = now
	first := !r.checked
	r.checked = true
	if !ok {
		r.lastErr = errMsg
		r.rise, r.fall = 0, r.fall+1
		if r.healthy && (first || r.fall >= h.Fall) {
			r.healthy = false
			return healthDown
		}
		return healthSame
	}
	r.rise, r.fall = r.rise+1, 0
	if r.ejected && !now.Before(r.ejectedUntil) {
		r.ejected = false
		r.lat = ewma{} // its history is stale: let it be measured afresh
		if !r.healthy && r.rise >= h.Rise {
			r.healthy = true
		}
		return healthReturned
	}
	if !r.healthy && (first || r.rise >= h.Rise) {
		r.healthy = true
		r.lat = ewma{}
		return healthUp
	}
	return healthSame
}
