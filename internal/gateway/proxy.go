package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/bulwark-ml/bulwark/internal/oip"
)

// reply is what the gateway answers a client: a replica's answer passed
// through byte for byte, or an error of its own.
type reply struct {
	status      int
	contentType string
	retryAfter  string
	body        []byte
	replica     string // who answered, for X-Bulwark-Replica
	tries       int
	shed        string // why the request was refused without a try, for metrics
}

func errorReply(status int, msg string) reply {
	return reply{status: status, contentType: "application/json", body: oip.AppendError(nil, msg)}
}

func resultReply(res *tryResult, tries int) reply {
	return reply{status: res.status, contentType: res.contentType, retryAfter: res.retryAfter,
		body: res.body, replica: res.r.addr, tries: tries}
}

// call is one client request being served by one model: its buffered
// body, its deadline and the tries in flight.
type call struct {
	g       *Gateway
	m       *model
	p       *Policy
	ctx     context.Context // the client's, with the overall deadline
	timeout time.Duration
	req     *request
	hedging bool
	// version is the model version the request names, or a vote chose:
	// only replicas labelled with it are tried. Empty: any.
	version string

	results  chan tryResult
	inflight map[*replica]context.CancelFunc
	tried    map[*replica]bool
	tries    int
	hedges   []*replica
}

func newCall(g *Gateway, m *model, p *Policy, ctx context.Context, timeout time.Duration, req *request, slots int) *call {
	return &call{g: g, m: m, p: p, ctx: ctx, timeout: timeout, req: req,
		results:  make(chan tryResult, slots), // every try can deliver without a reader
		inflight: map[*replica]context.CancelFunc{}, tried: map[*replica]bool{}}
}

// launch starts a try on a replica not yet tried by this request, or, when
// every usable one has been, one that is at least not busy with it now.
func (c *call) launch(kind string) bool {
	now := time.Now()
	r, trial := c.m.acquire(now, c.p, c.g.zone(), c.version, func(x *replica) bool { return c.tried[x] })
	if r == nil && kind != tryVote {
		r, trial = c.m.acquire(now, c.p, c.g.zone(), c.version, func(x *replica) bool { return c.inflight[x] != nil })
	}
	if r == nil {
		return false
	}
	c.tries++
	c.tried[r] = true
	tctx, cancel := context.WithTimeout(c.ctx, c.p.Retry.PerTryTimeout) // never past the overall deadline
	c.inflight[r] = cancel
	if kind == tryHedge {
		c.hedges = append(c.hedges, r)
	}
	c.m.metrics.tries.WithLabelValues(c.m.name, kind).Inc()
	go func() {
		res := c.g.send(c.ctx, tctx, r, c.req)
		res.kind, res.trial = kind, trial
		// Account here, not in the reader: a hedge loser finishes after
		// the request has returned, and its replica must still be told.
		c.m.finish(r, trial, res.class.outcome(), res.took, res.errMsg())
		if res.class == classOK {
			c.m.lat.observe(res.took)
		}
		c.results <- res
	}()
	return true
}

// done cancels the tries still running; their results land in the
// buffered channel and are dropped.
func (c *call) done() {
	for _, cancel := range c.inflight {
		cancel()
	}
}

func (c *call) retryable(res *tryResult) bool {
	switch res.class {
	case classConnect:
		return c.p.retryOn(RetryOnConnect)
	case classServer, classBusy:
		return c.p.retryOn(RetryOn5xx)
	case classTimeout:
		return c.p.retryOn(RetryOnTimeout)
	}
	return false
}

