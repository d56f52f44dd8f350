package drill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"syscall"
	"time"

	"github.com/bulwark-ml/bulwark/internal/control"
)

// clearFunc undoes a fault at the end of its phase; nil when there is
// nothing to undo.
type clearFunc func(ctx context.Context) error

// inject starts the fault of a phase. It returns how to clear it.
func (r *Runner) inject(ctx context.Context, ph Phase, pr *PhaseResult, end time.Time) (clearFunc, error) {
	f := ph.Fault
	switch f.Type {
	case FaultReplicaKill:
		return nil, r.signalReplicas(ctx, f, pr, syscall.SIGKILL)
	case FaultReplicaStop:
		return r.stopReplicas(ctx, f, pr, end)
	case FaultReplicaSlow:
		ms := float64(f.Latency.D()) / float64(time.Millisecond)
		return r.chaos(ctx, f, pr, map[string]any{"latency": map[string]any{"rate": f.Rate, "ms": ms}},
			fmt.Sprintf("%s added to %.0f%% of answers", f.Latency, 100*f.Rate))
	case FaultReplicaError:
		return r.chaos(ctx, f, pr, map[string]any{"error": map[string]any{"rate": f.Rate, "status": f.Status}},
			fmt.Sprintf("%.0f%% of requests answered %d", 100*f.Rate, f.Status))
	case FaultReplicaWrong:
		return r.wrongAnswers(ctx, f, pr)
	case FaultControllerKill:
		return nil, r.killController(ctx, pr, end)
	case FaultBadRollout:
		return nil, r.badRollout(ctx, pr, end)
	case FaultDisaster:
		return nil, r.disaster(ctx, pr)
	}
	return nil, fmt.Errorf("unknown fault type %q", f.Type)
}

// targets picks the replicas a fault hits: f.Replicas of the model's
// running replicas, by name, starting one further each phase. Rotating
// spreads the faults, as chance would: hitting one replica every phase
// would grow its ejection time (the gateway doubles it per ejection)
// until the drill measures that instead of the fault. Reruns of a
// scenario hit the same replicas in the same order.
func (r *Runner) targets(ctx context.Context, f *Fault) ([]control.ReplicaInfo, error) {
	reps, err := r.site.replicasOf(ctx, r.model)
	if err != nil {
		return nil, err
	}
	if len(reps) < f.Replicas {
		return nil, fmt.Errorf("%s needs %d replica(s) of %s, %d run", f.Type, f.Replicas, r.model, len(reps))
	}
	sort.Slice(reps, func(i, j int) bool { return reps[i].Name < reps[j].Name })
	out := make([]control.ReplicaInfo, f.Replicas)
	for i := range out {
		out[i] = reps[(r.rotation+i)%len(reps)]
	}
	r.rotation++
	return out, nil
}

func (r *Runner) signalReplicas(ctx context.Context, f *Fault, pr *PhaseResult, sig syscall.Signal) error {
	reps, err := r.targets(ctx, f)
	if err != nil {
		return err
	}
	for _, rep := range reps {
		if err := signal(rep.PID, sig); err != nil {
			return err
		}
		r.event(pr, "fault", fmt.Sprintf("%s to replica %s (pid %d)", sigName(sig), rep.Name, rep.PID))
	}
	r.timeRepair(ctx, pr, time.Now())
	return nil
}

// timeRepair measures, in the background, how long the site takes to be
// at full capacity again after a replica was killed at killed: the
// replica MTTR that bulwark plan assumes.
func (r *Runner) timeRepair(ctx context.Context, pr *PhaseResult, killed time.Time) {
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		degraded := false
		deadline := killed.Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			// The controller must first notice the death: full capacity
			// right after the kill is the stale view.
			if why, err := r.site.fullCapacity(ctx); err == nil && why == "" {
				if degraded {
					took := time.Since(killed)
					r.mu.Lock()
					r.mttr = append(r.mttr, took.Seconds())
					r.mu.Unlock()
					r.event(pr, "recovered", fmt.Sprintf("replaced and serving %.2f s after SIGKILL", took.Seconds()))
					return
				}
			} else {
				degraded = true
			}
			if sleepCtx(ctx, 10*time.Millisecond) != nil {
				return
			}
		}
	}()
}

