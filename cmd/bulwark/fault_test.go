package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/gateway"
	"github.com/bulwark-ml/bulwark/internal/oip"
	"github.com/bulwark-ml/bulwark/internal/sample"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// Fault tests: three real `bulwark node` processes in chaos mode behind a
// real `bulwark gateway`, under a steady open-loop load of faultRate
// requests per second, while the test kills, pauses, breaks and corrupts a
// replica with real signals and the nodes' chaos API. They assert outcomes
// (requests failed, wrong answers, ejections, tries counted), never
// timings, and synchronise by polling with deadlines, never by sleeping.
// Faults are injected by the load's own progress: after one second's worth
// of requests, then the fault lasts for a fixed number of requests.

const (
	faultToken = "fault-test-admin-token"
	faultRate  = 300 // requests per second
	faultModel = sample.ModelName
	faultWait  = 30 * time.Second // bound of every poll: generous, a busy machine is slow
)

// faultDefaults is the defaults section of every test's gateway config:
// fast health checks (a dead replica is out within a few hundred ms; the
// timeout and fall are loose enough that a starved CI machine does not mark
// live replicas down),
// ejection after two failures in a row, and short ejections and breaker
// openings so that a recovered replica is back within seconds. Hedging
// keeps its default: adaptive delay.
const faultDefaults = `defaults:
  timeout: 10s
  retry:
    attempts: 3
    perTryTimeout: 1s
  health:
    interval: 100ms
    timeout: 1s
    rise: 1
    fall: 3
  outlier:
    consecutiveFailures: 2
    baseEjection: 1s
    maxEjection: 4s
  breaker:
    openFor: 1s
`

// TestFaultKilledReplica: SIGKILL one replica mid-load. Tries in flight on
// it and tries sent to it before the gateway notices fail with connection
// errors, which are retried on the others: no client sees a failure.
func TestFaultKilledReplica(t *testing.T) {
	c := newFaultCluster(t, "")
	l := c.load(t, 5*time.Second, 10*time.Second)
	l.waitLaunched(t, faultRate)
	victim := c.nodes[1]
	victim.kill(t)
	at := l.launchedCount()
	l.waitLaunched(t, at+faultRate*3/2)
	c.waitReplica(t, 1, "the killed replica out of rotation", func(r gateway.ReplicaStatus) bool {
		return r.State == gateway.StateUnhealthy || r.State == gateway.StateEjected
	})
	rs := l.stop()
	s := summarizeLoad(rs)
	c.report(t, "SIGKILL one replica", s)
	if s.Failed+s.Wrong > 0 {
		t.Errorf("%d failed and %d wrong of %d requests with one replica killed:%s", s.Failed, s.Wrong, s.Requests, describeLoad(rs, 10, loadFailed))
	}
	if n := faultCountBefore(rs, at, func(r *loadResult) bool { return r.Replica == victim.url }); n == 0 {
		t.Errorf("the replica answered none of the %d requests before it was killed", at)
	}
}

