// Command controller measures the controller's reconciler and rollout
// engine with real processes on this machine:
//
//   - MTTR of a crashed replica: SIGKILL → its ready endpoint answers 200
//     again (and → the controller sees it ready), one kill per replica of
//     a deployment of -kills replicas, so every kill is a first crash
//     (the supervisor's backoff doubles on repeated crashes);
//   - a rolling update of -replicas replicas to another version: apply →
//     the deployment is Available at the new revision (observe 0s);
//   - an automatic rollback: apply of a version whose file is corrupt →
//     RolledBack event (bounded below by readyTimeout) → Available again;
//   - apply latency: -applies sequential applies, each a new revision,
//     against the running controller (bbolt state, fsync on every commit).
//
// Run it from the repository:
//
//	go run ./bench/controller [-kills 7] [-replicas 3] [-applies 1000] [-ready-timeout 2s]
//
// It builds cmd/bulwark unless -bulwark names a binary, works in a
// temporary site that it removes, and prints a Markdown table.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/bulwark-ml/bulwark/internal/control"
)

var (
	bin          = flag.String("bulwark", "", "bulwark binary (default: build ./cmd/bulwark)")
	kills        = flag.Int("kills", 7, "replicas to kill, one each, for the MTTR")
	replicas     = flag.Int("replicas", 3, "replicas of the rolled-out deployment")
	rounds       = flag.Int("rollouts", 3, "rolling updates to time")
	applies      = flag.Int("applies", 1000, "applies to time")
	readyTimeout = flag.Duration("ready-timeout", 2*time.Second, "rollout.readyTimeout of the failing rollout")
	keep         = flag.Bool("keep", false, "keep the work directory")
)

const token = "bench-token"

func main() {
	flag.Parse()
	log.SetFlags(0)
	work, err := os.MkdirTemp("", "bulwark-bench-controller-")
	check(err)
	site := filepath.Join(work, "site")
	ctl := (*exec.Cmd)(nil)
	defer func() {
		if ctl != nil {
			ctl.Process.Signal(syscall.SIGTERM)
			ctl.Wait()
		}
		if !*keep {
			os.RemoveAll(work)
		}
	}()
	if *bin == "" {
		*bin = filepath.Join(work, "bulwark")
		run("go", "build", "-o", *bin, "github.com/bulwark-ml/bulwark/cmd/bulwark")
	}
	model := filepath.Join(work, "iris.onnx")
	run(*bin, "--site", site, "sample", "-o", model)
	for range 3 {
		run(*bin, "--site", site, "model", "push", "iris", model)
	}
	corrupt(filepath.Join(site, "models", "iris", "3", "model.onnx"))

	var url string
	ctl, url = startController(site, work)
	c := control.NewClient(url, token)
	ctx := context.Background()

	// MTTR.
	apply(c, "mttr", "1", *kills, 10*time.Second, 0)
	waitDone(c, "mttr", 1)
	var serving, seen []time.Duration
	reps, err := c.Replicas(ctx)
	check(err)
	for _, r := range reps {
		if r.Deployment != "mttr" {
			continue
		}
		start := time.Now()
		check(syscall.Kill(r.PID, syscall.SIGKILL))
		waitFor("replica "+r.Name+" to be replaced", func() bool { return pidOf(c, r.Name) != r.PID })
		waitFor(r.Name+" ready", func() bool { return httpOK(r.Address + "/v2/models/iris/versions/1/ready") })
		serving = append(serving, time.Since(start))
		waitFor("controller to see "+r.Name+" ready", func() bool { return readyIn(c, r.Name) })
		seen = append(seen, time.Since(start))
		waitDone(c, "mttr", 1)
	}
	check(c.Delete(ctx, "mttr", 0))

	// Rolling updates, alternating versions 1 and 2.
	apply(c, "iris", "1", *replicas, 10*time.Second, 0)
	waitDone(c, "iris", 1)
	var rollouts []time.Duration
	rev := int64(1)
	for i := range *rounds {
		v := []string{"2", "1"}[i%2]
		start := time.Now()
		rev = apply(c, "iris", v, *replicas, 10*time.Second, 0)
		waitDone(c, "iris", rev)
		rollouts = append(rollouts, time.Since(start))
	}

	// An automatic rollback.
	start := time.Now()
	bad := apply(c, "iris", "3", *replicas, *readyTimeout, 0)
	waitFor("RolledBack event", func() bool { return hasRollback(c, bad) })
	detected := time.Since(start)
	waitDone(c, "iris", bad+1)
	recovered := time.Since(start)

	// Apply latency: each apply a new revision (the policy changes, so no
	// process starts or stops), reconciler running.
	apply(c, "applies", "1", 1, 10*time.Second, 0)
	var lat []time.Duration
	for i := range *applies {
		doc := deployment("applies", "1", 1, 10*time.Second, 0) + fmt.Sprintf("  policy: {maxPending: %d}\n", 2000+i)
		t0 := time.Now()
		_, err := c.Apply(ctx, []byte(doc), "application/yaml", false)
		lat = append(lat, time.Since(t0))
		check(err)
	}

	fmt.Printf("| measure | result |\n| --- | --- |\n")
	fmt.Printf("| MTTR, SIGKILL → replica ready again (n=%d) | median %s, max %s (%s) |\n", len(serving), pct(serving, 0.5), pct(serving, 1), list(serving))
	fmt.Printf("| MTTR, SIGKILL → controller sees it ready (n=%d) | median %s, max %s |\n", len(seen), pct(seen, 0.5), pct(seen, 1))
	fmt.Printf("| rolling update, %d replicas, maxSurge 1, observe 0s (n=%d) | median %s (%s) |\n", *replicas, len(rollouts), pct(rollouts, 0.5), list(rollouts))
	fmt.Printf("| automatic rollback, readyTimeout %s: apply → RolledBack | %s |\n", *readyTimeout, detected.Round(time.Millisecond))
	fmt.Printf("| automatic rollback: apply → Available at the rollback revision | %s (%s after the readyTimeout) |\n",
		recovered.Round(time.Millisecond), (recovered - *readyTimeout).Round(time.Millisecond))
	fmt.Printf("| apply latency, %d applies, bbolt + fsync | p50 %s, p99 %s, max %s |\n", len(lat), pct(lat, 0.5), pct(lat, 0.99), pct(lat, 1))
}

