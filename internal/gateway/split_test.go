package gateway

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"
)

// canaryConfig routes model iris to the given fakes, fakes[i] serving
// version versions[i], split by weights (version → weight; nil: no split).
func canaryConfig(p Policy, weights []VersionConfig, versions []string, fakes ...*fakeReplica) *Config {
	cfg := testConfig(p, fakes...)
	m := cfg.Models["iris"]
	for i := range m.Replicas {
		m.Replicas[i].Version = versions[i]
	}
	m.Versions = weights
	cfg.Models["iris"] = m
	return cfg
}

// draws counts, over n picks, how often each version's replicas are
// chosen (nothing is in flight: every pick starts afresh).
func draws(t *testing.T, g *Gateway, n int, only string) map[string]int {
	t.Helper()
	m := g.table().models["iris"]
	p := m.policy.Load()
	set := m.set.Load()
	version := map[*replica]string{}
	for i, r := range set.all {
		version[r] = set.version(i)
	}
	got := map[string]int{}
	now := time.Now()
	for range n {
		r := m.pick(now, p, "", only, nil)
		if r == nil {
			got["none"]++
			continue
		}
		got[version[r]]++
	}
	return got
}

// within checks a count of n draws against a share, allowing six standard
// deviations: a correct balancer fails this about once in 10^9 runs.
func within(t *testing.T, what string, count, n int, share float64) {
	t.Helper()
	mean := share * float64(n)
	sd := math.Sqrt(float64(n) * share * (1 - share))
	if math.Abs(float64(count)-mean) > 6*sd+1 {
		t.Errorf("%s: %d of %d draws, want about %.0f (share %.2f)", what, count, n, mean, share)
	}
}

func TestWeightsSplitTrafficBetweenVersions(t *testing.T) {
	fakes := []*fakeReplica{newFake(t, modeOK), newFake(t, modeOK), newFake(t, modeOK), newFake(t, modeOK)}
	cfg := canaryConfig(testPolicy(), []VersionConfig{{"1", 90}, {"2", 10}}, []string{"1", "1", "1", "2"}, fakes...)
	g, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	got := draws(t, g, n, "")
	// By version, not by replica: one replica of version 2 takes its
	// whole 10%, three of version 1 share 90%.
	within(t, "version 2", got["2"], n, 0.10)
	within(t, "version 1", got["1"], n, 0.90)

	// Weights are relative: 1 and 3 split a quarter and three quarters.
	cfg = canaryConfig(testPolicy(), []VersionConfig{{"1", 1}, {"2", 3}}, []string{"1", "1", "1", "2"}, fakes...)
	if err := g.Update(cfg); err != nil {
		t.Fatal(err)
	}
	got = draws(t, g, n, "")
	within(t, "version 2 at weight 3 of 4", got["2"], n, 0.75)

	// A request naming a version goes to that version only.
	if got := draws(t, g, 1000, "1"); got["1"] != 1000 {
		t.Errorf("pinned to version 1: %v", got)
	}
	// A version no replica carries: any replica may have it.
	if got := draws(t, g, 1000, "7"); got["none"] != 0 || got["1"] == 0 || got["2"] == 0 {
		t.Errorf("pinned to an unknown version: %v", got)
	}
}

