package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Fault is what a rule does to a request it matches.
type Fault int

const (
	// Status answers with Rule.Status (and an S3-style XML error body)
	// without forwarding the request.
	Status Fault = iota + 1
	// Delay waits Rule.Delay, then forwards the request.
	Delay
	// Drop closes the client's connection without any answer.
	Drop
	// Truncate forwards the request, then cuts the response body after
	// Rule.Bytes bytes by aborting the connection.
	Truncate
	// LoseAnswer forwards the request and lets the target act on it, then
	// drops the client's connection instead of relaying the answer: the
	// client cannot tell whether its request took effect.
	LoseAnswer
	// CorruptRequest forwards the request with the byte at offset
	// Rule.Bytes of its body flipped, as a faulty link or NIC would.
	CorruptRequest
)

func (f Fault) String() string {
	switch f {
	case Status:
		return "status"
	case Delay:
		return "delay"
	case Drop:
		return "drop"
	case Truncate:
		return "truncate"
	case LoseAnswer:
		return "lose-answer"
	case CorruptRequest:
		return "corrupt-request"
	}
	return fmt.Sprintf("fault(%d)", int(f))
}

// Rule selects requests and says which fault to inject. Empty selectors
// match everything.
type Rule struct {
	Method   string // e.g. "PUT"; "" matches any method
	Path     string // substring of the URL path; "" matches any path
	QueryKey string // the request must carry this query parameter (e.g. "partNumber")

	Fault  Fault
	Status int           // for Status; 503 when zero
	Delay  time.Duration // for Delay
	Bytes  int64         // for Truncate: bytes relayed; for CorruptRequest: offset of the flipped byte

	Skip  int // let the first Skip matching requests through untouched
	Times int // inject on at most Times matching requests after Skip; 0 means on all
	Every int // inject on every Every-th matching request after Skip; 0 or 1 means on each
}

func (r *Rule) matches(req *http.Request) bool {
	if r.Method != "" && !strings.EqualFold(r.Method, req.Method) {
		return false
	}
	if r.Path != "" && !strings.Contains(req.URL.Path, r.Path) {
		return false
	}
	if r.QueryKey != "" && !req.URL.Query().Has(r.QueryKey) {
		return false
	}
	return true
}

// Stats counts what the proxy saw since it started (or since ResetStats).
type Stats struct {
	Requests  int64 // requests received
	Forwarded int64 // requests passed on to the target (delayed ones included)
	Injected  int64 // requests hit by a fault
}

type ruleState struct {
	Rule
	matched int
	fired   int
}

// Proxy is a fault-injecting reverse proxy listening on a loopback port.
type Proxy struct {
	target *url.URL
	rp     *httputil.ReverseProxy
	srv    *http.Server
	ln     net.Listener

	mu    sync.Mutex
	rules []*ruleState

	requests, forwarded, injected atomic.Int64
}