// TestFaultPausedReplica: SIGSTOP one replica mid-load. Its connections
// still accept (the kernel does that) but nothing answers: tries on it
// must be hedged or time out and be retried elsewhere, each request within
// its 2s deadline. After SIGCONT it must rejoin and take requests again.
func TestFaultPausedReplica(t *testing.T) {
	c := newFaultCluster(t, "retry:\n  perTryTimeout: 500ms\n")
	l := c.load(t, 2*time.Second, 25*time.Second)
	l.waitLaunched(t, faultRate)
	victim := c.nodes[1]
	victim.signal(t, syscall.SIGSTOP)
	stopped := true
	t.Cleanup(func() {
		if stopped && victim.running() {
			victim.cmd.Process.Signal(syscall.SIGCONT)
		}
	})
	at := l.launchedCount()
	l.waitLaunched(t, at+2*faultRate)
	c.waitReplica(t, 1, "the paused replica out of rotation", func(r gateway.ReplicaStatus) bool {
		return r.State != gateway.StateHealthy
	})
	victim.signal(t, syscall.SIGCONT)
	stopped = false
	resumed := time.Now()
	answered := func() int {
		return l.count(func(r *loadResult) bool { return r.ok() && r.Replica == victim.url && r.Start.After(resumed) })
	}
	faultPoll(t, "the resumed replica healthy and answering again", func() (bool, string) {
		st, err := c.status()
		if err != nil {
			return false, err.Error()
		}
		r := replicaIn(st, victim.url)
		n := answered()
		return r.State == gateway.StateHealthy && n >= 10, fmt.Sprintf("state %s, %d answers since SIGCONT", r.State, n)
	})
	rs := l.stop()
	s := summarizeLoad(rs)
	c.report(t, "SIGSTOP one replica, then SIGCONT", s)
	t.Logf("answers from the resumed replica after SIGCONT: %d", answered())
	if s.Failed+s.Wrong > 0 {
		t.Errorf("%d failed (%d past the 2s deadline) and %d wrong of %d requests with one replica paused:%s",
			s.Failed, s.Timeouts, s.Wrong, s.Requests, describeLoad(rs, 10, loadFailed))
	}
}

// TestFaultErroringReplica: one replica answers every inference with a
// 500 while its health checks still pass. Retries hide it from the
// clients, and passive outlier detection ejects it.
func TestFaultErroringReplica(t *testing.T) {
	c := newFaultCluster(t, "")
	l := c.load(t, 5*time.Second, 10*time.Second)
	l.waitLaunched(t, faultRate)
	c.chaos(t, 1, `{"error":{"rate":1.0,"status":500}}`)
	at := l.launchedCount()
	l.waitLaunched(t, at+2*faultRate)
	rs := l.stop()
	s := summarizeLoad(rs)
	c.report(t, "one replica answering 500", s)
	if s.Failed+s.Wrong > 0 {
		t.Errorf("%d failed and %d wrong of %d requests with one replica answering 500:%s", s.Failed, s.Wrong, s.Requests, describeLoad(rs, 10, loadFailed))
	}
	injected := promSum(c.nodeMetrics(t, 1), "bulwark_node_chaos_injected_total", `fault="error"`)
	if injected == 0 {
		t.Error("the replica injected no errors: the fault never fired")
	}
	r := c.replica(t, 1)
	ejections := promSum(c.gatewayMetrics(t), "bulwark_gateway_ejections_total", `replica="`+c.nodes[1].url+`"`)
	t.Logf("erroring replica: %v errors injected, state %s, %d ejections (metric %v), %d failed tries", injected, r.State, r.Ejections, ejections, r.Failures)
	if r.Ejections < 1 && r.State != gateway.StateEjected {
		t.Errorf("the erroring replica was never ejected: %+v", r)
	}
}

