package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/oip"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

const chaosToken = "s3cret"

// newChaosNode serves "iris" (y = x) and "other" (y = 2x) in chaos mode.
// exit replaces os.Exit; nil makes any exit a test failure.
func newChaosNode(t *testing.T, exit func(int), log *slog.Logger) *testNode {
	t.Helper()
	if exit == nil {
		exit = func(code int) { t.Errorf("unexpected chaos exit(%d)", code) }
	}
	cfg := Config{Chaos: true, AdminToken: chaosToken, ChaosExit: exit, Logger: log}
	n := newTestNode(t, cfg, func(st *modelstore.Store) {
		push(t, st, "iris", "1", "scale=1")
		push(t, st, "other", "1", "scale=2")
	})
	// Clearing the faults releases any request still hung, so that the
	// test server can close even when a test failed half-way.
	t.Cleanup(func() { n.admin(t, "DELETE", "", chaosToken) })
	return n
}

// admin calls /admin/chaos with a bearer token ("" sends none) and returns
// the status and the body, or the error message for an error status.
func (n *testNode) admin(t *testing.T, method, body, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, n.http.URL+"/admin/chaos", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := n.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s /admin/chaos: Content-Type %q", method, ct)
	}
	if resp.StatusCode >= 400 {
		var e oip.Error
		if err := json.Unmarshal(b, &e); err != nil || e.Error == "" {
			t.Errorf("%s /admin/chaos: error body %q is not {\"error\": ...}", method, b)
		}
		return resp.StatusCode, e.Error
	}
	return resp.StatusCode, string(b)
}

// setChaos PUTs settings and fails the test unless they are accepted.
func (n *testNode) setChaos(t *testing.T, body string) {
	t.Helper()
	if code, msg := n.admin(t, "PUT", body, chaosToken); code != 200 {
		t.Fatalf("PUT /admin/chaos %s: %d %s", body, code, msg)
	}
}

// getChaos returns the current settings.
func (n *testNode) getChaos(t *testing.T) ChaosSettings {
	t.Helper()
	code, body := n.admin(t, "GET", "", chaosToken)
	if code != 200 {
		t.Fatalf("GET /admin/chaos: %d %s", code, body)
	}
	var set ChaosSettings
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		t.Fatalf("GET /admin/chaos: %v in %s", err, body)
	}
	return set
}

