package gateway

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAllReplicasDownFailsFast(t *testing.T) {
	a, b := newFake(t, modeOK), newFake(t, modeOK)
	a.healthy.Store(false)
	b.healthy.Store(false)
	g, base := startGateway(t, testConfig(testPolicy(), a, b))
	waitFor(t, "both replicas unhealthy", func() bool {
		return stateOf(g, a) == StateUnhealthy && stateOf(g, b) == StateUnhealthy
	})
	res := infer(t, base, "x")
	if res.status != 503 || res.header.Get("Retry-After") != "1" ||
		!strings.Contains(string(res.body), "no healthy replica for model iris: 2 replicas: 2 unhealthy") {
		t.Fatalf("got %d %s", res.status, res.body)
	}
	if n := a.infers.Load() + b.infers.Load(); n != 0 {
		t.Errorf("%d tries sent to unhealthy replicas", n)
	}
	ready := getStatus(t, base+"/v2/health/ready")
	if ready != 503 {
		t.Errorf("gateway ready: %d", ready)
	}
	// They recover: traffic resumes.
	a.healthy.Store(true)
	waitFor(t, "a healthy", func() bool { return stateOf(g, a) == StateHealthy })
	if res := infer(t, base, "y"); res.status != 200 || res.replica != a.addr {
		t.Errorf("after recovery: %d from %s", res.status, res.replica)
	}
}

func TestBreakerOpensAndHalfOpens(t *testing.T) {
	a := newFake(t, modeFail)
	p := testPolicy()
	p.Breaker = BreakerPolicy{FailureRatio: 0.5, MinRequests: 4, Window: time.Minute, OpenFor: 100 * time.Millisecond}
	g, base := startGateway(t, testConfig(p, a))
	for i := 0; replicaStatus(g, a.addr).Breaker == "closed"; i++ {
		if i > 10 {
			t.Fatal("breaker never opened")
		}
		if res := infer(t, base, fmt.Sprint("req-", i)); res.status != 500 {
			t.Fatalf("request %d: %d", i, res.status)
		}
	}
	// While open, the replica gets nothing and requests fail fast.
	before := a.infers.Load()
	res := infer(t, base, "while-open")
	if res.status != 503 || !strings.Contains(string(res.body), "breaker-open") {
		t.Fatalf("while open: %d %s", res.status, res.body)
	}
	if a.infers.Load() != before {
		t.Error("an open breaker let a try through")
	}
	// After openFor, one trial; it succeeds and closes the breaker.
	a.setMode(modeOK)
	waitFor(t, "half-open", func() bool { return replicaStatus(g, a.addr).Breaker == "half-open" })
	if res := infer(t, base, "trial"); res.status != 200 {
		t.Fatalf("trial: %d %s", res.status, res.body)
	}
	if st := replicaStatus(g, a.addr); st.Breaker != "closed" || st.State != StateHealthy {
		t.Errorf("after a good trial: %+v", st)
	}
}

func TestOutlierEjectionGrowsAndReturns(t *testing.T) {
	bad, good := newFake(t, modeFail), newFake(t, modeOK)
	p := testPolicy()
	p.Outlier = OutlierPolicy{ConsecutiveFailures: 1, BaseEjection: 20 * time.Millisecond, MaxEjection: time.Hour, MaxEjectedPercent: 50}
	g, base := startGateway(t, testConfig(p, bad, good))
	i := 0
	waitFor(t, "three ejections", func() bool {
		if res := infer(t, base, fmt.Sprint("req-", i)); res.status != 200 {
			t.Fatalf("request %d: %d %s", i, res.status, res.body)
		}
		i++
		return replicaStatus(g, bad.addr).Ejections >= 3
	})
	if st := replicaStatus(g, bad.addr); st.Ejections < 3 {
		t.Errorf("ejections %d", st.Ejections)
	}
	if v := metricValue(t, base, "bulwark_gateway_ejections_total", bad.addr); v < 3 {
		t.Errorf("ejections metric %v", v)
	}
	if stateOf(g, good) != StateHealthy {
		t.Error("the good replica was ejected")
	}
}

