package gateway

import (
	"context"
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
	replica     string   // who answered, for X-Bulwark-Replica
	replicaHdr  []string // the same as a header value, when the replica has one made
	tries       int
	shed        string // why the request was refused without a try, for metrics
}

func errorReply(status int, msg string) reply {
	return reply{status: status, contentType: "application/json", body: oip.AppendError(nil, msg)}
}

func resultReply(res *tryResult, tries int) reply {
	return reply{status: res.status, contentType: res.contentType, retryAfter: res.retryAfter,
		body: res.body, replica: res.r.addr, replicaHdr: res.r.addrHdr, tries: tries}
}

// call is one client request being served by one model: its buffered
// body, its deadline and the tries in flight.
type call struct {
	g        *Gateway
	m        *model
	p        *Policy
	ctx      context.Context // the client's: done when it goes away
	deadline time.Time       // the overall deadline: every try ends by it
	expiry   *time.Timer     // fires at deadline; made only when the request has to wait
	timeout  time.Duration
	req      *request
	hedging  bool
	// version is the model version the request names, or a vote chose:
	// only replicas labelled with it are tried. Empty: any.
	version string

	results  chan tryResult
	inflight map[*replica]*tryCtl
	tried    map[*replica]bool
	tries    int
	hedges   []*replica
}

// newCall starts serving a request within timeout from now. No context
// with a deadline is made for it: a request answered by its first try
// before the hedge delay (most of them) needs no timer at all.
func newCall(g *Gateway, m *model, p *Policy, ctx context.Context, timeout time.Duration, req *request, slots int) *call {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok {
		deadline = earliest(deadline, d)
	}
	return &call{g: g, m: m, p: p, ctx: ctx, deadline: deadline, timeout: timeout, req: req,
		results:  make(chan tryResult, slots), // every try can deliver without a reader
		inflight: map[*replica]*tryCtl{}, tried: map[*replica]bool{}}
}

// launch starts a try on a replica not yet tried by this request, or, when
// every usable one has been, one that is at least not busy with it now.
func (c *call) launch(kind string) bool {
	t := c.begin(kind)
	if t == nil {
		return false
	}
	go c.run(t)
	return true
}

// try is one try of a call, from its start to its result.
type try struct {
	r     *replica
	kind  string
	trial bool
	ctl   *tryCtl
	start time.Time
}

// begin chooses the replica of a new try and records the try; nil if no
// replica can take it.
func (c *call) begin(kind string) *try {
	now := time.Now()
	r, trial := c.m.acquire(now, c.p, c.g.zone(), c.version, func(x *replica) bool { return c.tried[x] })
	if r == nil && kind != tryVote {
		r, trial = c.m.acquire(now, c.p, c.g.zone(), c.version, func(x *replica) bool { return c.inflight[x] != nil })
	}
	if r == nil {
		return nil
	}
	c.tries++
	c.tried[r] = true
	ctl := new(tryCtl)
	c.inflight[r] = ctl
	if kind == tryHedge {
		c.hedges = append(c.hedges, r)
	}
	c.m.mx.tries[kind].Inc()
	return &try{r: r, kind: kind, trial: trial, ctl: ctl, start: now}
}

// run is a try's own goroutine: it sends the try and delivers the result.
func (c *call) run(t *try) {
	res := c.g.send(t.ctl, t.r, c.req, t.start, t.start.Add(c.p.Retry.PerTryTimeout), c.deadline)
	c.account(t, &res)
	c.results <- res
}

// account records a finished try on its replica and the model. It runs
// where the try ends, not in the reader: a hedge loser finishes after the
// request has returned, and its replica must still be told.
func (c *call) account(t *try, res *tryResult) {
	res.kind, res.trial = t.kind, t.trial
	c.m.finish(t.r, t.trial, res.class.outcome(), res.took, res.errMsg())
	if res.class == classOK {
		c.m.lat.observe(res.took)
	}
}

// expiredC fires when the overall deadline passes.
func (c *call) expiredC() <-chan time.Time {
	if c.expiry == nil {
		c.expiry = time.NewTimer(time.Until(c.deadline))
	}
	return c.expiry.C
}

// over reports whether the client went away or the deadline passed.
func (c *call) over() bool { return c.ctx.Err() != nil || !time.Now().Before(c.deadline) }

// done aborts the tries still running; their results land in the
// buffered channel and are dropped.
func (c *call) done() {
	if c.expiry != nil {
		c.expiry.Stop()
	}
	for _, ctl := range c.inflight {
		ctl.abort()
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
	first := c.begin(tryFirst)
	if first == nil {
		return c.unavailable()
	}
	hedges := c.hedging && c.p.Hedge.Enabled && c.tries < c.p.Retry.Attempts
	delay := inlineWait
	if hedges {
		delay = hedgeDelay(&c.p.Hedge, &c.m.lat)
	}
	var hedgeC <-chan time.Time
	var timer *time.Timer
	setTimer := func(d time.Duration) {
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d) // since Go 1.23 a reset timer never delivers a stale value
		}
		hedgeC = timer.C
	}
	arm := func() {
		hedgeC = nil
		if c.hedging && c.p.Hedge.Enabled && c.tries < c.p.Retry.Attempts {
			setTimer(hedgeDelay(&c.p.Hedge, &c.m.lat))
		}
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	inline, answered := c.first(first, delay)
	if !answered && hedges {
		setTimer(max(0, delay-time.Since(first.start)))
	}
	var last *tryResult
	refused := 0 // times the hedge budget said no
	for {
		var res tryResult
		if answered {
			res, answered = inline, false
		} else {
			select {
			case res = <-c.results:
			case <-hedgeC:
				hedgeC = nil
				if c.tries >= c.p.Retry.Attempts {
					continue
				}
				if !c.m.hedges.withdraw(time.Now()) {
					// The budget is spent for now, mostly by ordinary hedges
					// at the percentile; ask again later, so that a try stuck
					// on a stalled replica gets its copy once the budget
					// refills instead of waiting out its timeout.
					refused++
					setTimer(hedgeDelay(&c.p.Hedge, &c.m.lat) << min(refused, 3))
					continue
				}
				if c.launch(tryHedge) {
					arm()
				} else {
					c.m.hedges.refund()
				}
				continue
			case <-c.ctx.Done():
				c.countHedges(nil)
				return c.expired(last)
			case <-c.expiredC():
				c.countHedges(nil)
				return c.expired(last)
			}
		}
		delete(c.inflight, res.r)
		if res.class == classOK || res.class == classFinal {
			c.countHedges(res.r)
			return resultReply(&res, c.tries)
		}
		if res.class != classCancelled || last == nil {
			last = &res
		}
		if c.retryable(&res) && c.tries < c.p.Retry.Attempts && !c.over() {
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
	if c.ctx.Err() != nil {
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
