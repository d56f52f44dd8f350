package supervisor

import (
	"context"
	"os/exec"
	"syscall"
	"testing"
)

// orphan starts a process as if another supervisor (a previous controller)
// had: not through Start. It is reaped in the background so its death is
// visible.
func orphan(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("/bin/sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd.Process.Pid
}

func TestAdoptRelaunchesWhenTheAdoptedProcessDies(t *testing.T) {
	pid := orphan(t)
	p, err := Adopt(context.Background(), Spec{Name: "sleeper", Path: "/bin/sleep", Args: []string{"60"}}, pid, fastOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if s := p.Status(); s.PID != pid || s.State != Running || s.Restarts != 0 {
		t.Fatalf("adopted status: %+v", s)
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "relaunch", func() bool { s := p.Status(); return s.PID != pid && s.State == Running && s.Restarts == 1 })
	// The relaunched process is an ordinary supervised child: killed, it
	// is restarted again.
	second := p.Status().PID
	syscall.Kill(second, syscall.SIGKILL)
	waitFor(t, "second restart", func() bool { s := p.Status(); return s.PID != second && s.State == Running && s.Restarts == 2 })
}

func TestAdoptStopTerminatesTheAdoptedProcess(t *testing.T) {
	pid := orphan(t)
	p, err := Adopt(context.Background(), Spec{Name: "sleeper", Path: "/bin/sleep", Args: []string{"60"}}, pid, fastOpts())
	if err != nil {
		t.Fatal(err)
	}
	p.Stop()
	if Alive(pid) {
		t.Fatalf("pid %d alive after Stop", pid)
	}
	if s := p.Status(); s.State != Stopped || s.Restarts != 0 {
		t.Fatalf("status: %+v", s)
	}
}

func TestAdoptRefusesADeadPID(t *testing.T) {
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := Adopt(context.Background(), Spec{Name: "ghost", Path: "/bin/true"}, cmd.Process.Pid, fastOpts()); err == nil {
		t.Fatal("adopted a dead pid")
	}
	if Alive(0) || Alive(-1) {
		t.Fatal("Alive of a non-pid")
	}
}
