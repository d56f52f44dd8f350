package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/control"
	"github.com/bulwark-ml/bulwark/internal/gateway"
	"github.com/bulwark-ml/bulwark/internal/oip"
	"github.com/bulwark-ml/bulwark/internal/sample"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// Fault tests of the control plane, on real processes: a `bulwark
// controller` whose reconciler runs `bulwark node` replicas, and a
// `bulwark gateway --controller` fed by its routing table, under the open
// loop load of loadgen_test.go. The controller is killed mid-apply,
// replicas are killed, bad versions are rolled out, and the controller is
// stopped under load. As in fault_test.go: outcomes are asserted, never
// timings; everything waits by polling with a deadline.

// controllerDownEnv sets how long TestControlFaultControllerStopped keeps
// the controller stopped under load. The issue asks for a minute; the
// default keeps the suite short, and the outcome does not depend on the
// length (the data plane never talks to the controller in between).
const controllerDownEnv = "BULWARK_FAULT_CONTROLLER_DOWN"

// ctlDoc is the deployment of these tests: the gateway policy of
// fault_test.go's faultDefaults (fast health checks, quick ejection), a
// short readiness timeout, and a 30s observation of new versions (a
// canary is judged on its errors long before that).
const ctlDoc = `apiVersion: bulwark.dev/v1
kind: Deployment
metadata: {name: iris}
spec:
  model: iris
  versions: VERSIONS
  replicas: 3
  zones: [a, b, c]
  rollout: {maxSurge: 1, readyTimeout: 3s, observe: 30s, maxErrorRate: 0.05}
  policy:
    timeout: 10s
    retry: {attempts: 3, perTryTimeout: 1s}
    health: {interval: 100ms, timeout: 1s, rise: 1, fall: 3}
    outlier: {consecutiveFailures: 2, baseEjection: 1s, maxEjection: 4s}
    breaker: {openFor: 1s}
`

func ctlDeployment(versions string) string { return strings.Replace(ctlDoc, "VERSIONS", versions, 1) }

// ctlSite is a site with a controller and, once started, a gateway.
type ctlSite struct {
	t       *testing.T
	dir     string
	site    string
	ctlAddr string
	ctl     *faultProc
	gw      *faultProc
	gwURL   string
	client  *control.Client
	hc      *http.Client
	input   oip.RequestInput
	ref     map[string]*tensor.Tensor

	mu       sync.Mutex
	versions map[int]string // load request → the model version that answered
}

// newCtlSite pushes the sample model as the given versions and starts a
// controller (with args added to its command line).
func newCtlSite(t *testing.T, versions []string, args ...string) *ctlSite {
	t.Helper()
	if testing.Short() {
		t.Skip("control-plane fault tests run a controller, replicas and a gateway as processes; skipped with -short")
	}
	dir := t.TempDir()
	s := &ctlSite{t: t, dir: dir, site: filepath.Join(dir, "site"), ctlAddr: faultFreeAddr(t),
		hc: &http.Client{Timeout: 10 * time.Second}, versions: map[int]string{}}
	t.Cleanup(func() { killSite(s.site) }) // replicas outlive controllers by design
	t.Cleanup(s.hc.CloseIdleConnections)
	t.Cleanup(func() {
		if t.Failed() {
			s.dumpLogs()
		}
	})
	model := filepath.Join(dir, "iris.onnx")
	if _, stderr, code := run(t, s.site, "sample", "-o", model); code != 0 {
		t.Fatalf("sample: %s", stderr)
	}
	for _, v := range versions {
		if _, stderr, code := run(t, s.site, "model", "push", "iris", model, "--version", v); code != 0 {
			t.Fatalf("push %s: %s", v, stderr)
		}
	}
	s.client = control.NewClient("http://"+s.ctlAddr, faultToken)
	s.ctl = &faultProc{name: "controller", log: filepath.Join(dir, "controller.log"),
		args: append([]string{"--site", s.site, "controller", "--listen", s.ctlAddr}, args...)}
	t.Cleanup(func() { s.ctl.kill(t) })
	s.startController()
	return s
}

