package drill

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// far is a time after every sample of a test.
var far = time.Now().Add(24 * time.Hour)

// checkAccounting asserts what must hold of any record: every sample is
// counted once, the timeline adds up to the same, the constant pacer never
// ran ahead of its rate, and quantiles are ordered.
func checkAccounting(t *testing.T, l *Load) PhaseResult {
	t.Helper()
	all := l.Stats(l.Began(), far)
	if all.Sent != int64(l.Samples()) {
		t.Errorf("stats count %d requests, the load recorded %d", all.Sent, l.Samples())
	}
	var kinds int64
	for _, n := range all.Errors {
		kinds += n
	}
	if kinds != all.Failed || all.Wrong != all.Errors[KindWrong] || all.Failed > all.Sent {
		t.Errorf("inconsistent stats: %+v", all)
	}
	var req, failed int64
	for _, s := range l.Timeline(l.Began()) {
		req += s.Requests
		failed += s.Failed
	}
	if req != all.Sent || failed != all.Failed {
		t.Errorf("timeline sums to %d requests, %d failed; stats say %d, %d", req, failed, all.Sent, all.Failed)
	}
	last, _ := l.LastResult()
	if limit := int64(float64(l.Rate())*last.Sub(l.Began()).Seconds()) + 1; all.Sent > limit {
		t.Errorf("sent %d requests, more than the rate allows by the last result (%d)", all.Sent, limit)
	}
	if !(all.P50 <= all.P99 && all.P99 <= all.P999 && all.P999 <= all.Max) {
		t.Errorf("quantiles out of order: %+v", all)
	}
	return all
}

func TestLoadCountsEveryRequest(t *testing.T) {
	srv := startFake(t, &fakeModel{})
	probes := learnedProbes(t, srv.URL, 7)
	l, err := StartLoad(t.Context(), LoadConfig{BaseURL: srv.URL, Rate: 200, Probes: probes})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "200 results", func() bool { return l.Samples() >= 200 })
	mid := time.Now()
	if err := l.Settle(t.Context(), mid); err != nil {
		t.Fatal(err)
	}
	settled := l.Stats(l.Began(), mid)
	l.Stop()
	if again := l.Stats(l.Began(), mid); again.Sent != settled.Sent {
		t.Errorf("settled stats changed: %d requests, then %d", settled.Sent, again.Sent)
	}
	all := checkAccounting(t, l)
	if all.Failed != 0 || all.Sent < 200 || all.P50 <= 0 {
		t.Fatalf("a right server: %+v", all)
	}
	if n := l.Samples(); n != int(all.Sent) {
		t.Errorf("samples after Stop %d", n)
	}
	t.Logf("200 rps: %d requests, p50 %.2fms p99 %.2fms max %.2fms", all.Sent, all.P50, all.P99, all.Max)
}

// TestLoadKindsByWindow switches the server between right answers, 500s
// and wrong answers. A window starts once the new behaviour is set and
// ends where the next switch waits for its requests to be answered, so
// every request of a window met that window's behaviour.
func TestLoadKindsByWindow(t *testing.T) {
	f := &fakeModel{}
	srv := startFake(t, f)
	probes := learnedProbes(t, srv.URL, 5)
	l, err := StartLoad(t.Context(), LoadConfig{BaseURL: srv.URL, Rate: 200, Probes: probes})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	const k = 40
	window := func(mode int32, kind string) PhaseResult {
		f.mode.Store(mode)
		from := time.Now()
		waitFor(t, "requests in mode "+kind, func() bool { return l.Stats(from, far).Sent >= k })
		to := time.Now()
		if err := l.Settle(t.Context(), to); err != nil {
			t.Fatal(err)
		}
		return l.Stats(from, to)
	}
	right := window(modeRight, "right")
	errs := window(modeError, "500")
	wrong := window(modeWrong, "wrong")
	back := window(modeRight, "right again")
	l.Stop()

	for _, w := range []PhaseResult{right, back} {
		if w.Failed != 0 || w.Sent < k {
			t.Errorf("right window: %+v", w)
		}
	}
	if errs.Failed != errs.Sent || errs.Errors["500"] != errs.Sent || errs.Wrong != 0 || errs.Sent < k || errs.P50 <= 0 {
		t.Errorf("500 window: %+v", errs)
	}
	if wrong.Failed != wrong.Sent || wrong.Wrong != wrong.Sent || wrong.Errors[KindWrong] != wrong.Sent || wrong.Sent < k {
		t.Errorf("wrong window: %+v", wrong)
	}
	all := checkAccounting(t, l)
	if all.Errors["500"] < errs.Sent || all.Wrong < wrong.Sent {
		t.Errorf("whole load: %+v", all)
	}
}

