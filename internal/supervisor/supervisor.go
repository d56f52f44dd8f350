package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Spec says what to run.
type Spec struct {
	Name   string // for logs and status, e.g. "iris-1"
	Path   string
	Args   []string
	Env    []string // added to the supervisor's environment
	Stdout io.Writer
	Stderr io.Writer
}

// Options tune restarts. Zero values take the defaults in brackets.
type Options struct {
	Logger      *slog.Logger
	MinBackoff  time.Duration // first restart delay [100ms]
	MaxBackoff  time.Duration // cap of the doubling delay [30s]
	StableAfter time.Duration // a run this long resets the backoff [30s]
	// CrashLoop is how many restarts within StableAfter mark the process as
	// crash-looping [5].
	CrashLoop   int
	StopTimeout time.Duration // SIGTERM → SIGKILL [10s]
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.MinBackoff, 100*time.Millisecond)
	def(&o.MaxBackoff, 30*time.Second)
	def(&o.StableAfter, 30*time.Second)
	def(&o.StopTimeout, 10*time.Second)
	if o.CrashLoop <= 0 {
		o.CrashLoop = 5
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// State of a supervised process.
type State string

// States a Proc goes through.
const (
	Running   State = "running"
	Backoff   State = "backoff"    // exited; waiting to restart
	CrashLoop State = "crash-loop" // restarting too often
	Stopped   State = "stopped"    // stopped on request
)

// Status is a snapshot of a Proc.
type Status struct {
	Name      string    `json:"name"`
	PID       int       `json:"pid"`
	State     State     `json:"state"`
	Restarts  int       `json:"restarts"`
	LastExit  string    `json:"last_exit,omitempty"`
	StartedAt time.Time `json:"started_at"`
}

// Proc is one supervised process.
type Proc struct {
	spec Spec
	opt  Options
	log  *slog.Logger

	mu     sync.Mutex
	status Status
	cmd    *exec.Cmd
	stop   chan struct{} // closed by Stop
	done   chan struct{} // closed when the monitor loop ends
}

// Start launches spec and keeps it running until Stop or ctx ends (which
// also stops it). The first start's error is returned; later failures are
// retried.
func Start(ctx context.Context, spec Spec, opt Options) (*Proc, error) {
	opt.defaults()
	p := &Proc{spec: spec, opt: opt, log: opt.Logger.With("component", "supervisor", "proc", spec.Name),
		stop: make(chan struct{}), done: make(chan struct{})}
	p.status.Name = spec.Name
	exited, err := p.launch()
	if err != nil {
		return nil, err
	}
	go p.monitor(ctx, exited)
	return p, nil
}

func (p *Proc) launch() (<-chan error, error) {
	cmd := exec.Command(p.spec.Path, p.spec.Args...)
	cmd.Env = append(os.Environ(), p.spec.Env...)
	cmd.Stdout, cmd.Stderr = p.spec.Stdout, p.spec.Stderr
	// Its own process group, so a Ctrl-C aimed at the parent does not also
	// reach the child before the parent can stop it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", p.spec.Name, err)
	}
	p.mu.Lock()
	p.cmd = cmd
	p.status.PID = cmd.Process.Pid
	p.status.State = Running
	p.status.StartedAt = time.Now()
	p.mu.Unlock()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return exited, nil
}

func (p *Proc) monitor(ctx context.Context, exited <-chan error) {
	defer close(p.done)
	backoff := p.opt.MinBackoff
	var recent []time.Time // restart times within StableAfter
	for {
		select {
		case err := <-exited:
			ran := time.Since(p.Status().StartedAt)
			p.setExit(describeExit(err))
			if ran >= p.opt.StableAfter {
				backoff = p.opt.MinBackoff
			}
			now := time.Now()
			recent = append(recent, now)
			for len(recent) > 0 && now.Sub(recent[0]) > p.opt.StableAfter {
				recent = recent[1:]
			}
			state := Backoff
			if len(recent) >= p.opt.CrashLoop {
				state = CrashLoop
			}
			p.setState(state)
			p.log.Warn("process exited; restarting", "exit", describeExit(err), "after", backoff, "state", state)
			select {
			case <-time.After(backoff):
			case <-p.stop:
				p.setState(Stopped)
				return
			case <-ctx.Done():
				p.setState(Stopped)
				return
			}
			backoff = min(2*backoff, p.opt.MaxBackoff)
			next, err := p.launch()
			if err != nil {
				p.log.Error("restart failed", "err", err)
				exited = failedLaunch(err)
				continue
			}
			p.mu.Lock()
			p.status.Restarts++
			p.mu.Unlock()
			exited = next
		case <-p.stop:
			p.terminate(exited)
			return
		case <-ctx.Done():
			p.terminate(exited)
			return
		}
	}
}

func failedLaunch(err error) <-chan error {
	ch := make(chan error, 1)
	ch <- err
	return ch
}

// terminate sends SIGTERM, then SIGKILL after StopTimeout.
func (p *Proc) terminate(exited <-chan error) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		p.setExit(describeExit(err))
	case <-time.After(p.opt.StopTimeout):
		p.log.Warn("did not stop after SIGTERM; killing", "timeout", p.opt.StopTimeout)
		cmd.Process.Kill()
		p.setExit(describeExit(<-exited))
	}
	p.setState(Stopped)
}

// Stop stops the process and waits for it (and its monitor) to end.
func (p *Proc) Stop() {
	p.mu.Lock()
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.mu.Unlock()
	<-p.done
}

// Done is closed once the process is stopped for good.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Status returns a snapshot.
func (p *Proc) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// Signal sends sig to the running process (used by drills and tests).
func (p *Proc) Signal(sig os.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return errors.New("not running")
	}
	return p.cmd.Process.Signal(sig)
}

func (p *Proc) setState(s State) {
	p.mu.Lock()
	p.status.State = s
	p.mu.Unlock()
}

func (p *Proc) setExit(s string) {
	p.mu.Lock()
	p.status.LastExit = s
	p.mu.Unlock()
}

func describeExit(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "signal: " + ws.Signal().String()
		}
		return fmt.Sprintf("exit status %d", ee.ExitCode())
	}
	if err != nil {
		return err.Error()
	}
	return "exit status 0"
}
