package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestForwardsAnswerByteForByte(t *testing.T) {
	a := newFake(t, modeOK)
	_, base := startGateway(t, testConfig(testPolicy(), a))
	res := infer(t, base, "r1")
	want := `{"model_name":"iris","id":"r1","outputs":[{"name":"y","datatype":"FP32","shape":[2],"data":[1,2]}]}`
	if res.status != 200 || string(res.body) != want {
		t.Fatalf("got %d %s", res.status, res.body)
	}
	if res.replica != a.addr || res.tries != 1 {
		t.Errorf("headers: replica %q tries %d", res.replica, res.tries)
	}
}

func TestUnknownModelAndMethod(t *testing.T) {
	a := newFake(t, modeOK)
	_, base := startGateway(t, testConfig(testPolicy(), a))
	resp, err := http.Post(base+"/v2/models/nope/infer", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("unknown model: %d", resp.StatusCode)
	}
	resp, err = http.Get(base + "/v2/models/iris/infer")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("GET infer: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// checkRetried asserts every request succeeded on good, and that no
// replica saw the same request twice.
func checkRetried(t *testing.T, base string, n int, bad, good *fakeReplica) {
	t.Helper()
	for i := range n {
		id := fmt.Sprint("req-", i)
		res := infer(t, base, id)
		if res.status != 200 || res.replica != good.addr {
			t.Fatalf("request %d: %d from %s: %s", i, res.status, res.replica, res.body)
		}
		if bad.seen(id) > 1 || good.seen(id) != 1 {
			t.Fatalf("request %d: bad saw it %d times, good %d", i, bad.seen(id), good.seen(id))
		}
	}
	if bad.infers.Load() == 0 {
		t.Error("the bad replica was never tried")
	}
}

func TestRetryOn5xx(t *testing.T) {
	bad, good := newFake(t, modeFail), newFake(t, modeOK)
	_, base := startGateway(t, testConfig(testPolicy(), bad, good))
	checkRetried(t, base, 20, bad, good)
}

func TestRetryOn429(t *testing.T) {
	bad, good := newFake(t, modeBusy), newFake(t, modeOK)
	_, base := startGateway(t, testConfig(testPolicy(), bad, good))
	checkRetried(t, base, 20, bad, good)
}

func TestRetryOnClosedConnection(t *testing.T) {
	bad, good := newFake(t, modeClose), newFake(t, modeOK)
	_, base := startGateway(t, testConfig(testPolicy(), bad, good))
	checkRetried(t, base, 20, bad, good)
}

func TestRetryOnConnectionRefused(t *testing.T) {
	dead, good := newFake(t, modeOK), newFake(t, modeOK)
	dead.srv.Close() // its address now refuses connections
	p := testPolicy()
	p.Health.Interval = time.Hour // keep it in rotation: the retry, not the checker, must save us
	_, base := startGateway(t, testConfig(p, dead, good))
	for i := range 20 {
		res := infer(t, base, fmt.Sprint("req-", i))
		if res.status != 200 || res.replica != good.addr || res.tries > 2 {
			t.Fatalf("request %d: %d from %s after %d tries: %s", i, res.status, res.replica, res.tries, res.body)
		}
	}
}

func TestRetryOnPerTryTimeout(t *testing.T) {
	hung, good := newFake(t, modeHang), newFake(t, modeOK)
	p := testPolicy()
	p.Retry.PerTryTimeout = 50 * time.Millisecond
	_, base := startGateway(t, testConfig(p, hung, good))
	checkRetried(t, base, 10, hung, good)
}

func TestClientErrorNotRetried(t *testing.T) {
	rej, good := newFake(t, modeReject), newFake(t, modeOK)
	_, base := startGateway(t, testConfig(testPolicy(), rej, good))
	rejected := 0
	for i := range 30 {
		res := infer(t, base, fmt.Sprint("req-", i))
		switch {
		case res.status == 400 && res.replica == rej.addr && res.tries == 1:
			rejected++
			if !strings.Contains(string(res.body), "wrong shape") {
				t.Errorf("400 not passed through: %s", res.body)
			}
		case res.status == 200 && res.replica == good.addr && res.tries == 1:
		default:
			t.Fatalf("request %d: %d from %s after %d tries", i, res.status, res.replica, res.tries)
		}
	}
	if rejected == 0 || rej.infers.Load()+good.infers.Load() != 30 {
		t.Errorf("rejected %d; tries %d+%d for 30 requests", rejected, rej.infers.Load(), good.infers.Load())
	}
}

func TestDeadlineNeverExceeded(t *testing.T) {
	a, b := newFake(t, modeHang), newFake(t, modeHang)
	p := testPolicy()
	p.Hedge = DefaultPolicy().Hedge
	p.Hedge.Delay.Fixed = 20 * time.Millisecond
	p.Hedge.Budget = 1
	_, base := startGateway(t, testConfig(p, a, b))
	res := infer(t, base, "late", TimeoutHeader, "200ms")
	if res.status != http.StatusGatewayTimeout || !strings.Contains(string(res.body), "deadline of 200ms exceeded") {
		t.Fatalf("got %d %s", res.status, res.body)
	}
	bad := infer(t, base, "bad", TimeoutHeader, "soon")
	if bad.status != 400 {
		t.Errorf("invalid timeout header: %d", bad.status)
	}
}

func TestRetryBudgetCapsExtraTries(t *testing.T) {
	var fakes []*fakeReplica
	for range 3 {
		fakes = append(fakes, newFake(t, modeFlaky))
	}
	p := testPolicy()
	p.Retry.Budget, p.Retry.MinPerSecond = 0.2, 0
	_, base := startGateway(t, testConfig(p, fakes...))
	const n = 200
	for i := range n {
		infer(t, base, fmt.Sprint("req-", i))
	}
	tries := 0
	for _, f := range fakes {
		tries += int(f.infers.Load())
	}
	extra := tries - n
	t.Logf("%d requests, %d tries", n, tries)
	if extra > n/5 {
		t.Errorf("%d extra tries for %d requests, budget allows %d", extra, n, n/5)
	}
	if extra == 0 {
		t.Error("no retries at all")
	}
	if metricValue(t, base, "bulwark_gateway_retries_denied_total") == 0 {
		t.Error("no retry was denied")
	}
}

func TestHedgingHidesHungReplica(t *testing.T) {
	hung, good := newFake(t, modeHang), newFake(t, modeOK)
	p := testPolicy()
	p.Hedge = HedgePolicy{Enabled: true, Delay: HedgeDelay{Fixed: 10 * time.Millisecond}, Percentile: 0.95, MaxDelay: time.Second, Budget: 1}
	p.Retry.Attempts = 2
	_, base := startGateway(t, testConfig(p, hung, good))
	for i := range 40 {
		if res := infer(t, base, fmt.Sprint("req-", i)); res.status != 200 {
			t.Fatalf("request %d: %d %s", i, res.status, res.body)
		}
	}
	if won := metricValue(t, base, "bulwark_gateway_hedges_total", `outcome="won"`); won == 0 {
		t.Error("no hedge won")
	}
	if hung.infers.Load() == 0 {
		t.Error("the hung replica was never tried")
	}
}

func TestAdaptiveHedging(t *testing.T) {
	hung, good := newFake(t, modeHang), newFake(t, modeOK)
	p := testPolicy()
	p.Hedge = DefaultPolicy().Hedge
	p.Hedge.Budget = 1
	p.Hedge.MaxDelay = 20 * time.Millisecond
	p.Retry.Attempts = 2
	_, base := startGateway(t, testConfig(p, hung, good))
	for i := range 40 {
		if res := infer(t, base, fmt.Sprint("req-", i)); res.status != 200 {
			t.Fatalf("request %d: %d %s", i, res.status, res.body)
		}
	}
	if metricValue(t, base, "bulwark_gateway_tries_total", `kind="hedge"`) == 0 {
		t.Error("no hedges")
	}
}

func TestHedgeBudgetRespected(t *testing.T) {
	hung, good := newFake(t, modeHang), newFake(t, modeOK)
	p := testPolicy()
	p.Hedge = HedgePolicy{Enabled: true, Delay: HedgeDelay{Fixed: 5 * time.Millisecond}, Percentile: 0.95, MaxDelay: time.Second, Budget: 0.1}
	p.Retry.Attempts = 2
	p.Retry.PerTryTimeout = 500 * time.Millisecond // unhedged tries on the hung replica are retried; generous so a busy machine does not fail the good ones
	_, base := startGateway(t, testConfig(p, hung, good))
	const clients, each = 8, 25
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				if res := infer(t, base, fmt.Sprint("req-", c, "-", i)); res.status != 200 {
					t.Errorf("request: %d %s", res.status, res.body)
				}
			}
		})
	}
	wg.Wait()
	hedges := metricValue(t, base, "bulwark_gateway_tries_total", `kind="hedge"`)
	t.Logf("%v hedges for %d requests; hung replica tried %d times", hedges, clients*each, hung.infers.Load())
	if hedges > 0.1*clients*each {
		t.Errorf("%v hedges for %d requests: over the 10%% budget", hedges, clients*each)
	}
}