// stopReplicas freezes replicas with SIGSTOP and thaws them with SIGCONT
// after f.Pause, or at the phase's end. The clear func thaws them in any
// case: a drill never leaves a process stopped.
func (r *Runner) stopReplicas(ctx context.Context, f *Fault, pr *PhaseResult, end time.Time) (clearFunc, error) {
	reps, err := r.targets(ctx, f)
	if err != nil {
		return nil, err
	}
	var frozen []control.ReplicaInfo
	thaw := func() {
		for _, rep := range frozen {
			if !stopped(rep.PID) {
				continue // gone: the controller replaced it
			}
			if err := signal(rep.PID, syscall.SIGCONT); err == nil {
				r.event(pr, "clear", fmt.Sprintf("SIGCONT to replica %s (pid %d)", rep.Name, rep.PID))
			}
		}
		frozen = nil
	}
	for _, rep := range reps {
		if err := signal(rep.PID, syscall.SIGSTOP); err != nil {
			thaw()
			return nil, err
		}
		frozen = append(frozen, rep)
		r.event(pr, "fault", fmt.Sprintf("SIGSTOP to replica %s (pid %d)", rep.Name, rep.PID))
	}
	at := end
	if f.Pause > 0 {
		at = time.Now().Add(f.Pause.D())
	}
	done := make(chan struct{})
	timer := time.AfterFunc(time.Until(at), func() { thaw(); close(done) })
	return func(context.Context) error {
		if timer.Stop() {
			thaw()
		} else {
			<-done
		}
		return nil
	}, nil
}

// chaos sets a fault through the replicas' chaos API (bulwark up
// --chaos); clearing deletes it.
func (r *Runner) chaos(ctx context.Context, f *Fault, pr *PhaseResult, set map[string]any, what string) (clearFunc, error) {
	reps, err := r.targets(ctx, f)
	if err != nil {
		return nil, err
	}
	var hit []control.ReplicaInfo
	undo := func(ctx context.Context) error {
		var errs []error
		for _, rep := range hit {
			if err := r.site.admin(ctx, http.MethodDelete, chaosURL(rep), nil, nil); err != nil {
				errs = append(errs, fmt.Errorf("clear the faults of replica %s: %w", rep.Name, err))
				continue
			}
			r.event(pr, "clear", "faults cleared on replica "+rep.Name)
		}
		return errors.Join(errs...)
	}
	for _, rep := range reps {
		if err := r.site.admin(ctx, http.MethodPut, chaosURL(rep), set, nil); err != nil {
			undo(ctx)
			return nil, fmt.Errorf("inject a fault into replica %s: %w (is chaos mode on? bulwark up --chaos)", rep.Name, err)
		}
		hit = append(hit, rep)
		r.event(pr, "fault", fmt.Sprintf("replica %s: %s", rep.Name, what))
	}
	return undo, nil
}

// wrongAnswers corrupts replicas' answers, with the gateway's voting
// turned on for the phase when the fault asks for it.
func (r *Runner) wrongAnswers(ctx context.Context, f *Fault, pr *PhaseResult) (clearFunc, error) {
	var voteOff clearFunc
	if f.Vote {
		off, err := r.setVote(ctx, pr)
		if err != nil {
			return nil, err
		}
		voteOff = off
	}
	undo, err := r.chaos(ctx, f, pr, map[string]any{"wrong": map[string]any{"rate": f.Rate}},
		fmt.Sprintf("%.0f%% of answers corrupted", 100*f.Rate))
	if err != nil {
		if voteOff != nil {
			voteOff(ctx)
		}
		return nil, err
	}
	return func(ctx context.Context) error {
		err := undo(ctx)
		if voteOff != nil {
			err = errors.Join(err, voteOff(ctx))
		}
		return err
	}, nil
}

