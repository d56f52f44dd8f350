package drill

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// Objectives a drill could not measure (an interrupted or failed
// recovery) are not met, say so, and the report still encodes.
func TestJudgeUnmeasuredObjectives(t *testing.T) {
	zero := 0
	o := Objectives{RTO: Duration(time.Minute), RPO: Duration(time.Minute), MaxFailedRequests: &zero}
	rep := &Report{Phases: []PhaseResult{{Name: "kill", Masked: true, Sent: 10, Failed: 2}, {Name: "calm", Sent: 10, Failed: 3}}}
	got := judge(o, rep)
	if len(got) != 3 {
		t.Fatalf("objectives: %+v", got)
	}
	for _, r := range got[:2] {
		if r.Met || !r.NotMeasured {
			t.Errorf("%s without a recovery: %+v", r.Name, r)
		}
	}
	if f := got[2]; f.Name != "maxFailedRequests" || f.Measured != 2 || f.Met {
		t.Errorf("failed requests counted over the masked phases only: %+v", f)
	}
	rep.Objectives = got
	if _, err := json.Marshal(rep); err != nil {
		t.Fatalf("report with unmeasured objectives: %v", err)
	}
	if md := string(rep.Markdown()); !strings.Contains(md, "not measured") {
		t.Errorf("markdown does not say the RTO was not measured:\n%s", md)
	}

	rep.Recovery = &Recovery{FullCapacityAt: time.Unix(1, 0), RTOFirst: 30, RPO: 61}
	got = judge(o, rep)
	if !got[0].Met || got[0].Measured != 30 || got[1].Met || got[1].Measured != 61 {
		t.Errorf("with a recovery: %+v", got)
	}
}
