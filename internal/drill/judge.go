package drill

import (
	"context"
	"net/http"
	"time"

	"github.com/bulwark-ml/bulwark/internal/plan"
	"github.com/bulwark-ml/bulwark/internal/schedule"
)

// finish completes the report: the timeline, the objectives judged, the
// plan beside the measurement, and the verdict.
func (r *Runner) finish() {
	rep := r.rep
	rep.Finished = time.Now()
	rep.Timeline = r.load.Timeline(rep.Started)
	rep.Objectives = judge(r.sc.Objectives, rep)
	rep.Plan = r.planRows()
	rep.Passed = len(rep.Problems) == 0
	for _, o := range rep.Objectives {
		rep.Passed = rep.Passed && o.Met
	}
	if _, ok := r.sc.Disaster(); ok {
		rep.Passed = rep.Passed && rep.Recovery != nil && rep.Verification != nil && rep.Verification.Passed
	}
	if rep.Recovery != nil {
		rep.Site.RecoveredDir = r.cfg.RecoverInto
	}
}

// judge compares each objective the scenario sets with the measurement.
// One that could not be measured (no recovery happened) is not met.
func judge(o Objectives, rep *Report) []ObjectiveResult {
	out := []ObjectiveResult{}
	seconds := func(name string, target Duration, measured func(*Recovery) float64) {
		if target <= 0 {
			return
		}
		t := target.D().Seconds()
		o := ObjectiveResult{Name: name, Target: t, Unit: "s", NotMeasured: true}
		if rep.Recovery != nil && !rep.Recovery.FullCapacityAt.IsZero() {
			o.Measured, o.NotMeasured = measured(rep.Recovery), false
			o.Met = o.Measured <= t
		}
		out = append(out, o)
	}
	seconds("rto", o.RTO, func(rc *Recovery) float64 { return rc.RTOFirst })
	seconds("rtoFull", o.RTOFull, func(rc *Recovery) float64 { return rc.RTOFull })
	seconds("rpo", o.RPO, func(rc *Recovery) float64 { return rc.RPO })
	if o.MaxFailedRequests != nil {
		var failed int64
		for _, p := range rep.Phases {
			if p.Masked {
				failed += p.Failed
			}
		}
		out = append(out, ObjectiveResult{Name: "maxFailedRequests", Target: float64(*o.MaxFailedRequests),
			Measured: float64(failed), Unit: "requests", Met: failed <= int64(*o.MaxFailedRequests)})
	}
	return out
}

// planRows computes what bulwark plan predicts for this site, with the
// drill's own figures where a plan would assume them (backup interval,
// restore size), and puts each beside the measurement.
func (r *Runner) planRows() []PlanRow {
	a := plan.Defaults()
	if r.cfg.Assumptions != nil {
		a = *r.cfg.Assumptions
	} else if st := r.schedule; st != nil && st.IntervalSeconds > 0 {
		// The site's own schedule, as its controller reported it just
		// before the disaster: the interval, and δ as the last backup (and
		// off-site copy, when restoring from there) took.
		a.BackupInterval = plan.Seconds(st.IntervalSeconds)
		delta := st.Local.DurationSeconds
		if r.cfg.Offsite != "" && st.Offsite != nil {
			delta += st.Offsite.DurationSeconds
		}
		a.BackupDuration = plan.Seconds(max(delta, 0.001))
	} else if r.cfg.Scratch {
		a.BackupInterval = plan.Seconds(r.sc.Site.BackupInterval.D().Seconds())
		a.BackupDuration = min(a.BackupDuration, a.BackupInterval/10)
	}
	rc := r.rep.Recovery
	if rc != nil && rc.RestoreBytes > 0 && r.cfg.Assumptions == nil {
		a.RestoreSize = float64(rc.RestoreBytes)
	}
	top := plan.Topology{Deployment: r.model, K: 1, KReason: "one replica up serves",
		Zones: []plan.ZoneReplicas{{Zone: "", Replicas: max(1, r.rep.Site.Replicas)}}}
	res, err := plan.Compute(plan.Inputs{Topology: top, Assumptions: a})
	if err != nil {
		r.rep.Problems = append(r.rep.Problems, "plan: "+err.Error())
		return nil
	}
	var rows []PlanRow
	if mttr, ok := r.measuredMTTR(); ok {
		rows = append(rows, PlanRow{Name: "replica MTTR (SIGKILL → replaced and serving)", Planned: float64(a.ReplicaMTTR),
			Measured: mttr, Unit: "s", Formula: "assumed (replica.mttr)"})
	}
	if rc != nil && !rc.FullCapacityAt.IsZero() {
		rows = append(rows,
			PlanRow{Name: "restore (disaster → snapshot on disk)", Planned: float64(res.Recovery.Transfer),
				Measured: rc.RestoredAt.Sub(rc.DisasterAt).Seconds(), Unit: "s", Formula: "restore size / restore throughput"},
			PlanRow{Name: "RTO (disaster → first good inference)", Planned: float64(res.Recovery.RTO),
				Measured: rc.RTOFirst, Unit: "s", Formula: "transfer + startup + first good inference"},
			PlanRow{Name: "RPO (age of the restored backup)", Planned: float64(res.Backup.RPOExpected),
				Measured: rc.RPO, Unit: "s", Formula: "expected: interval / 2 + δ"},
			PlanRow{Name: "RPO, worst case", Planned: float64(res.Backup.RPOWorst),
				Measured: rc.RPO, Unit: "s", Formula: "interval + δ"},
		)
	}
	return rows
}

// measuredMTTR is the median time the site took to replace a SIGKILLed
// replica, from the replica-kill phases.
func (r *Runner) measuredMTTR() (float64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.mttr) == 0 {
		return 0, false
	}
	return median(r.mttr), true
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// captureSchedule reads the site's backup schedule from its controller
// (GET /api/v1/backups), for the plan beside the measurement; a site
// without one leaves the plan on its assumptions.
func (r *Runner) captureSchedule(ctx context.Context) {
	var st schedule.Status
	if err := r.site.admin(ctx, http.MethodGet, r.site.controller+"/api/v1/backups", nil, &st); err == nil {
		r.schedule = &st
	}
}
