package drill

// The drill's faults act on real processes by pid, as an operator would
// with kill(1). Finding a site's controller and its parent reads /proc:
// the drill runs on the machine of the site it tests (Linux).

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procArgs is the command line of pid, nil if it is gone.
func procArgs(pid int) []string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
}

// procStat is the state letter and parent pid of pid; ok false when it
// is gone.
func procStat(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, false
	}
	// The command name in parentheses may hold spaces: parse after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+4 >= len(b) {
		return 0, 0, false
	}
	fields := strings.Fields(string(b[i+2:]))
	if len(fields) < 2 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(fields[1])
	return fields[0][0], ppid, err == nil
}

// alive: pid runs (a zombie, killed and not yet reaped, is dead).
func alive(pid int) bool {
	st, _, ok := procStat(pid)
	return ok && st != 'Z' && st != 'X'
}

// stopped: pid is stopped by a signal (SIGSTOP).
func stopped(pid int) bool {
	st, _, ok := procStat(pid)
	return ok && st == 'T'
}

// findController is the pid of the bulwark controller serving site: the
// process whose command line is bulwark's with --site site and the
// controller subcommand.
func findController(site string) (int, error) {
	abs, err := filepath.Abs(site)
	if err != nil {
		return 0, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("list processes: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !alive(pid) {
			continue
		}
		if isControllerOf(procArgs(pid), abs) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no running bulwark controller for site %s", abs)
}

func isControllerOf(args []string, site string) bool {
	siteMatch, isController := false, false
	for i, a := range args {
		switch {
		case a == "--site" && i+1 < len(args):
			p, err := filepath.Abs(args[i+1])
			siteMatch = err == nil && p == site
		case strings.HasPrefix(a, "--site="):
			p, err := filepath.Abs(strings.TrimPrefix(a, "--site="))
			siteMatch = err == nil && p == site
		case a == "controller":
			isController = true
		}
	}
	return siteMatch && isController
}

// signal sends sig to pid, naming it in the error.
func signal(pid int, sig syscall.Signal) error {
	if pid <= 1 {
		return fmt.Errorf("refusing to signal pid %d", pid)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("send %s to pid %d: %w", sig, pid, err)
	}
	return nil
}

// waitGone polls until none of pids runs, or the deadline.
func waitGone(pids []int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var left []string
		for _, p := range pids {
			if alive(p) {
				left = append(left, strconv.Itoa(p))
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("still running after SIGKILL: pids " + strings.Join(left, ", "))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
