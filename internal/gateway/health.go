package gateway

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"
)

// check is one replica's active health checker: every interval it asks
// the server whether it is ready and whether it serves this model, and
// feeds the answer to the replica (rise/fall, and the probe an ejected
// replica must pass to return). The policy is re-read every round, so a
// reload's new interval applies without restarting the checker.
func (g *Gateway) check(ctx context.Context, m *model, r *replica) {
	for {
		p := m.policy.Load()
		start := time.Now()
		err := g.probe(ctx, m.name, r, p.Health.Timeout)
		if ctx.Err() != nil {
			return
		}
		msg := ""
		if err != nil {
			msg = "health check: " + err.Error()
		}
		// A check that timed out while the replica kept answering
		// inference requests says the machine is busy, not that the
		// replica is down: it counts neither way. Otherwise a saturated
		// host would take its only working replica out of rotation.
		busy := errors.Is(err, errProbeTimeout) && r.answeredSince(start)
		change := healthSame
		if !busy {
			change = r.recordHealth(time.Now(), &p.Health, err == nil, msg)
		}
		switch change {
		case healthDown:
			m.log.Warn("replica unhealthy", "replica", r.addr, "err", err)
		case healthUp:
			m.log.Info("replica healthy", "replica", r.addr)
		case healthReturned:
			m.log.Info("replica returned from ejection", "replica", r.addr)
		}
		// ±10% jitter keeps the checkers of many replicas from beating in step.
		d := p.Health.Interval
		d += time.Duration((rand.Float64() - 0.5) * 0.2 * float64(d))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

var errProbeTimeout = errors.New("no answer")

// probe asks the server whether it is ready, then whether the model is:
// a server can be up with this model failed to load.
func (g *Gateway) probe(ctx context.Context, model string, r *replica, timeout time.Duration) error {
	var ctl tryCtl
	stop := context.AfterFunc(ctx, ctl.abort) // the checker is stopping
	defer stop()
	deadline := time.Now().Add(timeout)
	for _, path := range []string{"/v2/health/ready", "/v2/models/" + url.PathEscape(model) + "/ready"} {
		res := g.send(&ctl, r, &request{method: http.MethodGet, path: path}, time.Now(), deadline, deadline)
		switch {
		case res.class == classCancelled || res.class == classTimeout:
			return fmt.Errorf("GET %s: %w within %v", path, errProbeTimeout, timeout)
		case res.err != nil:
			return fmt.Errorf("GET %s: %w", path, res.err)
		case res.status != http.StatusOK:
			return fmt.Errorf("GET %s: %s", path, statusText(&res))
		}
	}
	return nil
}

// statusText is "HTTP 503: <the server's error message>".
func statusText(res *tryResult) string {
	msg := errorMessage(res.body)
	if msg == "" {
		msg = http.StatusText(res.status)
	}
	return fmt.Sprintf("HTTP %d: %s", res.status, msg)
}