// TestFaultLyingReplica: with voting on, one replica answers every
// inference wrongly (perturbed outputs, a plausible answer with a 200).
// No wrong answer may reach a client, and the liar, outvoted every time,
// is ejected.
func TestFaultLyingReplica(t *testing.T) {
	const ejectAfter = 3
	c := newFaultCluster(t, fmt.Sprintf("vote:\n  enabled: true\n  replicas: 3\n  ejectAfter: %d\n", ejectAfter))
	l := c.load(t, 5*time.Second, 10*time.Second)
	l.waitLaunched(t, faultRate)
	liar := c.nodes[2]
	c.chaos(t, 2, `{"wrong":{"rate":1.0,"mode":"perturb"}}`)
	// The fault is real: asked directly, the liar gives a wrong answer.
	if _, err := c.check(-1, c.direct(t, 2, -1)); err == nil {
		t.Fatal("with chaos wrong set, the replica still answers right")
	}
	at := l.launchedCount()
	l.waitLaunched(t, at+2*faultRate)
	rs := l.stop()
	s := summarizeLoad(rs)
	c.report(t, "one replica answering wrongly, voting on", s)
	if s.Wrong > 0 {
		t.Errorf("%d wrong answers of %d reached the client:%s", s.Wrong, s.Requests, describeLoad(rs, 10, func(r *loadResult) bool { return r.Wrong != nil }))
	}
	if s.Failed > 0 {
		t.Errorf("%d of %d requests failed:%s", s.Failed, s.Requests, describeLoad(rs, 10, loadFailed))
	}
	m := c.gatewayMetrics(t)
	r := c.replica(t, 2)
	disagreed := promSum(m, "bulwark_gateway_vote_disagreements_total", `replica="`+liar.url+`"`)
	t.Logf("liar: %v disagreements, state %s, %d ejections; votes %v", disagreed, r.State, r.Ejections, promByLabel(m, "bulwark_gateway_votes_total", "result"))
	// Status counts disagreements towards the next ejection and resets
	// them when it ejects, so the total is read from the metric.
	if disagreed < ejectAfter {
		t.Errorf("the liar was outvoted %v times, want at least ejectAfter=%d", disagreed, ejectAfter)
	}
	if r.Ejections < 1 && r.State != gateway.StateEjected {
		t.Errorf("the liar was never ejected: %+v", r)
	}
	for _, i := range []int{0, 1} {
		if d := promSum(m, "bulwark_gateway_vote_disagreements_total", `replica="`+c.nodes[i].url+`"`); d > 0 {
			t.Errorf("honest replica %s was outvoted %v times", c.nodes[i].url, d)
		}
	}
}

// TestFaultAllReplicasDown: with every replica killed the gateway answers
// 503 at once (no client waits for its deadline), and when they come back
// on the same addresses traffic recovers without restarting the gateway.
func TestFaultAllReplicasDown(t *testing.T) {
	c := newFaultCluster(t, "")
	const deadline = 2 * time.Second
	l := c.load(t, deadline, 15*time.Second)
	l.waitLaunched(t, faultRate)
	killed := time.Now()
	for _, n := range c.nodes {
		n.kill(t)
	}
	faultPoll(t, "the gateway to see no replica available", func() (bool, string) {
		st, err := c.status()
		if err != nil {
			return false, err.Error()
		}
		return st.Models[0].Available == 0, fmt.Sprintf("%d available", st.Models[0].Available)
	})
	down := l.launchedCount()
	l.waitLaunched(t, down+faultRate)
	rs := l.stop()
	s := summarizeLoad(rs)
	c.report(t, "all replicas killed", s)
	if s.NoAnswer > 0 {
		t.Errorf("%d of %d requests got no answer within their %v deadline:%s", s.NoAnswer, s.Requests, deadline,
			describeLoad(rs, 10, func(r *loadResult) bool { return r.Err != nil }))
	}
	answeredBefore := func(r *loadResult) bool { return r.Start.Add(r.Latency).Before(killed) }
	if n := faultCountFrom(rs, 0, func(r *loadResult) bool { return answeredBefore(r) && loadFailed(r) }); n > 0 {
		t.Errorf("%d requests answered before the kill failed:%s", n,
			describeLoad(rs, 10, func(r *loadResult) bool { return answeredBefore(r) && loadFailed(r) }))
	}
	after := rs[min(down, len(rs)):]
	if n := faultCountFrom(rs, down, func(r *loadResult) bool { return r.Status != http.StatusServiceUnavailable }); n > 0 || len(after) == 0 {
		t.Errorf("%d of %d requests sent with every replica down were not answered 503:%s", n, len(after),
			describeLoad(after, 10, func(r *loadResult) bool { return r.Status != http.StatusServiceUnavailable }))
	}
	t.Logf("with every replica down: %d requests, all answered 503 within the deadline; slowest %v", len(after), summarizeLoad(after).MaxLatency.Round(time.Millisecond))

	// Bring them back, on the same ports; the gateway keeps running.
	for _, n := range c.nodes {
		n.start(t)
	}
	for _, n := range c.nodes {
		n.waitReady(t)
	}
	probes := 0
	faultPoll(t, "requests through the gateway to succeed again", func() (bool, string) {
		probes++
		st, err := c.status()
		if err != nil {
			return false, err.Error()
		}
		status, msg := c.inferOnce(probes)
		return status == http.StatusOK && st.Models[0].Available == len(c.nodes),
			fmt.Sprintf("HTTP %d %s; %d replicas available", status, msg, st.Models[0].Available)
	})
	l2 := c.load(t, 5*time.Second, 10*time.Second)
	l2.waitLaunched(t, faultRate*3/2)
	rs2 := l2.stop()
	s2 := summarizeLoad(rs2)
	t.Logf("after the restart (%d probe requests until one succeeded with every replica available): %v", probes, s2)
	if s2.Failed+s2.Wrong > 0 {
		t.Errorf("%d failed and %d wrong of %d requests after the replicas came back:%s", s2.Failed, s2.Wrong, s2.Requests, describeLoad(rs2, 10, loadFailed))
	}
	for i := range c.nodes {
		if n := faultCountFrom(rs2, 0, func(r *loadResult) bool { return r.Replica == c.nodes[i].url }); n == 0 {
			t.Errorf("restarted replica %s answered none of %d requests", c.nodes[i].url, len(rs2))
		}
	}
}

