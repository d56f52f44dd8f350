package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/control"
)

const e2eDeployment = `apiVersion: bulwark.dev/v1
kind: Deployment
metadata:
  name: iris
spec:
  model: iris
  versions:
    - {version: "1", weight: 90}
    - {version: "2", weight: 10}
  replicas: 3
  zones: [a, b, c]
  policy:
    hedge: {enabled: true}
`

// TestControllerDeploymentLifecycle drives the controller through the real
// binary: apply, refuse bad documents, get, describe, rollout status,
// rollback, a stale apply, restart, delete. The reconciler is off: this is
// about desired state (controller_reconcile_test.go runs replicas).
func TestControllerDeploymentLifecycle(t *testing.T) {
	site := t.TempDir()
	dir := t.TempDir()
	model := filepath.Join(dir, "iris.onnx")
	if _, stderr, code := run(t, site, "sample", "-o", model); code != 0 {
		t.Fatalf("sample: %s", stderr)
	}
	for range 2 {
		if _, stderr, code := run(t, site, "model", "push", "iris", model); code != 0 {
			t.Fatalf("push: %s", stderr)
		}
	}
	ctl, base := startServing(t, site, "controller", "--listen", "127.0.0.1:0", "--reconcile=false")
	cli := func(args ...string) (string, string, int) {
		t.Helper()
		return run(t, site, append(args, "--controller", base)...)
	}
	file := func(name, doc string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := file("iris.yaml", e2eDeployment)

	if out, stderr, code := cli("apply", "-f", good); code != 0 || out != "deployment iris created (revision 1)\n" {
		t.Fatalf("apply: code %d out %q stderr %q", code, out, stderr)
	}
	if out, _, code := cli("apply", "-f", good); code != 0 || !strings.Contains(out, "unchanged (revision 1)") {
		t.Fatalf("second apply: code %d %q", code, out)
	}
	bad := file("bad.yaml", strings.Replace(e2eDeployment, "replicas: 3", "replicas: 0", 1))
	if _, stderr, code := cli("apply", "-f", bad); code != exitInvalid || !strings.Contains(stderr, "line 10: spec.replicas: must be at least 1, got 0") {
		t.Fatalf("invalid apply: code %d stderr %q", code, stderr)
	}
	unknown := file("unknown.yaml", strings.Replace(e2eDeployment, `version: "2"`, `version: "7"`, 1))
	if _, stderr, code := cli("apply", "-f", unknown); code != exitInvalid || !strings.Contains(stderr, `line 9: spec.versions[1].version: model iris has no version "7"`) {
		t.Fatalf("unknown version: code %d stderr %q", code, stderr)
	}
	changed := strings.Replace(e2eDeployment, "replicas: 3", "replicas: 2", 1)
	if out, _, code := cli("apply", "-f", file("changed.yaml", changed), "--dry-run"); code != 0 || !strings.Contains(out, "configured (revision 2) (dry run)") {
		t.Fatalf("dry run: code %d %q", code, out)
	}
	if out, _, code := cli("apply", "-f", file("changed.yaml", changed)); code != 0 || !strings.Contains(out, "configured (revision 2)") {
		t.Fatalf("changed apply: code %d %q", code, out)
	}

	out, _, code := cli("get", "deployments")
	if code != 0 || !strings.Contains(out, "VERSIONS(WEIGHTS)") || !strings.Contains(out, "1(90),2(10)") || !strings.Contains(out, "0/6") || !strings.Contains(out, "Pending") {
		t.Fatalf("get: code %d\n%s", code, out)
	}
	out, _, _ = cli("--json", "get", "deployments")
	var list control.DeploymentList
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Items) != 1 || list.Items[0].Metadata.Revision != 2 {
		t.Fatalf("get --json: %v\n%s", err, out)
	}
	out, _, code = cli("describe", "deployment", "iris")
	for _, want := range []string{"Policy:", "hedge.enabled=true", "Revisions:", "current", "Created", "Applied", "changed: replicas"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("describe: code %d, no %q in\n%s", code, want, out)
		}
	}
	if out, _, code := cli("rollout", "status", "iris"); code != exitError || !strings.Contains(out, "revision 2 (not yet observed)") {
		t.Fatalf("rollout status before any reconcile: code %d %q", code, out)
	}
	if out, _, code := cli("rollback", "iris"); code != 0 || out != "deployment iris rolled back to revision 1 (now revision 3)\n" {
		t.Fatalf("rollback: code %d %q", code, out)
	}

	// A document pinned to a resource version that has moved on is refused.
	stale := file("stale.yaml", strings.Replace(changed, "name: iris", "name: iris\n  resourceVersion: 1", 1))
	if _, stderr, code := cli("apply", "-f", stale); code != exitExists || !strings.Contains(stderr, "stale") {
		t.Fatalf("stale apply: code %d stderr %q", code, stderr)
	}
	if _, _, code := cli("get", "deployment", "nope"); code != exitNotFound {
		t.Fatalf("get of a missing deployment: code %d", code)
	}
	if _, stderr, code := cli("get", "deployments", "--admin-token", "wrong"); code != exitError || !strings.Contains(stderr, "bearer token") {
		t.Fatalf("wrong token: code %d stderr %q", code, stderr)
	}

	// The desired state survives a restart of the controller.
	ctl.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, ctl); code != 0 {
		t.Fatalf("controller exit code %d after SIGTERM", code)
	}
	_, base = startServing(t, site, "controller", "--listen", "127.0.0.1:0", "--reconcile=false")
	out, _, _ = cli("--json", "get", "deployment", "iris")
	var d control.Deployment
	if err := json.Unmarshal([]byte(out), &d); err != nil || d.Metadata.Revision != 3 || d.Spec.Replicas != 3 {
		t.Fatalf("after restart: %v\n%s", err, out)
	}
	if out, _, code := cli("delete", "deployment", "iris"); code != 0 || out != "deployment iris deleted\n" {
		t.Fatalf("delete: code %d %q", code, out)
	}
	if _, _, code := cli("describe", "deployment", "iris"); code != exitNotFound {
		t.Fatalf("describe after delete: code %d", code)
	}
}

// TestControllerRefusesCorruptState: the controller must not start on a
// state file it cannot trust, must say how to recover, and must leave the
// file exactly as it was.
func TestControllerRefusesCorruptState(t *testing.T) {
	site := t.TempDir()
	db := filepath.Join(site, "state", "controller.db")
	os.MkdirAll(filepath.Dir(db), 0o755)
	junk := bytes.Repeat([]byte("not a bbolt file "), 1000)
	if err := os.WriteFile(db, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := run(t, site, "controller", "--listen", "127.0.0.1:0")
	if code != exitInvalid || !strings.Contains(stderr, "corrupt") || !strings.Contains(stderr, "Restore it from a backup") {
		t.Fatalf("corrupt state: code %d stderr %q", code, stderr)
	}
	if b, _ := os.ReadFile(db); !bytes.Equal(b, junk) {
		t.Fatal("the controller modified a corrupt state file")
	}
	// bulwark up runs that controller as its child: the same verdict, the
	// same exit code.
	_, stderr, code = run(t, site, "up", "--listen", "127.0.0.1:0", "--controller-listen", "127.0.0.1:0")
	if code != exitInvalid || !strings.Contains(stderr, "corrupt") {
		t.Fatalf("up on a corrupt state: code %d stderr %q", code, stderr)
	}
	if b, _ := os.ReadFile(db); !bytes.Equal(b, junk) {
		t.Fatal("up modified a corrupt state file")
	}
}
