package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
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
// body, its deadline and its tries.
type call struct {
	g        *Gateway
	m        *model
	p        *Policy
	ctx      context.Context // the client's: done when it goes away
	deadline time.Time       // the overall deadline; every try ends by it
	timeout  time.Duration
	req      *request
	hedging  bool

	results chan tryResult
	atts    []*attempt // every try, in launch order
	live    int        // tries whose result has not been read
	tries   int

	store [3]attempt // the first tries, without allocating
	ptrs  [3]*attempt
}

// attempt is one try of a call.
type attempt struct {
	r     *replica
	kind  string
	trial bool
	ctl   tryCtl
	done  bool // its result was read (by the call's goroutine only)
}

func newCall(g *Gateway, m *model, p *Policy, ctx context.Context, deadline time.Time, timeout time.Duration, req *request, slots int) *call {
	c := &call{g: g, m: m, p: p, ctx: ctx, deadline: deadline, timeout: timeout, req: req,
		results: make(chan tryResult, slots)} // every try can deliver without a reader
	c.atts = c.ptrs[:0]
	return c
}

func (c *call) tried(x *replica) bool {
	for _, a := range c.atts {
		if a.r == x {
			return true
		}
	}
	return false
}

func (c *call) inflightOn(x *replica) bool {
	for _, a := range c.atts {
		if a.r == x && !a.done {
			return true
		}
	}
	return false
}

// launch starts a try on a replica not yet tried by this request, or, when
// every usable one has been, one that is at least not busy with it now.
func (c *call) launch(kind string) bool {
	a, start := c.begin(kind)
	if a == nil {
		return false
	}
	go c.run(a, start)
	return true
}

// begin chooses the replica of a new try and records the try.
func (c *call) begin(kind string) (*attempt, time.Time) {
	now := time.Now()
	zone := c.g.zone()
	r, trial := c.m.acquire(now, c.p, zone, c.tried)
	if r == nil && kind != tryVote {
		r, trial = c.m.acquire(now, c.p, zone, c.inflightOn)
	}
	if r == nil {
		return nil, now
	}
	var a *attempt
	if c.tries < len(c.store) {
		a = &c.store[c.tries]
	} else {
		a = new(attempt)
	}
	c.tries++
	a.r, a.kind, a.trial = r, kind, trial
	c.atts = append(c.atts, a)
	c.live++
	c.m.mx.try(kind).Inc()
	return a, now
}

// run is one try's goroutine.
func (c *call) run(a *attempt, start time.Time) {
	res := c.g.send(&a.ctl, a.r, c.req, start, start.Add(c.p.Retry.PerTryTimeout), c.deadline)
	c.account(a, &res)
	c.results <- res
}

// account records a finished try on its replica and the model. It runs
// in the try's goroutine, not the reader: a hedge loser finishes after
// the request has returned, and its replica must still be told.
func (c *call) account(a *attempt, res *tryResult) {
	res.att, res.kind, res.trial = a, a.kind, a.trial
	o, msg := res.class.outcome(), ""
	if res.class == classCancelled {
		if _, outrun := a.ctl.state(); outrun {
			o = outcomeStalled
			msg = fmt.Sprintf("no answer after %v, while another replica answered the same request", res.took.Round(time.Millisecond))
		}
	} else {
		msg = res.errMsg()
	}
	c.m.finish(a.r, a.trial, o, res.took, msg)
	if res.class == classOK {
		c.m.lat.observe(res.took)
	}
}

// inlineWait is how long a first try without hedging runs in the request's
// own goroutine before it moves to one of its own (so that the request
// notices a client that went away).
const inlineWait = 5 * time.Millisecond

// first starts the request's first try in the request's own goroutine:
// most answers arrive before the hedge delay, and then no goroutine is
// started and none is woken to hand the answer over, which is most of
// what a try costs besides the network. It waits at most wait for the
// answer to start arriving; a try still unanswered then (or one that
// needs a new connection, or goes through net/http) continues in a
// goroutine of its own and delivers to c.results as any other. ok reports
// whether res holds the answer.
func (c *call) first(a *attempt, start time.Time, wait time.Duration) (res tryResult, ok bool) {
	pool := a.r.pool
	var pc *pconn
	if pool != nil {
		pc = pool.idleConn(start)
	}
	if pc == nil {
		go c.run(a, start)
		return res, false
	}
	tryDeadline := start.Add(c.p.Retry.PerTryTimeout)
	deadline := earliest(tryDeadline, c.deadline)
	if !a.ctl.attach(pc, len(c.req.body), earliest(start.Add(wait), deadline), deadline) {
		pc.nc.Close()
		return res, false // cannot happen: nothing aborts it yet
	}
	err := pool.write(pc, c.req)
	if err == nil {
		if _, err = pc.br.Peek(1); err != nil && time.Now().Before(deadline) && isTimeout(err) {
			// No answer yet: hand the connection to a goroutine with the
			// try's whole deadline, and let the request hedge.
			pc.nc.SetReadDeadline(deadline)
			go func() {
				var res tryResult
				err := pool.receive(pc, &a.ctl, c.req, &res)
				classify(&res, err, &a.ctl, a.r, c.req, start, tryDeadline, c.deadline)
				c.account(a, &res)
				c.results <- res
			}()
			return res, false
		}
		if err == nil {
			pc.nc.SetReadDeadline(deadline)
		}
	}
	if err != nil {
		a.ctl.detach()
		pc.nc.Close()
	} else {
		err = pool.receive(pc, &a.ctl, c.req, &res)
	}
	classify(&res, err, &a.ctl, a.r, c.req, start, tryDeadline, c.deadline)
	c.account(a, &res)
	return res, true
}

