package drill

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/bulwark-ml/bulwark/internal/control"
	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/state"
)

// history is what a site holds that a disaster could lose: each
// deployment's revisions and current revision, and the model versions.
type history struct {
	Deployments map[string]deploymentHistory
	Models      map[string]time.Time // "model:version" → pushed
}

type deploymentHistory struct {
	Current   int64
	Revisions map[int64]revision
}

type revision struct {
	Created time.Time
	Spec    string // canonical JSON
}

// captureHistory reads the running site's history through its
// controller and store, just before the disaster. What it cannot read
// is reported as a problem, not fatal: the disaster goes on.
func (r *Runner) captureHistory(ctx context.Context) *history {
	h := &history{Deployments: map[string]deploymentHistory{}, Models: map[string]time.Time{}}
	ds, err := r.site.ctl.List(ctx)
	if err != nil {
		r.problem("before the disaster: list deployments: %v", err)
		return h
	}
	for _, d := range ds {
		revs, err := r.site.ctl.Revisions(ctx, d.Metadata.Name)
		if err != nil {
			r.problem("before the disaster: revisions of %s: %v", d.Metadata.Name, err)
			continue
		}
		dh := deploymentHistory{Revisions: map[int64]revision{}}
		for _, rv := range revs {
			b, _ := json.Marshal(rv.Spec)
			dh.Revisions[rv.Revision] = revision{Created: rv.Created, Spec: string(b)}
			if rv.Current {
				dh.Current = rv.Revision
			}
		}
		h.Deployments[d.Metadata.Name] = dh
	}
	if err := addModels(h, r.site.dir); err != nil {
		r.problem("before the disaster: %v", err)
	}
	return h
}

// readHistory reads a stopped site's history from its files: the state
// file read-only, and the model store.
func readHistory(ctx context.Context, site string) (*history, error) {
	h := &history{Deployments: map[string]deploymentHistory{}, Models: map[string]time.Time{}}
	st, err := state.OpenBoltReadOnly(filepath.Join(site, "state", "controller.db"), time.Second)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	recs, err := st.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, rec := range recs {
		revs, err := st.Revisions(ctx, rec.Name)
		if err != nil {
			return nil, err
		}
		dh := deploymentHistory{Current: rec.Revision, Revisions: map[int64]revision{}}
		for _, rv := range revs {
			var spec control.Spec
			if err := json.Unmarshal(rv.Data, &spec); err != nil {
				return nil, fmt.Errorf("revision %d of %s: %w", rv.Number, rec.Name, err)
			}
			b, _ := json.Marshal(spec)
			dh.Revisions[rv.Number] = revision{Created: rv.Created, Spec: string(b)}
		}
		h.Deployments[rec.Name] = dh
	}
	return h, addModels(h, site)
}

func addModels(h *history, site string) error {
	store, err := modelstore.Open(site)
	if err != nil {
		return err
	}
	names, err := store.Names()
	if err != nil {
		return fmt.Errorf("list models: %w", err)
	}
	for _, n := range names {
		vs, err := store.Versions(n)
		if err != nil {
			return fmt.Errorf("versions of %s: %w", n, err)
		}
		for _, v := range vs {
			m, err := store.Manifest(n, v)
			if err != nil {
				return fmt.Errorf("model %s:%s: %w", n, v, err)
			}
			h.Models[n+":"+v] = m.Created
		}
	}
	return nil
}

// lostChanges are what the site had before the disaster and the restore
// did not bring back, oldest first.
func lostChanges(before, restored *history) []LostChange {
	lost := []LostChange{}
	for name, dh := range before.Deployments {
		rh, kept := restored.Deployments[name]
		for n, rv := range dh.Revisions {
			if _, ok := rh.Revisions[n]; kept && ok {
				continue
			}
			lost = append(lost, LostChange{At: rv.Created, Kind: "revision",
				What: fmt.Sprintf("deployment %s revision %d (%s)", name, n, specVersions(rv.Spec))})
		}
	}
	for mv, at := range before.Models {
		if _, ok := restored.Models[mv]; !ok {
			lost = append(lost, LostChange{At: at, Kind: "model-version", What: "model version " + mv})
		}
	}
	sort.Slice(lost, func(i, j int) bool { return lost[i].At.Before(lost[j].At) })
	return lost
}

// verifyState checks the restored history against the lost site's: every
// revision and model version that existed when the snapshot was taken is
// back, with the same spec, and nothing the site never had appeared.
func (r *Runner) verifyState(before, restored *history, snapAt time.Time) {
	v := r.verification()
	var diffs []string
	for name, dh := range before.Deployments {
		rh, ok := restored.Deployments[name]
		for n, rv := range dh.Revisions {
			if rv.Created.After(snapAt) {
				continue // made after the backup: lost, listed in the recovery
			}
			switch got, found := rh.Revisions[n]; {
			case !ok:
				diffs = append(diffs, "deployment "+name+" is missing")
			case !found:
				diffs = append(diffs, fmt.Sprintf("deployment %s revision %d is missing", name, n))
			case got.Spec != rv.Spec:
				diffs = append(diffs, fmt.Sprintf("deployment %s revision %d differs: %s, was %s", name, n, got.Spec, rv.Spec))
			}
			if !ok {
				break
			}
		}
	}
	for name, rh := range restored.Deployments {
		dh, ok := before.Deployments[name]
		if !ok {
			diffs = append(diffs, "deployment "+name+" was not on the lost site")
			continue
		}
		for n, got := range rh.Revisions {
			if was, ok := dh.Revisions[n]; ok && was.Spec != got.Spec {
				diffs = append(diffs, fmt.Sprintf("deployment %s revision %d was %s on the lost site, is %s", name, n, was.Spec, got.Spec))
			}
		}
		v.Deployments = append(v.Deployments, fmt.Sprintf("%s at revision %d (%s), %d revisions", name, rh.Current,
			specVersions(rh.Revisions[rh.Current].Spec), len(rh.Revisions)))
	}
	for mv, at := range before.Models {
		if _, ok := restored.Models[mv]; !ok && !at.After(snapAt) {
			diffs = append(diffs, "model version "+mv+" is missing")
		}
	}
	for mv := range restored.Models {
		if _, ok := before.Models[mv]; !ok {
			diffs = append(diffs, "model version "+mv+" was not on the lost site")
		}
	}
	sort.Strings(diffs)
	sort.Strings(v.Deployments)
	v.Differences = diffs
	v.DeploymentsMatch = len(diffs) == 0
}

// specVersions is "iris:1" or "iris:1 90%, iris:2 10%" from a spec's JSON.
func specVersions(specJSON string) string {
	var s control.Spec
	if json.Unmarshal([]byte(specJSON), &s) != nil {
		return "?"
	}
	parts := make([]string, len(s.Versions))
	for i, v := range s.Versions {
		parts[i] = s.Model + ":" + v.Version
		if len(s.Versions) > 1 {
			parts[i] += fmt.Sprintf(" %d%%", v.Weight)
		}
	}
	return strings.Join(parts, ", ")
}
