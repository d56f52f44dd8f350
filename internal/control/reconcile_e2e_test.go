package control

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/runtime"
	"github.com/bulwark-ml/bulwark/internal/runtime/builtin"
	"github.com/bulwark-ml/bulwark/internal/sample"
	"github.com/bulwark-ml/bulwark/internal/supervisor"
)

// The reconciler with real processes: the bulwark binary as controller
// and as node replicas, the sample model, real signals.

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// bulwarkBinary builds cmd/bulwark once per test run.
func bulwarkBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "bulwark-control-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "bulwark")
		out, err := exec.Command("go", "build", "-o", binPath, "../../cmd/bulwark").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("build bulwark: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// pushSample pushes the sample model as the given versions, checked by
// the builtin runtime as `bulwark model push` does.
func pushSample(t *testing.T, site string, versions ...string) *modelstore.Store {
	t.Helper()
	st, err := modelstore.Open(site)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "iris.onnx")
	if err := os.WriteFile(file, sample.Build().ONNX, 0o644); err != nil {
		t.Fatal(err)
	}
	inspect := func(ctx context.Context, path string) (string, []modelstore.IOSpec, []modelstore.IOSpec, error) {
		m, err := builtin.New().Load(ctx, runtime.Source{Format: "onnx", Path: path})
		if err != nil {
			return "", nil, nil, err
		}
		m.Close()
		return "onnx", nil, nil, nil
	}
	for _, v := range versions {
		if _, err := st.Push(context.Background(), "iris", file, inspect, modelstore.PushOptions{Version: v}); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// controller is a running `bulwark controller`.
type controller struct {
	cmd    *exec.Cmd
	client *Client
	stderr string // its log file
}

func startController(t *testing.T, site, token string) *controller {
	t.Helper()
	logf, err := os.CreateTemp(t.TempDir(), "controller-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bulwarkBinary(t), "--site", site, "controller", "--listen", "127.0.0.1:0", "--admin-token", token)
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	urls := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`serving on (http://\S+)`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
	}()
	select {
	case u := <-urls:
		return &controller{cmd: cmd, client: NewClient(u, token), stderr: logf.Name()}
	case <-time.After(30 * time.Second):
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("controller did not start:\n%s", b)
	}
	return nil
}

const e2eDoc = `apiVersion: bulwark.dev/v1
kind: Deployment
metadata: {name: iris}
spec:
  model: iris
  versions: [{version: "VERSION"}]
  replicas: 3
  zones: [a, b, c]
  rollout: {maxSurge: 1, readyTimeout: 3s, observe: 1s}
`

func TestReconcilerWithRealProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs node processes")
	}
	site := t.TempDir()
	store := pushSample(t, site, "1", "2", "3")
	// Version 3 loads in the inspector, then rots on disk: a node verifying
	// its checksum refuses it, so it never gets ready.
	m3, err := store.Manifest("iris", "3")
	if err != nil {
		t.Fatal(err)
	}
	p3 := store.Path(m3, m3.Primary)
	b, _ := os.ReadFile(p3)
	b[len(b)/2] ^= 0xff
	os.Chmod(p3, 0o644)
	if err := os.WriteFile(p3, b, 0o644); err != nil {
		t.Fatal(err)
	}

	ctl := startController(t, site, "e2e-token")
	c := ctl.client
	ctx := context.Background()
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(ctl.stderr)
			t.Logf("controller log:\n%s", b)
		}
		// Replicas outlive controllers by design: end whatever runs on
		// this test's site.
		killSiteProcesses(site)
	})
	replicas := func() []ReplicaInfo {
		reps, err := c.Replicas(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return reps
	}
	apply := func(version string) {
		t.Helper()
		if _, err := c.Apply(ctx, []byte(strings.Replace(e2eDoc, "VERSION", version, 1)), "application/yaml", false); err != nil {
			t.Fatal(err)
		}
	}
	rolledOutTo := func(rev int64, version string) func() bool {
		return func() bool {
			d, err := c.Get(ctx, "iris")
			return err == nil && d.Metadata.Revision == rev && d.Done() && d.Status.LastGoodRevision == rev &&
				d.Status.ReadyReplicas == 3 && d.Spec.Versions[0].Version == version
		}
	}

	apply("1")
	eventually(t, "3 ready replicas of version 1", rolledOutTo(1, "1"))
	rt, err := c.Routing(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rt.Versions["iris"]) != 1 || len(rt.Versions["iris"][0].Replicas) != 3 {
		t.Fatalf("routing %s %+v", rt.Config, rt.Versions)
	}
	for _, addr := range rt.Versions["iris"][0].Replicas {
		// Each replica serves its version and no other.
		if code := httpStatus(addr + "/v2/models/iris/versions/1/ready"); code != 200 {
			t.Fatalf("%s: version 1 ready: %d", addr, code)
		}
		if code := httpStatus(addr + "/v2/models/iris/versions/2/ready"); code != 404 {
			t.Fatalf("%s: version 2 ready: %d, want 404", addr, code)
		}
	}

	// A killed replica is replaced on its port and is ready again.
	victim := replicas()[0]
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the killed replica back", func() bool {
		for _, r := range replicas() {
			if r.Name == victim.Name && r.PID != victim.PID && r.Ready && r.Address == victim.Address {
				return true
			}
		}
		return false
	})
	eventually(t, "available again", rolledOutTo(1, "1"))

	// While versions change, the replicas ready never drop below
	// replicas-1, as the controller sees them.
	minReady, stopWatch := watchReady(c)
	apply("2")
	eventually(t, "rolling update to version 2", rolledOutTo(2, "2"))

	apply("3")
	eventually(t, "automatic rollback to version 2 (revision 4)", rolledOutTo(4, "2"))
	if got := stopWatch(); minReady() < 2 {
		t.Fatalf("ready replicas fell to %d during the rollouts (%v)", minReady(), got)
	}
	evs, _ := c.Events(ctx, "iris", 0)
	if !eventIn(evs, EventWarning, "RolledBack", "revision 3 failed: replica iris-v3-1 (version 3) not ready after 3s") ||
		!eventIn(evs, EventWarning, "RolledBack", "checksum") || !eventIn(evs, EventWarning, "ReplicaRestarted", victim.Name) {
		t.Fatalf("events: %+v", evs)
	}

	// The controller dies; the replicas keep serving; the next one adopts them.
	before := replicas()
	ctl.cmd.Process.Kill()
	ctl.cmd.Wait()
	for _, r := range before {
		if !supervisor.Alive(r.PID) || httpStatus(r.Address+"/v2/models/iris/versions/2/ready") != 200 {
			t.Fatalf("replica %s (pid %d) stopped serving with the controller", r.Name, r.PID)
		}
	}
	ctl = startController(t, site, "e2e-token")
	c = ctl.client
	eventually(t, "adoption", func() bool {
		after := replicas()
		if len(after) != len(before) {
			return false
		}
		for i, r := range after {
			if r.Name != before[i].Name || r.PID != before[i].PID || !r.Adopted || !r.Ready {
				return false
			}
		}
		return true
	})
	eventually(t, "still rolled out", rolledOutTo(4, "2"))

	// Deleting the deployment stops its replicas.
	if err := c.Delete(ctx, "iris", 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replicas stopped", func() bool {
		for _, r := range before {
			if supervisor.Alive(r.PID) {
				return false
			}
		}
		return len(replicas()) == 0
	})
}

