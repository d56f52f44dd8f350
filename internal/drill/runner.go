package drill

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-ml/bulwark/internal/control"
	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/plan"
	"github.com/bulwark-ml/bulwark/internal/schedule"
)

// Config is one drill: the scenario and the site it runs on.
type Config struct {
	Exe      string // the bulwark binary the drill runs for sites, restores and listings
	Scenario *Scenario

	// Scratch: the drill creates a site in WorkDir/site with a backup
	// repository in WorkDir/repo, runs it, and stops it at the end.
	// Otherwise it attaches to the running site Site whose gateway and
	// controller answer at Gateway and Controller.
	Scratch             bool
	WorkDir             string // where the drill keeps logs (and a scratch site); required
	Site                string
	Gateway, Controller string
	Token               string // the admin token; a scratch site gets a new one

	// Repo and Password: the site's backup repository (a scratch site's
	// is created). Offsite, when set, is restored from after the disaster.
	Repo, Password           string
	Offsite, OffsitePassword string
	RecoverInto              string // the new site's directory
	AllowDestroy             bool   // a disaster may destroy a site the drill did not create
	Inspect                  modelstore.Inspector
	Assumptions              *plan.Assumptions // for the plan beside the measurement; nil: plan's defaults
	Version                  string
	Progress                 io.Writer // a line per step; nil for none
	Log                      *slog.Logger
	GatewayPort, ControlPort int // scratch: 0 picks free ports
	ProbeCount               int // default 32
}

// Runner runs one drill.
type Runner struct {
	cfg    Config
	sc     *Scenario
	site   *site
	model  string
	probes *ProbeSet
	load   *Load

	mu   sync.Mutex // guards rep's events and problems, and mttr: faults log from timers
	rep  *Report
	mttr []float64      // seconds from a replica's SIGKILL to full capacity again
	bg   sync.WaitGroup // measurements that outlive a fault's injection

	rotation int              // where targets starts picking replicas
	schedule *schedule.Status // the site's backup schedule before the disaster, if it has one
}

// Run runs the drill and returns its report; an error means the drill
// could not run at all (no report). A drill that ran but failed
// objectives returns a report with Passed false and no error.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	r := &Runner{cfg: cfg, sc: cfg.Scenario, rep: &Report{
		Scenario: cfg.Scenario.Name, Description: cfg.Scenario.Description, Version: cfg.Version,
		Load: cfg.Scenario.Load, Events: []Event{}, Objectives: []ObjectiveResult{}, Phases: []PhaseResult{},
	}}
	defer r.cleanup()
	if err := r.prepare(ctx); err != nil {
		return nil, err
	}
	r.rep.Started = time.Now()
	r.progress("load: %d requests/s to %s through %s", r.sc.Load.Rate, r.model, r.site.gateway)
	load, err := StartLoad(ctx, LoadConfig{BaseURL: r.site.gateway, Rate: r.sc.Load.Rate, Timeout: r.sc.Load.Timeout.D(),
		Workers: r.sc.Load.Workers, Probes: r.probes})
	if err != nil {
		return nil, fmt.Errorf("start the load: %w", err)
	}
	r.load = load
	for i, ph := range r.sc.Phases {
		if ctx.Err() != nil {
			r.problem("interrupted before phase %s", ph.Name)
			break
		}
		r.progress("phase %d/%d: %s (%s)", i+1, len(r.sc.Phases), ph.Name, describePhase(ph))
		pr := r.runPhase(ctx, ph)
		r.rep.Phases = append(r.rep.Phases, pr)
		r.progress("  sent %d, failed %d, p99 %.1f ms", pr.Sent, pr.Failed, pr.P99)
	}
	load.Stop()
	r.finish()
	return r.rep, nil
}