// metric reads one series of /metrics, 0 if absent.
func (n *testNode) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := n.http.Client().Get(n.http.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

func injected(fault string) string {
	return `bulwark_node_chaos_injected_total{fault="` + fault + `"}`
}

// waitFor polls cond; the deadline is only there to fail a broken test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

var chaosInput = func() *oip.InferRequest {
	in, err := oip.NewInput("x", tensor.FromFloat32([]int{2, 4}, []float32{1, 2, 3, 4, 5, 6, 7, 8}))
	if err != nil {
		panic(err)
	}
	return &oip.InferRequest{Inputs: []oip.RequestInput{in}}
}()

// infer runs chaosInput on model and returns y and sum.
func (n *testNode) infer(ctx context.Context, model string) (y, sum []float32, err error) {
	resp, err := n.c.Infer(ctx, model, "", chaosInput)
	if err != nil {
		return nil, nil, err
	}
	ts, err := resp.Tensors()
	if err != nil {
		return nil, nil, err
	}
	return ts["y"].F32, ts["sum"].F32, nil
}

func mustInfer(t *testing.T, n *testNode, model string) (y, sum []float32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	y, sum, err := n.infer(ctx, model)
	if err != nil {
		t.Fatalf("infer %s: %v", model, err)
	}
	return y, sum
}

var (
	cleanY   = []float32{1, 2, 3, 4, 5, 6, 7, 8}
	cleanSum = []float32{10, 26}
)

func TestChaosDisabled(t *testing.T) {
	n := newTestNode(t, Config{AdminToken: chaosToken}, nil)
	for _, m := range []string{"GET", "PUT", "DELETE"} {
		if code, _ := n.admin(t, m, `{"hang":{}}`, chaosToken); code != 404 {
			t.Errorf("%s /admin/chaos without chaos mode: %d, want 404", m, code)
		}
	}
	if v := n.metric(t, injected("error")); v != 0 {
		t.Errorf("chaos metric without chaos mode: %v", v)
	}
	st, _ := modelstore.Open(t.TempDir())
	_, err := New(Config{Store: st, Runtime: newFakeRuntime(), Chaos: true})
	if err == nil || !strings.Contains(err.Error(), "chaos mode needs an admin token") {
		t.Fatalf("chaos without a token: %v", err)
	}
}

func TestChaosAuth(t *testing.T) {
	n := newChaosNode(t, nil, nil)
	n.setChaos(t, `{"models":["nothing"],"hang":{}}`)
	before := n.getChaos(t)
	for _, token := range []string{"", "wrong"} {
		for _, m := range []string{"GET", "PUT", "DELETE", "POST"} {
			if code, _ := n.admin(t, m, `{"error":{"rate":1}}`, token); code != 401 {
				t.Errorf("%s with token %q: %d, want 401", m, token, code)
			}
		}
	}
	if got := n.getChaos(t); !reflect.DeepEqual(got, before) {
		t.Fatalf("settings changed by unauthorized requests: %+v", got)
	}
	mustInfer(t, n, "iris")
}

func TestChaosSettingsAPI(t *testing.T) {
	var logs syncBuffer
	n := newChaosNode(t, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	if got := n.getChaos(t); !reflect.DeepEqual(got, ChaosSettings{}) {
		t.Fatalf("initial settings %+v", got)
	}

	// Omitted fields take their defaults, and GET returns what PUT answered.
	code, body := n.admin(t, "PUT", `{"models":["nothing"],"latency":{"ms":10},"error":{},"hang":{},"wrong":{},"exit":{"after_requests":5}}`, chaosToken)
	if code != 200 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	want := ChaosSettings{
		Models:  []string{"nothing"},
		Latency: &LatencyFault{Rate: 1, Distribution: "fixed", MS: 10},
		Error:   &ErrorFault{Rate: 1, Status: 500, Message: "chaos: injected error"},
		Hang:    &HangFault{Rate: 1},
		Wrong:   &WrongFault{Rate: 1, Mode: "perturb", Delta: 1},
		Exit:    &ExitFault{AfterRequests: 5, Code: 1},
	}
	var put ChaosSettings
	if err := json.Unmarshal([]byte(body), &put); err != nil || !reflect.DeepEqual(put, want) {
		t.Fatalf("PUT answered %s (%v)", body, err)
	}
	if got := n.getChaos(t); !reflect.DeepEqual(got, want) {
		t.Fatalf("GET after PUT: %+v", got)
	}
	if s := logs.String(); !strings.Contains(s, "level=WARN") || !strings.Contains(s, "chaos settings changed") || !strings.Contains(s, "remote=127.0.0.1:") || !strings.Contains(s, `\"after_requests\":5`) {
		t.Errorf("no WARN log with who and what:\n%s", s)
	}

	// A full body replaces the whole setting.
	full := `{"models":["iris"],"latency":{"rate":0.25,"distribution":"pareto","ms":5,"max_ms":50,"shape":1.5},"wrong":{"rate":0.5,"mode":"zero","delta":0}}`
	n.setChaos(t, full)
	want = ChaosSettings{
		Models:  []string{"iris"},
		Latency: &LatencyFault{Rate: 0.25, Distribution: "pareto", MS: 5, MaxMS: 50, Shape: 1.5},
		Wrong:   &WrongFault{Rate: 0.5, Mode: "zero"},
	}
	if got := n.getChaos(t); !reflect.DeepEqual(got, want) {
		t.Fatalf("GET after full PUT: %+v", got)
	}

	invalid := []struct{ body, msg string }{
		{``, "JSON object"},
		{`[]`, "JSON object"},
		{`null`, "JSON object"},
		{`{"hang":`, "malformed JSON"},
		{`{"hang":{}} {}`, "unexpected data"},
		{`{"nope":1}`, `unknown field "nope"`},
		{`{"hang":{"rate":1,"extra":true}}`, `unknown field "extra" in hang`},
		{`{"hang":true}`, "hang must be a JSON object"},
		{`{"hang":{"rate":"high"}}`, "hang.rate"},
		{`{"models":"iris"}`, "models"},
		{`{"models":[""]}`, "models[0] is empty"},
		{`{"latency":{"rate":1.5}}`, "latency.rate must be in [0, 1]"},
		{`{"error":{"rate":-0.1}}`, "error.rate must be in [0, 1]"},
		{`{"wrong":{"rate":2}}`, "wrong.rate must be in [0, 1]"},
		{`{"hang":{"rate":-1}}`, "hang.rate must be in [0, 1]"},
		{`{"latency":{"ms":-5}}`, "latency.ms must be in [0, 3600000]"},
		{`{"latency":{"ms":1,"max_ms":-5}}`, "latency.max_ms must be in"},
		{`{"latency":{"ms":1e10}}`, "latency.ms must be in"},
		{`{"latency":{"distribution":"uniform","ms":10,"max_ms":5}}`, "latency.max_ms (5) must be at least latency.ms (10) for uniform"},
		{`{"latency":{"distribution":"exponential","ms":10,"max_ms":5}}`, "the cap"},
		{`{"latency":{"distribution":"gaussian"}}`, "latency.distribution must be"},
		{`{"latency":{"distribution":"pareto","ms":10}}`, "latency.shape must be > 0 for pareto"},
		{`{"latency":{"shape":-1}}`, "latency.shape"},
		{`{"error":{"status":200}}`, "error.status must be in [400, 599]"},
		{`{"wrong":{"mode":"invert"}}`, "wrong.mode must be"},
		{`{"exit":{"after_requests":-1}}`, "exit.after_requests must be >= 0"},
		{`{"exit":{"after_requests":1.5}}`, "exit.after_requests"},
		{`{"exit":{"code":300}}`, "exit.code must be in [0, 255]"},
	}
	for _, c := range invalid {
		code, msg := n.admin(t, "PUT", c.body, chaosToken)
		if code != 400 || !strings.Contains(msg, c.msg) || !strings.HasPrefix(msg, "invalid chaos settings: ") {
			t.Errorf("PUT %s: %d %q, want 400 with %q", c.body, code, msg, c.msg)
		}
	}
	if got := n.getChaos(t); !reflect.DeepEqual(got, want) {
		t.Fatalf("an invalid PUT changed the settings: %+v", got)
	}
	if code, _ := n.admin(t, "PUT", `{"models":["`+strings.Repeat("m", maxChaosBody)+`"]}`, chaosToken); code != 413 {
		t.Errorf("huge PUT: %d, want 413", code)
	}
	if code, msg := n.admin(t, "POST", `{}`, chaosToken); code != 405 || !strings.Contains(msg, "GET, PUT or DELETE") {
		t.Errorf("POST: %d %q", code, msg)
	}

	if code, body := n.admin(t, "DELETE", "", chaosToken); code != 200 || body != "{}" {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	if got := n.getChaos(t); !reflect.DeepEqual(got, ChaosSettings{}) {
		t.Fatalf("GET after DELETE: %+v", got)
	}
	if !strings.Contains(logs.String(), "chaos faults cleared") {
		t.Errorf("no log for DELETE")
	}
}

func TestChaosError(t *testing.T) {
	n := newChaosNode(t, nil, nil)
	n.setChaos(t, `{"error":{"rate":0,"status":503}}`)
	mustInfer(t, n, "iris")

	n.setChaos(t, `{"error":{"rate":1,"status":503,"message":"boom"}}`)
	code, msg := n.do(t, "POST", "/v2/models/iris/infer", inferBody("", [][]float32{{1, 2, 3, 4}}))
	if code != 503 || msg != "boom" {
		t.Fatalf("injected error: %d %q", code, msg)
	}
	n.setChaos(t, `{"error":{}}`)
	if code, msg := n.do(t, "POST", "/v2/models/iris/versions/1/infer", inferBody("", [][]float32{{1, 2, 3, 4}})); code != 500 || msg != "chaos: injected error" {
		t.Fatalf("default injected error: %d %q", code, msg)
	}
	// Health checks do not see it: that is the gateway's job.
	for _, p := range []string{"/v2/health/live", "/v2/health/ready", "/v2/models/iris/ready", "/v2/models/iris"} {
		if code, _ := n.do(t, "GET", p, ""); code != 200 {
			t.Errorf("GET %s under chaos: %d", p, code)
		}
	}
	if v := n.metric(t, injected("error")); v != 2 {
		t.Errorf("injected errors metric = %v, want 2", v)
	}
	if v := n.metric(t, `bulwark_node_infer_errors_total{kind="chaos",model="iris",version="1"}`); v != 2 {
		t.Errorf("errors{kind=chaos} = %v, want 2", v)
	}
}

func TestChaosModelFilter(t *testing.T) {
	n := newChaosNode(t, nil, nil)
	n.setChaos(t, `{"models":["other"],"error":{"status":502}}`)
	mustInfer(t, n, "iris")
	_, _, err := n.infer(context.Background(), "other")
	if oip.StatusCode(err) != 502 {
		t.Fatalf("other under chaos: %v", err)
	}
}

func TestChaosLatency(t *testing.T) {
	n := newChaosNode(t, nil, nil)
	// Rate 0: an hour-long delay never applies.
	n.setChaos(t, `{"latency":{"rate":0,"ms":3600000}}`)
	mustInfer(t, n, "iris")

	n.setChaos(t, `{"latency":{"rate":1,"distribution":"fixed","ms":50}}`)
	start := time.Now()
	y, _ := mustInfer(t, n, "iris")
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Fatalf("fixed 50ms latency took %v", el)
	}
	if !reflect.DeepEqual(y, cleanY) {
		t.Fatalf("latency changed the answer: %v", y)
	}
	n.setChaos(t, `{"latency":{"distribution":"uniform","ms":20,"max_ms":40}}`)
	start = time.Now()
	mustInfer(t, n, "iris")
	if el := time.Since(start); el < 20*time.Millisecond {
		t.Fatalf("uniform [20ms, 40ms] latency took %v", el)
	}

	// A client that gives up ends the delay, and the handler returns.
	n.setChaos(t, `{"latency":{"ms":3600000}}`)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, _, err := n.infer(ctx, "iris"); errc <- err }()
	waitFor(t, "the delay to start", func() bool { return n.metric(t, injected("latency")) == 3 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: %v", err)
	}
	waitFor(t, "the handler to return", func() bool {
		return n.metric(t, `bulwark_node_infer_errors_total{kind="canceled",model="iris",version="1"}`) == 1
	})
}

func TestChaosLatencyDistributions(t *testing.T) {
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	cases := []struct {
		f      LatencyFault
		lo, hi time.Duration // inclusive bounds of every sample
		mean   time.Duration // checked within 10% when set
	}{
		{LatencyFault{Distribution: "fixed", MS: 50}, ms(50), ms(50), 0},
		{LatencyFault{Distribution: "fixed", MS: 50, MaxMS: 60}, ms(50), ms(50), 0},
		{LatencyFault{Distribution: "uniform", MS: 10, MaxMS: 20}, ms(10), ms(20), ms(15)},
		{LatencyFault{Distribution: "exponential", MS: 10}, 0, ms(maxChaosMS), ms(10)},
		{LatencyFault{Distribution: "exponential", MS: 10, MaxMS: 15}, 0, ms(15), 0},
		{LatencyFault{Distribution: "pareto", MS: 10, Shape: 3}, ms(10), ms(maxChaosMS), ms(15)}, // mean = scale·shape/(shape-1)
		{LatencyFault{Distribution: "pareto", MS: 10, Shape: 1.5, MaxMS: 100}, ms(10), ms(100), 0},
		{LatencyFault{Distribution: "pareto", MS: 1000, Shape: 0.01}, ms(1000), ms(maxChaosMS), 0}, // heavy tail: capped at one hour
	}
	for _, c := range cases {
		rng := rand.New(rand.NewPCG(1, 2))
		const n = 20000
		var sum time.Duration
		for range n {
			d := c.f.sample(rng)
			if d < c.lo || d > c.hi {
				t.Fatalf("%+v: sample %v outside [%v, %v]", c.f, d, c.lo, c.hi)
			}
			sum += d
		}
		if c.mean > 0 {
			if mean := sum / n; mean < c.mean*9/10 || mean > c.mean*11/10 {
				t.Errorf("%+v: mean %v, want about %v", c.f, mean, c.mean)
			}
		}
	}
}

func TestChaosHang(t *testing.T) {
	n := newChaosNode(t, nil, nil)
	n.setChaos(t, `{"hang":{"rate":0}}`)
	mustInfer(t, n, "iris")

	// Hung until the client gives up; then the handler returns.
	n.setChaos(t, `{"hang":{"rate":1}}`)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, _, err := n.infer(ctx, "iris"); errc <- err }()
	waitFor(t, "the request to hang", func() bool { return n.metric(t, injected("hang")) == 1 })
	select {
	case err := <-errc:
		t.Fatalf("a hung request was answered: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if code, _ := n.do(t, "GET", "/v2/health/ready", ""); code != 200 {
		t.Errorf("ready while a request hangs: %d", code)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled hung request: %v", err)
	}
	waitFor(t, "the handler to return", func() bool {
		return n.metric(t, `bulwark_node_infer_errors_total{kind="canceled",model="iris",version="1"}`) == 1
	})

	// Clearing the faults releases hung requests, which then run.
	type result struct {
		y   []float32
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		y, _, err := n.infer(ctx, "iris")
		done <- result{y, err}
	}()
	waitFor(t, "the second request to hang", func() bool { return n.metric(t, injected("hang")) == 2 })
	if code, _ := n.admin(t, "DELETE", "", chaosToken); code != 200 {
		t.Fatal("DELETE failed")
	}
	if r := <-done; r.err != nil || !reflect.DeepEqual(r.y, cleanY) {
		t.Fatalf("released request: %v %v", r.y, r.err)
	}
}

func TestChaosWrong(t *testing.T) {
	n := newChaosNode(t, nil, nil)
	y, sum := mustInfer(t, n, "iris")
	if !reflect.DeepEqual(y, cleanY) || !reflect.DeepEqual(sum, cleanSum) {
		t.Fatalf("clean run: %v %v", y, sum)
	}
	cases := []struct {
		body     string
		y, sum   []float32
		affected bool
	}{
		{`{"wrong":{"rate":0}}`, cleanY, cleanSum, false},
		{`{"wrong":{"rate":1}}`, []float32{2, 3, 4, 5, 6, 7, 8, 9}, []float32{11, 27}, true},
		{`{"wrong":{"mode":"perturb","delta":-0.5}}`, []float32{0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5}, []float32{9.5, 25.5}, true},
		{`{"wrong":{"mode":"zero"}}`, make([]float32, 8), make([]float32, 2), true},
		{`{"wrong":{"mode":"shuffle"}}`, []float32{8, 7, 6, 5, 4, 3, 2, 1}, []float32{26, 10}, true},
		{`{"models":["other"],"wrong":{}}`, cleanY, cleanSum, false},
	}
	want := 0.0
	for _, c := range cases {
		n.setChaos(t, c.body)
		y, sum := mustInfer(t, n, "iris")
		if !reflect.DeepEqual(y, c.y) || !reflect.DeepEqual(sum, c.sum) {
			t.Errorf("%s: y %v sum %v, want %v %v", c.body, y, sum, c.y, c.sum)
		}
		if c.affected {
			want++
		}
	}
	if v := n.metric(t, injected("wrong")); v != want {
		t.Errorf("wrong metric = %v, want %v", v, want)
	}
	// The model itself is untouched: a clean run afterwards is clean.
	n.admin(t, "DELETE", "", chaosToken)
	if y, sum := mustInfer(t, n, "iris"); !reflect.DeepEqual(y, cleanY) || !reflect.DeepEqual(sum, cleanSum) {
		t.Fatalf("clean run after chaos: %v %v", y, sum)
	}
}

func TestChaosCorruptDatatypes(t *testing.T) {
	mk := func() []oip.Output {
		return []oip.Output{
			{Name: "f64", Tensor: tensor.FromFloat64([]int{3}, []float64{1, 2, 3})},
			{Name: "i32", Tensor: tensor.FromInt32([]int{3}, []int32{1, 2, 3})},
			{Name: "i64", Tensor: tensor.FromInt64([]int{3}, []int64{1, 2, 3})},
			{Name: "b", Tensor: tensor.FromBool([]int{3}, []bool{true, false, false})},
		}
	}
	cases := map[string][]*tensor.Tensor{
		"perturb": {tensor.FromFloat64([]int{3}, []float64{3, 4, 5}), tensor.FromInt32([]int{3}, []int32{2, 3, 4}),
			tensor.FromInt64([]int{3}, []int64{2, 3, 4}), tensor.FromBool([]int{3}, []bool{false, true, true})},
		"zero": {tensor.FromFloat64([]int{3}, []float64{0, 0, 0}), tensor.FromInt32([]int{3}, []int32{0, 0, 0}),
			tensor.FromInt64([]int{3}, []int64{0, 0, 0}), tensor.FromBool([]int{3}, []bool{false, false, false})},
		"shuffle": {tensor.FromFloat64([]int{3}, []float64{3, 2, 1}), tensor.FromInt32([]int{3}, []int32{3, 2, 1}),
			tensor.FromInt64([]int{3}, []int64{3, 2, 1}), tensor.FromBool([]int{3}, []bool{false, false, true})},
	}
	for mode, want := range cases {
		outs := mk()
		orig := make([]*tensor.Tensor, len(outs))
		for i, o := range outs {
			orig[i] = o.Tensor
		}
		(&WrongFault{Mode: mode, Delta: 2}).corrupt(outs)
		for i, o := range outs {
			if !reflect.DeepEqual(o.Tensor, want[i]) {
				t.Errorf("%s %s: %+v, want %+v", mode, o.Name, o.Tensor, want[i])
			}
			if !reflect.DeepEqual(orig[i], mk()[i].Tensor) {
				t.Errorf("%s %s: the runtime's tensor was modified", mode, o.Name)
			}
		}
	}
}

func TestChaosExit(t *testing.T) {
	exits := make(chan int, 8)
	n := newChaosNode(t, func(code int) { exits <- code }, nil)
	noExit := func(when string) {
		t.Helper()
		select {
		case code := <-exits:
			t.Fatalf("exit(%d) %s", code, when)
		default:
		}
	}

	// after_requests 0: the PUT is answered, then the process exits.
	n.setChaos(t, `{"exit":{"after_requests":0,"code":3}}`)
	if code := <-exits; code != 3 {
		t.Fatalf("exit code %d, want 3", code)
	}

	n.setChaos(t, `{"models":["iris"],"exit":{"after_requests":2,"code":5}}`)
	noExit("on PUT with after_requests 2")
	mustInfer(t, n, "other")
	noExit("on a request for a model outside the filter")
	mustInfer(t, n, "iris")
	noExit("after the first request")
	n.infer(context.Background(), "iris") // a real exit would not answer it
	select {
	case code := <-exits:
		if code != 5 {
			t.Fatalf("exit code %d, want 5", code)
		}
	default:
		t.Fatal("no exit on the second request")
	}
	mustInfer(t, n, "iris")
	noExit("after the countdown")
	if v := n.metric(t, injected("exit")); v != 2 {
		t.Errorf("exit metric = %v, want 2", v)
	}
}

// TestChaosExitProcess runs a real node in a child process (this test
// binary, re-executed) and checks that "exit" ends it with the code.
func TestChaosExitProcess(t *testing.T) {
	if dir := os.Getenv("BULWARK_TEST_CHAOS_CHILD"); dir != "" {
		chaosChild(t, dir)
		return
	}
	for _, c := range []struct {
		after int64
		code  int
	}{{0, 3}, {2, 7}} {
		t.Run(fmt.Sprintf("after_%d", c.after), func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestChaosExitProcess$")
			cmd.Env = append(os.Environ(), "BULWARK_TEST_CHAOS_CHILD="+dir)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := false
			defer func() {
				if !exited {
					cmd.Process.Kill()
					cmd.Wait()
					t.Logf("child output:\n%s", out.String())
				}
			}()
			var addr []byte
			waitFor(t, "the child to listen", func() bool {
				b, err := os.ReadFile(filepath.Join(dir, "addr"))
				addr = b
				return err == nil
			})
			base := "http://" + string(addr)
			n := &testNode{http: nil, c: oip.NewClient(base, http.DefaultClient)}
			if err := n.c.Ready(ctx); err != nil {
				t.Fatalf("child not ready: %v", err)
			}
			req, _ := http.NewRequest("PUT", base+"/admin/chaos", strings.NewReader(fmt.Sprintf(`{"exit":{"after_requests":%d,"code":%d}}`, c.after, c.code)))
			req.Header.Set("Authorization", "Bearer "+chaosToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("PUT: %v", err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || err != nil {
				t.Fatalf("PUT: %d %s %v", resp.StatusCode, body, err)
			}
			for i := int64(1); i <= c.after; i++ {
				_, _, err := n.infer(ctx, "iris")
				if i < c.after && err != nil {
					t.Fatalf("request %d before the exit: %v", i, err)
				}
				if i == c.after && err == nil {
					t.Fatalf("request %d was answered; the process should have exited", i)
				}
			}
			err = cmd.Wait()
			exited = true
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != c.code {
				t.Fatalf("child ended with %v, want exit code %d\n%s", err, c.code, out.String())
			}
		})
	}
}

// chaosChild is the child side of TestChaosExitProcess: a chaos node on a
// real listener, whose address it writes to dir/addr.
func chaosChild(t *testing.T, dir string) {
	st, err := modelstore.Open(filepath.Join(dir, "site"))
	if err != nil {
		t.Fatal(err)
	}
	push(t, st, "iris", "1", "scale=1")
	srv, err := New(Config{Store: st, Runtime: newFakeRuntime(), Chaos: true, AdminToken: chaosToken})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "addr.tmp")
	if err := os.WriteFile(tmp, []byte(ln.Addr().String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "addr")); err != nil {
		t.Fatal(err)
	}
	err = srv.Serve(ctx, ln)
	t.Fatalf("the node was not ended by chaos exit (serve: %v)", err)
}

// syncBuffer is a log destination safe for the handler goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