// proxy serves the request with retries and, if hedging, hedges: tries
// go one at a time to different replicas, a failure is retried at once
// if the retry budget allows, and a try unanswered after the hedge delay
// gets a copy on another replica, the first good answer winning. At most
// retry.attempts tries in all; the overall deadline bounds everything.
func (c *call) proxy() reply {
	defer c.done()
	if !c.launch(tryFirst) {
		return c.unavailable()
	}
	var hedgeC <-chan time.Time
	var timer *time.Timer
	arm := func() {
		if timer != nil {
			timer.Stop()
		}
		hedgeC = nil
		if c.hedging && c.p.Hedge.Enabled && c.tries < c.p.Retry.Attempts {
			timer = time.NewTimer(hedgeDelay(&c.p.Hedge, &c.m.lat))
			hedgeC = timer.C
		}
	}
	arm()
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var last *tryResult
	refused := 0 // times the hedge budget said no
	for {
		select {
		case res := <-c.results:
			c.inflight[res.r]()
			delete(c.inflight, res.r)
			if res.class == classOK || res.class == classFinal {
				c.countHedges(res.r)
				return resultReply(&res, c.tries)
			}
			if res.class != classCancelled || last == nil {
				last = &res
			}
			if c.retryable(&res) && c.tries < c.p.Retry.Attempts && c.ctx.Err() == nil {
				if c.m.retries.withdraw(time.Now()) {
					if c.launch(tryRetry) {
						arm()
						continue
					}
					c.m.retries.refund()
				} else {
					c.m.metrics.retriesDenied.WithLabelValues(c.m.name).Inc()
				}
			}
			if len(c.inflight) == 0 {
				c.countHedges(nil)
				return c.failed(last)
			}
		case <-hedgeC:
			hedgeC = nil
			if c.tries >= c.p.Retry.Attempts {
				break
			}
			if !c.m.hedges.withdraw(time.Now()) {
				// The budget is spent for now, mostly by ordinary hedges
				// at the percentile; ask again later, so that a try stuck
				// on a stalled replica gets its copy once the budget
				// refills instead of waiting out its timeout.
				refused++
				timer = time.NewTimer(hedgeDelay(&c.p.Hedge, &c.m.lat) << min(refused, 3))
				hedgeC = timer.C
				break
			}
			if c.launch(tryHedge) {
				arm()
			} else {
				c.m.hedges.refund()
			}
		case <-c.ctx.Done():
			c.countHedges(nil)
			return c.expired(last)
		}
	}
}

func (c *call) countHedges(winner *replica) {
	for _, h := range c.hedges {
		outcome := "lost"
		if h == winner {
			outcome = "won"
		}
		c.m.metrics.hedges.WithLabelValues(c.m.name, outcome).Inc()
	}
}

// unavailable answers a request no replica can take: at once, with the
// reason, rather than after timeouts.
func (c *call) unavailable() reply {
	rep := errorReply(http.StatusServiceUnavailable, c.m.unavailableMsg(time.Now(), c.version))
	rep.retryAfter, rep.shed = "1", "unavailable"
	return rep
}

// failed answers after the last try failed: a replica's own error answer
// is passed through; no answer at all becomes 502, or 504 for a timeout.
func (c *call) failed(last *tryResult) reply {
	switch last.class {
	case classServer, classBusy:
		return resultReply(last, c.tries)
	case classTimeout:
		rep := errorReply(http.StatusGatewayTimeout, fmt.Sprintf("model %s: %s: %s", c.m.name, c.triesText(), last.errMsg()))
		rep.replica, rep.tries = last.r.addr, c.tries
		return rep
	case classCancelled:
		return c.expired(last)
	}
	rep := errorReply(http.StatusBadGateway, fmt.Sprintf("model %s: %s, last from %s: %s", c.m.name, c.triesText(), last.r.addr, last.errMsg()))
	rep.replica, rep.tries = last.r.addr, c.tries
	return rep
}

func (c *call) triesText() string {
	if c.tries == 1 {
		return "1 try failed"
	}
	return fmt.Sprintf("all %d tries failed", c.tries)
}

// expired answers when the overall deadline passed or the client left.
func (c *call) expired(last *tryResult) reply {
	if errors.Is(c.ctx.Err(), context.Canceled) {
		return errorReply(statusClientClosed, "client closed the request")
	}
	msg := fmt.Sprintf("model %s: deadline of %v exceeded after %d tries", c.m.name, c.timeout, c.tries)
	if last != nil && last.class != classCancelled {
		msg += ", last from " + last.r.addr + ": " + last.errMsg()
	}
	rep := errorReply(http.StatusGatewayTimeout, msg)
	rep.tries = c.tries
	return rep
}

// statusClientClosed is nginx's code for a client that went away; nobody
// reads the answer, but it keeps such requests apart in the metrics.
const statusClientClosed = 499
