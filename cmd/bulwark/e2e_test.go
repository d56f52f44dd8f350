package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/control"
	"github.com/bulwark-ml/bulwark/internal/gateway"
	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/oip"
	"github.com/bulwark-ml/bulwark/internal/sample"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// These tests run the real binary as a user would: real processes, real
// listeners, real signals.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bulwark-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "bulwark")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic("build bulwark: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// run runs the binary to completion and returns stdout, stderr and the exit code.
func run(t *testing.T, site string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"--site", site}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// startServing starts a long-running command and waits for the line that
// says where it serves.
func startServing(t *testing.T, site string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"--site", site}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addrs := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`serving on (http://\S+)`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrs <- m[1]
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case a := <-addrs:
		return cmd, a
	case <-time.After(60 * time.Second):
		t.Fatalf("no serving line; stderr:\n%s", stderr.String())
	}
	return nil, ""
}

func waitExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(60 * time.Second):
		t.Fatal("process did not exit")
	}
	return -1
}

// upArgs run up on free ports, so that tests do not collide with each
// other or with a developer's own site.
var upArgs = []string{"up", "--listen", "127.0.0.1:0", "--controller-listen", "127.0.0.1:0"}

func TestUpServesSampleAndStopsOnInterrupt(t *testing.T) {
	site := filepath.Join(t.TempDir(), "site")
	t.Cleanup(func() { killSite(site) })
	cmd, base := startServing(t, site, upArgs...)
	c := oip.NewClient(base, nil)
	ctx := context.Background()
	ex := sample.Example()
	data := make([]float32, 0, 12)
	for _, row := range ex {
		data = append(data, row[:]...)
	}
	in, err := oip.NewInput(sample.InputName, tensor.FromFloat32([]int{3, 4}, data))
	if err != nil {
		t.Fatal(err)
	}
	req := &oip.InferRequest{ID: "e2e", Inputs: []oip.RequestInput{in}}
	resp, err := c.Infer(ctx, sample.ModelName, "", req)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := resp.Tensors()
	if err != nil {
		t.Fatal(err)
	}
	labels := outs[sample.LabelName]
	if labels == nil || len(labels.I64) != 3 || labels.I64[0] != 0 || labels.I64[1] != 1 || labels.I64[2] != 2 {
		t.Fatalf("labels for the three species' means = %+v, want [0 1 2]", labels)
	}
	if resp.ID != "e2e" || resp.ModelVersion != "1" {
		t.Fatalf("response id %q version %q", resp.ID, resp.ModelVersion)
	}
	// The gateway routes by the controller's table, and keeps it on disk.
	tok, _ := siteAdminToken(site, false)
	st, err := gateway.NewAdminClient(base, tok).Status(ctx)
	if err != nil || st.Routing == nil || !st.Routing.Connected || st.Routing.Generation == 0 || len(st.Models) != 1 || len(st.Models[0].Replicas) != 3 {
		t.Fatalf("gateway status %+v %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(site, "gateway", "routing.json")); err != nil {
		t.Fatalf("routing cache: %v", err)
	}
	// up, the controller and three replicas.
	if procs := siteProcesses(site); len(procs) != 5 {
		t.Fatalf("%d processes run on the site, want 5: %v", len(procs), procs)
	}
	cmd.Process.Signal(os.Interrupt)
	if code := waitExit(t, cmd); code != 0 {
		t.Fatalf("exit code %d after Ctrl-C", code)
	}
	// Ctrl-C stops everything: the controller and its replicas too.
	waitGone(t, site)
	// A second up reuses the site: it pushes no sample and applies no
	// deployment again.
	cmd2, _ := startServing(t, site, upArgs...)
	cmd2.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, cmd2); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	waitGone(t, site)
	out, _, _ := run(t, site, "model", "list", "--json")
	var rows []modelSummary
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 || len(rows[0].Versions) != 1 {
		t.Fatalf("model list after two ups: %s (%v)", out, err)
	}
}

// siteProcesses lists the pids of the processes whose command line names
// site, other than this test's.
func siteProcesses(site string) []int {
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || !strings.Contains(string(b), "\x00"+site+"\x00") {
			continue
		}
		var pid int
		if _, err := fmt.Sscan(filepath.Base(d), &pid); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitGone waits until no process runs on site any more.
func waitGone(t *testing.T, site string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		left := siteProcesses(site)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes still running on the site after up exited: %v", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPushRefusesBadFilesAndWritesNothing(t *testing.T) {
	site := t.TempDir()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "junk.onnx")
	os.WriteFile(garbage, []byte("this is not a protobuf model"), 0o644)
	_, stderr, code := run(t, site, "model", "push", "m", garbage)
	if code != exitInvalid || !strings.Contains(stderr, "malformed ONNX") {
		t.Fatalf("garbage: code %d stderr %q", code, stderr)
	}
	unsupported := filepath.Join("..", "..", "internal", "runtime", "builtin", "testdata", "cases", "bad_unsupported_op.onnx")
	_, stderr, code = run(t, site, "model", "push", "m", unsupported)
	if code != exitInvalid || !strings.Contains(stderr, "Einsum") {
		t.Fatalf("unsupported op: code %d stderr %q", code, stderr)
	}
	_, _, code = run(t, site, "model", "show", "m")
	if code != exitNotFound {
		t.Fatalf("show after refused pushes: code %d, want %d", code, exitNotFound)
	}
	entries, _ := os.ReadDir(filepath.Join(site, "models", "m"))
	if len(entries) != 0 {
		t.Fatalf("refused pushes left %v", entries)
	}
}

