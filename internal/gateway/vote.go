package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/bulwark-ml/bulwark/internal/oip"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// ballot is a group of replicas that gave the same answer.
type ballot struct {
	res    *tryResult // the first of them, whose answer is returned
	outs   map[string]*tensor.Tensor
	voters []*replica
}

// vote serves a request by N-modular redundancy: the request goes to k
// replicas at once, their answers are decoded and grouped by value, and a
// group holding a majority of k wins. Retries and hedges make a request
// survive a replica that fails loudly; a vote makes it survive one that
// answers wrongly (a corrupt model file, a bad node), which nothing else
// notices. A replica outvoted ejectAfter times is ejected.
//
// When the answers so far can no longer make a majority (two disagree,
// one failed) the vote asks replicas it has not asked yet as tie-breakers.
// Once a majority agrees, stragglers get the hedge delay to answer (so
// that they too are checked) and are then cancelled: a stalled replica
// must not stall every voted request.
func (c *call) vote() reply {
	defer c.done()
	k := c.p.Vote.Replicas
	need := k/2 + 1
	if c.version == "" {
		c.version = c.m.voteVersion(time.Now(), c.p, need)
	}
	if avail := c.m.availableOf(time.Now(), c.version); avail >= need {
		for range min(k, avail) {
			if !c.launch(tryVote) {
				break
			}
		}
	}
	if c.tries < need {
		rep := errorReply(http.StatusServiceUnavailable, fmt.Sprintf(
			"model %s: a vote needs %d of %d replicas, %d available: %s", c.m.name, need, k, c.tries, c.m.unavailableMsg(time.Now(), c.version)))
		rep.retryAfter, rep.shed, rep.tries = "1", "unavailable", c.tries
		return rep
	}
	var ballots []*ballot
	var failures []*tryResult
	var grace <-chan time.Time
	best := 0
loop:
	for len(c.inflight) > 0 {
		select {
		case res := <-c.results:
			delete(c.inflight, res.r)
			if res.class != classOK && res.class != classFinal {
				failures = append(failures, &res)
			} else {
				best = max(best, len(cast(&ballots, &res, c.p.Vote.Tolerance).voters))
			}
			// Short of a possible majority (two replicas disagree, or one
			// failed): ask replicas not asked yet, one at a time, until a
			// majority is possible again or none is left to ask.
			for best+len(c.inflight) < need && c.launch(tryVote) {
			}
			if best+len(c.inflight) < need {
				break loop // no majority is possible any more
			}
			if best >= need && grace == nil && len(c.inflight) > 0 {
				t := time.NewTimer(hedgeDelay(&c.p.Hedge, &c.m.lat))
				defer t.Stop()
				grace = t.C
			}
		case <-grace:
			break loop
		case <-c.ctx.Done():
			return c.expired(nil)
		case <-c.expiredC():
			return c.expired(nil)
		}
	}
	return c.tally(ballots, failures, need)
}

// cast adds an answer to the ballot it agrees with, or to a new one.
func cast(ballots *[]*ballot, res *tryResult, tol float64) *ballot {
	var outs map[string]*tensor.Tensor
	if res.status == http.StatusOK {
		var wire oip.InferResponse
		if json.Unmarshal(res.body, &wire) == nil {
			outs, _ = wire.Tensors()
		}
	}
	for _, b := range *ballots {
		if sameAnswer(b, res, outs, tol) {
			b.voters = append(b.voters, res.r)
			return b
		}
	}
	b := &ballot{res: res, outs: outs, voters: []*replica{res.r}}
	*ballots = append(*ballots, b)
	return b
}

// sameAnswer compares an answer with a ballot's: the same error status
// agrees (all replicas rejecting a bad request is a unanimous answer), and
// outputs agree when names, datatypes and shapes match and the values do:
// exactly for integers and booleans, within a relative tolerance (with the
// same absolute floor) for floats, since replicas on different hardware
// may round differently. An undecodable body agrees only with itself.
func sameAnswer(b *ballot, res *tryResult, outs map[string]*tensor.Tensor, tol float64) bool {
	if b.res.status != res.status {
		return false
	}
	if res.status != http.StatusOK {
		return true
	}
	if b.outs == nil || outs == nil {
		return b.outs == nil && outs == nil && bytes.Equal(b.res.body, res.body)
	}
	if len(b.outs) != len(outs) {
		return false
	}
	for name, x := range b.outs {
		y := outs[name]
		if y == nil || !sameTensor(x, y, tol) {
			return false
		}
	}
	return true
}

