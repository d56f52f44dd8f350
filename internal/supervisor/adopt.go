package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// adoptPoll is how often an adopted process is checked for life. It is
// not our child, so its exit cannot be waited for; this bounds how late a
// death is noticed.
const adoptPoll = 25 * time.Millisecond

// Adopt supervises a process that this one did not start: a replica left
// running by a previous controller, which must keep serving across the
// controller's restart. It watches pid (polling, since it is not a child)
// and, once it exits, launches spec in its place and supervises that as
// Start does (backoff, crash-loop detection). Stop, or ctx ending, stops
// it with SIGTERM, then SIGKILL after StopTimeout, adopted or relaunched.
//
// The caller vouches that pid runs spec (e.g. it answers as the expected
// replica on the expected port); Adopt only checks that it is alive.
func Adopt(ctx context.Context, spec Spec, pid int, opt Options) (*Proc, error) {
	opt.defaults()
	if !Alive(pid) {
		return nil, fmt.Errorf("adopt %s: pid %d is not running", spec.Name, pid)
	}
	proc, err := os.FindProcess(pid)
	if err != nil {
		return nil, fmt.Errorf("adopt %s: pid %d: %w", spec.Name, pid, err)
	}
	p := &Proc{spec: spec, opt: opt, log: opt.Logger.With("component", "supervisor", "proc", spec.Name, "adopted", true),
		stop: make(chan struct{}), done: make(chan struct{})}
	p.cmd = &exec.Cmd{Path: spec.Path, Args: append([]string{spec.Path}, spec.Args...), Process: proc}
	p.status = Status{Name: spec.Name, PID: pid, State: Running, StartedAt: time.Now()}
	exited := make(chan error, 1)
	go func() {
		for Alive(pid) {
			time.Sleep(adoptPoll)
		}
		exited <- fmt.Errorf("adopted process %d exited (status unknown: not our child)", pid)
	}()
	go p.monitor(ctx, exited)
	return p, nil
}

// Alive reports whether pid is a live process: it exists and is not a
// zombie waiting to be reaped by its parent.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && err != syscall.EPERM {
		return false
	}
	// Where /proc exists, a zombie (state Z) counts as dead: kill(2)
	// still finds it until its parent reaps it.
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !os.IsNotExist(err)
	}
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z' && b[i+2] != 'X'
	}
	return true
}