// Start listens on 127.0.0.1 on a free port and proxies to target
// (e.g. "http://127.0.0.1:9000"). Close stops it.
func Start(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("faultproxy: bad target %q", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{target: u, ln: ln}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = u.Scheme
			pr.Out.URL.Host = u.Host
			// Keep the signed Host header: the signature covers it.
			pr.Out.Host = pr.In.Host
		},
		ModifyResponse: func(resp *http.Response) error {
			if n, ok := resp.Request.Context().Value(truncateKey{}).(int64); ok {
				resp.Body = &cutBody{rc: resp.Body, left: n}
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// The target is down or went away: answer like a load balancer.
			w.WriteHeader(http.StatusBadGateway)
		},
		// Cut bodies and dropped targets are the point here, not news.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// URL is the proxy's base URL, e.g. "http://127.0.0.1:40123".
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops listening and closes open connections.
func (p *Proxy) Close() error { return p.srv.Close() }

// SetRules replaces the rules; the first matching rule that still has
// firings left decides a request's fate.
func (p *Proxy) SetRules(rules ...Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = p.rules[:0]
	for _, r := range rules {
		p.rules = append(p.rules, &ruleState{Rule: r})
	}
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	return Stats{Requests: p.requests.Load(), Forwarded: p.forwarded.Load(), Injected: p.injected.Load()}
}

// ResetStats sets the counters to zero.
func (p *Proxy) ResetStats() {
	p.requests.Store(0)
	p.forwarded.Store(0)
	p.injected.Store(0)
}

// pick returns the rule to apply to req, or nil to pass it through.
func (p *Proxy) pick(req *http.Request) *Rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, rs := range p.rules {
		if !rs.matches(req) {
			continue
		}
		rs.matched++
		if rs.matched <= rs.Skip {
			return nil
		}
		if rs.Times > 0 && rs.fired >= rs.Times {
			continue
		}
		if rs.Every > 1 && (rs.matched-rs.Skip)%rs.Every != 0 {
			return nil
		}
		rs.fired++
		r := rs.Rule
		return &r
	}
	return nil
}

type truncateKey struct{}

// ServeHTTP applies the first matching rule, then forwards (or not).
func (p *Proxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	p.requests.Add(1)
	rule := p.pick(req)
	if rule != nil {
		p.injected.Add(1)
		switch rule.Fault {
		case Status:
			p.answerStatus(w, req, rule.Status)
			return
		case Drop:
			dropConnection(w)
			return
		case Delay:
			t := time.NewTimer(rule.Delay)
			select {
			case <-t.C:
			case <-req.Context().Done():
				t.Stop()
				return
			}
		case Truncate:
			req = req.WithContext(context.WithValue(req.Context(), truncateKey{}, rule.Bytes))
		case CorruptRequest:
			req.Body = &flipBody{rc: req.Body, at: rule.Bytes}
		case LoseAnswer:
			p.forwarded.Add(1)
			p.rp.ServeHTTP(httptest.NewRecorder(), req)
			dropConnection(w)
			return
		}
	}
	p.forwarded.Add(1)
	p.rp.ServeHTTP(w, req)
}

// answerStatus replies with an S3-style error document so that S3 clients
// classify the fault as they would a real one.
func (p *Proxy) answerStatus(w http.ResponseWriter, req *http.Request, status int) {
	if status == 0 {
		status = http.StatusServiceUnavailable
	}
	// Drain the body so the client is not stuck writing to a closed pipe
	// (and sees the status rather than a reset).
	_, _ = io.Copy(io.Discard, io.LimitReader(req.Body, 64<<20))
	code := "InternalError"
	switch status {
	case http.StatusServiceUnavailable:
		code = "SlowDown"
	case http.StatusTooManyRequests:
		code = "Throttling"
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	if req.Method != http.MethodHead {
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected by faultproxy</Message><Resource>%s</Resource></Error>`, code, req.URL.Path)
	}
}

func dropConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		// An RST rather than a FIN, like a crashed peer.
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// cutBody ends a response body early with an error, which makes the
// reverse proxy abort the client's connection mid-body.
type cutBody struct {
	rc   io.ReadCloser
	left int64
}

var errCut = errors.New("faultproxy: response body cut")

func (c *cutBody) Read(b []byte) (int, error) {
	if c.left <= 0 {
		return 0, errCut
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.rc.Read(b)
	c.left -= int64(n)
	return n, err
}

func (c *cutBody) Close() error { return c.rc.Close() }

// flipBody inverts the bits of the byte at offset at.
type flipBody struct {
	rc  io.ReadCloser
	at  int64
	pos int64
}

func (f *flipBody) Read(b []byte) (int, error) {
	n, err := f.rc.Read(b)
	if f.at >= f.pos && f.at < f.pos+int64(n) {
		b[f.at-f.pos] ^= 0xff
	}
	f.pos += int64(n)
	return n, err
}

func (f *flipBody) Close() error { return f.rc.Close() }
