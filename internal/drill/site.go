package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bulwark-ml/bulwark/internal/control"
	"github.com/bulwark-ml/bulwark/internal/gateway"
)

// site is the site under test: where its gateway and controller answer,
// and, for a site the drill started, the bulwark up process.
type site struct {
	exe        string // the bulwark binary
	dir        string
	gateway    string // base URLs
	controller string
	token      string
	env        []string // for every bulwark the drill runs: passwords
	upArgs     []string // up's flags besides --site
	ctl        *control.Client
	http       *http.Client

	up     *exec.Cmd // nil when the drill attached to a running site
	upLog  string
	exited chan struct{} // closed when up exits
	upErr  error
}

// startUp runs bulwark up on s.dir, its output into logPath, and waits
// until the site serves with every replica.
func (s *site) startUp(ctx context.Context, logPath string, timeout time.Duration) error {
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("site log: %w", err)
	}
	args := append([]string{"--site", s.dir, "up"}, s.upArgs...)
	cmd := exec.Command(s.exe, args...)
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Env = append(cmd.Env, "BULWARK_ADMIN_TOKEN="+s.token)
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group: a Ctrl-C of the drill reaches the drill,
	// which stops the site in order, not every process at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start bulwark up: %w", err)
	}
	s.up, s.upLog, s.exited = cmd, logPath, make(chan struct{})
	go func() {
		s.upErr = cmd.Wait()
		out.Close()
		close(s.exited)
	}()
	return s.waitFull(ctx, timeout)
}

// upExited says why up is gone, or nil while it runs.
func (s *site) upExited() error {
	if s.up == nil {
		return nil
	}
	select {
	case <-s.exited:
		return fmt.Errorf("bulwark up exited (%v); the end of its log %s:\n%s", s.upErr, s.upLog, logTail(s.upLog, 15))
	default:
		return nil
	}
}

// stopUp stops the site the drill started, as Ctrl-C would.
func (s *site) stopUp(timeout time.Duration) {
	if s.up == nil || s.up.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	s.up.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(timeout):
		s.up.Process.Kill()
		<-s.exited
	}
}

