package main

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/backend/s3/s3test"
	"github.com/bulwark-ml/bulwark/internal/drill"
)

// runScratchDrill runs bulwark drill --scratch with args and returns its report,
// its standard output and error, and its exit code.
func runScratchDrill(t *testing.T, args ...string) (*drill.Report, string, string, int) {
	t.Helper()
	work, out := filepath.Join(t.TempDir(), "work"), filepath.Join(t.TempDir(), "report")
	stdout, stderr, code := run(t, filepath.Join(work, "unused-site"),
		append([]string{"drill", "--scratch", "--work-dir", work, "--out", out}, args...)...)
	t.Cleanup(func() {
		for _, s := range []string{"site", "site-recovered"} {
			for _, pid := range siteProcesses(filepath.Join(work, s)) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	// Nothing of either site may outlive the drill.
	for _, s := range []string{"site", "site-recovered"} {
		if left := siteProcesses(filepath.Join(work, s)); len(left) > 0 {
			t.Errorf("processes of %s still run after the drill: %v", s, left)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatalf("no report.json (exit %d): %v\nstderr:\n%s", code, err, stderr)
	}
	var rep drill.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	for _, f := range []string{"report.md", "report.html"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	return &rep, stdout, stderr, code
}

// The short drill, as CI runs it: every masked fault is hidden from the
// clients, the site is destroyed and comes back from its backup with the
// same answers and the same deployments.
func TestDrillShortScratch(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a whole site through a disaster")
	}
	rep, stdout, stderr, code := runScratchDrill(t, "--short")
	if code != 0 || !rep.Passed {
		t.Fatalf("exit %d, passed %v, problems %v\nstdout:\n%s\nstderr:\n%s", code, rep.Passed, rep.Problems, stdout, stderr)
	}
	sc, _, err := drill.Builtin("short")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Phases) != len(sc.Phases) {
		t.Fatalf("%d phases in the report, %d in the scenario", len(rep.Phases), len(sc.Phases))
	}
	var sent int64
	for i, p := range rep.Phases {
		if p.Name != sc.Phases[i].Name || p.Sent == 0 || p.P50 <= 0 || p.P99 < p.P50 || p.P999 < p.P99 {
			t.Errorf("phase %d: %+v", i, p)
		}
		if p.Masked && p.Failed != 0 {
			t.Errorf("masked phase %s: %d requests failed: %v", p.Name, p.Failed, p.Errors)
		}
		sent += p.Sent
	}
	var timeline int64
	for _, s := range rep.Timeline {
		timeline += s.Requests
	}
	if timeline < sent {
		t.Errorf("the timeline holds %d requests, the phases %d", timeline, sent)
	}
	rc := rep.Recovery
	switch {
	case rc == nil:
		t.Fatal("no recovery in the report")
	case rc.Snapshot == "" || !rc.SnapshotAt.Before(rc.DisasterAt):
		t.Errorf("restored snapshot %q of %v, disaster at %v", rc.Snapshot, rc.SnapshotAt, rc.DisasterAt)
	case rc.RTOFirst <= 0 || rc.RTOFull < rc.RTOFirst || rc.RPO <= 0 || rc.RestoreBytes <= 0:
		t.Errorf("recovery figures: %+v", rc)
	case rc.Lost == nil:
		t.Error("lost changes: null, want a list")
	}
	v := rep.Verification
	if v == nil || !v.Passed || v.Probes == 0 || v.Identical != v.Probes || !v.DeploymentsMatch || len(v.Deployments) == 0 {
		t.Errorf("verification: %+v", v)
	}
	kinds := map[string]bool{}
	for _, e := range rep.Events {
		kinds[e.Kind] = true
	}
	for _, k := range []string{"fault", "disaster", "restored", "first-good", "full-capacity"} {
		if !kinds[k] {
			t.Errorf("no %s event: %+v", k, rep.Events)
		}
	}
	if len(rep.Objectives) != 4 {
		t.Errorf("objectives: %+v", rep.Objectives)
	}
	if len(rep.Plan) == 0 {
		t.Error("no plan beside the measurement")
	}
	if !strings.Contains(stdout, "PASSED") || !strings.Contains(stdout, "RTO ") {
		t.Errorf("summary:\n%s", stdout)
	}
}

// An objective no site can meet makes the drill exit 8, with the
// objective marked missed.
func TestDrillImpossibleObjectiveFails(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a whole site through a disaster")
	}
	file := filepath.Join(t.TempDir(), "impossible.yaml")
	doc := `name: impossible
site: {replicas: 2, backupInterval: 5s}
load: {rate: 20}
objectives: {rto: 1ms}
phases:
  - {name: baseline, duration: 1s}
  - {name: disaster, duration: 1s, fault: {type: disaster}}
`
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, stdout, stderr, code := runScratchDrill(t, "--scenario", file)
	if code != exitDrillFailed || rep.Passed {
		t.Fatalf("exit %d (want %d), passed %v\nstdout:\n%s\nstderr:\n%s", code, exitDrillFailed, rep.Passed, stdout, stderr)
	}
	if len(rep.Objectives) != 1 || rep.Objectives[0].Name != "rto" || rep.Objectives[0].Met || rep.Objectives[0].Measured <= 0.001 {
		t.Errorf("objectives: %+v", rep.Objectives)
	}
	if !strings.Contains(stdout, "objective rto: MISSED") {
		t.Errorf("stdout does not say the objective was missed:\n%s", stdout)
	}
}

// Mistakes are refused before anything runs, with the reason.
func TestDrillRefusesBadInvocations(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("name: x\nphases:\n  - {name: a, duration: 1s, fault: {type: meteor}}\n"), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"drill", "--scenario", "nosuch"}, exitUsage, "default"},
		{[]string{"drill", "--scenario", bad}, exitError, "line 3"},
		{[]string{"drill", "--scenario", filepath.Join(dir, "missing.yaml")}, exitError, "no such file"},
		// The default scenario destroys the site: not a running one by accident.
		{[]string{"drill"}, exitError, "--allow-destroy"},
	} {
		_, stderr, code := run(t, filepath.Join(dir, "site"), tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
	out, _, code := run(t, dir, "drill", "--show", "default")
	if code != 0 {
		t.Fatalf("--show default: exit %d", code)
	}
	if _, err := drill.ParseScenario([]byte(out)); err != nil {
		t.Errorf("--show default prints a scenario that does not parse: %v", err)
	}
}

// A drill on a site it did not start: faults come and go, the site is
// still serving afterwards, and the drill stopped nothing.
func TestDrillOnRunningSite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a whole site")
	}
	site := filepath.Join(t.TempDir(), "site")
	gw, ctl := freeAddr(t), freeAddr(t)
	up, _ := startServing(t, site, "up", "--chaos", "--listen", gw, "--controller-listen", ctl, "--replicas", "2")
	scenario := filepath.Join(t.TempDir(), "s.yaml")
	os.WriteFile(scenario, []byte(`name: running
load: {rate: 20}
objectives: {maxFailedRequests: 0}
phases:
  - {name: baseline, duration: 1s}
  - {name: kill, duration: 2s, masked: true, fault: {type: replica-kill}}
  - {name: errors, duration: 2s, masked: true, fault: {type: replica-error}}
`), 0o644)
	out := filepath.Join(t.TempDir(), "report")
	stdout, stderr, code := run(t, site, "drill", "--gateway", "http://"+gw, "--controller", "http://"+ctl,
		"--scenario", scenario, "--out", out, "--json")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	var rep drill.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, stdout)
	}
	if !rep.Passed || len(rep.Phases) != 3 || rep.Site.Scratch || rep.Recovery != nil {
		t.Errorf("report: passed %v, %d phases, scratch %v, recovery %v", rep.Passed, len(rep.Phases), rep.Site.Scratch, rep.Recovery)
	}
	for _, p := range rep.Phases[1:] {
		if p.Failed != 0 || p.Sent == 0 || len(p.Notes) == 0 {
			t.Errorf("phase %s: sent %d, failed %d, notes %v", p.Name, p.Sent, p.Failed, p.Notes)
		}
	}
	if err := up.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("bulwark up is gone after the drill: %v", err)
	}
	// The site serves on, with the chaos faults cleared.
	resp, err := http.Get("http://" + gw + "/v2/models/iris/ready")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the site does not serve after the drill: %v %v", err, resp)
	}
	resp.Body.Close()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// With an off-site repository on a real S3-compatible server, the site
