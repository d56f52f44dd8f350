package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/oip"
)

func votePolicy() Policy {
	p := testPolicy()
	p.Vote.Enabled = true
	p.Vote.EjectAfter = 3
	p.Outlier.BaseEjection = time.Hour
	p.Outlier.MaxEjection = time.Hour
	// Stragglers get this long once a majority agrees; the fakes answer
	// at once, so every vote hears all of them.
	p.Hedge.Delay.Fixed = 10 * time.Second
	return p
}

func decodeAnswer(t *testing.T, res result) *oip.InferResponse {
	t.Helper()
	var r oip.InferResponse
	if err := json.Unmarshal(res.body, &r); err != nil {
		t.Fatalf("decode %s: %v", res.body, err)
	}
	return &r
}

func TestVoteMasksLiar(t *testing.T) {
	a, b, liar := newFake(t, modeOK), newFake(t, modeOK), newFake(t, modeOK)
	liar.value.Store(7)
	g, base := startGateway(t, testConfig(votePolicy(), a, b, liar))
	for i := range 10 {
		res := infer(t, base, fmt.Sprint("req-", i))
		if res.status != 200 {
			t.Fatalf("request %d: %d %s", i, res.status, res.body)
		}
		ans := decodeAnswer(t, res)
		if got := string(ans.Outputs[0].Data); got != "[1,2]" {
			t.Fatalf("request %d: wrong answer %s", i, got)
		}
		vote := ans.Parameters["bulwark_vote"]
		if i < 3 {
			dis, _ := ans.Parameters["bulwark_vote_disagreed"].([]any)
			if vote != "2/3" || len(dis) != 1 || dis[0] != liar.addr {
				t.Errorf("request %d: vote %v, disagreed %v", i, vote, dis)
			}
		} else if vote != "2/2" {
			t.Errorf("request %d after the liar's ejection: vote %v", i, vote)
		}
	}
	if st := stateOf(g, liar); st != StateEjected {
		t.Errorf("liar is %s", st)
	}
	if n := liar.infers.Load(); n != 3 {
		t.Errorf("liar answered %d votes, want 3 (ejectAfter)", n)
	}
	if v := metricValue(t, base, "bulwark_gateway_vote_disagreements_total", liar.addr); v != 3 {
		t.Errorf("disagreements metric %v", v)
	}
	if v := metricValue(t, base, "bulwark_gateway_votes_total", `result="unanimous"`); v != 7 {
		t.Errorf("unanimous votes %v, want 7", v)
	}
}

func TestVoteNoMajority(t *testing.T) {
	fakes := []*fakeReplica{newFake(t, modeOK), newFake(t, modeOK), newFake(t, modeOK)}
	for i, f := range fakes {
		f.value.Store(int64(i + 1))
	}
	_, base := startGateway(t, testConfig(votePolicy(), fakes...))
	res := infer(t, base, "x")
	if res.status != http.StatusBadGateway || !strings.Contains(string(res.body), "no majority: 3 replicas gave 3 different answers") {
		t.Fatalf("got %d %s", res.status, res.body)
	}
}

func TestVoteToleratesFloatNoise(t *testing.T) {
	if !sameTensorData("[1,2]", "[1.000001,2]", 1e-5) || sameTensorData("[1,2]", "[1.1,2]", 1e-5) {
		t.Error("tolerance")
	}
}

func sameTensorData(x, y string, tol float64) bool {
	a := oip.ResponseOutput{Name: "y", Datatype: "FP32", Shape: []int64{2}, Data: json.RawMessage(x)}
	b := a
	b.Data = json.RawMessage(y)
	ta, _ := a.Tensor()
	tb, _ := b.Tensor()
	return sameTensor(ta, tb, tol)
}

func TestVoteNeedsMajorityAvailable(t *testing.T) {
	a, b, c := newFake(t, modeOK), newFake(t, modeOK), newFake(t, modeOK)
	b.healthy.Store(false)
	c.healthy.Store(false)
	g, base := startGateway(t, testConfig(votePolicy(), a, b, c))
	waitFor(t, "two unhealthy replicas", func() bool {
		return stateOf(g, b) == StateUnhealthy && stateOf(g, c) == StateUnhealthy
	})
	res := infer(t, base, "x")
	if res.status != 503 || !strings.Contains(string(res.body), "a vote needs 2 of 3 replicas") {
		t.Fatalf("got %d %s", res.status, res.body)
	}
}

func TestVoteSurvivesFailedReplica(t *testing.T) {
	a, b, bad := newFake(t, modeOK), newFake(t, modeOK), newFake(t, modeFail)
	_, base := startGateway(t, testConfig(votePolicy(), a, b, bad))
	res := infer(t, base, "x")
	if res.status != 200 || decodeAnswer(t, res).Parameters["bulwark_vote"] != "2/3" {
		t.Fatalf("got %d %s", res.status, res.body)
	}
}

// A vote of two that splits asks a third replica instead of failing.
func TestVoteTieBreaker(t *testing.T) {
	a, b, liar := newFake(t, modeOK), newFake(t, modeOK), newFake(t, modeOK)
	liar.value.Store(7)
	p := votePolicy()
	p.Vote.Replicas = 2
	p.Vote.EjectAfter = 1000
	_, base := startGateway(t, testConfig(p, a, b, liar))
	tieBreaks := 0
	for i := range 20 {
		res := infer(t, base, fmt.Sprint("req-", i))
		if res.status != 200 {
			t.Fatalf("request %d: %d %s", i, res.status, res.body)
		}
		ans := decodeAnswer(t, res)
		if got := string(ans.Outputs[0].Data); got != "[1,2]" {
			t.Fatalf("request %d: wrong answer %s", i, got)
		}
		switch vote := ans.Parameters["bulwark_vote"]; vote {
		case "2/3":
			tieBreaks++
		case "2/2":
		default:
			t.Fatalf("request %d: vote %v", i, vote)
		}
	}
	if tieBreaks == 0 || liar.infers.Load() != int64(tieBreaks) {
		t.Errorf("%d tie-breaks, liar asked %d times", tieBreaks, liar.infers.Load())
	}
}