func TestVersionWithoutHealthyReplicaPassesItsShare(t *testing.T) {
	v1, v2 := newFake(t, modeOK), newFake(t, modeOK)
	v2.healthy.Store(false)
	v1.value.Store(1)
	v2.value.Store(2)
	g, base := startGateway(t, canaryConfig(testPolicy(), []VersionConfig{{"1", 50}, {"2", 50}}, []string{"1", "2"}, v1, v2))
	waitFor(t, "version 2's replica marked unhealthy", func() bool { return stateOf(g, v2) == StateUnhealthy })
	for i := range 200 {
		if r := infer(t, base, fmt.Sprint("r", i)); r.status != 200 || r.replica != v1.addr {
			t.Fatalf("request %d: HTTP %d from %s: %s", i, r.status, r.replica, r.body)
		}
	}
	// Named, the version without a healthy replica is unavailable, and
	// the answer says which version and why.
	req, _ := http.NewRequest("POST", base+"/v2/models/iris/versions/2/infer",
		strings.NewReader(`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(resp)
	if resp.StatusCode != 503 || !strings.Contains(body, "model iris version 2: 1 replicas: 1 unhealthy") || !strings.Contains(body, "not ready") {
		t.Fatalf("pinned to the down version: HTTP %d %s", resp.StatusCode, body)
	}
	st := g.Status().Models[0]
	if len(st.Versions) != 2 || st.Versions[1] != (VersionStatus{Version: "2", Weight: 50, Replicas: 1, Available: 0}) ||
		st.Replicas[1].Version != "2" {
		t.Fatalf("status %+v", st)
	}

	// Back up, it takes its share again.
	v2.healthy.Store(true)
	waitFor(t, "version 2 healthy", func() bool { return stateOf(g, v2) == StateHealthy })
	seen := map[string]int{}
	for i := range 200 {
		seen[infer(t, base, fmt.Sprint("s", i)).replica]++
	}
	if seen[v2.addr] == 0 || seen[v1.addr] == 0 {
		t.Fatalf("after recovery: %v", seen)
	}
}

func TestWeightZeroServesOnlyWhenNothingElseCan(t *testing.T) {
	a, b := newFake(t, modeOK), newFake(t, modeOK)
	g, err := New(canaryConfig(testPolicy(), []VersionConfig{{"1", 100}, {"2", 0}}, []string{"1", "2"}, a, b), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := draws(t, g, 1000, ""); got["1"] != 1000 {
		t.Fatalf("weight 0 took traffic: %v", got)
	}
	m := g.table().models["iris"]
	m.replicas()[0].recordHealth(time.Now(), &m.policy.Load().Health, false, "down")
	if got := draws(t, g, 1000, ""); got["2"] != 1000 {
		t.Fatalf("with version 1 down: %v", got)
	}
}

func TestRetriesCrossVersions(t *testing.T) {
	// Version 2 fails every request; its 50% is retried on version 1,
	// so no client sees a failure.
	good, bad := newFake(t, modeOK), newFake(t, modeFail)
	_, base := startGateway(t, canaryConfig(testPolicy(), []VersionConfig{{"1", 50}, {"2", 50}}, []string{"1", "2"}, good, bad))
	for i := range 100 {
		if r := infer(t, base, fmt.Sprint("r", i)); r.status != 200 {
			t.Fatalf("request %d: HTTP %d %s", i, r.status, r.body)
		}
	}
	if bad.infers.Load() == 0 {
		t.Fatal("the failing version got no request: the split did not happen")
	}
}

func TestVoteStaysWithinOneVersion(t *testing.T) {
	// Two versions answer differently, as two model versions do. A vote
	// across them would disagree; each vote must ask one version only.
	p := testPolicy()
	p.Vote = VotePolicy{Enabled: true, Replicas: 3, Tolerance: 1e-5, EjectAfter: 1}
	var fakes []*fakeReplica
	var versions []string
	for i := range 6 {
		f := newFake(t, modeOK)
		f.value.Store(int64(1 + i%2))
		fakes = append(fakes, f)
		versions = append(versions, fmt.Sprint(1+i%2))
	}
	g, base := startGateway(t, canaryConfig(p, []VersionConfig{{"1", 50}, {"2", 50}}, versions, fakes...))
	for i := range 60 {
		// 3/3, or 2/3 when a straggler was cancelled; never a dissent.
		if r := infer(t, base, fmt.Sprint("v", i)); r.status != 200 || !strings.Contains(string(r.body), `"bulwark_vote":"`) ||
			strings.Contains(string(r.body), "bulwark_vote_disagreed") {
			t.Fatalf("vote %d: HTTP %d %s", i, r.status, r.body)
		}
	}
	for _, rs := range g.Status().Models[0].Replicas {
		if rs.Disagreements != 0 || rs.Ejections != 0 {
			t.Fatalf("replica %s (version %s) outvoted: %+v", rs.Address, rs.Version, rs)
		}
	}
	for _, f := range fakes {
		if f.infers.Load() == 0 {
			t.Errorf("replica %s never voted", f.addr)
		}
	}
}

func TestLabelsWithoutWeightsSpreadPerReplica(t *testing.T) {
	// A rolling update: versions labelled, no weights. Every replica takes
	// an equal part, and a named version still goes to its replicas.
	fakes := []*fakeReplica{newFake(t, modeOK), newFake(t, modeOK), newFake(t, modeOK)}
	g, err := New(canaryConfig(testPolicy(), nil, []string{"1", "1", "2"}, fakes...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 12000
	got := draws(t, g, n, "")
	within(t, "version 2's one replica of three", got["2"], n, 1.0/3)
	if got := draws(t, g, 500, "2"); got["2"] != 500 {
		t.Fatalf("pinned: %v", got)
	}
	if st := g.Status().Models[0]; len(st.Versions) != 0 || st.Replicas[2].Version != "2" {
		t.Fatalf("status %+v", st)
	}
}

func TestVersionsConfigErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"replica without a listed version", "models:\n  m:\n    replicas:\n      - {address: 'http://h:1', version: '1'}\n      - {address: 'http://h:2', version: '3'}\n    versions: [{version: '1', weight: 1}]\n",
			[]string{"line 5", "models.m.replicas[1].version", `"3" is not one of the model's versions (1)`}},
		{"duplicate version", "models:\n  m:\n    replicas: [{address: 'http://h:1', version: '1'}]\n    versions:\n      - {version: '1', weight: 1}\n      - {version: '1', weight: 2}\n",
			[]string{"line 6", "models.m.versions[1].version", "listed twice"}},
		{"negative weight", "models:\n  m:\n    replicas: [{address: 'http://h:1', version: '1'}]\n    versions:\n      - {version: '1', weight: -1}\n",
			[]string{"line 5", "models.m.versions[0].weight", "must not be negative"}},
		{"unnamed version", "models:\n  m:\n    replicas: [{address: 'http://h:1'}]\n    versions:\n      - {weight: 1}\n",
			[]string{"models.m.versions[0].version", "required"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(c.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	cfg, err := ParseConfig([]byte("models:\n  m:\n    replicas: [{address: 'http://h:1', version: '1'}, {address: 'http://h:2', version: '2'}]\n    versions: [{version: '1', weight: 90}, {version: '2', weight: 10}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m := cfg.Models["m"]; len(m.Versions) != 2 || m.Versions[1] != (VersionConfig{"2", 10}) || m.Replicas[1].Version != "2" {
		t.Fatalf("parsed %+v", m)
	}
}

func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
