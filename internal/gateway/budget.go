package gateway

import (
	"sync"
	"time"
)

// budget is a token bucket that limits extra tries (retries, or hedges) to
// a share of the traffic, in the style of Finagle's retry budget: every
// client request deposits ratio tokens, time adds perSecond tokens per
// second, and each extra try withdraws one. When a backend turns sick every
// request wants a retry, but only ratio of them (plus the floor) get one,
// so a sick backend sees at most (1+ratio)× its normal load, never
// attempts×: no retry storm.
//
// The balance is capped at ten seconds' worth of the floor plus the
// deposits of a hundred requests, so a long quiet spell cannot save up a
// burst.
type budget struct {
	mu        sync.Mutex
	ratio     float64
	perSecond float64
	tokens    float64
	last      time.Time
}

func newBudget(ratio, perSecond float64) *budget {
	b := &budget{last: time.Now()}
	b.set(ratio, perSecond)
	b.tokens = perSecond // a first second's worth, so a cold start can retry
	return b
}

// set changes the rates (on a config reload), keeping the balance.
func (b *budget) set(ratio, perSecond float64) {
	b.mu.Lock()
	b.ratio, b.perSecond = ratio, perSecond
	b.tokens = min(b.tokens, b.capacity())
	b.mu.Unlock()
}

func (b *budget) capacity() float64 { return b.perSecond*10 + b.ratio*100 }

// deposit records one client request.
func (b *budget) deposit() {
	b.mu.Lock()
	b.tokens = min(b.tokens+b.ratio, b.capacity())
	b.mu.Unlock()
}

// withdraw takes one token for an extra try, if there is one.
func (b *budget) withdraw(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(b.tokens+el.Seconds()*b.perSecond, b.capacity())
		b.last = now
	}
	// A small epsilon absorbs float error: 20 deposits of 0.05 make 1.
	if b.tokens < 1-1e-9 {
		return false
	}
	b.tokens--
	return true
}

// refund returns a token withdrawn for a try that could not be sent.
func (b *budget) refund() {
	b.mu.Lock()
	b.tokens = min(b.tokens+1, b.capacity())
	b.mu.Unlock()
}
