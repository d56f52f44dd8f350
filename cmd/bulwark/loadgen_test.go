package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/gateway"
	"github.com/bulwark-ml/bulwark/internal/oip"
)

// An open-loop load generator for the fault tests: requests are launched
// at a fixed rate whatever the answers do (a slow or failing server does
// not slow the load down, as it would with a closed loop), each in its own
// goroutine with its own deadline, and every result is recorded.

// loadConfig describes one load. Both Max and MaxTime bound it.
type loadConfig struct {
	URL      string        // the inference endpoint
	Rate     int           // requests launched per second
	Max      int           // at most this many requests
	MaxTime  time.Duration // launched for at most this long
	Deadline time.Duration // each request's deadline: the client's, and sent as X-Bulwark-Timeout
	Body     func(seq int) []byte
	// Check judges a 200 answer: it returns the labels it carries, or why
	// it is not the right answer to request seq.
	Check func(seq int, body []byte) ([]int64, error)
}

// loadResult is what happened to one request.
type loadResult struct {
	Seq     int
	Start   time.Time
	Latency time.Duration
	Status  int     // 0 when no HTTP answer came back
	Err     error   // no answer: refused, reset, or the client's deadline
	Timeout bool    // Err is the client's deadline passing
	Wrong   error   // a 200 whose answer is not the reference
	Labels  []int64 // the answer's labels
	Replica string  // X-Bulwark-Replica
	Tries   int     // X-Bulwark-Tries
	Msg     string  // the body of an answer other than 200
}

func (r *loadResult) ok() bool { return r.Err == nil && r.Status == http.StatusOK && r.Wrong == nil }

func (r *loadResult) String() string {
	switch {
	case r.Err != nil:
		return fmt.Sprintf("#%d after %v: %v (client deadline passed: %v)", r.Seq, r.Latency.Round(time.Millisecond), r.Err, r.Timeout)
	case r.Wrong != nil:
		return fmt.Sprintf("#%d after %v from %s: wrong answer: %v", r.Seq, r.Latency.Round(time.Millisecond), r.Replica, r.Wrong)
	}
	return fmt.Sprintf("#%d after %v from %q (%d tries): HTTP %d %s", r.Seq, r.Latency.Round(time.Millisecond), r.Replica, r.Tries, r.Status, r.Msg)
}

type loadGen struct {
	cfg      loadConfig
	tr       *http.Transport
	client   *http.Client
	began    time.Time
	launched atomic.Int64
	stopc    chan struct{}
	stopOnce sync.Once
	ended    chan struct{} // closed when the launcher returns
	wg       sync.WaitGroup

	mu      sync.Mutex
	results []loadResult
}

// startLoad starts launching requests; stop ends the load and returns the
// results. The test's cleanup stops it too.
func startLoad(t *testing.T, cfg loadConfig) *loadGen {
	t.Helper()
	tr := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: 30 * time.Second, DisableCompression: true}
	l := &loadGen{
		cfg: cfg, tr: tr, client: &http.Client{Transport: tr, Timeout: cfg.Deadline},
		began: time.Now(), stopc: make(chan struct{}), ended: make(chan struct{}),
	}
	t.Cleanup(func() { l.stop() })
	go l.run()
	return l
}

func (l *loadGen) run() {
	defer close(l.ended)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	end := time.NewTimer(l.cfg.MaxTime)
	defer end.Stop()
	// After a stall (a busy machine) the launcher catches up, but at most
	// 50 ms worth of requests per tick, so as not to fire a burst.
	burst := max(1, l.cfg.Rate/20)
	for {
		select {
		case <-l.stopc:
			return
		case <-end.C:
			return
		case now := <-tick.C:
			due := min(int(now.Sub(l.began).Seconds()*float64(l.cfg.Rate)), l.cfg.Max)
			for n := 0; int(l.launched.Load()) < due && n < burst; n++ {
				seq := int(l.launched.Add(1)) - 1
				l.wg.Add(1)
				go l.one(seq)
			}
			if int(l.launched.Load()) >= l.cfg.Max {
				return
			}
		}
	}
}