// startController (re)starts the controller and waits for its API.
func (s *ctlSite) startController() {
	s.t.Helper()
	s.ctl.start(s.t)
	faultPoll(s.t, "the controller's API", func() (bool, string) {
		s.ctl.exitedFatal(s.t)
		_, err := s.client.List(context.Background())
		return err == nil, fmt.Sprint(err)
	})
}

// corrupt flips a byte of a pushed version's file: a node verifying its
// checksum refuses to load it.
func (s *ctlSite) corrupt(version string) {
	p := filepath.Join(s.site, "models", "iris", version, "model.onnx")
	b, err := os.ReadFile(p)
	if err != nil {
		s.t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		s.t.Fatal(err)
	}
}

func (s *ctlSite) apply(doc string) *control.ApplyResult {
	s.t.Helper()
	res, err := s.client.Apply(context.Background(), []byte(doc), "application/yaml", false)
	if err != nil {
		s.t.Fatalf("apply: %v", err)
	}
	return res
}

func (s *ctlSite) deployment() *control.Deployment {
	s.t.Helper()
	d, err := s.client.Get(context.Background(), "iris")
	if err != nil {
		s.t.Fatal(err)
	}
	return d
}

func (s *ctlSite) replicas() []control.ReplicaInfo {
	s.t.Helper()
	reps, err := s.client.Replicas(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	return reps
}

// waitRolledOut waits until revision rev is Available with every replica
// ready, serving versions (sorted) only.
func (s *ctlSite) waitRolledOut(rev int64, versions ...string) {
	s.t.Helper()
	faultPoll(s.t, fmt.Sprintf("revision %d rolled out on versions %v", rev, versions), func() (bool, string) {
		d, err := s.client.Get(context.Background(), "iris")
		if err != nil {
			return false, err.Error()
		}
		reps, err := s.client.Replicas(context.Background())
		if err != nil {
			return false, err.Error()
		}
		var running []string
		for _, r := range reps {
			if !r.Ready || r.Stopping {
				return false, fmt.Sprintf("replica %s not ready: %s", r.Name, r.Reason)
			}
			if !slices.Contains(running, r.Version) {
				running = append(running, r.Version)
			}
		}
		slices.Sort(running)
		return d.Metadata.Revision == rev && d.Done() && slices.Equal(running, versions),
			fmt.Sprintf("revision %d, phase %s, observed %d, running %v", d.Metadata.Revision, d.Status.Phase, d.Status.ObservedRevision, running)
	})
}

// startGateway runs `bulwark gateway --controller` and waits until it
// routes to n healthy replicas.
func (s *ctlSite) startGateway(n int) {
	s.t.Helper()
	s.gw = &faultProc{name: "gateway", log: filepath.Join(s.dir, "gateway.log"),
		args: []string{"--site", s.site, "gateway", "--controller", "http://" + s.ctlAddr, "--listen", "127.0.0.1:0"}}
	s.t.Cleanup(func() { s.gw.kill(s.t) })
	s.restartGateway(n)
}

// restartGateway starts the gateway process (again) and waits for it.
func (s *ctlSite) restartGateway(n int) {
	s.t.Helper()
	before, _ := os.ReadFile(s.gw.log)
	s.gw.start(s.t)
	re := regexp.MustCompile(`gateway serving on (http://\S+)`)
	faultPoll(s.t, "the gateway's serving line", func() (bool, string) {
		s.gw.exitedFatal(s.t)
		b, _ := os.ReadFile(s.gw.log)
		if m := re.FindSubmatch(b[len(before):]); m != nil {
			s.gwURL = string(m[1])
			return true, ""
		}
		return false, "not printed yet"
	})
	s.waitRouted(n)
}

// status is the gateway's GET /admin/status.
func (s *ctlSite) status() (gateway.Status, error) {
	var st gateway.Status
	req, _ := http.NewRequest(http.MethodGet, s.gwURL+"/admin/status", nil)
	req.Header.Set("Authorization", "Bearer "+faultToken)
	resp, err := s.hc.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// waitRouted waits until the gateway routes iris to n healthy replicas.
func (s *ctlSite) waitRouted(n int) {
	s.t.Helper()
	faultPoll(s.t, fmt.Sprintf("the gateway routing to %d healthy replicas", n), func() (bool, string) {
		s.gw.exitedFatal(s.t)
		st, err := s.status()
		if err != nil {
			return false, err.Error()
		}
		if len(st.Models) != 1 {
			return false, fmt.Sprintf("%d models", len(st.Models))
		}
		healthy := 0
		for _, r := range st.Models[0].Replicas {
			if r.State == gateway.StateHealthy && r.LastHealthCheck != nil {
				healthy++
			}
		}
		return healthy == n && len(st.Models[0].Replicas) == n, fmt.Sprintf("%d of %d replicas healthy", healthy, len(st.Models[0].Replicas))
	})
}

// reference takes the right answer from a replica, directly.
func (s *ctlSite) reference() {
	s.t.Helper()
	rows := sample.Example()
	data := make([]float32, 0, 4*len(rows))
	for _, r := range rows {
		data = append(data, r[:]...)
	}
	in, err := oip.NewInput(sample.InputName, tensor.FromFloat32([]int{len(rows), 4}, data))
	if err != nil {
		s.t.Fatal(err)
	}
	s.input = in
	c := oip.NewClient(s.replicas()[0].Address, s.hc)
	resp, err := c.Infer(context.Background(), "iris", "", &oip.InferRequest{Inputs: []oip.RequestInput{in}})
	if err != nil {
		s.t.Fatal(err)
	}
	if s.ref, err = resp.Tensors(); err != nil {
		s.t.Fatal(err)
	}
}

// load starts the open-loop load through the gateway; every answer is
// checked against the reference, and the version that gave it recorded.
func (s *ctlSite) load(maxTime time.Duration) *loadGen {
	fc := &faultCluster{input: s.input, ref: s.ref}
	return startLoad(s.t, loadConfig{
		URL:  s.gwURL + "/v2/models/iris/infer",
		Rate: faultRate, Max: faultRate * int(maxTime/time.Second), MaxTime: maxTime,
		Deadline: 5 * time.Second, Body: fc.body,
		Check: func(seq int, body []byte) ([]int64, error) {
			var v struct {
				Version string `json:"model_version"`
			}
			json.Unmarshal(body, &v)
			s.mu.Lock()
			s.versions[seq] = v.Version
			s.mu.Unlock()
			return fc.check(seq, body)
		},
	})
}

// answeredBy counts the results answered by version.
func (s *ctlSite) answeredBy(rs []loadResult, version string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for i := range rs {
		if rs[i].ok() && s.versions[rs[i].Seq] == version {
			n++
		}
	}
	return n
}

// chaos sets a replica's fault (its chaos API takes the controller's
// token, which it inherited).
func (s *ctlSite) chaos(addr, settings string) {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodPut, addr+"/admin/chaos", strings.NewReader(settings))
	req.Header.Set("Authorization", "Bearer "+faultToken)
	resp, err := s.hc.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("PUT /admin/chaos on %s: HTTP %d", addr, resp.StatusCode)
	}
}

