package gateway

import (
	"math"
	"slices"
	"sync"
	"time"
)

// latencyWindow keeps a model's most recent successful latencies to derive
// the adaptive hedge delay: a request still unanswered at the p95 is
// probably stuck (a paused or overloaded replica), and a copy elsewhere is
// likely to answer first. A fixed-size ring rather than a time window keeps
// memory constant and adapts as fast as traffic arrives. The percentile is
// recomputed only every few samples, since sorting on every request would
// cost more than the request.
type latencyWindow struct {
	mu      sync.Mutex
	ring    [latencySamples]time.Duration
	scratch [latencySamples]time.Duration // sorted copy, reused
	n       int                           // samples written in total
	dirty   int                           // samples since the cached percentile
	cachedQ float64
	cached  time.Duration
}

const (
	latencySamples   = 512
	latencyMinCount  = 16 // fewer samples than this: no estimate yet
	latencyRecompute = 32
)

func (w *latencyWindow) observe(d time.Duration) {
	w.mu.Lock()
	w.ring[w.n%latencySamples] = d
	w.n++
	w.dirty++
	w.mu.Unlock()
}

// percentile returns the q-quantile of the window, and false while there
// are too few samples to trust one.
func (w *latencyWindow) percentile(q float64) (time.Duration, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n < latencyMinCount {
		return 0, false
	}
	if w.dirty < latencyRecompute && w.cachedQ == q && w.cached > 0 {
		return w.cached, true
	}
	k := min(w.n, latencySamples)
	s := w.scratch[:k]
	copy(s, w.ring[:k])
	slices.Sort(s)
	i := int(math.Ceil(q*float64(k))) - 1
	w.cached, w.cachedQ, w.dirty = s[max(0, min(i, k-1))], q, 0
	return w.cached, true
}

// hedgeDelay is how long a try may run before a hedge is sent: the fixed
// delay, or the model's percentile latency clamped to [minDelay,maxDelay]
// (maxDelay while the window is still filling, to stay cautious).
func hedgeDelay(h *HedgePolicy, w *latencyWindow) time.Duration {
	if h.Delay.Fixed > 0 {
		return h.Delay.Fixed
	}
	d, ok := w.percentile(h.Percentile)
	if !ok {
		return h.MaxDelay
	}
	return min(max(d, h.MinDelay), h.MaxDelay)
}

// ewma is a replica's latency estimate for breaking P2C ties, in the
// peak-EWMA style of Finagle and Linkerd: each observation moves it by
// alpha, and it decays toward zero while the replica gets no traffic, so a
// replica that was slow once is tried again eventually rather than starved
// forever by its stale estimate. Callers hold the replica's lock.
type ewma struct {
	v    float64 // nanoseconds
	last time.Time
}

const (
	ewmaAlpha = 0.3
	ewmaDecay = 10 * time.Second // time constant of the idle decay
)

func (e *ewma) value(now time.Time) float64 {
	if e.last.IsZero() {
		return 0
	}
	idle := now.Sub(e.last)
	if idle <= 0 {
		return e.v
	}
	return e.v * math.Exp(-float64(idle)/float64(ewmaDecay))
}

func (e *ewma) observe(now time.Time, d time.Duration) {
	if e.last.IsZero() {
		e.v = float64(d)
	} else {
		e.v = e.value(now)*(1-ewmaAlpha) + float64(d)*ewmaAlpha
	}
	e.last = now
}