func TestPendingCapSheds(t *testing.T) {
	a := newFake(t, modeHold)
	p := testPolicy()
	p.MaxPending = 2
	_, base := startGateway(t, testConfig(p, a))
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			if res := infer(t, base, fmt.Sprint("held-", i)); res.status != 200 {
				t.Errorf("held request: %d", res.status)
			}
		})
	}
	<-a.started
	<-a.started
	res := infer(t, base, "third")
	if res.status != http.StatusTooManyRequests || res.header.Get("Retry-After") != "1" {
		t.Errorf("third request: %d, Retry-After %q", res.status, res.header.Get("Retry-After"))
	}
	close(a.release)
	wg.Wait()
	if v := metricValue(t, base, "bulwark_gateway_shed_total", `reason="pending"`); v != 1 {
		t.Errorf("shed metric %v", v)
	}
}

func TestP2CSpreadsLoad(t *testing.T) {
	fakes := []*fakeReplica{newFake(t, modeHold), newFake(t, modeHold), newFake(t, modeHold)}
	_, base := startGateway(t, testConfig(testPolicy(), fakes...))
	const n = 30
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if res := infer(t, base, fmt.Sprint("req-", i)); res.status != 200 {
				t.Errorf("request: %d", res.status)
			}
		})
	}
	waitFor(t, "all requests to reach replicas", func() bool {
		return fakes[0].infers.Load()+fakes[1].infers.Load()+fakes[2].infers.Load() == n
	})
	for i, f := range fakes {
		if got := f.infers.Load(); got < n/6 {
			t.Errorf("replica %d got %d of %d concurrent requests", i, got, n)
		}
		close(f.release)
	}
	wg.Wait()
}