// TestLoadGatewayDown closes the server under load and starts another on
// the same address: the requests in between fail as "connection", and
// FirstGood finds the first right answer after the restart.
func TestLoadGatewayDown(t *testing.T) {
	f := &fakeModel{}
	srv := startFake(t, f)
	addr := srv.Listener.Addr().String()
	probes := learnedProbes(t, srv.URL, 5)
	l, err := StartLoad(t.Context(), LoadConfig{BaseURL: srv.URL, Rate: 200, Probes: probes, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	waitFor(t, "right answers", func() bool { return l.Samples() >= 40 })

	srv.Close()
	down := time.Now()
	waitFor(t, "connection failures", func() bool { return l.Stats(down, far).Errors[KindConnection] >= 40 })
	if at, ok := l.FirstGood(down); ok {
		t.Fatalf("a right answer at %v with the gateway down", at)
	}
	up := time.Now()
	serveOn(t, addr, f)
	waitFor(t, "the first right answer", func() bool { _, ok := l.FirstGood(down); return ok })
	if err := l.Settle(t.Context(), up); err != nil {
		t.Fatal(err)
	}
	first, _ := l.FirstGood(down)
	if first.Before(up) {
		t.Errorf("first good answer at %v, before the gateway came back at %v", first, up)
	}
	outage := l.Stats(down, up)
	if outage.Sent == 0 || outage.Errors[KindConnection] != outage.Sent || outage.Failed != outage.Sent {
		t.Errorf("outage: %+v, want every request failed as %q", outage, KindConnection)
	}
	if outage.P50 != 0 || outage.Max != 0 {
		t.Errorf("outage latencies %v/%v ms, want none: nothing was answered", outage.P50, outage.Max)
	}
	l.Stop()
	checkAccounting(t, l)
	t.Logf("outage: %d requests, RTO from restart %v", outage.Sent, first.Sub(up))
}

// TestLoadHungGateway: a gateway that never answers holds every worker
// until Timeout; the load stays within MaxWorkers, records timeouts, and
// falls behind its schedule instead of dropping requests.
func TestLoadHungGateway(t *testing.T) {
	f := &fakeModel{}
	f.mode.Store(modeHang)
	srv := startFake(t, f)
	f.mode.Store(modeRight)
	probes := learnedProbes(t, srv.URL, 3)
	f.mode.Store(modeHang)
	const workers = 4
	ctx, cancel := context.WithCancel(t.Context())
	counted := &countingTransport{next: http.DefaultTransport}
	l, err := StartLoad(ctx, LoadConfig{BaseURL: srv.URL, Rate: 100, Probes: probes,
		Timeout: 150 * time.Millisecond, Workers: 2, MaxWorkers: workers, Transport: counted})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "16 timeouts", func() bool { return l.Samples() >= 16 })
	cancel() // ending the context stops the load
	l.Stop()
	all := checkAccounting(t, l)
	if all.Errors[KindTimeout] != all.Sent || all.Max != 0 {
		t.Errorf("hung gateway: %+v, want every request timed out", all)
	}
	if m := counted.max.Load(); m > workers || m == 0 {
		t.Errorf("%d requests in flight at once, MaxWorkers is %d", m, workers)
	}
	// Request 15 cannot start before 3 rounds of 4 timeouts (≥ 450ms);
	// it was due at 160ms.
	if _, worst := l.Lag(l.Began(), far); worst < 250*time.Millisecond {
		t.Errorf("worst lag %v, want at least 250ms behind a schedule the workers could not keep", worst)
	}
}

// countingTransport counts the requests in flight on the client's side
// (a server may notice a timed-out client only later).
type countingTransport struct {
	next          http.RoundTripper
	inFlight, max atomic.Int64
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	n := c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	for m := c.max.Load(); n > m && !c.max.CompareAndSwap(m, n); m = c.max.Load() {
	}
	return c.next.RoundTrip(req)
}

func TestStartLoadErrors(t *testing.T) {
	srv := startFake(t, &fakeModel{})
	unlearned, err := NewProbeSet(t.Context(), nil, srv.URL, "iris", 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	learned := learnedProbes(t, srv.URL, 2)
	for _, tc := range []struct {
		cfg  LoadConfig
		want string
	}{
		{LoadConfig{BaseURL: srv.URL, Rate: 10, Probes: unlearned}, "not learned"},
		{LoadConfig{BaseURL: srv.URL, Rate: 0, Probes: learned}, "rate 0"},
		{LoadConfig{Rate: 10, Probes: learned}, "no gateway URL"},
	} {
		if _, err := StartLoad(t.Context(), tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestQuantileNearestRank(t *testing.T) {
	lat := make([]int64, 1000)
	for i := range lat {
		lat[i] = int64(i+1) * 1e6 // 1..1000 ms
	}
	for q, want := range map[float64]float64{0.5: 500, 0.99: 990, 0.999: 999, 1: 1000} {
		if got := quantileMs(lat, q); got != want {
			t.Errorf("q%v = %v, want %v", q, got, want)
		}
	}
	if got := quantileMs(lat[:1], 0.5); got != 1 {
		t.Errorf("one sample: %v", got)
	}
	if got := quantileMs(nil, 0.5); got != 0 {
		t.Errorf("no samples: %v", got)
	}
}

// BenchmarkStats measures Stats over the record of a 10-minute drill at
// 50 requests a second (30,000 samples), as the runner calls it per phase.
func BenchmarkStats(b *testing.B) {
	l := &Load{cfg: LoadConfig{Rate: 50}, done: make(chan struct{})}
	l.began = time.Now()
	l.record.init(l.began)
	for i := range 30000 {
		code := codeOK
		if i%97 == 0 {
			code = 503
		}
		l.record.samples = append(l.record.samples, loadSample{
			at: int64(i) * int64(20*time.Millisecond), latency: int64(i%1000) * 1000, seq: uint32(i), code: code})
	}
	from, to := l.began.Add(2*time.Minute), l.began.Add(7*time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		if st := l.Stats(from, to); st.Sent != 15000 {
			b.Fatalf("sent %d", st.Sent)
		}
	}
}
