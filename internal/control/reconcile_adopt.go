package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"syscall"
	"time"

	"github.com/bulwark-ml/bulwark/internal/supervisor"
)

// saveRecords writes the replicas (active and stopping) to the state if
// they changed since the last write.
func (r *Reconciler) saveRecords(ctx context.Context) {
	if !r.dirty {
		return
	}
	recs := make([]replicaRecord, 0, len(r.replicas)+len(r.draining))
	for _, rep := range r.replicas {
		recs = append(recs, rep.replicaRecord)
	}
	for rep := range r.draining {
		recs = append(recs, rep.replicaRecord)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Name < recs[j].Name })
	b, err := json.Marshal(recs)
	if err == nil {
		err = r.svc.store.PutMeta(context.WithoutCancel(ctx), replicasKey, b)
	}
	if err != nil {
		r.log.Error("record replicas", "err", err)
		return
	}
	r.dirty = false
}

// adoptRecorded takes over the replicas a previous controller recorded.
// One that is alive and answers as itself on its port is adopted as it
// runs (its pid stays); one that is gone is started again on its port;
// one whose deployment is gone, or that was being stopped, is stopped.
func (r *Reconciler) adoptRecorded(ctx context.Context) error {
	b, err := r.svc.store.Meta(ctx, replicasKey)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read recorded replicas: %w", err)
	}
	var recs []replicaRecord
	if err := json.Unmarshal(b, &recs); err != nil {
		r.log.Error("recorded replicas are unreadable; starting afresh", "err", err)
		return nil
	}
	ds, err := r.svc.List(ctx)
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, d := range ds {
		live[d.Metadata.Name] = true
	}
	adopted := map[string][]string{}
	for _, rec := range recs {
		alive := supervisor.Alive(rec.PID)
		wanted := live[rec.Deployment] && !rec.Stopping && r.replicas[rec.Name] == nil
		if alive && r.identify(ctx, rec) {
			rep, err := r.launchRecord(rec, true)
			if err == nil {
				if !wanted {
					r.stopReplica(rep)
					continue
				}
				adopted[rec.Deployment] = append(adopted[rec.Deployment], rec.Name)
				r.log.Info("adopted running replica", "replica", rec.Name, "pid", rec.PID, "port", rec.Port)
				continue
			}
			r.log.Warn("adopt replica", "replica", rec.Name, "pid", rec.PID, "err", err)
		}
		if alive && cmdlineNames(rec.PID, rec.Name) {
			// Ours, but not answering as itself: replace it.
			r.log.Warn("recorded replica does not answer; killing it", "replica", rec.Name, "pid", rec.PID)
			killGroup(rec.PID)
		}
		r.dirty = true
		if !wanted {
			continue
		}
		rep, err := r.launchRecord(rec, false)
		if err != nil {
			r.log.Error("restart recorded replica", "replica", rec.Name, "err", err)
			continue
		}
		r.log.Info("recorded replica was gone; started it again", "replica", rec.Name, "pid", rep.PID, "port", rec.Port)
		r.event(ctx, rec.Deployment, EventWarning, "ReplicaRestarted",
			fmt.Sprintf("replica %s was not running when the controller started; started it again on port %d (pid %d)", rec.Name, rec.Port, rep.PID))
	}
	for name, names := range adopted {
		sort.Strings(names)
		r.event(ctx, name, EventNormal, "Adopted",
			fmt.Sprintf("adopted %d running replica(s) left by the previous controller: %v", len(names), names))
	}
	r.saveRecords(ctx)
	return nil
}

// killGroup kills a replica's process group (it leads its own) and waits
// a little for it to go.
func killGroup(pid int) {
	if pid <= 0 {
		return
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	syscall.Kill(pid, syscall.SIGKILL)
	deadline := time.Now().Add(5 * time.Second)
	for supervisor.Alive(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}
