package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// maxResponseBytes bounds a replica's answer held in memory, as the oip
// client does.
const maxResponseBytes = 256 << 20

// newHTTPClient builds the one client every try and health check shares.
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

// send runs one try against r. parent is the client request's context:
// its end (deadline, client gone) is told apart from the try's own
// timeout, which is the replica's fault.
func (g *Gateway) send(parent, ctx context.Context, r *replica, req *request) tryResult {
	start := time.Now()
	res := tryResult{r: r}
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
		res.class, res.err = classConnect, err
		return res
	}
	if req.contentType != "" {
		hr.Header.Set("Content-Type", req.contentType)
	}
	hr.Header.Set("Accept", "application/json")
	resp, err := g.client.Do(hr)
	if err == nil {
		res.status = resp.StatusCode
		res.contentType = resp.Header.Get("Content-Type")
		res.retryAfter = resp.Header.Get("Retry-After")
		res.body, err = readAnswer(resp)
	}
	res.took = time.Since(start)
	switch {
	case err != nil && parent.Err() != nil:
		res.class, res.err = classCancelled, parent.Err()
	case err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		res.class, res.err = classTimeout, fmt.Errorf("no answer within the per-try timeout (%v)", res.took.Round(time.Millisecond))
	case err != nil && ctx.Err() != nil:
		res.class, res.err = classCancelled, ctx.Err()
	case err != nil:
		res.class, res.err = classConnect, err
	case res.status >= 200 && res.status < 300:
		res.class = classOK
	case res.status == http.StatusTooManyRequests:
		res.class = classBusy
	case res.status >= 500:
		res.class = classServer
	default:
		res.class = classFinal
	}
	return res
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