// TestFaultRetryBudget: every replica fails half the requests. Retrying
// every failure would send up to attempts× the traffic; the retry budget
// lets only budget×requests + minPerSecond×seconds extra tries through
// (plus the bucket's first second's worth), and hedges stay within their
// own budget. Some clients get errors: that is the budget working.
func TestFaultRetryBudget(t *testing.T) {
	const ratio, perSecond = 0.2, 5.0
	c := newFaultCluster(t, fmt.Sprintf("retry:\n  budget: %v\n  minPerSecond: %v\n", ratio, perSecond))
	l := c.load(t, 5*time.Second, 10*time.Second)
	l.waitLaunched(t, faultRate/2)
	for i := range c.nodes {
		c.chaos(t, i, `{"error":{"rate":0.5}}`)
	}
	at := l.launchedCount()
	l.waitLaunched(t, at+2*faultRate)
	rs := l.stop()
	s := summarizeLoad(rs)
	c.report(t, "every replica failing half the requests", s)

	m := c.gatewayMetrics(t)
	// Every token the budgets ever held was earned during the gateway's
	// life, which lies within this interval.
	elapsed := time.Since(c.gwStart).Seconds()
	requests := max(promSum(m, "bulwark_gateway_requests_total", `model="`+faultModel+`"`), float64(len(rs)))
	tries := promByLabel(m, "bulwark_gateway_tries_total", "kind")
	denied := promSum(m, "bulwark_gateway_retries_denied_total")
	retryBound := perSecond + ratio*requests + perSecond*elapsed + 1 // +1: float rounding
	hedgeBound := gateway.DefaultPolicy().Hedge.Budget*requests + 1
	t.Logf("budget: %v requests in %.1fs; tries %v; retries denied %v; retry bound %.1f, hedge bound %.1f",
		requests, elapsed, tries, denied, retryBound, hedgeBound)
	if tries["retry"] > retryBound {
		t.Errorf("%v retries for %v requests in %.1fs: over the budget's %.1f", tries["retry"], requests, elapsed, retryBound)
	}
	if tries["hedge"] > hedgeBound {
		t.Errorf("%v hedges for %v requests: over the budget's %.1f", tries["hedge"], requests, hedgeBound)
	}
	if denied == 0 {
		t.Error("no retry was denied: the budget never bound, so this test shows nothing")
	}
	// The nodes' own counters agree: what reached them beyond the first
	// tries is within the same bounds.
	var atNodes float64
	for i := range c.nodes {
		atNodes += promSum(c.nodeMetrics(t, i), "bulwark_node_infer_requests_total", `model="`+faultModel+`"`)
	}
	atNodes -= float64(c.directs)
	t.Logf("inference requests counted by the nodes: %v (first tries %v)", atNodes, tries["first"])
	if extra := atNodes - tries["first"]; extra > retryBound+hedgeBound {
		t.Errorf("the nodes received %v requests beyond the %v first tries: over the budgets' %.1f", extra, tries["first"], retryBound+hedgeBound)
	}
	if s.OK == 0 {
		t.Errorf("no request succeeded: %v", s)
	}
}

