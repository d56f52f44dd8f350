package gateway

import (
	"errors"
	"os"
	"time"
)

// inlineWait is how long a first try without hedging runs in the request's
// own goroutine before it moves to one of its own (so that the request
// notices a client that went away).
const inlineWait = 5 * time.Millisecond

// first runs the request's first try in the request's own goroutine: most
// answers arrive before the hedge delay, and then no goroutine is started,
// no timer is set and none is woken to hand the answer over, which is
// most of what a try costs besides the network. It waits at most wait for
// the answer to start arriving; a try still unanswered then (or one that
// needs a new connection, or goes through net/http) continues in a
// goroutine of its own and delivers to c.results as any other. answered
// reports whether res holds the try's result.
func (c *call) first(t *try, wait time.Duration) (res tryResult, answered bool) {
	pool := t.r.pool
	tryDeadline := t.start.Add(c.p.Retry.PerTryTimeout)
	deadline := earliest(tryDeadline, c.deadline)
	var pc *pconn
	if pool != nil {
		pc = pool.idleConn(t.start, deadline)
	}
	if pc == nil {
		go c.run(t)
		return res, false
	}
	if !t.ctl.attach(pc.nc) {
		pc.nc.Close() // cannot happen: nothing aborts it before the request's goroutine
		go c.run(t)
		return res, false
	}
	err := writeRequest(pc.bw, pool, c.req)
	if err == nil {
		if readBy := t.start.Add(wait); readBy.Before(deadline) {
			pc.nc.SetReadDeadline(readBy)
			_, err = pc.br.Peek(1)
			if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(deadline) {
				// No answer yet: the connection goes on to a goroutine of
				// its own with the try's whole deadline, and the request
				// may hedge. Nothing else touches it before that
				// goroutine starts: only the request aborts its tries.
				pc.nc.SetReadDeadline(deadline)
				go func() {
					var res tryResult
					err := pool.finishExchange(pc, t.ctl, c.req, &res, nil)
					classify(&res, err, t.ctl, t.r, c.req, t.start, tryDeadline, c.deadline)
					c.account(t, &res)
					c.results <- res
				}()
				return res, false
			}
			if err == nil {
				pc.nc.SetReadDeadline(deadline)
			} else {
				err = staleIfReset(err) // not a byte of an answer
			}
		}
	}
	err = pool.finishExchange(pc, t.ctl, c.req, &res, err)
	if err != nil && pc.reused && errors.Is(err, errStaleConn) {
		pool.closeIdle(false)
	}
	classify(&res, err, t.ctl, t.r, c.req, t.start, tryDeadline, c.deadline)
	c.account(t, &res)
	return res, true
}
