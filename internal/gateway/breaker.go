package gateway

import "time"

// breakerState is a circuit breaker's position.
type breakerState uint8

const (
	breakerClosed   breakerState = iota // traffic flows; failures are counted
	breakerOpen                         // no traffic until openFor has passed
	breakerHalfOpen                     // one trial try decides
)

func (s breakerState) String() string {
	return [...]string{"closed", "open", "half-open"}[s]
}

const breakerBuckets = 10

// breaker is a replica's circuit breaker. Outlier ejection reacts to a run
// of consecutive failures; the breaker catches what that misses, a replica
// failing a steady share of its tries (say every other one), by watching
// the failure ratio over a sliding window of breakerBuckets buckets.
// It has no lock of its own: the replica's lock guards it.
type breaker struct {
	state    breakerState
	openedAt time.Time
	trial    bool // the half-open trial try is in flight
	buckets  [breakerBuckets]breakerBucket
}

type breakerBucket struct {
	epoch     int64 // which bucket-length slice of time this counts
	ok, fails int
}

// current advances open to half-open once openFor has passed.
func (b *breaker) current(now time.Time, p *BreakerPolicy) breakerState {
	if b.state == breakerOpen && now.Sub(b.openedAt) >= p.OpenFor {
		b.state, b.trial = breakerHalfOpen, false
	}
	return b.state
}

// allows reports whether a try may start now.
func (b *breaker) allows(now time.Time, p *BreakerPolicy) bool {
	switch b.current(now, p) {
	case breakerClosed:
		return true
	case breakerHalfOpen:
		return !b.trial
	}
	return false
}

// begin starts a try; it reports whether the try is the half-open trial.
func (b *breaker) begin(now time.Time, p *BreakerPolicy) (trial bool) {
	if b.current(now, p) == breakerHalfOpen && !b.trial {
		b.trial = true
		return true
	}
	return false
}

// release ends a trial that was cancelled before it could tell anything.
func (b *breaker) release(trial bool) {
	if trial {
		b.trial = false
	}
}

// record counts a finished try and returns the state it moved to, if it
// moved (the caller logs transitions).
func (b *breaker) record(now time.Time, p *BreakerPolicy, ok, trial bool) (moved bool) {
	if trial {
		b.trial = false
		if ok {
			b.state, b.buckets = breakerClosed, [breakerBuckets]breakerBucket{}
		} else {
			b.state, b.openedAt = breakerOpen, now
		}
		return true
	}
	if b.state != breakerClosed {
		return false // a try that began before the breaker opened
	}
	width := max(p.Window/breakerBuckets, time.Millisecond)
	epoch := now.UnixNano() / int64(width)
	bk := &b.buckets[epoch%breakerBuckets]
	if bk.epoch != epoch {
		*bk = breakerBucket{epoch: epoch}
	}
	if ok {
		bk.ok++
	} else {
		bk.fails++
	}
	var total, fails int
	for _, c := range b.buckets {
		if epoch-c.epoch < breakerBuckets {
			total += c.ok + c.fails
			fails += c.fails
		}
	}
	if total >= p.MinRequests && float64(fails) > p.FailureRatio*float64(total) {
		b.state, b.openedAt = breakerOpen, now
		return true
	}
	return false
}