func TestMaxEjectedPercent(t *testing.T) {
	var fakes []*fakeReplica
	for range 3 {
		fakes = append(fakes, newFake(t, modeFail))
	}
	good := newFake(t, modeOK)
	fakes = append(fakes, good)
	p := testPolicy()
	p.Retry.Attempts = 4
	p.Outlier = OutlierPolicy{ConsecutiveFailures: 1, BaseEjection: time.Hour, MaxEjection: time.Hour, MaxEjectedPercent: 50}
	g, base := startGateway(t, testConfig(p, fakes...))
	ejected := func() int {
		n := 0
		for _, f := range fakes {
			if stateOf(g, f) == StateEjected {
				n++
			}
		}
		return n
	}
	for i := range 40 {
		if res := infer(t, base, fmt.Sprint("req-", i)); res.status != 200 {
			t.Fatalf("request %d: %d %s", i, res.status, res.body)
		}
		if n := ejected(); n > 2 {
			t.Fatalf("%d of 4 replicas ejected, cap is 50%%", n)
		}
	}
	if n := ejected(); n != 2 {
		t.Errorf("%d ejected, want 2", n)
	}
}

func TestZonePreferenceAndFailover(t *testing.T) {
	local, far1, far2 := newFake(t, modeOK), newFake(t, modeOK), newFake(t, modeOK)
	cfg := testConfig(testPolicy(), local, far1, far2)
	cfg.Zone = "a"
	m := cfg.Models["iris"]
	m.Replicas[0].Zone, m.Replicas[1].Zone, m.Replicas[2].Zone = "a", "b", "b"
	g, base := startGateway(t, cfg)
	for i := range 20 {
		if res := infer(t, base, fmt.Sprint("local-", i)); res.replica != local.addr {
			t.Fatalf("request %d went to %s, not the local zone", i, res.replica)
		}
	}
	local.healthy.Store(false)
	waitFor(t, "local replica unhealthy", func() bool { return stateOf(g, local) == StateUnhealthy })
	for i := range 20 {
		if res := infer(t, base, fmt.Sprint("far-", i)); res.status != 200 || res.replica == local.addr {
			t.Fatalf("request %d: %d from %s", i, res.status, res.replica)
		}
	}
	// minHealthy 2: one local replica is not enough, traffic spreads.
	local.healthy.Store(true)
	waitFor(t, "local replica healthy", func() bool { return stateOf(g, local) == StateHealthy })
	p := testPolicy()
	p.Zones.MinHealthy = 2
	m.Policy = p
	cfg.Models["iris"] = m
	if err := g.Update(cfg); err != nil {
		t.Fatal(err)
	}
	far := 0
	for i := range 60 {
		if res := infer(t, base, fmt.Sprint("spread-", i)); res.replica != local.addr {
			far++
		}
	}
	if far == 0 {
		t.Error("with minHealthy 2 and one local replica, nothing went to other zones")
	}
}

func TestDrain(t *testing.T) {
	a, b := newFake(t, modeHold), newFake(t, modeHold)
	g, base := startGateway(t, testConfig(testPolicy(), a, b))
	done := make(chan result, 1)
	go func() { done <- infer(t, base, "in-flight") }()
	var held, other *fakeReplica
	select {
	case <-a.started:
		held, other = a, b
	case <-b.started:
		held, other = b, a
	}
	if _, err := g.Drain(held.addr); err != nil {
		t.Fatal(err)
	}
	other.setMode(modeOK)
	before := held.infers.Load()
	for i := range 20 {
		if res := infer(t, base, fmt.Sprint("req-", i)); res.status != 200 || res.replica != other.addr {
			t.Fatalf("request %d during drain: %d from %s", i, res.status, res.replica)
		}
	}
	if held.infers.Load() != before {
		t.Error("a draining replica got new requests")
	}
	if stateOf(g, held) != StateDraining {
		t.Errorf("state %s", stateOf(g, held))
	}
	close(held.release)
	if res := <-done; res.status != 200 || res.replica != held.addr {
		t.Errorf("in-flight request on the drained replica: %d from %s", res.status, res.replica)
	}
	if _, err := g.Undrain(held.addr); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "traffic back on the undrained replica", func() bool {
		infer(t, base, "after")
		return held.infers.Load() > before
	})
	if _, err := g.Drain("http://nowhere:1"); err == nil {
		t.Error("drained an unknown replica")
	}
}

