package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A request whose hedge the budget refused gets its copy once later
// requests have refilled the budget, instead of waiting on a stalled
// replica until its per-try timeout.
func TestHedgeRefusedByBudgetIsAskedAgain(t *testing.T) {
	stalled, ok := newFake(t, modeHold), newFake(t, modeOK)
	defer close(stalled.release) // lets the gateway's shutdown finish at once
	p := testPolicy()
	p.Hedge.Enabled = true
	p.Hedge.Delay.Fixed = 5 * time.Millisecond
	p.Hedge.Budget = 0.02 // fifty requests earn one hedge; the bucket starts empty
	_, base := startGateway(t, testConfig(p, stalled, ok))

	held := make(chan result, 1)
	for i := 0; ; i++ {
		done := make(chan result, 1)
		go func() { done <- infer(t, base, fmt.Sprint("req-", i)) }()
		select {
		case <-stalled.started: // this one is stuck on the stalled replica
			go func() { held <- <-done }()
		case res := <-done:
			if res.status != 200 {
				t.Fatalf("request %d: %d %s", i, res.status, res.body)
			}
			continue
		}
		break
	}
	// The stuck request's hedge was refused (a few deposits of 0.02 at
	// most): more requests refill the budget, and the stuck request's
	// hedge, asked again, goes out.
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		select {
		case res := <-held:
			if res.status != 200 || res.replica != ok.addr {
				t.Fatalf("stuck request: %d from %s: %s", res.status, res.replica, res.body)
			}
			if v := metricValue(t, base, "bulwark_gateway_hedges_total", `outcome="won"`); v < 1 {
				t.Errorf("hedges won %v, want at least 1", v)
			}
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the stuck request never got its hedge")
		}
		// Not waited for: a refill that lands on the stalled replica must
		// not stop the others.
		go func() {
			body := fmt.Sprintf(`{"id":"refill-%d","inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}`, i)
			if resp, err := http.Post(base+"/v2/models/iris/infer", "application/json", strings.NewReader(body)); err == nil {
				resp.Body.Close()
			}
		}()
		time.Sleep(time.Millisecond) // pacing the refills, not synchronisation
	}
}
