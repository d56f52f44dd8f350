package gateway

import (
	"bufio"
	"errors"
	"net"
	"net/url"
	"sync"
	"time"
)

// connPool sends tries to one plain-http replica over pooled HTTP/1.1
// connections, synchronously in the try's goroutine. net/http's Transport
// hands every request to two goroutines per connection (a writer and a
// reader) and back, and needs a context per request to cancel it; for the
// gateway, whose whole job is forwarding small requests, that costs more
// CPU than the forwarding. Here a try takes an idle connection (or dials
// one), writes the request, reads the whole answer and puts the
// connection back. The try's deadline is the connection's; aborting a try
// moves it to the past.
//
// A connection goes back to the pool only after a try that wrote its
// request and read its whole answer without error, on a connection the
// replica keeps open, and that nobody aborted: a try that was aborted
// (hedge lost, request over), timed out or failed anywhere closes its
// connection, since its deadlines were moved or its stream is at an
// unknown point. Every checkout sets both deadlines afresh.
//
// https replicas go through net/http (Gateway.client) instead.
type connPool struct {
	hostport string // to dial
	host     string // Host header
	prefix   string // the replica address's path, prepended to every request path

	mu     sync.Mutex
	idle   []*pconn // most recently used last
	closed bool     // the replica left the routing table: pool nothing more
}

const (
	maxIdlePerReplica = 256
	idleConnTimeout   = 90 * time.Second
	dialTimeout       = time.Second
	maxHeaderBytes    = 1 << 20
	// checkIdleAfter is how long a connection may sit idle before it is
	// checked for a close by the replica before reuse. Under load
	// connections are reused within milliseconds and never checked.
	checkIdleAfter = time.Second
)

var dialer = &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}

// newConnPool returns a pool for a plain-http replica address, nil for any
// other (https goes through net/http).
func newConnPool(addr string) *connPool {
	u, err := url.Parse(addr)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.User != nil {
		return nil
	}
	hp := u.Host
	if u.Port() == "" {
		hp = net.JoinHostPort(u.Hostname(), "80")
	}
	return &connPool{hostport: hp, host: u.Host, prefix: u.EscapedPath()}
}

// pconn is one pooled connection with its buffers.
type pconn struct {
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	reused bool // it carried a request before this one
}

// get returns a connection for a try that must end by deadline: an idle
// one, or a new one dialed by then (and within dialTimeout). Either way
// its read and write deadlines are deadline.
func (p *connPool) get(now, deadline time.Time) (*pconn, error) {
	if pc := p.idleConn(now, deadline); pc != nil {
		return pc, nil
	}
	return p.dial(now, deadline)
}

// idleConn takes the most recently used idle connection that is still
// good, with its deadlines set to deadline; nil if there is none.
func (p *connPool) idleConn(now, deadline time.Time) *pconn {
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			return nil
		}
		pc := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		idle := now.Sub(pc.idleAt)
		// The deadline is set before the check: a check on a connection
		// whose deadline passed would fail however healthy it is.
		ok := idle < idleConnTimeout && pc.nc.SetDeadline(deadline) == nil &&
			(idle < checkIdleAfter || (pc.br.Buffered() == 0 && connOpen(pc.nc)))
		if ok {
			pc.reused = true
			return pc
		}
		pc.nc.Close()
	}
}

func (p *connPool) dial(now, deadline time.Time) (*pconn, error) {
	d := *dialer
	d.Deadline = earliest(now.Add(dialTimeout), deadline)
	nc, err := d.Dial("tcp", p.hostport)
	if err != nil {
		return nil, err
	}
	if err := nc.SetDeadline(deadline); err != nil {
		nc.Close()
		return nil, err
	}
	return &pconn{nc: nc, br: bufio.NewReaderSize(nc, 4096), bw: bufio.NewWriterSize(nc, 4096)}, nil
}

// put returns a connection whose try completed cleanly to the pool,
// dropping the oldest idle one when it has expired or the pool is full.
func (p *connPool) put(pc *pconn, now time.Time) {
	pc.idleAt = now
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		pc.nc.Close()
		return
	}
	var drop *pconn
	if len(p.idle) > 0 && (len(p.idle) >= maxIdlePerReplica || now.Sub(p.idle[0].idleAt) >= idleConnTimeout) {
		drop = p.idle[0]
		copy(p.idle, p.idle[1:])
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
	}
	p.idle = append(p.idle, pc)
	p.mu.Unlock()
	if drop != nil {
		drop.nc.Close()
	}
}