// copies its backups there and the disaster is recovered from it.
func TestDrillRecoversFromOffsiteS3(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a whole site through a disaster")
	}
	srv := s3test.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("BULWARK_OFFSITE_PASSWORD", "off-site secret")
	offsite := srv.Location("disaster-recovery", "site")
	scenario := filepath.Join(t.TempDir(), "s.yaml")
	os.WriteFile(scenario, []byte(`name: offsite
site: {replicas: 2, backupInterval: 3s}
load: {rate: 20}
objectives: {rto: 1m, rpo: 1m}
phases:
  - {name: baseline, duration: 2s}
  - {name: disaster, duration: 2s, fault: {type: disaster}}
`), 0o644)
	rep, stdout, stderr, code := runScratchDrill(t, "--scenario", scenario, "--offsite-repo", offsite)
	if code != 0 || !rep.Passed {
		t.Fatalf("exit %d, passed %v, problems %v\nstdout:\n%s\nstderr:\n%s", code, rep.Passed, rep.Problems, stdout, stderr)
	}
	if rep.Site.Offsite != offsite || rep.Recovery == nil || rep.Recovery.Repository != offsite {
		t.Fatalf("recovered from %+v, want the off-site %s", rep.Recovery, offsite)
	}
	if v := rep.Verification; v == nil || !v.Passed {
		t.Errorf("verification: %+v", v)
	}
}