// setVote applies the deployment with voting on and waits until the
// gateway votes; the clear func applies the spec as it was.
func (r *Runner) setVote(ctx context.Context, pr *PhaseResult) (clearFunc, error) {
	d, err := r.deploymentOf(ctx, r.model)
	if err != nil {
		return nil, err
	}
	before := d.Spec
	spec := d.Spec
	spec.Policy = map[string]any{}
	for k, v := range before.Policy {
		spec.Policy[k] = v
	}
	vote := map[string]any{}
	if old, ok := spec.Policy["vote"].(map[string]any); ok {
		for k, v := range old {
			vote[k] = v
		}
	}
	vote["enabled"] = true
	spec.Policy["vote"] = vote
	if err := r.applySpec(ctx, d.Metadata.Name, spec); err != nil {
		return nil, fmt.Errorf("turn voting on: %w", err)
	}
	if err := r.waitVote(ctx, true); err != nil {
		return nil, err
	}
	r.event(pr, "fault", "voting on for "+r.model)
	return func(ctx context.Context) error {
		if err := r.applySpec(ctx, d.Metadata.Name, before); err != nil {
			return fmt.Errorf("turn voting off again: %w", err)
		}
		if err := r.waitVote(ctx, false); err != nil {
			return err
		}
		r.event(pr, "clear", "voting off for "+r.model)
		return nil
	}, nil
}

func (r *Runner) waitVote(ctx context.Context, on bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := r.site.gatewayStatus(ctx)
		if err == nil {
			for _, m := range st.Models {
				if m.Name == r.model && m.Vote == on {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the gateway does not vote=%v for %s after 30s", on, r.model)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// deploymentOf is the deployment serving model.
func (r *Runner) deploymentOf(ctx context.Context, model string) (*control.Deployment, error) {
	ds, err := r.site.ctl.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	for _, d := range ds {
		if d.Spec.Model == model {
			return d, nil
		}
	}
	return nil, fmt.Errorf("no deployment serves model %s", model)
}

// applySpec applies spec as the deployment name, through the API as bulwark
// apply would.
func (r *Runner) applySpec(ctx context.Context, name string, spec control.Spec) error {
	doc, err := json.Marshal(map[string]any{
		"apiVersion": control.APIVersion, "kind": control.Kind,
		"metadata": map[string]any{"name": name}, "spec": spec,
	})
	if err != nil {
		return err
	}
	_, err = r.site.ctl.Apply(ctx, doc, "application/json", false)
	return err
}

// killController SIGKILLs the controller and waits for its supervisor
// to bring a new one up, answering its API.
func (r *Runner) killController(ctx context.Context, pr *PhaseResult, end time.Time) error {
	pid, err := findController(r.site.dir)
	if err != nil {
		return err
	}
	if err := signal(pid, syscall.SIGKILL); err != nil {
		return err
	}
	killed := time.Now()
	r.event(pr, "fault", fmt.Sprintf("SIGKILL to the controller (pid %d)", pid))
	deadline := end.Add(time.Minute)
	for {
		if np, err := findController(r.site.dir); err == nil && np != pid {
			lctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := r.site.ctl.List(lctx)
			cancel()
			if err == nil {
				r.event(pr, "recovered", fmt.Sprintf("controller back in %s (pid %d)", time.Since(killed).Round(time.Millisecond), np))
				return nil
			}
		}
		if time.Now().After(deadline) {
			return errors.New("no controller came back after SIGKILL (is it supervised? bulwark up restarts it)")
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

func sigName(s syscall.Signal) string {
	switch s {
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGSTOP:
		return "SIGSTOP"
	case syscall.SIGCONT:
		return "SIGCONT"
	}
	return s.String()
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// checkChaos refuses, before anything runs, a scenario whose faults need
// the replicas' chaos API on a site whose replicas run without it.
func (r *Runner) checkChaos(ctx context.Context) error {
	need := ""
	for _, ph := range r.sc.Phases {
		if f := ph.Fault; f != nil && (f.Type == FaultReplicaSlow || f.Type == FaultReplicaWrong || f.Type == FaultReplicaError) {
			need = ph.Name
			break
		}
	}
	if need == "" {
		return nil
	}
	reps, err := r.site.replicasOf(ctx, r.model)
	if err != nil || len(reps) == 0 {
		return fmt.Errorf("phase %s needs the replicas' chaos API: %v", need, err)
	}
	if err := r.site.admin(ctx, http.MethodGet, chaosURL(reps[0]), nil, nil); err != nil {
		return fmt.Errorf("phase %s injects faults through the replicas' chaos API, which replica %s does not serve (%v): start the site with bulwark up --chaos, or drop the phase", need, reps[0].Name, err)
	}
	return nil
}
