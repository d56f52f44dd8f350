package gateway

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// h1Server is a real HTTP server for connPool tests that counts the
// connections it accepted. /ok answers at once; /hold answers once
// released (or when the connection goes); /partial sends half an answer
// and then nothing; /close drops the connection without an answer.
type h1Server struct {
	srv     *httptest.Server
	pool    *connPool
	conns   atomic.Int64
	held    chan struct{} // a /hold request arrived
	release chan struct{}
}

func newH1Server(t *testing.T) *h1Server {
	t.Helper()
	s := &h1Server{held: make(chan struct{}, 16), release: make(chan struct{})}
	quit := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	})
	mux.HandleFunc("/hold", func(w http.ResponseWriter, r *http.Request) {
		s.held <- struct{}{}
		select {
		case <-s.release:
			io.WriteString(w, `{"late":true}`)
		case <-r.Context().Done():
		case <-quit:
		}
	})
	mux.HandleFunc("/partial", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, "0123456789")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-quit:
		}
	})
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.Close()
		}
	})
	s.srv = httptest.NewUnstartedServer(mux)
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	t.Cleanup(func() { close(quit) })
	s.pool = newConnPool(s.srv.URL)
	if s.pool == nil {
		t.Fatalf("no pool for %s", s.srv.URL)
	}
	t.Cleanup(func() { s.pool.closeIdle(true) })
	return s
}

// try sends one request through the pool with its own tryCtl.
func (s *h1Server) try(ctl *tryCtl, path string, within time.Duration) (tryResult, error) {
	var res tryResult
	body := []byte(`{"inputs":[]}`)
	err := s.pool.roundTrip(ctl, time.Now().Add(within), &request{method: "POST", path: path, contentType: "application/json", body: body}, &res)
	return res, err
}

func (s *h1Server) mustOK(t *testing.T, what string) {
	t.Helper()
	res, err := s.try(new(tryCtl), "/ok", 10*time.Second)
	if err != nil || res.status != 200 || string(res.body) != `{"ok":true}` {
		t.Fatalf("%s: %v, %d %q", what, err, res.status, res.body)
	}
}

// The original reuse bug: a try that lost to a hedge was aborted (its
// connection's deadlines moved to the past) and that connection went back
// to the pool, so the next try on it failed at once. An aborted try's
// connection must be closed, and the next try must work.
func TestAbortedTryConnectionIsNotPooled(t *testing.T) {
	s := newH1Server(t)
	s.mustOK(t, "first request")
	if n := s.pool.idleCount(); n != 1 {
		t.Fatalf("idle connections after a clean try: %d, want 1", n)
	}
	ctl := new(tryCtl)
	errc := make(chan error, 1)
	go func() {
		_, err := s.try(ctl, "/hold", time.Minute)
		errc <- err
	}()
	<-s.held // the losing try is waiting on the replica, on the pooled connection
	ctl.abort()
	if err := <-errc; !errors.Is(err, errAborted) {
		t.Fatalf("aborted try: err %v, want errAborted", err)
	}
	if n := s.pool.idleCount(); n != 0 {
		t.Fatalf("idle connections after an aborted try: %d, want 0 (it must be closed)", n)
	}
	for i := range 5 {
		s.mustOK(t, fmt.Sprint("request after the aborted try ", i))
	}
	if n := s.conns.Load(); n != 2 {
		t.Errorf("connections: %d, want 2 (the aborted one replaced once, then reused)", n)
	}
}

// A request aborts its tries when it returns, including tries that have
// already finished and pooled their connection (their result was not
// read yet): that late abort must not touch the pooled connection.
func TestLateAbortDoesNotTouchPooledConnection(t *testing.T) {
	s := newH1Server(t)
	ctl := new(tryCtl)
	if res, err := s.try(ctl, "/ok", 10*time.Second); err != nil || res.status != 200 {
		t.Fatalf("try: %v %d", err, res.status)
	}
	ctl.abort() // the hedge won meanwhile; this try's connection is already in the pool
	for i := range 3 {
		s.mustOK(t, fmt.Sprint("request after the late abort ", i))
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("connections: %d, want 1 (the pooled connection was good)", n)
	}
}

// Every checkout sets the connection's deadlines afresh: a pooled
// connection whose last deadline has long passed (or was moved to the
// past) serves the next try.
func TestCheckoutResetsDeadlines(t *testing.T) {
	s := newH1Server(t)
	if _, err := s.try(new(tryCtl), "/ok", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	s.pool.mu.Lock()
	s.pool.idle[0].nc.SetDeadline(longAgo) // what a stray abort would leave behind
	s.pool.mu.Unlock()
	s.mustOK(t, "request on a connection whose deadline had passed")
	if n := s.conns.Load(); n != 1 {
		t.Errorf("connections: %d, want 1 (reused)", n)
	}
}

// A try that timed out in the middle of an answer leaves its connection
// at an unknown point of the stream: it is closed, and the next try gets
// a new one.
func TestTimedOutTryConnectionIsClosed(t *testing.T) {
	s := newH1Server(t)
	s.mustOK(t, "first request")
	_, err := s.try(new(tryCtl), "/partial", 100*time.Millisecond)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("half-answered try: err %v, want a deadline error", err)
	}
	if n := s.pool.idleCount(); n != 0 {
		t.Fatalf("idle connections after a timed-out try: %d, want 0", n)
	}
	s.mustOK(t, "request after the timed-out try")
	if n := s.conns.Load(); n != 2 {
		t.Errorf("connections: %d, want 2", n)
	}
}

