package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// recoveryTimeout bounds restore + start of the recovered site.
const recoveryTimeout = 10 * time.Minute

// disaster destroys the site, restores the latest backup into a new
// site, starts it and waits until it serves at full capacity.
func (r *Runner) disaster(ctx context.Context, pr *PhaseResult) error {
	before := r.captureHistory(ctx)
	r.captureSchedule(ctx)
	r.site.adoptUpArgs()
	pids := r.site.sitePIDs(ctx)
	for _, p := range pids {
		signal(p, syscall.SIGKILL)
	}
	at := time.Now()
	rec := &Recovery{DisasterAt: at}
	r.rep.Recovery = rec
	if err := waitGone(pids, 30*time.Second); err != nil {
		return err
	}
	if r.site.up != nil {
		<-r.site.exited
	}
	lost := r.site.dir
	if err := os.RemoveAll(lost); err != nil {
		return fmt.Errorf("remove the site directory: %w", err)
	}
	r.eventAt(pr, at, "disaster", fmt.Sprintf("site destroyed: %d processes SIGKILLed, %s removed", len(pids), lost))

	repo, password := r.cfg.Repo, r.cfg.Password
	if r.cfg.Offsite != "" {
		repo, password = r.cfg.Offsite, r.cfg.OffsitePassword
	}
	rec.Repository = repo
	// A scratch site's repository holds that site alone: restore "latest"
	// at once, as an operator would, without a listing first (each opens
	// the repository: a key derivation of most of a second).
	want := "latest"
	if !r.cfg.Scratch {
		snap, err := r.latestSnapshot(ctx, repo, password, lost)
		if err != nil {
			return err
		}
		want = snap.ID
	}
	into := r.cfg.RecoverInto
	snap, bytesRestored, err := r.restore(ctx, repo, password, want, into)
	if err != nil {
		return err
	}
	rec.Snapshot, rec.SnapshotAt = snap.ID, snap.Time
	rec.RPO = at.Sub(snap.Time).Seconds()
	rec.RestoreBytes = bytesRestored
	rec.RestoredAt = time.Now()
	r.event(pr, "restored", fmt.Sprintf("snapshot %s (%s old at the disaster) restored into %s", short(snap.ID),
		at.Sub(snap.Time).Round(time.Second), into))

	restored, err := readHistory(ctx, into)
	if err != nil {
		return fmt.Errorf("read the restored state: %w", err)
	}
	rec.Lost = lostChanges(before, restored)
	r.verifyState(before, restored, snap.Time)

	r.site.dir = into
	r.site.up = nil
	logPath := filepath.Join(r.cfg.WorkDir, "logs", "up-recovered.log")
	if !r.cfg.Scratch {
		// The recovered site outlives the drill: its log goes with it.
		if err := os.MkdirAll(filepath.Join(into, "logs"), 0o755); err != nil {
			return err
		}
		logPath = filepath.Join(into, "logs", "up.log")
	}
	if err := r.site.startUp(ctx, logPath, recoveryTimeout); err != nil {
		return fmt.Errorf("start the recovered site: %w", err)
	}
	rec.FullCapacityAt = time.Now()
	if first, ok := r.load.FirstGood(at); ok {
		rec.FirstGoodAt = first
	} else {
		// The load has not seen one yet; ask as a client would.
		first, err := r.firstGood(ctx)
		if err != nil {
			return err
		}
		rec.FirstGoodAt = first
	}
	rec.RTOFirst = rec.FirstGoodAt.Sub(at).Seconds()
	rec.RTOFull = rec.FullCapacityAt.Sub(at).Seconds()
	r.eventAt(pr, rec.FirstGoodAt, "first-good", fmt.Sprintf("first good inference %.2f s after the disaster", rec.RTOFirst))
	r.eventAt(pr, rec.FullCapacityAt, "full-capacity", fmt.Sprintf("every replica serves %.2f s after the disaster", rec.RTOFull))
	return nil
}

// firstGood waits for the load's first right answer after the disaster.
func (r *Runner) firstGood(ctx context.Context) (time.Time, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		if t, ok := r.load.FirstGood(r.rep.Recovery.DisasterAt); ok {
			return t, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, errors.New("the recovered site serves, but no request of the load got a right answer within a minute")
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return time.Time{}, err
		}
	}
}

// snapshotInfo is what the drill reads of bulwark snapshots --json.
type snapshotInfo struct {
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	Site string    `json:"site"`
}

// latestSnapshot is the newest snapshot of site in repo (of any site if
// none is of this one: a site restored elsewhere backs up under its new
// path).
func (r *Runner) latestSnapshot(ctx context.Context, repo, password, site string) (*snapshotInfo, error) {
	out, err := r.bulwark(ctx, password, "--json", "snapshots", "--repo", repo)
	if err != nil {
		return nil, fmt.Errorf("list the snapshots of %s: %w", repo, err)
	}
	var all []snapshotInfo
	if err := json.Unmarshal(out, &all); err != nil {
		return nil, fmt.Errorf("list the snapshots of %s: %w", repo, err)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("repository %s holds no snapshot: nothing to recover from", repo)
	}
	abs, _ := filepath.Abs(site)
	sort.Slice(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Site == abs {
			return &all[i], nil
		}
	}
	return &all[len(all)-1], nil
}

// restore runs bulwark restore of snapshot id ("latest" or an id) into
// the site dir into, as an operator would, and returns the snapshot
// restored and the bytes written.
func (r *Runner) restore(ctx context.Context, repo, password, id, into string) (*snapshotInfo, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, recoveryTimeout)
	defer cancel()
	out, err := r.bulwark(ctx, password, "--json", "--site", into, "restore", id, "--repo", repo)
	if err != nil {
		return nil, 0, fmt.Errorf("restore snapshot %s: %w", short(id), err)
	}
	var res struct {
		Snapshot string    `json:"snapshot"`
		Time     time.Time `json:"snapshot_time"`
		Site     string    `json:"snapshot_site"`
		Result   struct {
			Bytes int64 `json:"bytes"`
		} `json:"result"`
	}
	// Progress or notes may precede the JSON object: read the last one.
	if i := bytes.LastIndex(out, []byte("\n{")); i >= 0 {
		out = out[i+1:]
	}
	if err := json.Unmarshal(out, &res); err != nil || res.Snapshot == "" {
		return nil, 0, fmt.Errorf("restore snapshot %s: read its summary: %v", short(id), err)
	}
	return &snapshotInfo{ID: res.Snapshot, Time: res.Time, Site: res.Site}, res.Result.Bytes, nil
}

// bulwark runs the bulwark binary with the repository password and
// returns its standard output; an error carries its standard error.
func (r *Runner) bulwark(ctx context.Context, password string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, r.cfg.Exe, args...)
	cmd.Env = append(os.Environ(), "BULWARK_PASSWORD="+password, "BULWARK_PASSWORD_FILE=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("bulwark %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