func (c *Config) defaults() error {
	switch {
	case c.Scenario == nil:
		return errors.New("no scenario")
	case c.Exe == "":
		return errors.New("no bulwark binary")
	case c.WorkDir == "":
		return errors.New("no work directory")
	}
	if c.ProbeCount == 0 {
		c.ProbeCount = 32
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.RecoverInto == "" {
		// A scratch site comes back beside the lost one, in the work
		// directory; a real site where it was, and stays up after the drill.
		c.RecoverInto = filepath.Join(c.WorkDir, "site-recovered")
		if !c.Scratch {
			c.RecoverInto = c.Site
		}
	}
	if _, ok := c.Scenario.Disaster(); ok && !c.Scratch {
		switch {
		case !c.AllowDestroy:
			return errors.New("the scenario destroys the site (a disaster phase): run it on a scratch site (--scratch), or say --allow-destroy")
		case c.Repo == "" && c.Offsite == "":
			return errors.New("the scenario recovers from a backup: give the site's repository (--repo)")
		}
	}
	return os.MkdirAll(filepath.Join(c.WorkDir, "logs"), 0o755)
}

// prepare starts or attaches to the site, picks the model and learns the
// probes' right answers before any fault.
func (r *Runner) prepare(ctx context.Context) error {
	c := &r.cfg
	s := &site{exe: c.Exe, token: c.Token, http: &http.Client{Timeout: 10 * time.Second}}
	r.site = s
	if c.Scratch {
		if err := r.startScratch(ctx); err != nil {
			return err
		}
	} else {
		s.dir, s.gateway, s.controller = c.Site, c.Gateway, c.Controller
		s.ctl = control.NewClient(s.controller, s.token)
		if why, err := s.fullCapacity(ctx); err != nil || why != "" {
			return fmt.Errorf("the site is not serving at full capacity (%v%s): a drill starts from a healthy site", err, why)
		}
	}
	r.rep.Site = SiteInfo{Dir: s.dir, Scratch: c.Scratch, Gateway: s.gateway, Controller: s.controller,
		Repository: c.Repo, Offsite: c.Offsite}
	d, err := r.pickDeployment(ctx)
	if err != nil {
		return err
	}
	r.model = d.Spec.Model
	r.rep.Site.Model, r.rep.Site.Replicas = r.model, d.Spec.DesiredReplicas()
	if err := r.sc.Check(d.Spec.DesiredReplicas()); err != nil {
		return fmt.Errorf("scenario %s on this site: %w", r.sc.Name, err)
	}
	if err := r.checkChaos(ctx); err != nil {
		return err
	}
	r.probes, err = NewProbeSet(ctx, s.http, s.gateway, r.model, c.ProbeCount, 1)
	if err != nil {
		return err
	}
	if err := r.probes.Learn(ctx, s.http, s.gateway); err != nil {
		return fmt.Errorf("learn the right answers before any fault: %w", err)
	}
	if _, ok := r.sc.Disaster(); ok {
		return r.waitBackup(ctx)
	}
	return nil
}

func (r *Runner) pickDeployment(ctx context.Context) (*control.Deployment, error) {
	ds, err := r.site.ctl.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, d := range ds {
		if r.sc.Load.Model == "" || d.Spec.Model == r.sc.Load.Model {
			return d, nil
		}
	}
	return nil, fmt.Errorf("no deployment serves model %q", r.sc.Load.Model)
}

// startScratch creates a site with its own backup repository and runs
// bulwark up on it with chaos mode on.
func (r *Runner) startScratch(ctx context.Context) error {
	c, s := &r.cfg, r.site
	s.dir = filepath.Join(c.WorkDir, "site")
	if c.Repo == "" {
		c.Repo = filepath.Join(c.WorkDir, "repo")
	}
	if c.Password == "" {
		c.Password = randomHex(16)
	}
	if s.token == "" {
		s.token = randomHex(24)
	}
	if _, err := os.Stat(filepath.Join(c.Repo, "config")); errors.Is(err, os.ErrNotExist) {
		r.progress("creating the backup repository %s", c.Repo)
		if _, err := r.bulwark(ctx, c.Password, "repo", "init", "--repo", c.Repo); err != nil {
			return err
		}
	}
	if c.Offsite != "" {
		// The off-site repository may be a real one the scratch site copies
		// into beside others; one that exists is used as it is.
		if _, err := r.bulwark(ctx, c.OffsitePassword, "repo", "init", "--repo", c.Offsite); err != nil && !strings.Contains(err.Error(), "already exists") {
			return fmt.Errorf("the off-site repository: %w", err)
		}
	}
	gw, err := freePort(c.GatewayPort)
	if err != nil {
		return err
	}
	cp, err := freePort(c.ControlPort)
	if err != nil {
		return err
	}
	s.gateway, s.controller = "http://"+gw, "http://"+cp
	s.ctl = control.NewClient(s.controller, s.token)
	s.env = []string{"BULWARK_PASSWORD=" + c.Password, "BULWARK_PASSWORD_FILE="}
	s.upArgs = []string{"--listen", gw, "--controller-listen", cp, "--chaos",
		"--replicas", fmt.Sprint(r.sc.Site.Replicas),
		"--backup-repo", c.Repo, "--backup-interval", r.sc.Site.BackupInterval.String()}
	if c.Offsite != "" {
		s.upArgs = append(s.upArgs, "--offsite-repo", c.Offsite)
		s.env = append(s.env, "BULWARK_OFFSITE_PASSWORD="+c.OffsitePassword, "BULWARK_OFFSITE_PASSWORD_FILE=")
	}
	r.progress("starting a scratch site in %s (gateway %s, controller %s)", s.dir, s.gateway, s.controller)
	return s.startUp(ctx, filepath.Join(c.WorkDir, "logs", "up.log"), 3*time.Minute)
}

// waitBackup waits for the site's first backup, so that a disaster has
// something to recover from.
func (r *Runner) waitBackup(ctx context.Context) error {
	repo, pw := r.cfg.Repo, r.cfg.Password
	if r.cfg.Offsite != "" {
		repo, pw = r.cfg.Offsite, r.cfg.OffsitePassword
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		_, err := r.latestSnapshot(ctx, repo, pw, r.site.dir)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no backup of the site after 5 minutes: %w", err)
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

// runPhase runs one phase: inject its fault, hold it for the duration,
// clear it, and wait until the site is back at full capacity.
func (r *Runner) runPhase(ctx context.Context, ph Phase) PhaseResult {
	pr := PhaseResult{Name: ph.Name, Masked: ph.Masked, Start: time.Now()}
	end := pr.Start.Add(ph.Duration.D())
	var clear clearFunc
	if ph.Fault != nil {
		pr.Fault = ph.Fault.Type
		var err error
		clear, err = r.inject(ctx, ph, &pr, end)
		if err != nil {
			r.problem("phase %s: %v", ph.Name, err)
		}
		if ph.Fault.Type == FaultDisaster {
			end = time.Now().Add(ph.Duration.D()) // the phase runs on, on the recovered site
		}
	}
	sleepCtx(ctx, time.Until(end))
	if clear != nil {
		if err := clear(context.WithoutCancel(ctx)); err != nil {
			r.problem("phase %s: %v", ph.Name, err)
		}
	}
	r.bg.Wait()
	if ph.Fault != nil && ph.Fault.Type == FaultDisaster && r.rep.Recovery != nil && !r.rep.Recovery.FullCapacityAt.IsZero() {
		r.verifyAnswers(ctx)
	}
	settleFrom := time.Now()
	if err := r.site.waitFull(ctx, 2*time.Minute); err != nil {
		r.problem("after phase %s: %v", ph.Name, err)
	} else if d := time.Since(settleFrom); d > 100*time.Millisecond {
		r.note(&pr, fmt.Sprintf("back at full capacity %.1f s after the phase's faults were cleared", d.Seconds()))
	}
	pr.End = time.Now()
	// Requests still in flight belong to this phase: wait for their answers
	// (bounded by the load's timeout) before counting.
	if err := r.load.Settle(ctx, pr.End); err != nil {
		r.problem("phase %s: wait for its last answers: %v", ph.Name, err)
	}
	if late, worst := r.load.Lag(pr.Start, pr.End); late > 0 {
		r.note(&pr, fmt.Sprintf("%d requests started late (up to %s): the load generator had no free worker or CPU", late, worst.Round(time.Millisecond)))
	}
	st := r.load.Stats(pr.Start, pr.End)
	r.mu.Lock()
	st.Name, st.Fault, st.Masked, st.Start, st.End, st.Notes = pr.Name, pr.Fault, pr.Masked, pr.Start, pr.End, pr.Notes
	r.mu.Unlock()
	return st
}

// verifyAnswers asks the recovered site every probe.
func (r *Runner) verifyAnswers(ctx context.Context) {
	v := r.verification()
	identical, mismatches, err := r.probes.Verify(ctx, r.site.http, r.site.gateway)
	v.Probes, v.Identical, v.Mismatches = r.probes.Len(), identical, mismatches
	if err != nil {
		v.Mismatches = append(v.Mismatches, "verification stopped: "+err.Error())
	}
	v.Passed = v.Identical == v.Probes && len(v.Mismatches) == 0 && v.DeploymentsMatch
	r.progress("  verification: %d of %d probes identical, deployments match: %v", v.Identical, v.Probes, v.DeploymentsMatch)
}

func (r *Runner) verification() *Verification {
	if r.rep.Verification == nil {
		r.rep.Verification = &Verification{}
	}
	return r.rep.Verification
}

// cleanup stops a scratch site. A real site the drill recovered keeps
// running: it is the site now.
func (r *Runner) cleanup() {
	if r.load != nil {
		r.load.Stop()
	}
	if r.site == nil {
		return
	}
	if r.cfg.Scratch {
		r.site.stopUp(time.Minute)
	} else if r.site.up != nil && r.site.upExited() == nil {
		r.progress("the recovered site runs on in %s (bulwark up, pid %d, log %s): stop it with kill -INT %d",
			r.site.dir, r.site.up.Process.Pid, r.site.upLog, r.site.up.Process.Pid)
	}
}

// event marks the timeline now.
func (r *Runner) event(pr *PhaseResult, kind, msg string) { r.eventAt(pr, time.Now(), kind, msg) }

func (r *Runner) eventAt(pr *PhaseResult, at time.Time, kind, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rep.Events = append(r.rep.Events, Event{At: at.Sub(r.rep.Started).Seconds(), Phase: pr.Name, Kind: kind, Message: msg})
	pr.Notes = append(pr.Notes, msg)
	r.progressLocked("  %s: %s", kind, msg)
}

func (r *Runner) note(pr *PhaseResult, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pr.Notes = append(pr.Notes, msg)
}

func (r *Runner) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	r.rep.Problems = append(r.rep.Problems, msg)
	r.progressLocked("  PROBLEM: %s", msg)
}

func (r *Runner) progress(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.progressLocked(format, args...)
}

func (r *Runner) progressLocked(format string, args ...any) {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, format+"\n", args...)
	}
}

func describePhase(ph Phase) string {
	what := "no fault"
	if ph.Fault != nil {
		what = ph.Fault.Type
	}
	if ph.Masked {
		what += ", masked"
	}
	return fmt.Sprintf("%s, %s", ph.Duration, what)
}

func freePort(port int) (string, error) {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return "", fmt.Errorf("pick a port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