// waitFull polls until the site serves at full capacity, or timeout.
func (s *site) waitFull(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		why, err := s.fullCapacity(ctx)
		if err == nil && why == "" {
			return nil
		}
		if err == nil {
			err = errors.New(why)
		}
		if e := s.upExited(); e != nil {
			return e
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the site is not at full capacity after %s: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fullCapacity is "" when every deployment is rolled out, each of its
// replicas runs and is ready, and the gateway can route to all of them;
// else what is missing.
func (s *site) fullCapacity(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ds, err := s.ctl.List(ctx)
	if err != nil {
		return "", fmt.Errorf("controller: %w", err)
	}
	if len(ds) == 0 {
		return "the controller has no deployment", nil
	}
	reps, err := s.ctl.Replicas(ctx)
	if err != nil {
		return "", fmt.Errorf("controller replicas: %w", err)
	}
	gw, err := s.gatewayStatus(ctx)
	if err != nil {
		return "", fmt.Errorf("gateway: %w", err)
	}
	available := map[string]int{}
	for _, m := range gw.Models {
		available[m.Name] = m.Available
	}
	for _, d := range ds {
		want := d.Spec.DesiredReplicas()
		if !d.Done() {
			return fmt.Sprintf("deployment %s is %s", d.Metadata.Name, phaseOf(d)), nil
		}
		ready := 0
		for _, r := range reps {
			if r.Deployment == d.Metadata.Name && r.Ready && r.State == "running" && !r.Stopping {
				ready++
			}
		}
		if ready < want {
			return fmt.Sprintf("deployment %s: %d of %d replicas ready", d.Metadata.Name, ready, want), nil
		}
		if available[d.Spec.Model] < want {
			return fmt.Sprintf("model %s: the gateway routes to %d of %d replicas", d.Spec.Model, available[d.Spec.Model], want), nil
		}
	}
	return "", nil
}

func phaseOf(d *control.Deployment) string {
	if d.Status == nil {
		return "not reconciled yet"
	}
	return fmt.Sprintf("%s (revision %d observed %d)", d.Status.Phase, d.Metadata.Revision, d.Status.ObservedRevision)
}

// gatewayStatus is the gateway's GET /admin/status.
func (s *site) gatewayStatus(ctx context.Context) (*gateway.Status, error) {
	var st gateway.Status
	if err := s.admin(ctx, http.MethodGet, s.gateway+"/admin/status", nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// admin sends an admin request with the site's token and decodes the
// JSON answer into out (if not nil).
func (s *site) admin(ctx context.Context, method, u string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s (%d)", method, u, e.Error, resp.StatusCode)
		}
		return fmt.Errorf("%s %s: status %d", method, u, resp.StatusCode)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// replicasOf are the running replicas of model's deployment, by name.
func (s *site) replicasOf(ctx context.Context, model string) ([]control.ReplicaInfo, error) {
	reps, err := s.ctl.Replicas(ctx)
	if err != nil {
		return nil, fmt.Errorf("list replicas: %w", err)
	}
	var out []control.ReplicaInfo
	for _, r := range reps {
		if r.Model == model && r.State == "running" && r.PID > 0 && !r.Stopping {
			out = append(out, r)
		}
	}
	return out, nil
}

// chaosURL is a replica's fault-injection endpoint.
func chaosURL(r control.ReplicaInfo) string {
	addr := r.Address
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return strings.TrimRight(addr, "/") + "/admin/chaos"
}

// logTail is the last n lines of a file.
func logTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// sitePIDs are every process of the site: up (when known), the
// controller and the replicas, including replicas a killed controller
// left behind (its successor adopted them, so they are no children of
// any site process).
func (s *site) sitePIDs(ctx context.Context) []int {
	seen := map[int]bool{}
	var pids []int
	add := func(p int) {
		if p > 1 && !seen[p] && alive(p) {
			seen[p] = true
			pids = append(pids, p)
		}
	}
	if s.up != nil && s.up.Process != nil {
		add(s.up.Process.Pid)
	}
	if pid, err := findController(s.dir); err == nil {
		add(pid)
		if _, ppid, ok := procStat(pid); ok && s.up == nil && isUpOf(procArgs(ppid), s.dir) {
			add(ppid)
		}
	}
	if reps, err := s.ctl.Replicas(ctx); err == nil {
		for _, r := range reps {
			add(r.PID)
		}
	}
	return pids
}

// adoptUpArgs takes, for a site the drill did not start, the flags its
// bulwark up runs with, so that the recovered site starts as the lost one
// ran. Without an up process (a controller run alone) it rebuilds the
// addresses from the URLs the drill was given.
func (s *site) adoptUpArgs() {
	if s.up != nil || len(s.upArgs) > 0 {
		return
	}
	if pid, err := findController(s.dir); err == nil {
		if _, ppid, ok := procStat(pid); ok {
			if args := procArgs(ppid); isUpOf(args, s.dir) {
				for i, a := range args {
					if a == "up" {
						s.upArgs = append([]string{}, args[i+1:]...)
						return
					}
				}
			}
		}
	}
	s.upArgs = []string{"--listen", hostPort(s.gateway), "--controller-listen", hostPort(s.controller), "--chaos"}
}

func hostPort(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
	}
	return strings.TrimRight(u, "/")
}

// isUpOf: args are those of bulwark up on site.
func isUpOf(args []string, site string) bool {
	abs, _ := filepath.Abs(site)
	up, siteMatch := false, false
	for i, a := range args {
		if a == "up" {
			up = true
		}
		if a == "--site" && i+1 < len(args) {
			p, _ := filepath.Abs(args[i+1])
			siteMatch = p == abs
		}
	}
	return up && siteMatch
}