func TestUpdateKeepsStateAndInFlight(t *testing.T) {
	a, b, c := newFake(t, modeOK), newFake(t, modeHold), newFake(t, modeOK)
	g, base := startGateway(t, testConfig(testPolicy(), a, b))
	if _, err := g.Drain(a.addr); err != nil {
		t.Fatal(err)
	}
	done := make(chan result, 1)
	go func() { done <- infer(t, base, "in-flight") }()
	<-b.started // the request is on b, the only undrained replica
	// Reload: b goes, c comes, a stays (and stays drained).
	if err := g.Update(testConfig(testPolicy(), a, c)); err != nil {
		t.Fatal(err)
	}
	if st := stateOf(g, a); st != StateDraining {
		t.Errorf("a lost its drain across the reload: %s", st)
	}
	close(b.release)
	if res := <-done; res.status != 200 || res.replica != b.addr {
		t.Errorf("in-flight request on the removed replica: %d from %s: %s", res.status, res.replica, res.body)
	}
	for i := range 10 {
		if res := infer(t, base, fmt.Sprint("req-", i)); res.status != 200 || res.replica != c.addr {
			t.Fatalf("request %d after reload: %d from %s", i, res.status, res.replica)
		}
	}
	if replicaStatus(g, b.addr).Address != "" {
		t.Error("removed replica still reported")
	}
}

func TestUpdateUnderLoad(t *testing.T) {
	a, b, c := newFake(t, modeOK), newFake(t, modeOK), newFake(t, modeOK)
	g, base := startGateway(t, testConfig(testPolicy(), a, b))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if res := infer(t, base, fmt.Sprint("w", w, "-", i)); res.status != 200 {
					t.Errorf("request failed during reloads: %d %s", res.status, res.body)
					return
				}
			}
		})
	}
	sets := [][]*fakeReplica{{a, c}, {b, c}, {a, b, c}, {c}, {a, b}}
	for i := range 50 {
		if err := g.Update(testConfig(testPolicy(), sets[i%len(sets)]...)); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

// TestStoppedReplicaInvisible is the SIGSTOP drill: a replica that stops
// answering anything, health checks included. Hedging covers the requests
// stuck on it until the checker takes it out, then it gets nothing.
func TestStoppedReplicaInvisible(t *testing.T) {
	fakes := []*fakeReplica{newFake(t, modeOK), newFake(t, modeOK), newFake(t, modeOK)}
	stopped := fakes[0]
	p := DefaultPolicy() // adaptive hedging, retries, budgets as shipped
	p.Hedge.Budget = 0.5
	p.Hedge.MaxDelay = 50 * time.Millisecond
	p.Health = HealthPolicy{Interval: 20 * time.Millisecond, Timeout: 50 * time.Millisecond, Rise: 2, Fall: 2}
	g, base := startGateway(t, testConfig(p, fakes...))
	for i := range 20 { // warm up the latency window
		infer(t, base, fmt.Sprint("warm-", i))
	}
	stopped.stopped.Store(true)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				if res := infer(t, base, fmt.Sprint("w", w, "-", i)); res.status != 200 {
					t.Errorf("request failed: %d %s", res.status, res.body)
				}
			}
		})
	}
	waitFor(t, "the stopped replica to be taken out", func() bool { return stateOf(g, stopped) != StateHealthy })
	after := stopped.infers.Load()
	wg.Wait()
	for i := range 50 {
		if res := infer(t, base, fmt.Sprint("late-", i)); res.status != 200 {
			t.Fatalf("request failed: %d %s", res.status, res.body)
		}
	}
	// Tries already picked when it went out may still land; nothing more.
	if n := stopped.infers.Load() - after; n > 4 {
		t.Errorf("the stopped replica got %d requests after it was taken out", n)
	}
}
