package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/plan"
)

// These run `bulwark plan` through cobra in the test process: the command
// reads real files and computes; it starts nothing.

const planDeployment = `apiVersion: bulwark.dev/v1
kind: Deployment
metadata: {name: iris}
spec:
  model: iris
  versions: [{version: "1"}]
  replicas: 3
  zones: [a, b, c]
  policy: {vote: {enabled: true}}
`

// runPlan runs the root command with args and returns stdout and the exit
// code the process would have.
func runPlan(t *testing.T, stdin string, args ...string) (string, int, error) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	err := root.ExecuteContext(context.Background())
	return out.String(), exitCode(err), err // exitCode also prints err, as the binary does
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPlanText(t *testing.T) {
	dep := writeFile(t, "iris.yaml", planDeployment)
	asm := writeFile(t, "failures.yaml", "backup:\n  duration: 5m\nsite:\n  disastersPerYear: 365\n")
	out, code, err := runPlan(t, "", "plan", "-f", dep, "--assumptions", asm, "--replica-mtbf", "7d")
	if code != 0 {
		t.Fatalf("exit %d: %v", code, err)
	}
	// M = 1 y / 365 = 24 h, δ = 5 min: Young 120 min = 2 h, Daly 116.69 min.
	for _, want := range []string{
		"Plan for deployment iris: 3 replicas in zones a (1), b (1), c (1); 2 must be up: voting",
		"default (the controller's measured restart)",
		"τ = √(2δM)\n      = √(2 · 300 s · 86400 s)\n      = 2 h",
		"= 1.945 h",
		"A = MTBF / (MTBF + MTTR)\n      = 604800 s / (604800 s + 0.2 s)",
		"RTO",
		"13.24 s",
		"Daly, \"A higher order estimate",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, re := range []string{`replica\.mtbf\s+7 d\s+flag\n`, `site\.disastersPerYear\s+365 per year\s+file\n`, `zone\.mttr\s+4 h\s+default\n`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output does not match %s:\n%s", re, out)
		}
	}
}

func TestPlanJSON(t *testing.T) {
	dep := writeFile(t, "iris.yaml", planDeployment)
	asm := writeFile(t, "failures.yaml", "replica: {mttr: 1s}\n")
	out, code, err := runPlan(t, "", "plan", "-f", dep, "--assumptions", asm, "--backup-interval", "24h", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %v", code, err)
	}
	var got plan.Result
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
	// The same inputs through the Go API give the same plan.
	a := plan.Defaults()
	a.ReplicaMTTR, a.BackupInterval = 1, 24*plan.Hour
	want, err := plan.Compute(plan.Inputs{Topology: got.Topology, Assumptions: a})
	if err != nil {
		t.Fatal(err)
	}
	if got.Topology.K != 2 || got.Availability.N != 3 {
		t.Errorf("k of n = %d of %d, want 2 of 3", got.Topology.K, got.Availability.N)
	}
	if got.Availability != want.Availability || got.Backup != want.Backup || got.Recovery != want.Recovery {
		t.Errorf("JSON plan differs from Compute:\n%+v\n%+v", got, want)
	}
	if got.Assumptions.Sources["replica.mttr"] != "file" || got.Assumptions.Sources["backup.interval"] != "flag" {
		t.Errorf("sources %v", got.Assumptions.Sources)
	}
	if len(got.Formulas) != len(want.Formulas) || got.Formulas[0].Expression == "" || got.Formulas[0].Substituted == "" {
		t.Errorf("formulas %+v", got.Formulas)
	}
}

func TestPlanStdinAndName(t *testing.T) {
	two := planDeployment + "---\n" + strings.Replace(planDeployment, "name: iris", "name: mnist", 1)
	out, code, err := runPlan(t, two, "plan", "-f", "-", "--name", "mnist")
	if code != 0 || !strings.Contains(out, "Plan for deployment mnist") {
		t.Fatalf("exit %d: %v\n%s", code, err, out)
	}
}

func TestPlanErrors(t *testing.T) {
	dep := writeFile(t, "iris.yaml", planDeployment)
	single := writeFile(t, "single.yaml", strings.Replace(planDeployment, "replicas: 3", "replicas: 1", 1))
	two := writeFile(t, "two.yaml", planDeployment+"---\n"+strings.Replace(planDeployment, "name: iris", "name: mnist", 1))
	broken := writeFile(t, "broken.yaml", strings.Replace(planDeployment, "replicas: 3", "replicas: 0", 1))
	zero := writeFile(t, "zero.yaml", "replica:\n  mtbf: 0s\n")
	unknown := writeFile(t, "unknown.yaml", "replica:\n  mtfb: 1h\n")
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no file", []string{"plan"}, exitUsage, "-f DEPLOYMENT is required"},
		{"missing file", []string{"plan", "-f", filepath.Join(t.TempDir(), "nope.yaml")}, exitError, "read deployment"},
		{"zero MTBF", []string{"plan", "-f", dep, "--assumptions", zero}, exitInvalid, "zero.yaml: line 2: replica.mtbf: must be a positive, finite duration, got 0 s"},
		{"unknown key", []string{"plan", "-f", dep, "--assumptions", unknown}, exitInvalid, "line 2: replica.mtfb: unknown key (known: mtbf, mttr)"},
		{"bad flag value", []string{"plan", "-f", dep, "--zone-mttr", "soon"}, exitUsage, `--zone-mttr: zone.mttr: "soon" is not a duration`},
		{"negative flag", []string{"plan", "-f", dep, "--replica-mttr", "-1s"}, exitInvalid, "replica.mttr: must be a positive"},
		{"k above n", []string{"plan", "-f", single}, exitInvalid, "serving.k: 2 replicas must be up but the deployment has 1 (voting"},
		{"assumed k above n", []string{"plan", "-f", dep, "--serving-k", "4"}, exitInvalid, "4 replicas must be up but the deployment has 3"},
		{"two deployments", []string{"plan", "-f", two}, exitUsage, "holds 2 deployments (iris, mnist): pick one with --name"},
		{"unknown name", []string{"plan", "-f", two, "--name", "cifar"}, exitNotFound, `deployment "cifar" not found (the file has iris, mnist)`},
		{"invalid deployment", []string{"plan", "-f", broken}, exitInvalid, "broken.yaml: line 7: spec.replicas: must be at least 1, got 0"},
		{"empty deployment file", []string{"plan", "-f", "-"}, exitInvalid, "no deployment in the file"},
	}
	for _, c := range cases {
		_, code, err := runPlan(t, "", c.args...)
		if code != c.code || err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: exit %d, error %v; want exit %d and %q", c.name, code, err, c.code, c.want)
		}
	}
}

func TestFlagOf(t *testing.T) {
	for key, want := range map[string]string{
		"replica.mtbf": "replica-mtbf", "zone.failuresPerYear": "zone-failures-per-year",
		"restore.firstInference": "restore-first-inference", "serving.k": "serving-k",
	} {
		if got := flagOf(key); got != want {
			t.Errorf("flagOf(%q) = %q, want %q", key, got, want)
		}
	}
}
