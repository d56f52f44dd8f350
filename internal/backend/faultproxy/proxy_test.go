package faultproxy

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// echoTarget answers every request with its Host header and a body of n bytes.
func echoTarget(t *testing.T, n int) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Host", r.Host)
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write(bytes.Repeat([]byte("x"), n))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func startProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := Start(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func get(t *testing.T, c *http.Client, method, url string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestPassThroughKeepsHost(t *testing.T) {
	target := echoTarget(t, 10)
	p := startProxy(t, target.URL)
	resp, body, err := get(t, http.DefaultClient, "GET", p.URL()+"/bucket/key")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || len(body) != 10 {
		t.Fatalf("status %d, %d bytes", resp.StatusCode, len(body))
	}
	if got := resp.Header.Get("X-Seen-Host"); got != p.Addr() {
		t.Fatalf("target saw host %q, want the proxy's %q", got, p.Addr())
	}
	if s := p.Stats(); s != (Stats{Requests: 1, Forwarded: 1}) {
		t.Fatalf("stats %+v", s)
	}
}

func TestStatusSkipTimes(t *testing.T) {
	target := echoTarget(t, 1)
	p := startProxy(t, target.URL)
	p.SetRules(Rule{Method: "PUT", Path: "/data/", Fault: Status, Status: 500, Skip: 1, Times: 2})
	var codes []int
	for range 5 {
		resp, _, err := get(t, http.DefaultClient, "PUT", p.URL()+"/b/data/x")
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, resp.StatusCode)
	}
	want := []int{200, 500, 500, 200, 200}
	for i := range want {
		if codes[i] != want[i] {
			t.Fatalf("codes %v, want %v", codes, want)
		}
	}
	// A GET does not match the PUT rule.
	resp, _, err := get(t, http.DefaultClient, "GET", p.URL()+"/b/data/x")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET: %v %v", resp, err)
	}
	if s := p.Stats(); s.Requests != 6 || s.Injected != 2 || s.Forwarded != 4 {
		t.Fatalf("stats %+v", s)
	}
	p.ResetStats()
	if s := p.Stats(); s != (Stats{}) {
		t.Fatalf("after reset: %+v", s)
	}
}

func TestStatusBodyIsS3Error(t *testing.T) {
	p := startProxy(t, echoTarget(t, 1).URL)
	p.SetRules(Rule{Fault: Status, Status: 503})
	resp, body, err := get(t, http.DefaultClient, "GET", p.URL()+"/b/k")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 503 || !bytes.Contains(body, []byte("<Code>SlowDown</Code>")) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

func TestDropAndQueryKey(t *testing.T) {
	p := startProxy(t, echoTarget(t, 1).URL)
	p.SetRules(Rule{QueryKey: "partNumber", Fault: Drop})
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if _, _, err := get(t, c, "PUT", p.URL()+"/b/k?partNumber=1&uploadId=u"); err == nil {
		t.Fatal("dropped request succeeded")
	}
	if resp, _, err := get(t, c, "PUT", p.URL()+"/b/k"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("request without the query key: %v %v", resp, err)
	}
}

func TestTruncate(t *testing.T) {
	p := startProxy(t, echoTarget(t, 1000).URL)
	p.SetRules(Rule{Method: "GET", Fault: Truncate, Bytes: 100, Times: 1})
	_, body, err := get(t, http.DefaultClient, "GET", p.URL()+"/b/k")
	if err == nil {
		t.Fatalf("truncated body read without error (%d bytes)", len(body))
	}
	if len(body) > 100 {
		t.Fatalf("got %d bytes past the cut", len(body))
	}
	_, body, err = get(t, http.DefaultClient, "GET", p.URL()+"/b/k")
	if err != nil || len(body) != 1000 {
		t.Fatalf("second read: %d bytes, %v", len(body), err)
	}
}

func TestDelayForwards(t *testing.T) {
	p := startProxy(t, echoTarget(t, 3).URL)
	p.SetRules(Rule{Fault: Delay, Delay: 20 * time.Millisecond})
	resp, body, err := get(t, http.DefaultClient, "GET", p.URL()+"/b/k")
	if err != nil || resp.StatusCode != 200 || len(body) != 3 {
		t.Fatalf("%v %d %v", resp, len(body), err)
	}
	if s := p.Stats(); s.Injected != 1 || s.Forwarded != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestTargetDownIsBadGateway(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	p := startProxy(t, url)
	resp, _, err := get(t, http.DefaultClient, "GET", p.URL()+"/b/k")
	if err != nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("%v %v", resp, err)
	}
}

func TestBadTarget(t *testing.T) {
	if _, err := Start("not a url"); err == nil {
		t.Fatal("accepted a bad target")
	}
}

func TestEvery(t *testing.T) {
	p := startProxy(t, echoTarget(t, 1).URL)
	p.SetRules(Rule{Fault: Status, Status: 500, Every: 3})
	var codes []int
	for range 7 {
		resp, _, err := get(t, http.DefaultClient, "GET", p.URL()+"/b/k")
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, resp.StatusCode)
	}
	want := []int{200, 200, 500, 200, 200, 500, 200}
	for i := range want {
		if codes[i] != want[i] {
			t.Fatalf("codes %v, want %v", codes, want)
		}
	}
}

func TestLoseAnswer(t *testing.T) {
	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(target.Close)
	p := startProxy(t, target.URL)
	p.SetRules(Rule{Method: "PUT", Fault: LoseAnswer, Times: 1})
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if _, _, err := get(t, c, "PUT", p.URL()+"/b/k"); err == nil {
		t.Fatal("the client got an answer that should have been lost")
	}
	if hits.Load() != 1 {
		t.Fatalf("target saw %d requests, want 1 (the request must take effect)", hits.Load())
	}
	if resp, _, err := get(t, c, "PUT", p.URL()+"/b/k"); err != nil || resp.StatusCode != 200 || hits.Load() != 2 {
		t.Fatalf("second PUT: %v %v, %d hits", resp, err, hits.Load())
	}
}

func TestCorruptRequest(t *testing.T) {
	got := make(chan []byte, 2)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- b
	}))
	t.Cleanup(target.Close)
	p := startProxy(t, target.URL)
	p.SetRules(Rule{Method: "PUT", Fault: CorruptRequest, Bytes: 2, Times: 1})
	for _, want := range []string{"bo\x9by", "body"} {
		if _, _, err := get(t, http.DefaultClient, "PUT", p.URL()+"/b/k"); err != nil {
			t.Fatal(err)
		}
		if b := <-got; string(b) != want {
			t.Fatalf("target got %q, want %q", b, want)
		}
	}
}