func (s *ctlSite) events() []control.Event {
	s.t.Helper()
	evs, err := s.client.Events(context.Background(), "iris", 0)
	if err != nil {
		s.t.Fatal(err)
	}
	return evs
}

func (s *ctlSite) dumpLogs() {
	for _, p := range []*faultProc{s.ctl, s.gw} {
		if p == nil {
			continue
		}
		b, _ := os.ReadFile(p.log)
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		s.t.Logf("last lines of the %s log:\n%s", p.name, strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
}

// requireNoFailures fails the test for any failed or wrong answer.
func requireNoFailures(t *testing.T, scenario string, rs []loadResult) loadSummary {
	t.Helper()
	s := summarizeLoad(rs)
	t.Logf("%s: %v", scenario, s)
	if s.Failed+s.Wrong > 0 {
		t.Errorf("%s: %d failed and %d wrong of %d requests:%s", scenario, s.Failed, s.Wrong, s.Requests, describeLoad(rs, 10, loadFailed))
	}
	if s.OK == 0 {
		t.Errorf("%s: no request succeeded", scenario)
	}
	return s
}

// --- fault 1: the controller killed in the middle of an apply ---

// TestControlFaultKilledMidApply: SIGKILL the controller at named points
// of an apply (nothing written yet; record, revision and event committed
// but not acknowledged; the watch generation bumped too), then at random
// moments over many applies. After every restart the deployment is
// exactly the last revision acknowledged or the one in flight, never a
// mix: its spec is that revision's spec, its history holds every revision
// up to it with the spec sent for it, and the revision's event is there.
func TestControlFaultKilledMidApply(t *testing.T) {
	s := newCtlSite(t, []string{"1"}, "--reconcile=false")
	ctx := context.Background()
	// sent[n] is the replicas count of the spec sent as revision n: each
	// apply changes it, so each is a new revision, and the count names
	// the spec.
	sent := map[int64]int{}
	doc := func(replicas int) string {
		return strings.Replace(strings.Replace(ctlDeployment(`[{version: "1"}]`), "replicas: 3", "replicas: "+strconv.Itoa(replicas), 1),
			"rollout:", "revisionHistoryLimit: 1000\n  rollout:", 1)
	}
	next := 1
	s.apply(doc(next))
	sent[1] = next
	acked := int64(1)

	// check verifies the state after a restart: at revision acked, or at
	// acked+1 when the killed apply had committed.
	check := func(what string, inFlight bool) int64 {
		t.Helper()
		d := s.deployment()
		rev := d.Metadata.Revision
		if rev != acked && !(inFlight && rev == acked+1) {
			t.Fatalf("%s: revision %d after the restart, want %d (acknowledged) or %d (in flight)", what, rev, acked, acked+1)
		}
		if d.Spec.Replicas != sent[rev] {
			t.Fatalf("%s: at revision %d with the spec of replicas %d, but revision %d was sent with %d: a mix", what, rev, d.Spec.Replicas, rev, sent[rev])
		}
		revs, err := s.client.Revisions(ctx, "iris")
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(revs)) != rev {
			t.Fatalf("%s: %d revisions kept, want %d", what, len(revs), rev)
		}
		for i, r := range revs {
			if r.Revision != int64(i+1) || r.Spec.Replicas != sent[r.Revision] || r.Current != (r.Revision == rev) {
				t.Fatalf("%s: revision entry %+v, want number %d with replicas %d", what, r, i+1, sent[r.Revision])
			}
		}
		evs := s.events()
		want := fmt.Sprintf("revision %d:", rev)
		if !slices.ContainsFunc(evs, func(e control.Event) bool { return strings.HasPrefix(e.Message, want) }) {
			t.Fatalf("%s: no event for revision %d: %+v", what, rev, evs)
		}
		if slices.ContainsFunc(evs, func(e control.Event) bool { return strings.HasPrefix(e.Message, fmt.Sprintf("revision %d:", rev+1)) }) {
			t.Fatalf("%s: an event for revision %d, which does not exist", what, rev+1)
		}
		return rev
	}

	// Named points: the controller stops dead there, the test kills it.
	for _, p := range []struct {
		point    string
		landsNew bool
	}{{pauseBeforeWrite, false}, {pauseAfterWrite, true}, {pauseAfterGeneration, true}} {
		s.ctl.kill(t)
		// The process takes its environment when it starts: set for this
		// start only.
		t.Setenv(testPauseEnv, p.point)
		s.startController()
		os.Unsetenv(testPauseEnv)
		next++
		sent[acked+1] = next
		errc := make(chan error, 1)
		go func() {
			_, err := s.client.Apply(ctx, []byte(doc(next)), "application/yaml", false)
			errc <- err
		}()
		faultPoll(t, "the controller paused at "+p.point, func() (bool, string) {
			b, _ := os.ReadFile(s.ctl.log)
			return strings.Contains(string(b), testPauseAnnouncement+p.point), "not yet"
		})
		s.ctl.signal(t, syscall.SIGKILL)
		if err := <-errc; err == nil {
			t.Fatalf("%s: the apply was acknowledged by a controller killed before answering", p.point)
		}
		s.ctl.kill(t) // reap
		s.startController()
		rev := check(p.point, true)
		if landed := rev == acked+1; landed != p.landsNew {
			t.Fatalf("%s: the killed apply landed %v, want %v", p.point, landed, p.landsNew)
		}
		acked = rev
		t.Logf("killed at %s: revision %d after the restart", p.point, rev)
	}

	// Random moments: applies back to back, the controller killed after a
	// random number of them, wherever the next one happens to be.
	const rounds = 8
	landed := 0
	for round := range rounds {
		var done atomic.Int64
		inFlight := make(chan int64, 1) // the revision the apply cut short was to be
		go func() {
			for {
				rev := acked + done.Load() + 1
				n := next + int(done.Load()) + 1
				s.mu.Lock()
				sent[rev] = n
				s.mu.Unlock()
				if _, err := s.client.Apply(ctx, []byte(doc(n)), "application/yaml", false); err != nil {
					inFlight <- rev
					return
				}
				done.Add(1)
			}
		}()
		target := int64(1 + rand.IntN(12))
		faultPoll(t, fmt.Sprintf("%d applies acknowledged", target), func() (bool, string) {
			return done.Load() >= target, fmt.Sprintf("%d", done.Load())
		})
		s.ctl.signal(t, syscall.SIGKILL)
		failedRev := <-inFlight
		s.ctl.kill(t)
		acked += done.Load()
		next += int(done.Load())
		s.startController()
		s.mu.Lock()
		rev := check(fmt.Sprintf("random kill %d", round), failedRev == acked+1)
		s.mu.Unlock()
		if rev == acked+1 {
			landed++
			next++
		}
		acked = rev
	}
	t.Logf("random kills: %d rounds, the in-flight apply had committed in %d of them; %d revisions in all", rounds, landed, acked)
}

// --- fault 2: a replica killed under load ---

// TestControlFaultKilledReplicaReplaced: SIGKILL a replica under load
// through a gateway fed by the controller. The gateway retries its tries
// elsewhere, the controller restarts it on its port, the routing table
// takes it out and back in: no client sees a failure, and the replaced
// replica takes traffic again.
func TestControlFaultKilledReplicaReplaced(t *testing.T) {
	s := newCtlSite(t, []string{"1"})
	s.apply(ctlDeployment(`[{version: "1"}]`))
	s.waitRolledOut(1, "1")
	s.startGateway(3)
	s.reference()
	l := s.load(20 * time.Second)
	l.waitLaunched(t, faultRate)
	victim := s.replicas()[1]
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	faultPoll(t, "the killed replica replaced and ready", func() (bool, string) {
		for _, r := range s.replicas() {
			if r.Name == victim.Name {
				return r.PID != victim.PID && r.Ready && r.Address == victim.Address, fmt.Sprintf("%+v", r)
			}
		}
		return false, "gone from the list"
	})
	s.waitRouted(3)
	answered := func() int {
		return l.count(func(r *loadResult) bool { return r.ok() && r.Replica == victim.Address && r.Start.After(killed) })
	}
	faultPoll(t, "the replaced replica answering", func() (bool, string) { return answered() >= 10, fmt.Sprint(answered()) })
	rs := l.stop()
	requireNoFailures(t, "SIGKILL a replica, replaced by the controller", rs)
	if !s.hasEvent("ReplicaRestarted", victim.Name) {
		t.Error("no ReplicaRestarted event")
	}
}

// --- fault 3: bad versions rolled out ---

// TestControlFaultBadRolloutsRollBack: under load through the gateway,
// roll out a version that cannot load (its file rotted: its replicas never
// get ready), then a version that answers 500 to half its requests, as a
// rolling update, then the same as a canary at 10%. Each rollout stops and
// rolls back on its own, and no client request fails: the first version
// never takes traffic; the second's first replica is judged on its errors
// before any old replica is stopped, and its failures are retried on the
// old version. The canary also shows the weights at work: version 2
// answers about its 10%.
func TestControlFaultBadRolloutsRollBack(t *testing.T) {
	s := newCtlSite(t, []string{"1", "2", "3"}, "--chaos")
	s.corrupt("3")
	s.apply(ctlDeployment(`[{version: "1"}]`))
	s.waitRolledOut(1, "1")
	s.startGateway(3)
	s.reference()
	l := s.load(90 * time.Second)
	l.waitLaunched(t, faultRate)

	// A version that cannot load: revision 2, rolled back as revision 3.
	s.apply(ctlDeployment(`[{version: "3"}]`))
	s.waitRolledOut(3, "1")
	if !s.hasEvent("RolledBack", "revision 2 failed", "not ready") {
		t.Fatalf("no RolledBack event for the version that cannot load: %+v", s.events())
	}

	// A rolling update to version 2, half broken from its first request:
	// revision 4, rolled back as revision 5.
	s.apply(ctlDeployment(`[{version: "2"}]`))
	broken := map[string]bool{}
	faultPoll(t, "the rolling update to the erroring version rolled back", func() (bool, string) {
		for _, r := range s.replicas() {
			if r.Version == "2" && r.Ready && !r.Stopping && !broken[r.Address] {
				s.chaos(r.Address, `{"error":{"rate":0.5,"status":500}}`)
				broken[r.Address] = true
			}
		}
		d := s.deployment()
		return d.Metadata.Revision == 5, fmt.Sprintf("revision %d, phase %s: %s", d.Metadata.Revision, d.Status.Phase, d.Status.Message)
	})
	s.waitRolledOut(5, "1")
	if !s.hasEvent("RolledBack", "revision 4 failed: error rate") {
		t.Fatalf("no RolledBack event for the erroring version: %+v", s.events())
	}
	// It stopped at its first replica: no old replica was stopped for it.
	rolling := false
	for _, e := range s.events() {
		switch {
		case e.Reason == "Applied" && strings.HasPrefix(e.Message, "revision 4:"):
			rolling = true
		case e.Reason == "RolledBack":
			rolling = false
		case rolling && e.Reason == "ScaledDown" && strings.Contains(e.Message, "iris-v1-"):
			t.Errorf("an old replica was stopped while the erroring version was on trial: %s", e.Message)
		}
	}

	// A canary of version 2 at 10%: revision 6.
	s.apply(ctlDeployment(`[{version: "1", weight: 90}, {version: "2", weight: 10}]`))
	var canary []string
	faultPoll(t, "the canary's replicas ready", func() (bool, string) {
		canary = nil
		for _, r := range s.replicas() {
			if r.Version == "2" && r.Ready {
				canary = append(canary, r.Address)
			}
		}
		return len(canary) == 3, fmt.Sprintf("%d ready", len(canary))
	})
	s.waitRouted(6)
	from := l.launchedCount()
	l.waitLaunched(t, from+2*faultRate)
	to := l.launchedCount()
	// Version 2 half broken again: its 500s are retried on version 1, and
	// the controller, reading version 2's error rate, rolls back (revision 7).
	for _, a := range canary {
		s.chaos(a, `{"error":{"rate":0.5,"status":500}}`)
	}
	s.waitRolledOut(7, "1")
	at := l.launchedCount()
	l.waitLaunched(t, at+faultRate)
	rs := l.stop()
	requireNoFailures(t, "a version that cannot load, then one answering 500 to half, rolled out and as a canary", rs)

	if n := s.answeredBy(rs, "3"); n != 0 {
		t.Errorf("%d requests answered by version 3, which never loaded", n)
	}
	window := rs[min(from, len(rs)):min(to, len(rs))]
	v2, total := s.answeredBy(window, "2"), len(window)
	mean, sd := 0.1*float64(total), math.Sqrt(float64(total)*0.1*0.9)
	t.Logf("canary at weight 10: version 2 answered %d of %d requests (expected %.0f ± %.0f)", v2, total, mean, sd)
	if math.Abs(float64(v2)-mean) > 6*sd+1 {
		t.Errorf("the canary answered %d of %d requests, want about 10%% (%.0f)", v2, total, mean)
	}
	if !s.hasEvent("RolledBack", "revision 6 failed: error rate") {
		t.Fatalf("no RolledBack event for the erroring canary: %+v", s.events())
	}
	if n := s.answeredBy(rs[min(at, len(rs)):], "2"); n != 0 {
		t.Errorf("%d requests answered by version 2 after its rollback", n)
	}
}

// hasEvent reports whether an event of reason has every text in its message.
func (s *ctlSite) hasEvent(reason string, texts ...string) bool {
	return slices.ContainsFunc(s.events(), func(e control.Event) bool {
		if e.Reason != reason {
			return false
		}
		for _, t := range texts {
			if !strings.Contains(e.Message, t) {
				return false
			}
		}
		return true
	})
}

// --- fault 4: the controller stopped under load ---

// TestControlFaultControllerStopped: SIGSTOP the controller under load
// for $BULWARK_FAULT_CONTROLLER_DOWN (15s by default; the minute
// with BULWARK_FAULT_CONTROLLER_DOWN=1m): the data plane carries on with
// no failed request, and once the controller runs again no healthy
// replica is restarted. Then the controller is killed, and the gateway
// restarted while it is down: it serves from its routing cache; the
// controller, back, adopts the replicas as they run.
func TestControlFaultControllerStopped(t *testing.T) {
	down := 15 * time.Second
	if v := os.Getenv(controllerDownEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s=%q: %v", controllerDownEnv, v, err)
		}
		down = d
	}
	s := newCtlSite(t, []string{"1"})
	s.apply(ctlDeployment(`[{version: "1"}]`))
	s.waitRolledOut(1, "1")
	s.startGateway(3)
	s.reference()
	before := s.replicas()
	l := s.load(down + 30*time.Second)
	l.waitLaunched(t, faultRate)

	s.ctl.signal(t, syscall.SIGSTOP)
	stopped := true
	t.Cleanup(func() {
		if stopped {
			s.ctl.cmd.Process.Signal(syscall.SIGCONT)
		}
	})
	at := l.launchedCount()
	l.waitLaunched(t, at+int(down.Seconds()*faultRate))
	s.ctl.signal(t, syscall.SIGCONT)
	stopped = false
	faultPoll(t, "the controller answering again", func() (bool, string) {
		_, err := s.client.List(context.Background())
		return err == nil, fmt.Sprint(err)
	})
	at = l.launchedCount()
	l.waitLaunched(t, at+faultRate)
	rs := l.stop()
	requireNoFailures(t, fmt.Sprintf("the controller stopped for %v", down), rs)
	s.requireSameReplicas(before, "after the controller was stopped")

	// Killed, and the gateway restarted meanwhile: it serves from its cache.
	s.ctl.signal(t, syscall.SIGKILL)
	s.ctl.kill(t)
	s.gw.signal(t, syscall.SIGKILL)
	s.gw.kill(t)
	s.restartGateway(3)
	st, err := s.status()
	if err != nil || st.Routing == nil || !st.Routing.FromCache || st.Routing.Generation == 0 || st.Routing.Connected {
		t.Fatalf("the restarted gateway's routing with the controller down: %+v %v", st.Routing, err)
	}
	l2 := s.load(10 * time.Second)
	l2.waitLaunched(t, faultRate)
	s.startController()
	faultPoll(t, "the gateway reconnected", func() (bool, string) {
		st, err := s.status()
		if err != nil {
			return false, err.Error()
		}
		return st.Routing.Connected && !st.Routing.FromCache, fmt.Sprintf("%+v", st.Routing)
	})
	at = l2.launchedCount()
	l2.waitLaunched(t, at+faultRate)
	requireNoFailures(t, "the gateway restarted from its cache, then the controller restarted", l2.stop())
	faultPoll(t, "the replicas adopted", func() (bool, string) {
		after := s.replicas()
		for _, r := range after {
			if !r.Adopted || !r.Ready {
				return false, fmt.Sprintf("%+v", r)
			}
		}
		return len(after) == len(before), fmt.Sprintf("%d replicas", len(after))
	})
	s.requireSameReplicas(before, "after the controller was killed and restarted")
}

// requireSameReplicas fails unless the replicas are the same processes,
// none restarted.
func (s *ctlSite) requireSameReplicas(before []control.ReplicaInfo, when string) {
	s.t.Helper()
	after := s.replicas()
	if len(after) != len(before) {
		s.t.Fatalf("%s: %d replicas, before %d", when, len(after), len(before))
	}
	for i, r := range after {
		if r.Name != before[i].Name || r.PID != before[i].PID || r.Restarts != 0 {
			s.t.Errorf("%s: replica %s pid %d (%d restarts), before pid %d: a healthy replica was restarted", when, r.Name, r.PID, r.Restarts, before[i].PID)
		}
	}
}
