package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/control"
	"github.com/bulwark-ml/bulwark/internal/supervisor"
)

// TestControllerExitLeavesReplicasServing: the controller's replicas are
// not its children in any way that matters: SIGTERM (like Ctrl-C) ends
// the controller and leaves them serving; the next controller adopts
// them; --stop-replicas-on-exit stops them with it.
func TestControllerExitLeavesReplicasServing(t *testing.T) {
	site := t.TempDir()
	model := filepath.Join(t.TempDir(), "iris.onnx")
	if _, stderr, code := run(t, site, "sample", "-o", model); code != 0 {
		t.Fatalf("sample: %s", stderr)
	}
	if _, stderr, code := run(t, site, "model", "push", "iris", model); code != 0 {
		t.Fatalf("push: %s", stderr)
	}
	doc := filepath.Join(t.TempDir(), "iris.yaml")
	os.WriteFile(doc, []byte(strings.Replace(e2eDeployment, `    - {version: "1", weight: 90}
    - {version: "2", weight: 10}`, `    - {version: "1"}`, 1)), 0o644)
	t.Cleanup(func() { killSite(site) })

	ctl, base := startServing(t, site, "controller", "--listen", "127.0.0.1:0")
	if _, stderr, code := run(t, site, "apply", "-f", doc, "--controller", base); code != 0 {
		t.Fatalf("apply: %s", stderr)
	}
	if out, _, code := run(t, site, "rollout", "status", "iris", "--watch", "--timeout", "60s", "--controller", base); code != 0 {
		t.Fatalf("rollout status: %d %s", code, out)
	}
	tok, _ := siteAdminToken(site, false)
	reps, err := control.NewClient(base, tok).Replicas(context.Background())
	if err != nil || len(reps) != 3 {
		t.Fatalf("replicas %+v %v", reps, err)
	}

	ctl.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, ctl); code != 0 {
		t.Fatalf("controller exit code %d", code)
	}
	for _, r := range reps {
		resp, err := http.Get(r.Address + "/v2/models/iris/versions/1/ready")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("replica %s stopped serving with the controller: %v", r.Name, err)
		}
		resp.Body.Close()
	}

	ctl, base = startServing(t, site, "controller", "--listen", "127.0.0.1:0", "--stop-replicas-on-exit")
	c := control.NewClient(base, tok)
	deadline := time.Now().Add(30 * time.Second)
	for {
		after, err := c.Replicas(context.Background())
		if err == nil && len(after) == 3 && after[0].Adopted && after[0].PID == reps[0].PID && after[0].Ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not adopted: %+v %v", after, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctl.Process.Signal(syscall.SIGINT)
	if code := waitExit(t, ctl); code != 0 {
		t.Fatalf("controller exit code %d", code)
	}
	for _, r := range reps {
		if supervisor.Alive(r.PID) {
			t.Fatalf("replica %s (pid %d) survived --stop-replicas-on-exit", r.Name, r.PID)
		}
	}
}

// killSite kills whatever still runs on a test's site.
func killSite(site string) {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err == nil && strings.Contains(string(b), "\x00"+site+"\x00") {
			var pid int
			for _, ch := range filepath.Base(d) {
				pid = pid*10 + int(ch-'0')
			}
			if pid != os.Getpid() {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}