// --- the cluster: three nodes and a gateway, as processes ---

type faultCluster struct {
	t       *testing.T
	dir     string
	site    string
	nodes   []*faultProc
	gw      *faultProc
	gwURL   string
	gwStart time.Time
	client  *http.Client
	input   oip.RequestInput
	ref     map[string]*tensor.Tensor // the right answer, from a healthy node before any fault
	directs int                       // inference requests the test sent to nodes directly
}

// newFaultCluster pushes the sample model into a new site, starts three
// chaos-mode nodes serving it and a gateway in front of them whose config
// has faultDefaults and the given model policy (YAML, unindented).
func newFaultCluster(t *testing.T, policy string) *faultCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("fault tests run real processes under load for several seconds each; skipped with -short")
	}
	dir := t.TempDir()
	c := &faultCluster{t: t, dir: dir, site: filepath.Join(dir, "site"), client: &http.Client{Timeout: 10 * time.Second}}
	t.Cleanup(c.client.CloseIdleConnections)
	// Registered before the processes' cleanups, so it runs after them:
	// the logs are complete.
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
	})
	model := filepath.Join(dir, "iris.onnx")
	if _, stderr, code := run(t, c.site, "sample", "-o", model); code != 0 {
		t.Fatalf("sample: %s", stderr)
	}
	if _, stderr, code := run(t, c.site, "model", "push", faultModel, model); code != 0 {
		t.Fatalf("push: %s", stderr)
	}
	for i := range 3 {
		name := fmt.Sprintf("replica-%d", i)
		addr := faultFreeAddr(t)
		n := &faultProc{name: name, url: "http://" + addr, log: filepath.Join(dir, name+".log"),
			args: []string{"--site", c.site, "node", "--listen", addr, "--name", name, "--chaos"}}
		t.Cleanup(func() { n.kill(t) })
		n.start(t)
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes {
		n.waitReady(t)
	}

	rows := sample.Example()
	data := make([]float32, 0, 4*len(rows))
	for _, r := range rows {
		data = append(data, r[:]...)
	}
	in, err := oip.NewInput(sample.InputName, tensor.FromFloat32([]int{len(rows), 4}, data))
	if err != nil {
		t.Fatal(err)
	}
	c.input = in
	var resp oip.InferResponse
	if err := json.Unmarshal(c.direct(t, 0, -1), &resp); err != nil {
		t.Fatal(err)
	}
	if c.ref, err = resp.Tensors(); err != nil {
		t.Fatal(err)
	}
	if l := c.ref[sample.LabelName]; l == nil || !slices.Equal(l.I64, []int64{0, 1, 2}) || c.ref[sample.ProbsName] == nil {
		t.Fatalf("reference answer %+v: want labels [0 1 2] and probabilities", resp.Outputs)
	}

	var cfg strings.Builder
	cfg.WriteString(faultDefaults)
	fmt.Fprintf(&cfg, "models:\n  %s:\n    replicas:\n", faultModel)
	for _, n := range c.nodes {
		fmt.Fprintf(&cfg, "      - address: %s\n", n.url)
	}
	if policy != "" {
		cfg.WriteString("    policy:\n")
		for _, line := range strings.Split(strings.TrimRight(policy, "\n"), "\n") {
			cfg.WriteString("      " + line + "\n")
		}
	}
	cfgPath := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	c.gw = &faultProc{name: "gateway", log: filepath.Join(dir, "gateway.log"),
		args: []string{"--site", c.site, "gateway", "--config", cfgPath, "--listen", "127.0.0.1:0"}}
	t.Cleanup(func() { c.gw.kill(t) })
	c.gwStart = time.Now()
	c.gw.start(t)
	re := regexp.MustCompile(`gateway serving on (http://\S+)`)
	faultPoll(t, "the gateway's serving line", func() (bool, string) {
		c.gw.exitedFatal(t)
		b, _ := os.ReadFile(c.gw.log)
		if m := re.FindSubmatch(b); m != nil {
			c.gwURL = string(m[1])
			return true, ""
		}
		return false, "not printed yet"
	})
	faultPoll(t, "every replica checked and healthy", func() (bool, string) {
		c.gw.exitedFatal(t)
		st, err := c.status()
		if err != nil {
			return false, err.Error()
		}
		for _, r := range st.Models[0].Replicas {
			if r.State != gateway.StateHealthy || r.LastHealthCheck == nil {
				return false, fmt.Sprintf("%s: %s, checked %v", r.Address, r.State, r.LastHealthCheck != nil)
			}
		}
		return st.Ready, "not ready"
	})
	return c
}