// collect marks a result's try as read.
func (c *call) collect(res *tryResult) {
	res.att.done = true
	c.live--
}

// done aborts the tries still running; their results land in the
// buffered channel and are dropped.
func (c *call) done() {
	for _, a := range c.atts {
		if !a.done {
			a.ctl.abort(false)
		}
	}
}

// outrun aborts the tries that started before the winner and are still
// unanswered: the winner (a hedge, or a retry) beat them, which tells
// that their replicas stall.
func (c *call) outrun(winner *attempt) {
	for _, a := range c.atts {
		if a == winner {
			return
		}
		if !a.done {
			a.ctl.abort(true)
		}
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
// gets a copy on another replica, the first good answer winning. A hedge
// the budget cannot pay for now is tried again later (the delay doubling
// each time), so that a try stuck on a paused replica gets its copy as
// soon as the budget allows rather than waiting out its timeout. At most
// retry.attempts tries in all; every try ends by the overall deadline.
func (c *call) proxy() reply {
	defer c.done()
	a0, t0 := c.begin(tryFirst)
	if a0 == nil {
		return c.unavailable()
	}
	var timer *time.Timer
	var hedgeC <-chan time.Time
	var wait, limit time.Duration // the current hedge delay, and how far a refused hedge's may grow
	start := func(d time.Duration) {
		if timer == nil {
			timer = getTimer(d)
		} else {
			timer.Reset(d)
		}
		wait, hedgeC = d, timer.C
	}
	// arm sets the hedge timer to fire in due; delay is the hedge delay,
	// from which a refused hedge's backoff grows.
	arm := func(due, delay time.Duration) {
		hedgeC = nil
		if c.hedging && c.p.Hedge.Enabled && c.tries < c.p.Retry.Attempts {
			limit = min(8*max(delay, time.Millisecond), max(c.p.Hedge.MaxDelay, delay))
			start(due)
		}
	}
	defer func() {
		if timer != nil {
			putTimer(timer)
		}
	}()
	hedges := c.hedging && c.p.Hedge.Enabled && c.tries < c.p.Retry.Attempts
	delay := inlineWait
	if hedges {
		delay = hedgeDelay(&c.p.Hedge, &c.m.lat)
	}
	inline, answered := c.first(a0, t0, delay)
	if !answered {
		arm(max(0, delay-time.Since(t0)), delay)
	}
	var last *tryResult
	for {
		var res tryResult
		if answered {
			res, answered = inline, false
		} else {
			select {
			case res = <-c.results:
			case <-hedgeC:
				c.hedge(&wait, limit, start, arm)
				continue
			case <-c.ctx.Done():
				c.countHedges(nil)
				return c.expired(last)
			}
		}
		{
			c.collect(&res)
			if res.class == classOK || res.class == classFinal {
				c.outrun(res.att)
				c.countHedges(res.att)
				return resultReply(&res, c.tries)
			}
			if res.class != classCancelled || last == nil {
				last = &res
			}
			if c.retryable(&res) && c.tries < c.p.Retry.Attempts && c.ctx.Err() == nil && time.Now().Before(c.deadline) {
				if c.m.retries.withdraw(time.Now()) {
					if c.launch(tryRetry) {
						d := hedgeDelay(&c.p.Hedge, &c.m.lat)
						arm(d, d)
						continue
					}
					c.m.retries.refund()
				} else {
					c.m.mx.retriesDenied.Inc()
				}
			}
			if c.live == 0 {
				c.countHedges(nil)
				return c.failed(last)
			}
		}
	}
}

// hedge is the hedge timer's firing: a copy of the request goes to another
// replica if the budget allows; if not, the timer is set again, for twice
// as long (up to limit).
func (c *call) hedge(wait *time.Duration, limit time.Duration, start func(time.Duration), arm func(time.Duration, time.Duration)) {
	if c.tries >= c.p.Retry.Attempts {
		return
	}
	if !c.m.hedges.withdraw(time.Now()) {
		start(min(max(2**wait, time.Millisecond), limit))
		return
	}
	if c.launch(tryHedge) {
		d := hedgeDelay(&c.p.Hedge, &c.m.lat)
		arm(d, d)
	} else {
		c.m.hedges.refund()
	}
}

func (c *call) countHedges(winner *attempt) {
	for _, a := range c.atts {
		if a.kind != tryHedge {
			continue
		}
		if a == winner {
			c.m.mx.hedgesWon.Inc()
		} else {
			c.m.mx.hedgesLost.Inc()
		}
	}
}

// unavailable answers a request no replica can take: at once, with the
// reason, rather than after timeouts.
func (c *call) unavailable() reply {
	rep := errorReply(http.StatusServiceUnavailable, c.m.unavailableMsg(time.Now()))
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

// Hedge timers are reused: every hedged request needs one, and most stop
// it unfired. Since Go 1.23 a stopped or reset timer's channel never
// delivers a stale value, so a pooled timer is as good as a new one.
var timers sync.Pool

func getTimer(d time.Duration) *time.Timer {
	if t, ok := timers.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

func putTimer(t *time.Timer) {
	t.Stop()
	timers.Put(t)
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
