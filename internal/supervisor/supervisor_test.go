package supervisor

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func fastOpts() Options {
	return Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, StableAfter: time.Minute, CrashLoop: 3, StopTimeout: 2 * time.Second}
}

func TestRestartsAKilledProcess(t *testing.T) {
	p, err := Start(context.Background(), Spec{Name: "sleeper", Path: "/bin/sleep", Args: []string{"60"}}, fastOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	first := p.Status().PID
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "restart", func() bool { s := p.Status(); return s.PID != first && s.State == Running })
	s := p.Status()
	if s.Restarts != 1 || !strings.Contains(s.LastExit, "killed") {
		t.Fatalf("status after restart: %+v", s)
	}
}

func TestCrashLoopIsReported(t *testing.T) {
	p, err := Start(context.Background(), Spec{Name: "crasher", Path: "/bin/sh", Args: []string{"-c", "exit 3"}}, fastOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	waitFor(t, "crash loop", func() bool { return p.Status().State == CrashLoop })
	if s := p.Status(); s.LastExit != "exit status 3" || s.Restarts < 2 {
		t.Fatalf("status: %+v", s)
	}
}

func TestStopSendsTermThenKill(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "term")
	ready := filepath.Join(dir, "ready")
	// This child records SIGTERM and exits; it says when its trap is set.
	script := "trap 'echo term > " + marker + "; exit 0' TERM; touch " + ready + "; while true; do sleep 0.05; done"
	p, err := Start(context.Background(), Spec{Name: "polite", Path: "/bin/sh", Args: []string{"-c", script}}, fastOpts())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "trap installed", func() bool { _, err := os.Stat(ready); return err == nil })
	p.Stop()
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("child did not get SIGTERM: %v", err)
	}
	if s := p.Status(); s.State != Stopped || s.Restarts != 0 {
		t.Fatalf("status: %+v", s)
	}

	// A child that ignores SIGTERM is killed after StopTimeout.
	opts := fastOpts()
	opts.StopTimeout = 100 * time.Millisecond
	stubbornReady := filepath.Join(dir, "stubborn-ready")
	stubborn, err := Start(context.Background(), Spec{Name: "stubborn", Path: "/bin/sh", Args: []string{"-c", "trap '' TERM; touch " + stubbornReady + "; while true; do sleep 0.05; done"}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "stubborn trap installed", func() bool { _, err := os.Stat(stubbornReady); return err == nil })
	pid := stubborn.Status().PID
	stubborn.Stop()
	if s := stubborn.Status(); s.LastExit != "signal: killed" {
		t.Fatalf("stubborn child: %+v", s)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("pid %s still alive", strconv.Itoa(pid))
	}
}

func TestStartFailsForMissingBinary(t *testing.T) {
	if _, err := Start(context.Background(), Spec{Name: "ghost", Path: "/nonexistent/bin"}, fastOpts()); err == nil {
		t.Fatal("started a missing binary")
	}
}
