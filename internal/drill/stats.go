package drill

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// loadSample is one request as the load keeps it: 24 bytes, no body.
type loadSample struct {
	at      int64  // start, ns after the load began
	latency int64  // ns to the whole answer or the failure
	seq     uint32 // vegeta's request number
	code    uint16 // codeOK, codeWrong, ... or an HTTP status
}

func (s *loadSample) answered() bool { return s.code != codeTimeout && s.code != codeConnection }

// record holds the samples of a load in the order their results came.
type record struct {
	began time.Time

	mu      sync.RWMutex
	samples []loadSample
	// changed is closed and replaced whenever a sample is added, so
	// Settle can wait without polling.
	changed chan struct{}
}

func (r *record) init(began time.Time) {
	r.began = began
	r.changed = make(chan struct{})
}

func (r *record) add(res *vegeta.Result, code uint16) {
	s := loadSample{
		at:      res.Timestamp.Sub(r.began).Nanoseconds(),
		latency: res.Latency.Nanoseconds(),
		seq:     uint32(res.Seq),
		code:    code,
	}
	r.mu.Lock()
	r.samples = append(r.samples, s)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// offset is t as ns after the load began.
func (r *record) offset(t time.Time) int64 { return t.Sub(r.began).Nanoseconds() }

// Stats is what clients saw of the requests that started in [from, to):
// Sent, Failed, Wrong, Errors by kind, and the latency quantiles of the
// answered ones (those with an HTTP answer, wrong ones included), exact
// and nearest-rank, in ms. Start and End are from and to; the rest is the
// caller's. Requests still in flight are not counted yet: call Settle(to)
// first for a final figure.
func (l *Load) Stats(from, to time.Time) PhaseResult {
	lo, hi := l.record.offset(from), l.record.offset(to)
	res := PhaseResult{Start: from, End: to}
	var lat []int64
	l.record.mu.RLock()
	for i := range l.record.samples {
		s := &l.record.samples[i]
		if s.at < lo || s.at >= hi {
			continue
		}
		res.Sent++
		if s.code != codeOK {
			res.Failed++
			if s.code == codeWrong {
				res.Wrong++
			}
			if res.Errors == nil {
				res.Errors = map[string]int64{}
			}
			res.Errors[kindName(s.code)]++
		}
		if s.answered() {
			lat = append(lat, s.latency)
		}
	}
	l.record.mu.RUnlock()
	slices.Sort(lat)
	res.P50, res.P99, res.P999 = quantileMs(lat, 0.50), quantileMs(lat, 0.99), quantileMs(lat, 0.999)
	if len(lat) > 0 {
		res.Max = ms(lat[len(lat)-1])
	}
	return res
}

// quantileMs is the nearest-rank q-quantile of sorted latencies, in ms; 0
// for none.
func quantileMs(sorted []int64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	return ms(sorted[max(rank, 1)-1])
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// Timeline is the load one second at a time from start to the second of
// the last request started: requests started, failed, and the p99 of the
// answered ones. Requests started before start are left out.
func (l *Load) Timeline(start time.Time) []Second {
	base := l.record.offset(start)
	var secs []Second
	var lats [][]int64
	l.record.mu.RLock()
	for i := range l.record.samples {
		s := &l.record.samples[i]
		if s.at < base {
			continue
		}
		b := int((s.at - base) / int64(time.Second))
		for len(secs) <= b {
			secs = append(secs, Second{At: float64(len(secs))})
			lats = append(lats, nil)
		}
		secs[b].Requests++
		if s.code != codeOK {
			secs[b].Failed++
		}
		if s.answered() {
			lats[b] = append(lats[b], s.latency)
		}
	}
	l.record.mu.RUnlock()
	for i := range secs {
		slices.Sort(lats[i])
		secs[i].P99 = quantileMs(lats[i], 0.99)
	}
	return secs
}

// FirstGood is when the first right answer came (start plus latency) to
// a request that started after after: for RTO, the moment after a
// disaster that clients were served again. ok is false when there is none
// yet.
func (l *Load) FirstGood(after time.Time) (time.Time, bool) {
	lo := l.record.offset(after)
	best := int64(math.MaxInt64)
	l.record.mu.RLock()
	for i := range l.record.samples {
		s := &l.record.samples[i]
		if s.code == codeOK && s.at > lo && s.at+s.latency < best {
			best = s.at + s.latency
		}
	}
	l.record.mu.RUnlock()
	if best == math.MaxInt64 {
		return time.Time{}, false
	}
	return l.began.Add(time.Duration(best)), true
}

// LastResult is when the last result came in (start plus latency of the
// request that ended last); ok is false before any.
func (l *Load) LastResult() (time.Time, bool) {
	end, seen := int64(0), false
	l.record.mu.RLock()
	for i := range l.record.samples {
		s := &l.record.samples[i]
		end, seen = max(end, s.at+s.latency), true
	}
	l.record.mu.RUnlock()
	return l.began.Add(time.Duration(end)), seen
}

// Samples is how many results the load has recorded.
func (l *Load) Samples() int {
	l.record.mu.RLock()
	defer l.record.mu.RUnlock()
	return len(l.record.samples)
}

// Lag says how late the requests started in [from, to) were against the
// constant schedule (request n is due (n+1)/Rate seconds after the load
// began): how many started more than a second late, and the worst delay.
// Only a load that ran out of workers falls behind.
func (l *Load) Lag(from, to time.Time) (late int64, worst time.Duration) {
	lo, hi := l.record.offset(from), l.record.offset(to)
	interval := int64(time.Second) / int64(l.cfg.Rate)
	l.record.mu.RLock()
	for i := range l.record.samples {
		s := &l.record.samples[i]
		if s.at < lo || s.at >= hi {
			continue
		}
		d := time.Duration(s.at - (int64(s.seq)+1)*interval)
		if d > time.Second {
			late++
		}
		worst = max(worst, d)
	}
	l.record.mu.RUnlock()
	return late, worst
}

// Settle waits until every request started before t has its result, so
// Stats up to t is final; it returns early with ctx's error. Requests are
// numbered in the order they start, so t is settled once a request that
// started at or after t has a result and so have all with lower numbers,
// or once the load has stopped.
func (l *Load) Settle(ctx context.Context, t time.Time) error {
	at := l.record.offset(t)
	for {
		l.record.mu.RLock()
		settled, changed := l.record.settled(at), l.record.changed
		l.record.mu.RUnlock()
		if settled {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.done:
			return nil
		case <-changed:
		}
	}
}

// settled reports whether all requests started before at have results;
// r.mu is held.
func (r *record) settled(at int64) bool {
	firstAfter, before := uint32(math.MaxUint32), 0
	for i := range r.samples {
		s := &r.samples[i]
		if s.at >= at {
			firstAfter = min(firstAfter, s.seq)
		} else {
			before++
		}
	}
	// Requests 0..firstAfter-1 are all the ones that started before at.
	return firstAfter != math.MaxUint32 && before == int(firstAfter)
}
