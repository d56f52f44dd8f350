package drill

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// LoadConfig is the steady load of a drill.
type LoadConfig struct {
	// BaseURL of the gateway, e.g. "http://127.0.0.1:8080".
	BaseURL string
	// Rate in requests per second (> 0).
	Rate int
	// Timeout of one request, answer included (default 5s).
	Timeout time.Duration
	// Workers vegeta starts with (default 16).
	Workers int
	// MaxWorkers bounds the requests in flight (default: enough for Rate
	// requests a second to all hang for Timeout, plus Workers).
	MaxWorkers int
	// Probes are sent round-robin; they must be learned.
	Probes *ProbeSet
	// Transport carries the requests (default: a fresh http.Transport).
	// The timeout is Timeout's, whatever a client around it would say.
	Transport http.RoundTripper
}

// Load is a constant-rate load of probe requests, sent with vegeta, and
// the record of every answer. It is safe for concurrent use: a runner
// reads Stats, Timeline and FirstGood while the load runs.
//
// Each request is recorded with the time it actually started. When every
// worker is busy (a hung gateway holds MaxWorkers requests until they time
// out), vegeta does not drop the requests it owes: it waits for a free
// worker and then sends them at once to catch up with the rate. So a
// request is never lost, but it may start later than its slot; Lag says by
// how much, and such requests count in the phase in which they started.
type Load struct {
	cfg    LoadConfig
	began  time.Time
	atk    *vegeta.Attacker
	done   chan struct{}
	record record
}

// StartLoad starts sending cfg.Rate requests a second to the probes'
// model at cfg.BaseURL at once, until Stop or until ctx ends.
func StartLoad(ctx context.Context, cfg LoadConfig) (*Load, error) {
	if cfg.Probes == nil || !cfg.Probes.Learned() {
		return nil, fmt.Errorf("start load: %w", ErrNotLearned)
	}
	if cfg.Rate <= 0 {
		return nil, fmt.Errorf("start load: rate %d, want more than 0 requests a second", cfg.Rate)
	}
	if cfg.BaseURL == "" {
		return nil, errors.New("start load: no gateway URL")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 16
	}
	if cfg.MaxWorkers <= 0 {
		cfg.MaxWorkers = cfg.Workers + int(float64(cfg.Rate)*cfg.Timeout.Seconds()+0.5)
	}
	cfg.MaxWorkers = max(cfg.MaxWorkers, cfg.Workers)
	if cfg.Transport == nil {
		cfg.Transport = &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: cfg.MaxWorkers,
		}
	}
	client := &http.Client{
		Transport: &probeTransport{next: cfg.Transport, probes: cfg.Probes},
		Timeout:   cfg.Timeout,
		// A redirect is an answer of its own to the drill, not a hop.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	l := &Load{cfg: cfg, done: make(chan struct{})}
	l.atk = vegeta.NewAttacker(
		vegeta.Client(client),
		vegeta.Workers(uint64(cfg.Workers)),
		vegeta.MaxWorkers(uint64(cfg.MaxWorkers)),
		vegeta.MaxBody(maxAnswerBytes),
	)
	target := vegeta.Target{
		Method: http.MethodPost,
		URL:    strings.TrimRight(cfg.BaseURL, "/") + cfg.Probes.InferPath(),
		Header: http.Header{"Content-Type": {"application/json"}},
	}
	targeter := func(t *vegeta.Target) error { *t = target; return nil }
	l.began = time.Now()
	l.record.init(l.began)
	results := l.atk.Attack(targeter, vegeta.ConstantPacer{Freq: cfg.Rate, Per: time.Second}, 0, "drill")
	go func() {
		defer close(l.done)
		for r := range results {
			l.record.add(r, l.classify(r))
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			l.atk.Stop()
		case <-l.done:
		}
	}()
	return l, nil
}

// Stop stops sending and waits for the requests in flight, which end
// within Timeout.
func (l *Load) Stop() {
	l.atk.Stop()
	<-l.done
}

// Began is when the load started; vegeta's schedule counts from it.
func (l *Load) Began() time.Time { return l.began }

// Rate is the requests a second the load sends.
func (l *Load) Rate() int { return l.cfg.Rate }

// Result kinds. A kind is "" for a right answer, the HTTP status for any
// other status ("503"), or one of these.
const (
	KindWrong      = "wrong"      // 200 whose outputs are not the expected ones
	KindTimeout    = "timeout"    // no whole answer within Timeout
	KindConnection = "connection" // refused, reset, closed early, ...
)

// Kind codes kept per sample: a small integer instead of a string.
const (
	codeOK         uint16 = 0
	codeWrong      uint16 = 1
	codeTimeout    uint16 = 2
	codeConnection uint16 = 3
	// codes from 100 up are HTTP statuses.
)

// classify names what a vegeta result was. vegeta reports a failure as a
// string only; the http.Client's timeout says "Client.Timeout exceeded"
// or "deadline exceeded", a dial timeout "i/o timeout", and anything else
// without a status is the connection's fault.
func (l *Load) classify(r *vegeta.Result) uint16 {
	switch {
	case r.Code == http.StatusOK:
		if l.cfg.Probes.Check(probeOfSeq(r.Seq, l.cfg.Probes.Len()), r.Body) != nil {
			return codeWrong
		}
		return codeOK
	case r.Code >= 100:
		return r.Code
	case strings.Contains(r.Error, "Timeout exceeded"), strings.Contains(r.Error, "deadline exceeded"),
		strings.Contains(r.Error, "timeout"):
		return codeTimeout
	}
	return codeConnection
}

func kindName(code uint16) string {
	switch code {
	case codeOK:
		return ""
	case codeWrong:
		return KindWrong
	case codeTimeout:
		return KindTimeout
	case codeConnection:
		return KindConnection
	}
	return strconv.Itoa(int(code))
}

// probeOfSeq is the probe vegeta's request number seq carries.
//
// vegeta numbers each request (Result.Seq) before it calls the targeter,
// and its workers call the targeter concurrently, so a targeter handing
// out probes in turn could give request 7 the probe of request 8. Instead
// probeTransport reads the number vegeta puts in the X-Vegeta-Seq header
// and picks the body from it: which probe a result answers is a function
// of its Seq, with no state shared between workers.
func probeOfSeq(seq uint64, n int) int { return int(seq % uint64(n)) }

const seqHeader = "X-Vegeta-Seq"

// probeTransport gives each request the body of its probe.
type probeTransport struct {
	next   http.RoundTripper
	probes *ProbeSet
}

func (t *probeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	seq, err := strconv.ParseUint(req.Header.Get(seqHeader), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("request without a valid %s header (%q): cannot pick its probe", seqHeader, req.Header.Get(seqHeader))
	}
	body := t.probes.Body(probeOfSeq(seq, t.probes.Len()))
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	out.ContentLength = int64(len(body))
	return t.next.RoundTrip(out)
}