// A reused connection the replica drops without answering says the
// replica dropped its connections: the try fails (the gateway retries it
// elsewhere), and the other idle connections are closed rather than each
// failing a try of its own.
func TestDroppedConnectionClosesIdleOnes(t *testing.T) {
	s := newH1Server(t)
	var pcs []*pconn
	for range 3 {
		pc, err := s.pool.dial(time.Now(), time.Now().Add(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		pcs = append(pcs, pc)
	}
	for _, pc := range pcs {
		s.pool.put(pc, time.Now())
	}
	_, err := s.try(new(tryCtl), "/close", 10*time.Second)
	if !errors.Is(err, errStaleConn) {
		t.Fatalf("dropped connection: err %v, want errStaleConn", err)
	}
	if n := s.pool.idleCount(); n != 0 {
		t.Errorf("idle connections after a drop: %d, want 0", n)
	}
	s.mustOK(t, "request after the drop")
}

// A replica that left the routing table pools nothing more: connections
// of its tries still in flight are closed when they finish.
func TestClosedPoolPoolsNothing(t *testing.T) {
	s := newH1Server(t)
	s.mustOK(t, "first request")
	s.pool.closeIdle(true)
	s.mustOK(t, "request in flight at removal")
	if n := s.pool.idleCount(); n != 0 {
		t.Errorf("idle connections of a removed replica: %d, want 0", n)
	}
}

// Through the gateway: a hedge wins while the first try waits on a
// stalled replica; the loser is aborted. The stalled replica then
// recovers and must serve the next requests on its first try, with no
// failure charged to it (a poisoned pooled connection would fail them).
func TestLosingHedgeDoesNotPoisonNextTry(t *testing.T) {
	stalled, good := newFake(t, modeHold), newFake(t, modeOK)
	p := testPolicy()
	p.Health.Interval = time.Hour
	p.Hedge.Enabled = true
	p.Hedge.Delay.Fixed = 2 * time.Millisecond
	p.Hedge.Budget = 0.5 // a request earns half a hedge: refused until the test adds the other half
	g, base := startGateway(t, testConfig(p, stalled, good))
	m := g.table().models["iris"]
	var sr *replica
	for _, r := range m.replicas() {
		if r.addr == stalled.addr {
			sr = r
		}
	}
	// Warm the stalled replica's pool, then pin the next first try on it.
	stalled.setMode(modeOK)
	if _, err := g.Drain(good.addr); err != nil {
		t.Fatal(err)
	}
	if res := infer(t, base, "warm"); res.status != 200 || res.replica != stalled.addr {
		t.Fatalf("warm-up: %d from %s", res.status, res.replica)
	}
	stalled.setMode(modeHold)
	m.hedges.mu.Lock()
	m.hedges.tokens = 0
	m.hedges.mu.Unlock()
	done := make(chan result, 1)
	go func() { done <- infer(t, base, "hedged") }()
	if id := <-stalled.started; id != "hedged" {
		t.Fatalf("held request %q", id)
	}
	if _, err := g.Undrain(good.addr); err != nil {
		t.Fatal(err)
	}
	m.hedges.deposit() // the hedge, asked again, goes out now
	res := <-done
	if res.status != 200 || res.replica != good.addr || res.tries != 2 {
		t.Fatalf("hedged request: %d from %s after %d tries: %s", res.status, res.replica, res.tries, res.body)
	}
	waitFor(t, "the losing try to end", func() bool { return sr.outstanding.Load() == 0 })

	stalled.setMode(modeOK)
	if _, err := g.Drain(good.addr); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		res := infer(t, base, fmt.Sprint("after-", i))
		if res.status != 200 || res.replica != stalled.addr || res.tries != 1 {
			t.Fatalf("request %d after the lost hedge race: %d from %s after %d tries: %s", i, res.status, res.replica, res.tries, res.body)
		}
	}
	if st := replicaStatus(g, stalled.addr); st.Failures != 0 || st.ConsecutiveFailures != 0 {
		t.Errorf("stalled replica charged with %d failures (%d in a row), last %q", st.Failures, st.ConsecutiveFailures, st.LastError)
	}
	if sr.pool.idleCount() == 0 {
		t.Error("no pooled connection to the recovered replica")
	}
}

// Large request bodies and chunked answers go through the gateway's own
// HTTP/1.1 client intact, to a replica address with a path.
func TestLargeBodyAndChunkedAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/prefix/v2/") {
			http.Error(w, "path "+r.URL.Path, 404)
			return
		}
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
		Models: map[string]ModelConfig{"iris": {Replicas: []ReplicaConfig{{Address: srv.URL + "/prefix"}}, Policy: p}}}
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

// A replica that sends bytes past its answer leaves them in the
// connection's buffer, where the next try would read them as its answer:
// such a connection is closed, not pooled.
func TestBytesPastTheAnswerAreNotReused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					// One answer, then the start of a second nobody asked for.
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 500 Stray\r\nContent-Length: 0\r\n\r\n")
				}
			}()
		}
	}()
	pool := newConnPool("http://" + ln.Addr().String())
	defer pool.closeIdle(true)
	for i := range 3 {
		var res tryResult
		err := pool.roundTrip(new(tryCtl), time.Now().Add(10*time.Second), &request{method: "GET", path: "/v2/health/ready"}, &res)
		if err != nil || res.status != 200 || string(res.body) != "{}" {
			t.Fatalf("request %d: %v, %d %q", i, err, res.status, res.body)
		}
		if n := pool.idleCount(); n != 0 {
			t.Fatalf("request %d: %d idle connections, want 0", i, n)
		}
	}
}
