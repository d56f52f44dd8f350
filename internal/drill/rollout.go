package drill

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bulwark-ml/bulwark/internal/control"
	"github.com/bulwark-ml/bulwark/internal/modelstore"
)

// rollbackGrace is how long past its phase a bad rollout may take to be
// rolled back before the drill calls it a problem: the controller judges
// a version over spec.rollout.observe (30s by default).
const rollbackGrace = 2 * time.Minute

// badRollout pushes a broken copy of the version the model serves, rolls
// it out as a user would with bulwark apply, and waits for the
// controller's automatic rollback.
func (r *Runner) badRollout(ctx context.Context, pr *PhaseResult, end time.Time) error {
	d, err := r.deploymentOf(ctx, r.model)
	if err != nil {
		return err
	}
	if len(d.Spec.Versions) == 0 {
		return fmt.Errorf("deployment %s has no version", d.Metadata.Name)
	}
	good := d.Spec.Versions[0].Version
	bad, err := r.pushBroken(ctx, good)
	if err != nil {
		return err
	}
	spec := d.Spec
	spec.Versions = []control.VersionWeight{{Version: bad, Weight: 100}}
	if err := r.applySpec(ctx, d.Metadata.Name, spec); err != nil {
		return fmt.Errorf("roll out %s:%s: %w", r.model, bad, err)
	}
	applied := time.Now()
	r.event(pr, "fault", fmt.Sprintf("rolled out %s:%s, a broken copy of %s that fails every batch-1 request", r.model, bad, good))

	deadline := end.Add(rollbackGrace)
	for {
		cur, err := r.site.ctl.Get(ctx, d.Metadata.Name)
		if err == nil && !specHas(cur.Spec, bad) {
			reason := r.rollbackReason(ctx, d.Metadata.Name)
			r.event(pr, "rollback", fmt.Sprintf("rolled back automatically %s after the rollout: %s",
				time.Since(applied).Round(100*time.Millisecond), reason))
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s:%s was not rolled back within %s of the phase's end", r.model, bad, rollbackGrace)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

func specHas(s control.Spec, version string) bool {
	return slices.ContainsFunc(s.Versions, func(v control.VersionWeight) bool { return v.Version == version })
}

// rollbackReason is the message of the deployment's last RolledBack event.
func (r *Runner) rollbackReason(ctx context.Context, name string) string {
	evs, err := r.site.ctl.Events(ctx, name, 20)
	if err != nil {
		return "(events unavailable: " + err.Error() + ")"
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Reason == "RolledBack" {
			return evs[i].Message
		}
	}
	return "(no RolledBack event)"
}

// pushBroken pushes a broken copy of model:version into the site's store
// and returns the new version.
func (r *Runner) pushBroken(ctx context.Context, version string) (string, error) {
	store, err := modelstore.Open(r.site.dir)
	if err != nil {
		return "", err
	}
	m, err := store.Manifest(r.model, version)
	if err != nil {
		return "", fmt.Errorf("model %s:%s: %w", r.model, version, err)
	}
	if m.Format != "onnx" {
		return "", fmt.Errorf("model %s:%s is %s: the bad rollout breaks ONNX models only", r.model, version, m.Format)
	}
	src, err := os.ReadFile(store.Path(m, m.Primary))
	if err != nil {
		return "", fmt.Errorf("read %s:%s: %w", r.model, version, err)
	}
	broken, err := BrokenVersion(src)
	if err != nil {
		return "", fmt.Errorf("break %s:%s: %w", r.model, version, err)
	}
	tmp, err := os.MkdirTemp("", "bulwark-drill-model-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	file := filepath.Join(tmp, strings.TrimSuffix(m.Primary, filepath.Ext(m.Primary))+"-broken.onnx")
	if err := os.WriteFile(file, broken, 0o644); err != nil {
		return "", err
	}
	if r.cfg.Inspect == nil {
		return "", errors.New("no model inspector configured")
	}
	pushed, err := store.Push(ctx, r.model, file, r.cfg.Inspect, modelstore.PushOptions{})
	if err != nil {
		return "", fmt.Errorf("push the broken version of %s: %w", r.model, err)
	}
	return pushed.Version, nil
}