// Changes made after the last backup are lost in a disaster, and the
// report lists them: here the two revisions that turned voting on and off,
// with the only backup taken at the start.
func TestDrillListsChangesLostAfterTheBackup(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a whole site through a disaster")
	}
	scenario := filepath.Join(t.TempDir(), "s.yaml")
	os.WriteFile(scenario, []byte(`name: lost-changes
site: {replicas: 3, backupInterval: 1h}
load: {rate: 20}
objectives: {maxFailedRequests: 0}
phases:
  - {name: baseline, duration: 1s}
  - {name: wrong, duration: 2s, masked: true, fault: {type: replica-wrong, vote: true}}
  - {name: disaster, duration: 1s, fault: {type: disaster}}
`), 0o644)
	rep, stdout, stderr, code := runScratchDrill(t, "--scenario", scenario)
	if code != 0 || !rep.Passed {
		t.Fatalf("exit %d, passed %v, problems %v\nstdout:\n%s\nstderr:\n%s", code, rep.Passed, rep.Problems, stdout, stderr)
	}
	rc := rep.Recovery
	if rc == nil || len(rc.Lost) != 2 {
		t.Fatalf("lost changes: %+v", rc)
	}
	for _, l := range rc.Lost {
		if l.Kind != "revision" || !l.At.After(rc.SnapshotAt) || !strings.Contains(l.What, "deployment iris revision") {
			t.Errorf("lost change %+v (snapshot of %v)", l, rc.SnapshotAt)
		}
	}
	if v := rep.Verification; v == nil || !v.Passed {
		t.Errorf("the restore is the backup, lost changes aside: %+v", v)
	}
	if !strings.Contains(stdout, "2 change(s) lost") {
		t.Errorf("summary:\n%s", stdout)
	}
}

// A scenario that needs the chaos API is refused, before any fault, on a
// site whose replicas run without it; the site is left as it was.
func TestDrillRefusesChaosFaultsWithoutChaosMode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a whole site")
	}
	site := filepath.Join(t.TempDir(), "site")
	gw, ctl := freeAddr(t), freeAddr(t)
	startServing(t, site, "up", "--listen", gw, "--controller-listen", ctl, "--replicas", "2")
	scenario := filepath.Join(t.TempDir(), "s.yaml")
	os.WriteFile(scenario, []byte("name: needs-chaos\nphases:\n  - {name: errors, duration: 1s, fault: {type: replica-error}}\n"), 0o644)
	_, stderr, code := run(t, site, "drill", "--gateway", "http://"+gw, "--controller", "http://"+ctl,
		"--scenario", scenario, "--out", filepath.Join(t.TempDir(), "report"))
	if code != exitError || !strings.Contains(stderr, "bulwark up --chaos") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	resp, err := http.Get("http://" + gw + "/v2/models/iris/ready")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the site does not serve after the refused drill: %v %v", err, resp)
	}
	resp.Body.Close()
}