func (c *faultCluster) load(t *testing.T, deadline, maxTime time.Duration) *loadGen {
	return startLoad(t, loadConfig{
		URL:  c.gwURL + "/v2/models/" + faultModel + "/infer",
		Rate: faultRate, Max: faultRate * int(maxTime/time.Second), MaxTime: maxTime,
		Deadline: deadline, Body: c.body, Check: c.check,
	})
}

func (c *faultCluster) body(seq int) []byte {
	b, err := json.Marshal(&oip.InferRequest{ID: "req-" + strconv.Itoa(seq), Inputs: []oip.RequestInput{c.input}})
	if err != nil {
		panic(err)
	}
	return b
}

// check compares an answer with the reference: the request's id echoed,
// the labels equal, the probabilities equal to within float rounding.
func (c *faultCluster) check(seq int, body []byte) ([]int64, error) {
	var resp oip.InferResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("undecodable answer: %v", err)
	}
	if want := "req-" + strconv.Itoa(seq); resp.ID != want {
		return nil, fmt.Errorf("answer to request %q, want %q", resp.ID, want)
	}
	outs, err := resp.Tensors()
	if err != nil {
		return nil, err
	}
	var labels []int64
	if l := outs[sample.LabelName]; l != nil {
		labels = l.I64
	}
	if len(outs) != len(c.ref) {
		return labels, fmt.Errorf("%d outputs, want %d", len(outs), len(c.ref))
	}
	for name, want := range c.ref {
		got := outs[name]
		if got == nil {
			return labels, fmt.Errorf("output %q missing", name)
		}
		if got.DType != want.DType || !slices.Equal(got.Shape, want.Shape) {
			return labels, fmt.Errorf("output %q is %v%v, want %v%v", name, got.DType, got.Shape, want.DType, want.Shape)
		}
		for i := range want.Len() {
			g, w := got.Float64At(i), want.Float64At(i)
			if d := math.Abs(g - w); d > 1e-6 && d > 1e-6*math.Abs(w) {
				return labels, fmt.Errorf("output %q[%d] = %v, want %v", name, i, g, w)
			}
		}
	}
	return labels, nil
}

// direct sends one inference request straight to node i and returns the
// 200 answer's body.
func (c *faultCluster) direct(t *testing.T, i, seq int) []byte {
	t.Helper()
	c.directs++
	resp, err := c.client.Post(c.nodes[i].url+"/v2/models/"+faultModel+"/infer", "application/json", bytes.NewReader(c.body(seq)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("direct request to %s: HTTP %d %s", c.nodes[i].name, resp.StatusCode, b)
	}
	return b
}

// inferOnce sends one request through the gateway: its status and, for an
// error, the message.
func (c *faultCluster) inferOnce(seq int) (int, string) {
	req, _ := http.NewRequest(http.MethodPost, c.gwURL+"/v2/models/"+faultModel+"/infer", bytes.NewReader(c.body(seq)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(gateway.TimeoutHeader, "2s")
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if _, err := c.check(seq, b); err != nil {
			return 0, "wrong answer: " + err.Error()
		}
		return resp.StatusCode, ""
	}
	return resp.StatusCode, string(bytes.TrimSpace(b))
}

// chaos replaces node i's fault setting.
func (c *faultCluster) chaos(t *testing.T, i int, settings string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, c.nodes[i].url+"/admin/chaos", strings.NewReader(settings))
	req.Header.Set("Authorization", "Bearer "+faultToken)
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /admin/chaos %s on %s: HTTP %d %s", settings, c.nodes[i].name, resp.StatusCode, b)
	}
}

