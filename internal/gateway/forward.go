package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// maxResponseBytes bounds a replica's answer held in memory, as the oip
// client does.
const maxResponseBytes = 256 << 20

// newHTTPClient builds the client that tries and health checks of https
// replicas share (plain-http replicas have a connPool each, see h1.go).
// Pooling matters more than anything for the gateway's overhead: a new
// TCP connection per try would cost more than the forwarding itself, so
// up to 256 idle connections per replica are kept. Dialing gets a short
// timeout of its own, so a replica that black-holes SYNs is a fast,
// retryable connect error rather than a try that eats its whole budget.
// No proxy from the environment: replicas are internal. Redirects are
// answers, passed back as they are.
func newHTTPClient() *http.Client {
	t := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
		DisableCompression:  true, // bytes pass through as the replica sent them
	}
	return &http.Client{
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// class sorts a try's result by what the gateway does next.
type class uint8

const (
	classOK        class = iota // 2xx: the answer
	classFinal                  // 1xx/3xx/4xx: the replica worked; the answer goes back as is
	classServer                 // 5xx: retryable, the replica's fault
	classBusy                   // 429: retryable, no blame
	classConnect                // no HTTP answer: refused, reset, closed mid-body
	classTimeout                // the per-try timeout fired
	classCancelled              // we cancelled it: hedge lost, deadline, client gone
)

// outcome maps a class to what it says about the replica's health.
func (c class) outcome() outcome {
	switch c {
	case classOK, classFinal:
		return outcomeOK
	case classBusy:
		return outcomeBusy
	case classCancelled:
		return outcomeCancelled
	}
	return outcomeFailure
}

// tryResult is one try's answer, its body read in full: the gateway must
// see the whole answer before it can choose it over a hedge or a retry.
type tryResult struct {
	r           *replica
	kind        string
	trial       bool
	class       class
	status      int
	contentType string
	retryAfter  string
	body        []byte
	err         error
	took        time.Duration
}

func (t *tryResult) errMsg() string {
	if t.err != nil {
		return t.err.Error()
	}
	if t.class == classServer || t.class == classBusy {
		return fmt.Sprintf("HTTP %d: %s", t.status, bytes.TrimSpace(t.body[:min(len(t.body), 200)]))
	}
	return ""
}

// request is what the gateway forwards: a method, the client's path and
// query, and a body buffered once so any number of tries can replay it.
type request struct {
	method, path, query string
	contentType         string
	body                []byte
}

// send runs one try against r, which must answer by deadline: the try's
// own (the per-try timeout) or the request's overall one, whichever is
// first. overall tells them apart: running out of the per-try timeout is
// the replica's fault, reaching the request's deadline is not. ctl aborts
// the try (a hedge won, the request is over).
func (g *Gateway) send(ctl *tryCtl, r *replica, req *request, start, tryDeadline, overall time.Time) tryResult {
	res := tryResult{r: r}
	deadline := earliest(tryDeadline, overall)
	var err error
	if r.pool != nil {
		err = r.pool.roundTrip(ctl, deadline, req, &res)
	} else {
		err = g.sendHTTP(ctl, r, req, deadline, &res)
	}
	classify(&res, err, ctl, r, req, start, tryDeadline, overall)
	return res
}

// classify completes a try's result: how long it took, and its class
// from the error or the status.
func classify(res *tryResult, err error, ctl *tryCtl, r *replica, req *request, start, tryDeadline, overall time.Time) {
	res.r = r
	deadline := earliest(tryDeadline, overall)
	now := time.Now()
	res.took = now.Sub(start)
	switch {
	case err != nil && ctl.isAborted():
		res.class, res.err = classCancelled, context.Canceled
	case err != nil && !now.Before(deadline) && !overall.IsZero() && !overall.After(tryDeadline):
		res.class, res.err = classCancelled, context.DeadlineExceeded
	case err != nil && !now.Before(deadline):
		res.class, res.err = classTimeout, fmt.Errorf("no answer within the per-try timeout (%v)", res.took.Round(time.Millisecond))
	case err != nil:
		res.class, res.err = classConnect, fmt.Errorf("%s %s%s: %w", req.method, r.addr, req.path, err)
	case res.status >= 200 && res.status < 300:
		res.class = classOK
	case res.status == http.StatusTooManyRequests:
		res.class = classBusy
	case res.status >= 500:
		res.class = classServer
	default:
		res.class = classFinal
	}
}

// sendHTTP is a try through net/http, for https replicas.
func (g *Gateway) sendHTTP(ctl *tryCtl, r *replica, req *request, deadline time.Time, res *tryResult) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	ctl.mu.Lock()
	ctl.cancel = cancel
	aborted := ctl.aborted
	ctl.mu.Unlock()
	if aborted {
		return errAborted
	}
	u := r.addr + req.path
	if req.query != "" {
		u += "?" + req.query
	}
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		return err
	}
	if req.contentType != "" {
		hr.Header.Set("Content-Type", req.contentType)
	}
	hr.Header.Set("Accept", "application/json")
	resp, err := g.client.Do(hr)
	if err != nil {
		return err
	}
	res.status = resp.StatusCode
	res.contentType = resp.Header.Get("Content-Type")
	res.retryAfter = resp.Header.Get("Retry-After")
	res.body, err = readAnswer(resp)
	return err
}

func readAnswer(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	var buf bytes.Buffer
	if n := resp.ContentLength; n > 0 && n <= maxResponseBytes {
		buf.Grow(int(n) + 1)
	}
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, maxResponseBytes+1)); err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if buf.Len() > maxResponseBytes {
		return nil, fmt.Errorf("answer larger than %d bytes", maxResponseBytes)
	}
	return buf.Bytes(), nil
}
