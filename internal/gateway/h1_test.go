package gateway

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestReadResponse(t *testing.T) {
	long := strings.Repeat("x", 10000)
	for _, tc := range []struct {
		name, raw   string
		status      int
		body, ctype string
		retryAfter  string
		keep        bool
		err         string
	}{
		{name: "content-length", raw: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
			status: 200, body: "{}", ctype: "application/json", keep: true},
		{name: "header case and spaces", raw: "HTTP/1.1 429 Too Many\r\ncontent-LENGTH:  4 \r\nRETRY-after: 1\r\nX-Other: a:b\r\n\r\nbusy",
			status: 429, body: "busy", retryAfter: "1", keep: true},
		{name: "chunked with trailer", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
			status: 200, body: "abcde", keep: true},
		{name: "connection close", raw: "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 4\r\n\r\nboom",
			status: 500, body: "boom"},
		{name: "http/1.0 until eof", raw: "HTTP/1.0 200 OK\r\n\r\nall of it", status: 200, body: "all of it"},
		{name: "http/1.0 keep-alive", raw: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nk", status: 200, body: "k", keep: true},
		{name: "interim 100 skipped", raw: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", status: 204, keep: true},
		{name: "LF only", raw: "HTTP/1.1 200 OK\nContent-Length: 1\n\nz", status: 200, body: "z", keep: true},
		{name: "long header line", raw: "HTTP/1.1 200 OK\r\nX-Long: " + long + "\r\nContent-Length: 1\r\n\r\nz", status: 200, body: "z", keep: true},
		{name: "short body", raw: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", err: "unexpected EOF"},
		{name: "garbage", raw: "SSH-2.0-OpenSSH\r\n\r\n", err: "malformed HTTP response"},
		{name: "bad length", raw: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", err: "bad Content-Length"},
		{name: "conflicting lengths", raw: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", err: "bad Content-Length"},
		{name: "eof in headers", raw: "HTTP/1.1 200 OK\r\nContent-Le", err: "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var res tryResult
			keep, err := readResponse(bufio.NewReaderSize(strings.NewReader(tc.raw), 4096), "POST", &res)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.status != tc.status || string(res.body) != tc.body || res.contentType != tc.ctype ||
				res.retryAfter != tc.retryAfter || keep != tc.keep {
				t.Errorf("got %d %q ct %q ra %q keep %v", res.status, res.body, res.contentType, res.retryAfter, keep)
			}
		})
	}
}

// A replica that closes idle connections sooner than the gateway drops
// them: the gateway must notice before reusing one, not fail a try.
func TestIdleConnectionClosedByReplica(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"model_name":"iris","outputs":[]}`))
	}))
	srv.Config.IdleTimeout = 50 * time.Millisecond
	srv.Start()
	defer srv.Close()
	p := testPolicy()
	p.Health.Interval = time.Hour
	cfg := &Config{Listen: DefaultListen, Defaults: DefaultPolicy(),
		Models: map[string]ModelConfig{"iris": {Replicas: []ReplicaConfig{{Address: srv.URL}}, Policy: p}}}
	_, base := startGateway(t, cfg)
	for i := range 2 {
		if i > 0 {
			time.Sleep(checkIdleAfter + 200*time.Millisecond) // the replica has closed it by now
		}
		if res := infer(t, base, "r"); res.status != 200 || res.tries != 1 {
			t.Fatalf("request %d: %d after %d tries: %s", i, res.status, res.tries, res.body)
		}
	}
}

// A replica that stops answering (SIGSTOP: its health checks would take a
// while to notice) loses every hedge race, and the balancer stops choosing
// it at once: its stalled tries count as outstanding.
func TestStalledReplicaAvoided(t *testing.T) {
	hung, good := newFake(t, modeHang), newFake(t, modeOK)
	p := testPolicy()
	p.Health.Interval = time.Hour
	p.Hedge = HedgePolicy{Enabled: true, Delay: HedgeDelay{Fixed: 5 * time.Millisecond}, Percentile: 0.95, MaxDelay: time.Second, Budget: 1}
	p.Outlier.ConsecutiveFailures = 3
	g, base := startGateway(t, testConfig(p, hung, good))
	// Concurrent clients, so that the good replica is busy at times and
	// power of two choices would send requests to the hung one.
	var wg sync.WaitGroup
	const clients, each = 4, 50
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				if res := infer(t, base, fmt.Sprint(c, "-", i)); res.status != 200 || res.replica != good.addr {
					t.Errorf("request %d-%d: %d from %s: %s", c, i, res.status, res.replica, res.body)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := hung.infers.Load(); n > 10 {
		t.Errorf("the hung replica got %d of %d requests", n, clients*each)
	}
	st := replicaStatus(g, hung.addr)
	if st.ConsecutiveFailures == 0 || !strings.Contains(st.LastError, "while another replica answered") {
		t.Errorf("consecutive failures %d, last error %q", st.ConsecutiveFailures, st.LastError)
	}
}

// Stalls eject a replica only once it has been silent for
// minStallEjection: a few lost hedge races on a busy machine do not.
func TestStallEjection(t *testing.T) {
	p := testPolicy()
	p.Outlier.ConsecutiveFailures = 3
	g, err := New(testConfig(p, newFake(t, modeOK), newFake(t, modeOK), newFake(t, modeOK)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := g.table().models["iris"]
	reps := *m.replicas.Load()
	for i, silent := range []time.Duration{minStallEjection / 10, 2 * minStallEjection} {
		r := reps[i]
		r.mu.Lock()
		r.lastAnswer = time.Now().Add(-silent)
		r.mu.Unlock()
		for range 3 {
			r.begin(time.Now(), &p)
			m.finish(r, false, outcomeStalled, 10*time.Millisecond, "stalled")
		}
		want := silent >= minStallEjection
		if got := r.state(time.Now(), &p) == StateEjected; got != want {
			t.Errorf("silent for %v: ejected %v, want %v", silent, got, want)
		}
	}
}

// A hedge the budget cannot pay for when it is due is tried again later,
// rather than leaving the request on a stalled try until its timeout.
func TestRefusedHedgeIsRetried(t *testing.T) {
	hung, good := newFake(t, modeHang), newFake(t, modeOK)
	p := testPolicy()
	p.Health.Interval = time.Hour
	p.Hedge = HedgePolicy{Enabled: true, Delay: HedgeDelay{Fixed: 2 * time.Millisecond}, Percentile: 0.95, MaxDelay: time.Second, Budget: 0.5}
	p.Retry.PerTryTimeout = 20 * time.Second
	g, base := startGateway(t, testConfig(p, hung, good))
	m := g.table().models["iris"]
	m.hedges.mu.Lock()
	m.hedges.tokens = 0
	m.hedges.mu.Unlock()
	// Pin the first try on the hung replica: drain the good one.
	if _, err := g.Drain(good.addr); err != nil {
		t.Fatal(err)
	}
	done := make(chan result)
	go func() { done <- infer(t, base, "stuck") }()
	waitFor(t, "the try on the hung replica", func() bool { return hung.infers.Load() == 1 })
	g.Undrain(good.addr)
	time.Sleep(20 * time.Millisecond) // hedges are refused meanwhile: no tokens
	m.hedges.deposit()                // 0.5 token: still refused
	m.hedges.deposit()                // 1 token: the next attempt gets it
	select {
	case res := <-done:
		if res.status != 200 || res.replica != good.addr {
			t.Fatalf("got %d from %s: %s", res.status, res.replica, res.body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the request waited for its per-try timeout: the refused hedge was not retried")
	}
}

func TestNthElement(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 1; n < 300; n += 7 {
		for _, gen := range []func(int) time.Duration{
			func(int) time.Duration { return time.Duration(rng.IntN(50)) },
			func(i int) time.Duration { return time.Duration(i) },
			func(i int) time.Duration { return time.Duration(n - i) },
			func(int) time.Duration { return 7 },
		} {
			s := make([]time.Duration, n)
			for i := range s {
				s[i] = gen(i)
			}
			sorted := slices.Clone(s)
			slices.Sort(sorted)
			for _, k := range []int{0, n / 2, n * 95 / 100, n - 1} {
				if got := nthElement(slices.Clone(s), k); got != sorted[k] {
					t.Fatalf("n %d k %d: got %v, want %v", n, k, got, sorted[k])
				}
			}
		}
	}
}

// Large request bodies (written with a deadline) and chunked answers go
// through the gateway's own HTTP/1.1 client intact.
func TestLargeBodyAndChunkedAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"model_name":"iris","outputs":[],"n":%d`, len(b))
		w.(http.Flusher).Flush() // no Content-Length: chunked
		fmt.Fprint(w, `,"tail":"`+strings.Repeat("t", 5000)+`"}`)
	}))
	defer srv.Close()
	p := testPolicy()
	p.Health.Interval = time.Hour
	cfg := &Config{Listen: DefaultListen, Defaults: DefaultPolicy(),
		Models: map[string]ModelConfig{"iris": {Replicas: []ReplicaConfig{{Address: srv.URL + "/"}}, Policy: p}}}
	_, base := startGateway(t, cfg)
	for _, n := range []int{10, 3 << 20} {
		body := `{"inputs":[],"pad":"` + strings.Repeat("p", n) + `"}`
		resp, err := http.Post(base+"/v2/models/iris/infer", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := fmt.Sprintf(`"n":%d,"tail":"ttt`, len(body))
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) || !strings.HasSuffix(string(b), `t"}`) {
			t.Fatalf("body of %d: %d %.200s", n, resp.StatusCode, b)
		}
	}
}