func (c *faultCluster) get(url string, auth bool) ([]byte, error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if auth {
		req.Header.Set("Authorization", "Bearer "+faultToken)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: HTTP %d %s", url, resp.StatusCode, b)
	}
	return b, err
}

// status is the gateway's GET /admin/status.
func (c *faultCluster) status() (gateway.Status, error) {
	var st gateway.Status
	b, err := c.get(c.gwURL+"/admin/status", true)
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err == nil && (len(st.Models) != 1 || len(st.Models[0].Replicas) != len(c.nodes)) {
		err = fmt.Errorf("status has %d models, want 1 with %d replicas: %s", len(st.Models), len(c.nodes), b)
	}
	return st, err
}

func replicaIn(st gateway.Status, url string) gateway.ReplicaStatus {
	for _, r := range st.Models[0].Replicas {
		if r.Address == url {
			return r
		}
	}
	return gateway.ReplicaStatus{Address: url, State: "missing from the status"}
}

// replica is node i as the gateway sees it now.
func (c *faultCluster) replica(t *testing.T, i int) gateway.ReplicaStatus {
	t.Helper()
	st, err := c.status()
	if err != nil {
		t.Fatal(err)
	}
	return replicaIn(st, c.nodes[i].url)
}

// waitReplica polls the gateway's status until node i's replica is as
// wanted.
func (c *faultCluster) waitReplica(t *testing.T, i int, what string, ok func(gateway.ReplicaStatus) bool) {
	t.Helper()
	faultPoll(t, what, func() (bool, string) {
		st, err := c.status()
		if err != nil {
			return false, err.Error()
		}
		r := replicaIn(st, c.nodes[i].url)
		return ok(r), fmt.Sprintf("%+v", r)
	})
}

