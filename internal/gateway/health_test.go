package gateway

import (
	"fmt"
	"testing"
	"time"
)

// A replica whose health checks time out while it keeps answering
// inference requests stays in rotation (the host is busy, the replica
// works); once it answers nothing, the same timeouts take it out.
func TestHealthTimeoutWhileServingIsNotAFailure(t *testing.T) {
	f := newFake(t, modeOK)
	p := testPolicy()
	p.Health.Timeout = 30 * time.Millisecond
	g, base := startGateway(t, testConfig(p, f))
	f.slowHealth.Store(true)
	for i := 0; f.healthHangs.Load() < 5; i++ {
		if res := infer(t, base, fmt.Sprint("req-", i)); res.status != 200 {
			t.Fatalf("request %d while health checks time out: %d %s", i, res.status, res.body)
		}
	}
	if st := stateOf(g, f); st != StateHealthy {
		t.Fatalf("replica answering every request is %s", st)
	}
	waitFor(t, "the idle replica whose checks time out to go unhealthy", func() bool {
		return stateOf(g, f) == StateUnhealthy
	})
}
