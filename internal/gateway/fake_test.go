package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/oip"
)

// Behaviours of a fake replica's infer endpoint.
const (
	modeOK     = "ok"     // 200 with y = [v, 2v]
	modeFail   = "fail"   // 500
	modeHang   = "hang"   // never answers (until the try is cancelled)
	modeHold   = "hold"   // answers 200 once released
	modeClose  = "close"  // closes the connection without an answer
	modeReject = "reject" // 400
	modeFlaky  = "flaky"  // every other request fails with 500
	modeBusy   = "busy"   // 429
)

// fakeReplica is an OIP server whose infer endpoint misbehaves on demand.
type fakeReplica struct {
	t           *testing.T
	srv         *httptest.Server
	addr        string
	mode        atomic.Value // string
	value       atomic.Int64 // the answer's v: give replicas different values to make them disagree
	healthy     atomic.Bool
	stopped     atomic.Bool  // like SIGSTOP: every endpoint hangs
	slowHealth  atomic.Bool  // health endpoints hang, inference answers
	healthHangs atomic.Int64 // health checks left hanging
	infers      atomic.Int64
	started     chan string   // receives the id of each held request
	release     chan struct{} // closing it answers every held request
	quit        chan struct{}

	mu  sync.Mutex
	ids map[string]int // request id → times seen
}

func newFake(t *testing.T, mode string) *fakeReplica {
	t.Helper()
	f := &fakeReplica{t: t, started: make(chan string, 1024), release: make(chan struct{}),
		quit: make(chan struct{}), ids: map[string]int{}}
	f.mode.Store(mode)
	f.value.Store(1)
	f.healthy.Store(true)
	mux := http.NewServeMux()
	ready := func(w http.ResponseWriter, r *http.Request) {
		if f.stopped.Load() {
			f.hang(r)
			return
		}
		if f.slowHealth.Load() {
			f.healthHangs.Add(1)
			f.hang(r)
			return
		}
		if !f.healthy.Load() {
			writeError(w, http.StatusServiceUnavailable, "not ready")
			return
		}
		writeJSON(w, 200, map[string]bool{"ready": true})
	}
	mux.HandleFunc("GET /v2/health/ready", ready)
	mux.HandleFunc("GET /v2/models/{model}/ready", ready)
	mux.HandleFunc("GET /v2", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, oip.ServerMetadata{Name: "fake", Version: "1", Extensions: []string{}})
	})
	mux.HandleFunc("GET /v2/models/{model}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, oip.ModelMetadata{Name: r.PathValue("model"), Platform: "fake", Inputs: []oip.TensorMetadata{}, Outputs: []oip.TensorMetadata{}})
	})
	mux.HandleFunc("POST /v2/models/{model}/infer", f.infer)
	f.srv = httptest.NewServer(mux)
	f.addr = f.srv.URL
	t.Cleanup(f.srv.Close)
	t.Cleanup(func() { close(f.quit) }) // runs first: unblocks hung handlers
	return f
}

func (f *fakeReplica) setMode(m string) { f.mode.Store(m) }

func (f *fakeReplica) seen(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ids[id]
}

func (f *fakeReplica) hang(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-f.quit:
	}
}

func (f *fakeReplica) infer(w http.ResponseWriter, r *http.Request) {
	n := f.infers.Add(1)
	if f.stopped.Load() {
		f.hang(r)
		return
	}
	var req oip.InferRequest
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, 400, "bad body: "+err.Error())
		return
	}
	f.mu.Lock()
	f.ids[req.ID]++
	f.mu.Unlock()
	switch f.mode.Load().(string) {
	case modeFail:
		writeError(w, 500, "boom")
		return
	case modeFlaky:
		if n%2 == 1 {
			writeError(w, 500, "flaky")
			return
		}
	case modeReject:
		writeError(w, 400, `input "x": wrong shape`)
		return
	case modeBusy:
		w.Header().Set("Retry-After", "1")
		writeError(w, 429, "busy")
		return
	case modeHang:
		f.hang(r)
		return
	case modeHold:
		f.started <- req.ID
		select {
		case <-f.release:
		case <-r.Context().Done():
			return
		case <-f.quit:
			return
		}
	case modeClose:
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	v := f.value.Load()
	fmt.Fprintf(w, `{"model_name":%q,"id":%q,"outputs":[{"name":"y","datatype":"FP32","shape":[2],"data":[%d,%d]}]}`,
		r.PathValue("model"), req.ID, v, 2*v)
}

// testPolicy is DefaultPolicy made fast and deterministic for tests:
// quick health checks, no hedging, a generous retry budget, no outlier
// ejection or breaker unless a test turns them on.
func testPolicy() Policy {
	p := DefaultPolicy()
	p.Health.Interval = 10 * time.Millisecond
	p.Health.Timeout = 2 * time.Second
	p.Health.Rise, p.Health.Fall = 1, 1
	p.Hedge.Enabled = false
	p.Retry.MinPerSecond = 1000
	p.Outlier.ConsecutiveFailures = 0
	p.Breaker.MinRequests = 1 << 30
	p.Retry.PerTryTimeout = 30 * time.Second
	p.Timeout = 60 * time.Second
	return p
}

func testConfig(p Policy, fakes ...*fakeReplica) *Config {
	reps := make([]ReplicaConfig, len(fakes))
	for i, f := range fakes {
		reps[i] = ReplicaConfig{Address: f.addr}
	}
	return &Config{Listen: DefaultListen, Defaults: DefaultPolicy(),
		Models: map[string]ModelConfig{"iris": {Replicas: reps, Policy: p}}}
}

// startGateway runs a gateway with health checks, served by httptest.
func startGateway(t *testing.T, cfg *Config) (*Gateway, string) {
	t.Helper()
	g, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.Start(ctx)
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(cancel)
	return g, srv.URL
}

type result struct {
	status  int
	header  http.Header
	body    []byte
	replica string
	tries   int
}

func infer(t *testing.T, base, id string, header ...string) result {
	t.Helper()
	body := fmt.Sprintf(`{"id":%q,"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}`, id)
	req, err := http.NewRequest("POST", base+"/v2/models/iris/infer", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("request %s: %v", id, err)
		return result{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	tries, _ := strconv.Atoi(resp.Header.Get(TriesHeader))
	return result{status: resp.StatusCode, header: resp.Header, body: b, replica: resp.Header.Get(ReplicaHeader), tries: tries}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func replicaStatus(g *Gateway, addr string) ReplicaStatus {
	for _, m := range g.Status().Models {
		for _, r := range m.Replicas {
			if r.Address == addr {
				return r
			}
		}
	}
	return ReplicaStatus{}
}

func stateOf(g *Gateway, f *fakeReplica) string { return replicaStatus(g, f.addr).State }

// metricValue sums the samples of a metric whose label set contains all
// the given name="value" pairs, from the gateway's /metrics text.
func metricValue(t *testing.T, base, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	sum := 0.0
	for _, line := range bytes.Split(b, []byte("\n")) {
		s := string(line)
		if !strings.HasPrefix(s, name+"{") && !strings.HasPrefix(s, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(s, l)
		}
		if ok {
			v, _ := strconv.ParseFloat(s[strings.LastIndex(s, " ")+1:], 64)
			sum += v
		}
	}
	return sum
}

func httptestServer(h http.Handler) *httptest.Server { return httptest.NewServer(h) }