func (c *faultCluster) gatewayMetrics(t *testing.T) string {
	t.Helper()
	b, err := c.get(c.gwURL+"/metrics", false)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (c *faultCluster) nodeMetrics(t *testing.T, i int) string {
	t.Helper()
	b, err := c.get(c.nodes[i].url+"/metrics", false)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// report logs the load's outcome with the gateway's counters.
func (c *faultCluster) report(t *testing.T, scenario string, s loadSummary) {
	t.Helper()
	m := c.gatewayMetrics(t)
	ej := map[string]float64{}
	for i, n := range c.nodes {
		ej[strconv.Itoa(i)] = promSum(m, "bulwark_gateway_ejections_total", `replica="`+n.url+`"`)
	}
	t.Logf("%s: %v\n  gateway tries %v, retries denied %v, ejections by replica %v, shed %v",
		scenario, s, promByLabel(m, "bulwark_gateway_tries_total", "kind"),
		promSum(m, "bulwark_gateway_retries_denied_total"), ej, promByLabel(m, "bulwark_gateway_shed_total", "reason"))
}

func (c *faultCluster) dumpLogs() {
	procs := append([]*faultProc{c.gw}, c.nodes...)
	for _, p := range procs {
		if p == nil {
			continue
		}
		b, _ := os.ReadFile(p.log)
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		c.t.Logf("last lines of the %s log:\n%s", p.name, strings.Join(lines[max(0, len(lines)-25):], "\n"))
	}
}

// --- processes ---

// faultProc is one bulwark process that the test can start, restart,
// signal and kill. Its stdout and stderr go to its log file.
type faultProc struct {
	name   string
	url    string // a node's base URL
	log    string
	args   []string
	cmd    *exec.Cmd
	exited chan struct{} // closed once the current process has been reaped
}

func (p *faultProc) start(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // the child has its own descriptor
	cmd := exec.Command(binary, p.args...)
	cmd.Env = append(os.Environ(), "BULWARK_ADMIN_TOKEN="+faultToken)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
}

func (p *faultProc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// exitedFatal fails the test if the process has ended on its own.
func (p *faultProc) exitedFatal(t *testing.T) {
	t.Helper()
	if p.cmd != nil && !p.running() {
		b, _ := os.ReadFile(p.log)
		t.Fatalf("%s exited (%v); its log:\n%s", p.name, p.cmd.ProcessState, b)
	}
}

// waitReady waits until a node answers ready.
func (p *faultProc) waitReady(t *testing.T) {
	t.Helper()
	hc := &http.Client{Timeout: time.Second}
	defer hc.CloseIdleConnections()
	faultPoll(t, p.name+" ready", func() (bool, string) {
		p.exitedFatal(t)
		resp, err := hc.Get(p.url + "/v2/health/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
}

func (p *faultProc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%v to %s: %v", sig, p.name, err)
	}
}

// kill SIGKILLs the process, if it runs, and reaps it. It works on a
// stopped process too.
func (p *faultProc) kill(t *testing.T) {
	if !p.running() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(faultWait):
		t.Errorf("%s (pid %d) still running %v after SIGKILL", p.name, p.cmd.Process.Pid, faultWait)
	}
}

// --- helpers ---

// freeLoopbackAddr returns a loopback address with a port that was free a
// moment ago: the kernel picks it, then the listener is closed for the
// process under test to take.
func faultFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// poll calls cond until it holds, for at most faultWait; cond's string
// says what it saw, for the failure message.
func faultPoll(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(faultWait)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s; last saw: %s", faultWait, what, saw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func faultCountFrom(rs []loadResult, seq int, match func(*loadResult) bool) int {
	n := 0
	for i := range rs {
		if rs[i].Seq >= seq && match(&rs[i]) {
			n++
		}
	}
	return n
}

func faultCountBefore(rs []loadResult, seq int, match func(*loadResult) bool) int {
	n := 0
	for i := range rs {
		if rs[i].Seq < seq && match(&rs[i]) {
			n++
		}
	}
	return n
}

// metricSum adds up the samples of a Prometheus text exposition's metric
// whose labels include every one given (as `name="value"`).
func promSum(text, metric string, labels ...string) float64 {
	total := 0.0
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		name, lbls, v, ok := promParseSample(sc.Text())
		if !ok || name != metric {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && slices.Contains(lbls, l)
		}
		if match {
			total += v
		}
	}
	return total
}

// metricByLabel sums a metric's samples by the value of one label.
func promByLabel(text, metric, label string) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		name, lbls, v, ok := promParseSample(sc.Text())
		if !ok || name != metric {
			continue
		}
		for _, l := range lbls {
			if val, found := strings.CutPrefix(l, label+"="); found {
				out[strings.Trim(val, `"`)] += v
			}
		}
	}
	return out
}

// parseSample splits `name{a="x",b="y"} 12` into its name, its labels and
// its value. Label values here never hold commas or quotes.
func promParseSample(line string) (name string, labels []string, v float64, ok bool) {
	if line == "" || line[0] == '#' {
		return "", nil, 0, false
	}
	sp := strings.LastIndexByte(line, ' ')
	if sp < 0 {
		return "", nil, 0, false
	}
	v, err := strconv.ParseFloat(line[sp+1:], 64)
	if err != nil {
		return "", nil, 0, false
	}
	head := line[:sp]
	if i := strings.IndexByte(head, '{'); i >= 0 {
		name = head[:i]
		if inner := strings.TrimSuffix(head[i+1:], "}"); inner != "" {
			labels = strings.Split(inner, ",")
		}
	} else {
		name = head
	}
	return name, labels, v, true
}
