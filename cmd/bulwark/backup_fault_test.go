package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/control"
	"github.com/bulwark-ml/bulwark/internal/oip"
	"github.com/bulwark-ml/bulwark/internal/repository"
	"github.com/bulwark-ml/bulwark/internal/sample"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// Backup fault tests: real processes killed with SIGKILL mid-way, bytes
// flipped in pack files, a hot backup under serving load. They poll the
// repository's files to decide when to strike, never sleep to wait.

// packFiles lists the complete pack files of a local repository with
// their sizes (temporary files of saves in progress start with a dot).
func packFiles(t *testing.T, repo string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	filepath.WalkDir(filepath.Join(repo, "data"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		if info, err := d.Info(); err == nil {
			out[d.Name()] = info.Size()
		}
		return nil
	})
	return out
}

func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
			n++
		}
		return nil
	})
	return n
}

// killWhen starts cmd, waits until cond holds (or the process ends on its
// own), then SIGKILLs it. It reports whether the kill came first.
func killWhen(t *testing.T, cmd *exec.Cmd, what string, cond func() bool) bool {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(faultWait)
	for !cond() {
		select {
		case <-exited:
			t.Logf("the process finished before %s", what)
			return false
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			t.Fatalf("waited %v for %s", faultWait, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	return true
}

// TestBackupKilledResumes: a backup SIGKILLed after some packs are stored
// leaves a repository that verifies clean, and the next backup stores only
// what those packs do not hold.
func TestBackupKilledResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and backs up 160 MiB several times; skipped with -short")
	}
	e := newBackupEnv(t)
	e.write("data/a.bin", randomData(21, 80<<20))
	e.write("data/b.bin", randomData(22, 80<<20))
	for _, after := range []int{1, 4, 7} {
		t.Run(fmt.Sprintf("after %d packs", after), func(t *testing.T) {
			e.t = t
			e.repo = filepath.Join(e.dir, fmt.Sprintf("repo-%d", after))
			e.env = []string{"BULWARK_REPOSITORY=" + e.repo, "BULWARK_PASSWORD=" + backupPassword}
			e.initRepo()
			killed := killWhen(t, e.command(nil, "backup", "--cold"), fmt.Sprintf("%d packs", after), func() bool {
				return len(packFiles(t, e.repo)) >= after
			})
			if out, stderr, code := e.run("verify"); code != 0 {
				t.Fatalf("verify after the kill: exit %d\n%s%s", code, out, stderr)
			}
			var packed int64
			for _, size := range packFiles(t, e.repo) {
				packed += size
			}
			snap := e.backup("--cold")
			total := snap.Summary.Bytes
			// Random data does not compress, so a pack holds about its size
			// in data; 1% covers the headers, tags and trailers.
			bound := total - packed*99/100
			t.Logf("killed=%v: %d bytes in packs at the kill; the next backup added %d of %d (bound %d)", killed, packed, snap.Summary.NewBytes, total, bound)
			if killed && snap.Summary.NewBytes > bound {
				t.Fatalf("the next backup stored %d bytes; the packs left by the killed one held %d of the %d", snap.Summary.NewBytes, packed, total)
			}
			if out, stderr, code := e.run("verify", "--read-data"); code != 0 {
				t.Fatalf("verify --read-data: exit %d\n%s%s", code, out, stderr)
			}
		})
	}
}

// TestPruneKilledLeavesAConsistentRepository: prune SIGKILLed at several
// points; each time verify is clean, the kept snapshot restores, and the
// next prune finishes the job.
func TestPruneKilledLeavesAConsistentRepository(t *testing.T) {
	if testing.Short() {
		t.Skip("backs up and prunes 100 MiB several times; skipped with -short")
	}
	e := newBackupEnv(t)
	for i := range 4 {
		e.write("data/weights.bin", randomData(uint64(30+i), 24<<20))
		e.backup()
	}
	e.mustRun("forget", "--keep-last", "1")
	template := e.repo + "-template"
	copyDir(t, e.repo, template)
	indexes := countFiles(filepath.Join(template, "index"))
	packs := len(packFiles(t, template))
	points := []struct {
		name string
		cond func(repo string) bool
	}{
		{"lock taken", func(repo string) bool { return countFiles(filepath.Join(repo, "locks")) > 0 }},
		{"index rewritten", func(repo string) bool { return countFiles(filepath.Join(repo, "index")) != indexes }},
		{"packs deleted", func(repo string) bool { return len(packFiles(t, repo)) < packs }},
	}
	want := siteFiles(t, e.site)
	for _, p := range points {
		t.Run(p.name, func(t *testing.T) {
			e.t = t
			e.repo = filepath.Join(e.dir, "repo-"+strings.ReplaceAll(p.name, " ", "-"))
			e.env = []string{"BULWARK_REPOSITORY=" + e.repo, "BULWARK_PASSWORD=" + backupPassword}
			copyDir(t, template, e.repo)
			killWhen(t, e.command(nil, "prune"), p.name, func() bool { return p.cond(e.repo) })
			if out, stderr, code := e.run("verify", "--read-data"); code != 0 {
				t.Fatalf("verify after a killed prune: exit %d\n%s%s", code, out, stderr)
			}
			target := filepath.Join(e.dir, "restored-"+strings.ReplaceAll(p.name, " ", "-"))
			e.mustRun("restore", "latest", "--target", target)
			sameFiles(t, siteFiles(t, target), want)
			e.mustRun("prune")
			if out, stderr, code := e.run("verify", "--read-data"); code != 0 {
				t.Fatalf("verify after the second prune: exit %d\n%s%s", code, out, stderr)
			}
			var size int64
			for _, s := range packFiles(t, e.repo) {
				size += s
			}
			if size > 40<<20 {
				t.Fatalf("after two prunes the packs hold %d bytes for one 24 MiB snapshot", size)
			}
		})
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(dst, info.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBitFlipInPackIsContained: one flipped bit in a pack: verify names
// the pack, the snapshot and the files; restore brings back every other
// file and names the ones it could not.
func TestBitFlipInPackIsContained(t *testing.T) {
	e := newBackupEnv(t)
	for i := range 3 {
		e.write(fmt.Sprintf("data/part-%d.bin", i), randomData(uint64(40+i), 2<<20))
	}
	snap := e.backup()
	e.mustRun("verify", "--read-data")
	var victim string
	var largest int64
	for name, size := range packFiles(t, e.repo) {
		if size > largest {
			victim, largest = name, size
		}
	}
	path := filepath.Join(e.repo, "data", victim[:2], victim)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x08
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}

	out, stderr, code := e.run("--json", "verify", "--read-data")
	if code != exitInvalid {
		t.Fatalf("verify of a damaged pack: exit %d\n%s", code, stderr)
	}
	var report repository.CheckReport
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("verify output %q: %v", out, err)
	}
	var affected []string
	named := false
	for _, p := range report.Problems {
		named = named || p.Pack == victim
		for _, id := range p.Snapshots {
			if id.String() != snap.ID {
				t.Errorf("problem names snapshot %s, not %s", id, snap.ID)
			}
		}
		affected = append(affected, p.Files...)
	}
	if !named || len(affected) == 0 {
		t.Fatalf("verify does not name pack %s and the files: %+v", victim, report.Problems)
	}
	text, _, _ := e.run("verify", "--read-data")
	if !strings.Contains(text, victim) || !strings.Contains(text, snap.ShortID) || !strings.Contains(text, affected[0]) {
		t.Fatalf("verify's text does not name the pack, snapshot and file:\n%s", text)
	}

	target := filepath.Join(e.dir, "restored")
	out, stderr, code = e.run("--json", "restore", "latest", "--target", target)
	if code != exitInvalid || !strings.Contains(stderr, "could not be restored") {
		t.Fatalf("restore from a damaged pack: exit %d\n%s", code, stderr)
	}
	var res struct {
		Result struct {
			Failed []struct{ Path string } `json:"failed"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("restore output %q: %v", out, err)
	}
	var failed []string
	for _, f := range res.Result.Failed {
		failed = append(failed, f.Path)
	}
	slices.Sort(failed)
	slices.Sort(affected)
	if !slices.Equal(slices.Compact(failed), slices.Compact(affected)) {
		t.Fatalf("restore failed %v, verify said %v", failed, affected)
	}
	want := siteFiles(t, e.site)
	for _, f := range failed {
		delete(want, f)
		if _, err := os.Stat(filepath.Join(target, f)); err == nil {
			t.Errorf("damaged file %s was written", f)
		}
	}
	sameFiles(t, siteFiles(t, target), want)
}

// TestHotBackupUnderLoad: a hot backup of a site run by bulwark up, under
// load through its gateway, fails no request; a cold one is refused while
// it runs; the snapshot, restored as a new site and started, serves the
// model with the same deployment.
func TestHotBackupUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a whole site under load and another restored from it; skipped with -short")
	}
	dir := t.TempDir()
	e := &backupEnv{t: t, dir: dir, site: filepath.Join(dir, "site"), repo: filepath.Join(dir, "repo")}
	e.write("data/bulk.bin", randomData(50, 128<<20)) // so that the backup lasts a while
	t.Cleanup(func() { killSite(e.site) })
	up := exec.Command(binary, "--site", e.site, "up", "--listen", "127.0.0.1:0", "--controller-listen", "127.0.0.1:0")
	gw, ctl := startUp(t, up)
	e.env = []string{"BULWARK_REPOSITORY=" + e.repo, "BULWARK_PASSWORD=" + backupPassword, "BULWARK_CONTROLLER=" + ctl}
	e.initRepo()

	load := startLoad(t, loadConfig{URL: gw + "/v2/models/" + sample.ModelName + "/infer", Rate: faultRate,
		Max: faultRate * 120, MaxTime: 120 * time.Second, Deadline: 2 * time.Second, Body: irisBody, Check: irisCheck})
	load.waitLaunched(t, faultRate)
	snap := e.backup()
	_, stderr, code := e.run("backup", "--cold")
	results := load.stop()
	s := summarizeLoad(results)
	t.Logf("during the hot backup: %v", s)
	if s.Failed+s.Wrong != 0 {
		t.Fatalf("requests failed during the hot backup: %v%s", s, describeLoad(results, 10, loadFailed))
	}
	if code != exitLocked || !strings.Contains(stderr, "is running") {
		t.Fatalf("cold backup of a running site: exit %d, %s", code, stderr)
	}
	if snap.Kind != "hot" || snap.Meta["state.source"] != "controller" || !strings.Contains(snap.Meta["deployment.iris"], "model=iris versions=1:100 replicas=3") {
		t.Fatalf("hot snapshot %+v", snap)
	}
	up.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, up); code != 0 {
		t.Fatalf("up exit code %d", code)
	}

	// Bring a site up from the snapshot, in another directory.
	restored := filepath.Join(dir, "restored-site")
	t.Cleanup(func() { killSite(restored) })
	cmd := exec.Command(binary, "--site", restored, "restore", snap.ID, "--start", "--",
		"--listen", "127.0.0.1:0", "--controller-listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), e.env...)
	base, ctl2 := startUp(t, cmd)
	for i := range 20 {
		if _, err := irisCheck(i, inferOnce(t, base, i)); err != nil {
			t.Fatalf("the restored site's answer: %v", err)
		}
	}
	ds, err := control.NewClient(ctl2, readToken(t, restored)).List(context.Background())
	if err != nil || len(ds) != 1 || ds[0].Metadata.Name != "iris" || ds[0].Metadata.Revision != 1 {
		t.Fatalf("the restored site's deployments: %+v, %v", ds, err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, cmd); code != 0 {
		t.Fatalf("restored site exit code %d", code)
	}
	got := siteFiles(t, restored)
	for rel, sum := range siteFiles(t, e.site) {
		if strings.HasPrefix(rel, "gateway/") {
			continue // the gateway's routing cache, rewritten by each site
		}
		if got[rel] != sum {
			t.Errorf("%s missing or different in the restored site", rel)
		}
	}
}

// startUp starts bulwark up (or restore --start) and returns the gateway's
// and the controller's URLs from what it prints.
func startUp(t *testing.T, cmd *exec.Cmd) (gateway, controller string) {
	t.Helper()
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
	urls := make(chan [2]string, 1)
	go func() {
		ctlRE := regexp.MustCompile(`^controller (http://\S+)`)
		gwRE := regexp.MustCompile(`serving on (http://\S+)`)
		var ctl string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := ctlRE.FindStringSubmatch(sc.Text()); m != nil {
				ctl = m[1]
			}
			if m := gwRE.FindStringSubmatch(sc.Text()); m != nil {
				urls <- [2]string{m[1], ctl}
				break
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case u := <-urls:
		if u[1] == "" {
			t.Fatal("up did not print its controller's URL")
		}
		return u[0], u[1]
	case <-time.After(2 * time.Minute):
		t.Fatalf("no serving line; stderr:\n%s", stderr.String())
	}
	return "", ""
}

func readToken(t *testing.T, site string) string {
	t.Helper()
	tok, err := siteAdminToken(site, false)
	if err != nil || tok == "" {
		t.Fatalf("admin token of %s: %q, %v", site, tok, err)
	}
	return tok
}

// irisBody is an inference request for the sample model's three example
// rows, one per species.
func irisBody(seq int) []byte {
	var data []float32
	for _, row := range sample.Example() {
		data = append(data, row[:]...)
	}
	in, err := oip.NewInput(sample.InputName, tensor.FromFloat32([]int{len(sample.Example()), 4}, data))
	if err != nil {
		panic(err)
	}
	b, err := json.Marshal(&oip.InferRequest{ID: "req-" + strconv.Itoa(seq), Inputs: []oip.RequestInput{in}})
	if err != nil {
		panic(err)
	}
	return b
}

// irisCheck accepts the answer to irisBody(seq): its id, and labels 0, 1, 2.
func irisCheck(seq int, body []byte) ([]int64, error) {
	var resp oip.InferResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("undecodable answer: %v", err)
	}
	if want := "req-" + strconv.Itoa(seq); resp.ID != want {
		return nil, fmt.Errorf("answer to %q, want %q", resp.ID, want)
	}
	outs, err := resp.Tensors()
	if err != nil {
		return nil, err
	}
	l := outs[sample.LabelName]
	if l == nil || !slices.Equal(l.I64, []int64{0, 1, 2}) {
		return nil, fmt.Errorf("labels %+v, want [0 1 2]", l)
	}
	return l.I64, nil
}

// inferOnce posts irisBody(seq) to a gateway and returns the 200 answer.
func inferOnce(t *testing.T, base string, seq int) []byte {
	t.Helper()
	resp, err := http.Post(base+"/v2/models/"+sample.ModelName+"/infer", "application/json", bytes.NewReader(irisBody(seq)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("inference: HTTP %d %s", resp.StatusCode, b)
	}
	return b
}

// TestHotBackupLatencyImpact measures what a hot backup costs serving: the
// same open-loop load through the gateway for a window without a backup,
// a window of incremental hot backups back to back (everything read and
// hashed again with --force, nothing new to store) and a window of full
// hot backups (each into a new repository: everything stored). It prints
// the latency percentiles of each window and asserts only that no request
// failed; it runs when $BULWARK_MEASURE_BACKUP_LATENCY is set to the
// window's length: a measurement, not a test of speed.
// $BULWARK_MEASURE_BACKUP_PRIORITY is the backups' --priority (default
// auto).
//
//	BULWARK_MEASURE_BACKUP_LATENCY=20s go test -run TestHotBackupLatencyImpact -v ./cmd/bulwark
func TestHotBackupLatencyImpact(t *testing.T) {
	window, err := time.ParseDuration(os.Getenv("BULWARK_MEASURE_BACKUP_LATENCY"))
	if err != nil || window <= 0 {
		t.Skip("a measurement: set BULWARK_MEASURE_BACKUP_LATENCY to the window (e.g. 20s)")
	}
	c := newFaultCluster(t, "")
	dir := t.TempDir()
	ctlAddr := faultFreeAddr(t)
	ctl := &faultProc{name: "controller", log: filepath.Join(dir, "controller.log"),
		args: []string{"--site", c.site, "controller", "--listen", ctlAddr, "--reconcile=false"}}
	t.Cleanup(func() { ctl.kill(t) })
	ctl.start(t)
	client := control.NewClient("http://"+ctlAddr, faultToken)
	faultPoll(t, "the controller", func() (bool, string) {
		_, err := client.Watch(context.Background(), 0, time.Millisecond)
		return err == nil, fmt.Sprint(err)
	})
	priority := cmp.Or(os.Getenv("BULWARK_MEASURE_BACKUP_PRIORITY"), "auto")
	const bulk = 512 << 20
	e := &backupEnv{t: t, dir: dir, site: c.site}
	useRepo := func(name string) {
		e.repo = filepath.Join(dir, name)
		e.env = []string{"BULWARK_REPOSITORY=" + e.repo, "BULWARK_PASSWORD=" + backupPassword,
			"BULWARK_ADMIN_TOKEN=" + faultToken, "BULWARK_CONTROLLER=http://" + ctlAddr}
		e.initRepo()
	}
	e.write("data/bulk.bin", randomData(60, bulk))
	useRepo("repo")
	e.backup("--hot") // the incremental window has everything stored already

	perWindow := int(window.Seconds()) * faultRate
	load := c.load(t, 2*time.Second, 3*window+30*time.Second)
	load.waitLaunched(t, faultRate) // one second of warm-up
	marks := []int{load.launchedCount()}
	load.waitLaunched(t, marks[0]+perWindow)
	marks = append(marks, load.launchedCount())
	incremental := 0
	for load.launchedCount() < marks[1]+perWindow {
		e.backup("--hot", "--force", "--priority", priority)
		incremental++
	}
	marks = append(marks, load.launchedCount())
	full := 0
	for load.launchedCount() < marks[2]+perWindow {
		useRepo(fmt.Sprintf("repo-full-%d", full))
		e.backup("--hot", "--priority", priority)
		os.RemoveAll(e.repo)
		full++
	}
	marks = append(marks, load.launchedCount())
	results := load.stop()
	p := func(rs []loadResult) string {
		var lat []time.Duration
		for _, r := range rs {
			lat = append(lat, r.Latency)
		}
		slices.Sort(lat)
		q := func(f float64) time.Duration { return lat[int(f*float64(len(lat)-1))].Round(10 * time.Microsecond) }
		return fmt.Sprintf("%d requests: p50 %v, p90 %v, p99 %v, p99.9 %v, max %v", len(lat), q(0.5), q(0.9), q(0.99), q(0.999), lat[len(lat)-1].Round(10*time.Microsecond))
	}
	t.Logf("load %d req/s through the gateway, %v windows, %d MiB of data in the site, --priority %s", faultRate, window, bulk>>20, priority)
	for i, name := range []string{"without backup", fmt.Sprintf("%d incremental hot backups", incremental), fmt.Sprintf("%d full hot backups", full)} {
		rs := results[marks[i]:marks[i+1]]
		if s := summarizeLoad(rs); s.Failed+s.Wrong != 0 {
			t.Errorf("%s: %v", name, s)
		}
		t.Logf("%-28s %s", name+":", p(rs))
	}
}