func deployment(name, version string, replicas int, readyTimeout, observe time.Duration) string {
	return fmt.Sprintf(`apiVersion: bulwark.dev/v1
kind: Deployment
metadata: {name: %s}
spec:
  model: iris
  versions: [{version: "%s"}]
  replicas: %d
  zones: [a, b, c]
  rollout: {maxSurge: 1, readyTimeout: %s, observe: %s}
`, name, version, replicas, readyTimeout, observe)
}

func apply(c *control.Client, name, version string, replicas int, readyTimeout, observe time.Duration) int64 {
	res, err := c.Apply(context.Background(), []byte(deployment(name, version, replicas, readyTimeout, observe)), "application/yaml", false)
	check(err)
	return res.Revision
}

// waitDone waits until the deployment is Available at revision rev.
func waitDone(c *control.Client, name string, rev int64) {
	waitFor(fmt.Sprintf("%s revision %d available", name, rev), func() bool {
		d, err := c.Get(context.Background(), name)
		return err == nil && d.Metadata.Revision == rev && d.Done() && d.Status.LastGoodRevision == rev
	})
}

func hasRollback(c *control.Client, rev int64) bool {
	evs, err := c.Events(context.Background(), "iris", 0)
	check(err)
	for _, e := range evs {
		if e.Type == control.EventWarning && e.Reason == "RolledBack" && strings.Contains(e.Message, fmt.Sprintf("revision %d failed", rev)) {
			return true
		}
	}
	return false
}

func pidOf(c *control.Client, name string) int {
	reps, err := c.Replicas(context.Background())
	check(err)
	for _, r := range reps {
		if r.Name == name && !r.Stopping {
			return r.PID
		}
	}
	return 0
}

func readyIn(c *control.Client, name string) bool {
	reps, err := c.Replicas(context.Background())
	check(err)
	for _, r := range reps {
		if r.Name == name && r.Ready {
			return true
		}
	}
	return false
}

var probe = &http.Client{Timeout: time.Second}

func httpOK(u string) bool {
	resp, err := probe.Get(u)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func waitFor(what string, cond func() bool) {
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			log.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func startController(site, work string) (*exec.Cmd, string) {
	logf, err := os.Create(filepath.Join(work, "controller.log"))
	check(err)
	cmd := exec.Command(*bin, "--site", site, "--log-level", "warn", "controller", "--listen", "127.0.0.1:0",
		"--admin-token", token, "--stop-replicas-on-exit")
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	check(err)
	check(cmd.Start())
	re := regexp.MustCompile(`serving on (http://\S+)`)
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			go func() {
				for sc.Scan() {
				}
			}()
			return cmd, m[1]
		}
	}
	log.Fatalf("controller did not start; see %s", logf.Name())
	return nil, ""
}

// corrupt flips a byte of a stored model file, so a node refuses it.
func corrupt(path string) {
	b, err := os.ReadFile(path)
	check(err)
	b[len(b)/2] ^= 0xff
	os.Chmod(path, 0o644)
	check(os.WriteFile(path, b, 0o644))
}

func run(name string, args ...string) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		log.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s)-1) + 0.5)
	return s[i].Round(10 * time.Microsecond)
}

func list(ds []time.Duration) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, d.Round(time.Millisecond).String())
	}
	return strings.Join(parts, ", ")
}

func check(err error) {
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			log.Fatalf("%v: %s", err, ee.Stderr)
		}
		log.Fatal(err)
	}
}