// idleCount is the number of pooled connections.
func (p *connPool) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// closeIdle closes every idle connection; with forever, connections
// returned later are closed too (the replica is gone).
func (p *connPool) closeIdle(forever bool) {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.closed = p.closed || forever
	p.mu.Unlock()
	for _, pc := range idle {
		pc.nc.Close()
	}
}

// tryCtl lets a request abort one of its tries in flight: a hedge won, or
// the request is over. Aborting moves the deadlines of the try's
// connection to the past, so a blocked read or write returns at once; the
// try then closes that connection rather than pooling it.
type tryCtl struct {
	mu      sync.Mutex
	aborted bool
	conn    net.Conn // in use by the try
	cancel  func()   // for tries through net/http
}

var longAgo = time.Unix(1, 0)

func (t *tryCtl) abort() {
	t.mu.Lock()
	if !t.aborted {
		t.aborted = true
		if t.conn != nil {
			t.conn.SetDeadline(longAgo)
		}
		if t.cancel != nil {
			t.cancel()
		}
	}
	t.mu.Unlock()
}

// attach makes nc the try's connection; false if the try was aborted
// already (then nc is not the try's, and the caller closes it).
func (t *tryCtl) attach(nc net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.aborted {
		return false
	}
	t.conn = nc
	return true
}

// detach ends the try's use of its connection. It reports whether the
// try was aborted: then the connection's deadlines may have been moved
// to the past, and it must not be reused. After detach, abort no longer
// touches the connection, so a connection pooled after a detach that
// returned false cannot have its deadlines moved by this try.
func (t *tryCtl) detach() (aborted bool) {
	t.mu.Lock()
	t.conn = nil
	aborted = t.aborted
	t.mu.Unlock()
	return aborted
}

func (t *tryCtl) isAborted() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.aborted
}

var errAborted = errors.New("try cancelled")

// roundTrip sends req and reads the whole answer into res (status,
// contentType, retryAfter, body), by deadline. As with net/http and a
// POST, a request is not resent on another connection once written: a
// failure is the try's, and the gateway's retry (on another replica,
// within the budget) takes over. A reused connection that the replica
// closed before answering a byte says the replica restarted or dropped
// its connections: the other idle ones are closed too rather than each
// failing a try of its own.
func (p *connPool) roundTrip(ctl *tryCtl, deadline time.Time, req *request, res *tryResult) error {
	pc, err := p.get(time.Now(), deadline)
	if err != nil {
		return err
	}
	err = p.exchange(pc, ctl, req, res)
	if err != nil && pc.reused && errors.Is(err, errStaleConn) {
		p.closeIdle(false)
	}
	return err
}

// exchange writes req on pc and reads the answer, then pools pc if the
// exchange completed cleanly and the try was not aborted, or closes it.
func (p *connPool) exchange(pc *pconn, ctl *tryCtl, req *request, res *tryResult) error {
	if !ctl.attach(pc.nc) {
		pc.nc.Close()
		return errAborted
	}
	return p.finishExchange(pc, ctl, req, res, writeRequest(pc.bw, p, req))
}

// finishExchange reads the answer to a request written on pc (unless
// writing it failed with werr), detaches pc from the try and pools it
// only if everything went cleanly: the whole answer read, the replica
// keeping the connection open and sending nothing past the answer, the
// try not aborted. Otherwise pc is closed.
func (p *connPool) finishExchange(pc *pconn, ctl *tryCtl, req *request, res *tryResult, werr error) error {
	err, keep := werr, false
	if err == nil {
		keep, err = readResponse(pc.br, req.method, res)
	}
	aborted := ctl.detach()
	switch {
	case aborted:
		pc.nc.Close()
		return errAborted
	case err != nil:
		pc.nc.Close()
		return err
	case !keep || pc.br.Buffered() > 0:
		// Bytes past the answer would be read as the next try's answer.
		pc.nc.Close()
		return nil
	}
	p.put(pc, time.Now())
	return nil
}

func earliest(a, b time.Time) time.Time {
	if !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}