// watchReady polls the controller's replicas and keeps the lowest count
// of ready ones seen; stop ends it and returns the counts seen.
func watchReady(c *Client) (lowest func() int, stop func() []int) {
	var mu sync.Mutex
	low := 1 << 30
	var counts []int
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			reps, err := c.Replicas(context.Background())
			if err == nil {
				n := 0
				for _, r := range reps {
					if r.Ready {
						n++
					}
				}
				mu.Lock()
				low = min(low, n)
				if len(counts) == 0 || counts[len(counts)-1] != n {
					counts = append(counts, n)
				}
				mu.Unlock()
			}
			select {
			case <-quit:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return func() int { mu.Lock(); defer mu.Unlock(); return low },
		func() []int { close(quit); <-done; mu.Lock(); defer mu.Unlock(); return counts }
}

// killSiteProcesses kills every process whose command line names site.
func killSiteProcesses(site string) {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || !strings.Contains(string(b), "\x00"+site+"\x00") {
			continue
		}
		var pid int
		if _, err := fmt.Sscan(filepath.Base(d), &pid); err == nil && pid != os.Getpid() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func httpStatus(u string) int {
	resp, err := http.Get(u)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func eventIn(evs []Event, typ, reason, text string) bool {
	for _, e := range evs {
		if e.Type == typ && e.Reason == reason && strings.Contains(e.Message, text) {
			return true
		}
	}
	return false
}