func TestPushShowListJSON(t *testing.T) {
	site := t.TempDir()
	model := filepath.Join(t.TempDir(), "iris.onnx")
	if _, stderr, code := run(t, site, "sample", "-o", model); code != 0 {
		t.Fatalf("sample: %s", stderr)
	}
	out, stderr, code := run(t, site, "--json", "model", "push", "iris", model, "--version", "7")
	if code != 0 {
		t.Fatalf("push: %s", stderr)
	}
	var m modelstore.Manifest
	if err := json.Unmarshal([]byte(out), &m); err != nil || m.Version != "7" || m.Inputs[0].Name != sample.InputName {
		t.Fatalf("push output %s (%v)", out, err)
	}
	if _, _, code := run(t, site, "model", "push", "iris", model, "--version", "7"); code != exitExists {
		t.Fatalf("second push of the same version: code %d, want %d", code, exitExists)
	}
	out, _, code = run(t, site, "model", "show", "iris:7", "--verify")
	if code != 0 || !strings.Contains(out, "Checksums: verified") || !strings.Contains(out, m.Files[0].SHA256) {
		t.Fatalf("show: code %d\n%s", code, out)
	}
}

func TestNodeServesOthersWhenOneModelIsCorrupt(t *testing.T) {
	site := t.TempDir()
	model := filepath.Join(t.TempDir(), "iris.onnx")
	run(t, site, "sample", "-o", model)
	for _, name := range []string{"good", "bad"} {
		if _, stderr, code := run(t, site, "model", "push", name, model); code != 0 {
			t.Fatalf("push %s: %s", name, stderr)
		}
	}
	bad := filepath.Join(site, "models", "bad", "1", "model.onnx")
	b, _ := os.ReadFile(bad)
	b[len(b)/2] ^= 0xff
	os.WriteFile(bad, b, 0o644)
	if _, _, code := run(t, site, "model", "show", "bad", "--verify"); code != exitInvalid {
		t.Fatalf("show --verify of a corrupt file: code %d, want %d", code, exitInvalid)
	}

	t.Cleanup(func() { killSite(site) })
	// One deployment per model in the store; the one whose file rotted
	// never gets ready, and up says so rather than wait for it.
	ctlAddr := faultFreeAddr(t)
	cmd, base := startServing(t, site, "up", "--listen", "127.0.0.1:0", "--controller-listen", ctlAddr, "--replicas", "1")
	c := oip.NewClient(base, nil)
	ctx := context.Background()
	err := c.ModelReady(ctx, "bad", "")
	if oip.StatusCode(err) != 503 || !strings.Contains(err.Error(), "model bad") {
		t.Fatalf("bad model ready: %v", err)
	}
	// Why: the controller reports its replica's own words.
	tok, _ := siteAdminToken(site, false)
	reps, err := control.NewClient("http://"+ctlAddr, tok).Replicas(ctx)
	if err != nil || len(reps) != 2 || reps[0].Deployment != "bad" || reps[0].Ready || !strings.Contains(reps[0].Reason, "checksum") || !reps[1].Ready {
		t.Fatalf("replicas %+v %v", reps, err)
	}
	in, err := oip.NewInput(sample.InputName, tensor.FromFloat32([]int{1, 4}, []float32{5, 3.4, 1.5, 0.2}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Infer(ctx, "good", "", &oip.InferRequest{Inputs: []oip.RequestInput{in}}); err != nil {
		t.Fatalf("good model: %v", err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	waitExit(t, cmd)
	waitGone(t, site)
}

func TestKilledPushLeavesNoVersion(t *testing.T) {
	site := t.TempDir()
	// A large file makes the copy slow enough to kill the push during it.
	big := filepath.Join(t.TempDir(), "big.onnx")
	f, _ := os.Create(big)
	chunk := bytes.Repeat([]byte{0x42}, 1<<20)
	for i := 0; i < 512; i++ {
		f.Write(chunk)
	}
	f.Close()
	cmd := exec.Command(binary, "--site", site, "model", "push", "big", big)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	staged := false
	for time.Now().Before(deadline) && !staged {
		matches, _ := filepath.Glob(filepath.Join(site, "models", "big", ".staging-*", "model.onnx"))
		staged = len(matches) > 0
		if !staged {
			time.Sleep(time.Millisecond)
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if !staged {
		t.Skip("push finished before it could be killed")
	}
	if _, _, code := run(t, site, "model", "show", "big"); code != exitNotFound {
		t.Fatalf("after a killed push: code %d, want not found", code)
	}
	// The next command that opens the store removes the dead push's staging.
	run(t, site, "model", "list")
	if m, _ := filepath.Glob(filepath.Join(site, "models", "big", ".staging-*")); len(m) != 0 {
		t.Fatalf("staging left after reopen: %v", m)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	site := t.TempDir()
	for _, args := range [][]string{{"model", "push", "onlyname"}, {"--no-such-flag"}, {"no-such-command"}, {"--log-level", "loud", "model", "list"}} {
		if _, _, code := run(t, site, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}