func (l *loadGen) one(seq int) {
	defer l.wg.Done()
	res := loadResult{Seq: seq, Start: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.Deadline)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.cfg.URL, bytes.NewReader(l.cfg.Body(seq)))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(gateway.TimeoutHeader, l.cfg.Deadline.String())
	resp, err := l.client.Do(req)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		res.Status = resp.StatusCode
		res.Replica = resp.Header.Get(gateway.ReplicaHeader)
		fmt.Sscan(resp.Header.Get(gateway.TriesHeader), &res.Tries)
	}
	res.Latency = time.Since(res.Start)
	switch {
	case err != nil:
		res.Status, res.Err = 0, err
		var ne net.Error
		res.Timeout = ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
	case res.Status == http.StatusOK:
		res.Labels, res.Wrong = l.cfg.Check(seq, body)
	default:
		var e oip.Error
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			res.Msg = e.Error
		} else {
			res.Msg = string(body[:min(len(body), 200)])
		}
	}
	l.mu.Lock()
	l.results = append(l.results, res)
	l.mu.Unlock()
}

// launchedCount is how many requests have been launched so far.
func (l *loadGen) launchedCount() int { return int(l.launched.Load()) }

// waitLaunched waits until n requests have been launched: the load's own
// progress is the clock the fault tests inject faults by.
func (l *loadGen) waitLaunched(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for l.launchedCount() < n {
		select {
		case <-l.ended:
			if l.launchedCount() < n {
				t.Fatalf("the load ended after %d requests, before reaching %d", l.launchedCount(), n)
			}
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d requests launched in 30s", l.launchedCount(), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// count counts the results so far that match.
func (l *loadGen) count(match func(*loadResult) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for i := range l.results {
		if match(&l.results[i]) {
			n++
		}
	}
	return n
}

// stop stops launching, waits for the requests in flight (each bounded by
// its deadline) and returns every result in launch order.
func (l *loadGen) stop() []loadResult {
	l.stopOnce.Do(func() { close(l.stopc) })
	<-l.ended
	l.wg.Wait()
	l.tr.CloseIdleConnections()
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Clone(l.results)
	slices.SortFunc(out, func(a, b loadResult) int { return a.Seq - b.Seq })
	return out
}

// loadSummary counts the outcomes of a set of results.
type loadSummary struct {
	Requests, OK, Failed, Wrong, Timeouts, NoAnswer int
	Status                                          map[int]int
	Tries                                           int
	MaxLatency                                      time.Duration
}

func summarizeLoad(rs []loadResult) loadSummary {
	s := loadSummary{Status: map[int]int{}}
	for i := range rs {
		r := &rs[i]
		s.Requests++
		s.Tries += r.Tries
		s.MaxLatency = max(s.MaxLatency, r.Latency)
		switch {
		case r.Err != nil:
			s.Failed++
			s.NoAnswer++
			if r.Timeout {
				s.Timeouts++
			}
		case r.Wrong != nil:
			s.Wrong++
		case r.Status != http.StatusOK:
			s.Failed++
		default:
			s.OK++
		}
		if r.Err == nil {
			s.Status[r.Status]++
		}
	}
	return s
}

func (s loadSummary) String() string {
	return fmt.Sprintf("%d requests: %d ok, %d failed (%d without an answer, %d past the client deadline), %d wrong; statuses %v; %d tries; slowest %v",
		s.Requests, s.OK, s.Failed, s.NoAnswer, s.Timeouts, s.Wrong, s.Status, s.Tries, s.MaxLatency.Round(time.Millisecond))
}

// describe lists up to n of the results that match, for a failure message.
func describeLoad(rs []loadResult, n int, match func(*loadResult) bool) string {
	var b strings.Builder
	shown, total := 0, 0
	for i := range rs {
		if !match(&rs[i]) {
			continue
		}
		total++
		if shown < n {
			b.WriteString("\n  " + rs[i].String())
			shown++
		}
	}
	if total > shown {
		fmt.Fprintf(&b, "\n  ... and %d more", total-shown)
	}
	return b.String()
}

func loadFailed(r *loadResult) bool { return !r.ok() }