func sameTensor(x, y *tensor.Tensor, tol float64) bool {
	if x.DType != y.DType || !slices.Equal(x.Shape, y.Shape) || x.Len() != y.Len() {
		return false
	}
	switch x.DType {
	case tensor.Float32, tensor.Float64:
		for i := range x.Len() {
			a, b := x.Float64At(i), y.Float64At(i)
			if d := math.Abs(a - b); d > tol && d > tol*max(math.Abs(a), math.Abs(b)) {
				return false
			}
		}
		return true
	case tensor.Int32:
		return slices.Equal(x.I32, y.I32)
	case tensor.Int64:
		return slices.Equal(x.I64, y.I64)
	case tensor.Bool:
		return slices.Equal(x.Bool, y.Bool)
	}
	return false
}

// tally picks the winner, blames the outvoted and builds the answer, with
// the vote reported in its parameters: bulwark_vote "agreeing/asked" and
// bulwark_vote_disagreed listing the outvoted replicas.
func (c *call) tally(ballots []*ballot, failures []*tryResult, need int) reply {
	asked := c.tries
	slices.SortStableFunc(ballots, func(a, b *ballot) int { return len(b.voters) - len(a.voters) })
	if len(ballots) == 0 || len(ballots[0].voters) < need {
		c.m.metrics.votes.WithLabelValues(c.m.name, "no_majority").Inc()
		if len(ballots) == 0 {
			return c.failed(failures[len(failures)-1])
		}
		answered := 0
		for _, b := range ballots {
			answered += len(b.voters)
		}
		msg := fmt.Sprintf("no majority: %d replicas gave %d different answers", asked, len(ballots))
		if answered < asked {
			msg = fmt.Sprintf("no majority: %d replicas asked, %d answered with %d different answers, %d failed or were too slow",
				asked, answered, len(ballots), asked-answered)
		}
		rep := errorReply(http.StatusBadGateway, msg+" (model "+c.m.name+")")
		rep.tries = asked
		return rep
	}
	win := ballots[0]
	result := "majority"
	if len(win.voters) == asked {
		result = "unanimous"
	}
	c.m.metrics.votes.WithLabelValues(c.m.name, result).Inc()
	var outvoted []string
	now := time.Now()
	for _, b := range ballots[1:] {
		for _, r := range b.voters {
			outvoted = append(outvoted, r.addr)
			c.m.disagree(r, now)
		}
	}
	rep := resultReply(win.res, asked)
	if win.res.status == http.StatusOK {
		if body, err := withVote(win.res.body, fmt.Sprintf("%d/%d", len(win.voters), asked), outvoted); err == nil {
			rep.body, rep.contentType = body, "application/json"
		}
	}
	return rep
}

// withVote re-encodes an answer with the vote in its parameters. Output
// data stays raw bytes: only the envelope is rewritten.
func withVote(body []byte, vote string, outvoted []string) ([]byte, error) {
	var wire oip.InferResponse
	if err := json.Unmarshal(body, &wire); err != nil {
		return nil, err
	}
	if wire.Parameters == nil {
		wire.Parameters = oip.Parameters{}
	}
	wire.Parameters["bulwark_vote"] = vote
	if len(outvoted) > 0 {
		wire.Parameters["bulwark_vote_disagreed"] = outvoted
	}
	return json.Marshal(&wire)
}

// disagree counts an outvoted answer and ejects a replica that keeps
// giving them.
func (m *model) disagree(r *replica, now time.Time) {
	m.metrics.disagreements.WithLabelValues(m.name, r.addr).Inc()
	p := m.policy.Load()
	r.mu.Lock()
	r.disagreements++
	n := r.disagreements
	r.mu.Unlock()
	if p.Vote.EjectAfter > 0 && n >= p.Vote.EjectAfter {
		m.eject(r, now, fmt.Sprintf("outvoted %d times", n))
	}
}
