package drill

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestBuiltinScenariosParseAndCheck(t *testing.T) {
	names := BuiltinNames()
	if !reflect.DeepEqual(names, []string{"default", "short"}) {
		t.Fatalf("BuiltinNames() = %v, want [default short]", names)
	}
	for _, name := range names {
		s, raw, err := Builtin(name)
		if err != nil {
			t.Fatalf("Builtin(%q): %v", name, err)
		}
		if s.Name != name {
			t.Errorf("%s: name %q", name, s.Name)
		}
		if len(raw) == 0 || !strings.Contains(string(raw), "phases:") {
			t.Errorf("%s: raw YAML not returned", name)
		}
		if err := s.Validate(); err != nil {
			t.Errorf("%s: Validate: %v", name, err)
		}
		if err := s.Check(s.Site.Replicas); err != nil {
			t.Errorf("%s: Check(%d): %v", name, s.Site.Replicas, err)
		}
		if i, ok := s.Disaster(); !ok || i != len(s.Phases)-1 {
			t.Errorf("%s: Disaster() = %d, %v; want the last phase", name, i, ok)
		}
	}
}

func TestBuiltinDefaultScenario(t *testing.T) {
	s, _, err := Builtin("default")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range s.Phases {
		names = append(names, p.Name)
	}
	want := []string{"baseline", "replica-sigkill", "replica-sigstop", "replica-slow", "replica-wrong",
		"replica-errors", "controller-sigkill", "bad-rollout", "pre-disaster", "disaster"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("phases %v, want %v", names, want)
	}
	if d := s.Duration(); d < 3*time.Minute || d > 5*time.Minute {
		t.Errorf("Duration() = %s, want a demo of a few minutes", d)
	}
	if s.Site != (SiteSpec{Replicas: 3, BackupInterval: Duration(30 * time.Second)}) {
		t.Errorf("site %+v", s.Site)
	}
	if s.Load.Rate != 50 || s.Load.Timeout.D() != 5*time.Second || s.Load.Workers != DefaultLoadWorkers {
		t.Errorf("load %+v", s.Load)
	}
	o := s.Objectives
	if o.RTO.D() != time.Minute || o.RTOFull.D() != 2*time.Minute || o.RPO.D() != 2*time.Minute ||
		o.MaxFailedRequests == nil || *o.MaxFailedRequests != 0 {
		t.Errorf("objectives %+v", o)
	}
	byName := map[string]Phase{}
	for _, p := range s.Phases {
		byName[p.Name] = p
	}
	if p := byName["bad-rollout"]; p.Masked || p.Fault.Type != FaultBadRollout {
		t.Errorf("bad-rollout phase %+v", p)
	}
	if f := byName["replica-wrong"].Fault; !f.Vote || f.Replicas != 1 || f.Rate != 1 {
		t.Errorf("replica-wrong fault %+v", f)
	}
	if f := byName["replica-sigstop"].Fault; f.Pause.D() != 8*time.Second {
		t.Errorf("replica-sigstop fault %+v", f)
	}
}

func TestBuiltinShortScenarioIsShort(t *testing.T) {
	s, _, err := Builtin("short")
	if err != nil {
		t.Fatal(err)
	}
	if d := s.Duration(); d >= 45*time.Second {
		t.Errorf("short scenario lasts %s", d)
	}
	if s.Site.BackupInterval.D() != 5*time.Second || s.Load.Rate != 40 || s.Objectives.RPO.D() != time.Minute {
		t.Errorf("short scenario %+v", s)
	}
}

func TestBuiltinUnknownNameListsNames(t *testing.T) {
	_, _, err := Builtin("chaos")
	if !errors.Is(err, ErrUnknownScenario) {
		t.Fatalf("err = %v, want ErrUnknownScenario", err)
	}
	if !strings.Contains(err.Error(), "default, short") {
		t.Errorf("error %q does not list the built-in names", err)
	}
}

// everyFault uses every fault type, with the defaults left out where it
// can.
const everyFault = `name: every fault
description: one phase per fault type
site: {replicas: 5, backupInterval: 10s}
load: {rate: 20, model: iris, timeout: 2s, workers: 4}
objectives: {rto: 30s, rtoFull: 1m, rpo: 45s, maxFailedRequests: 3}
phases:
  - {name: kill, duration: 2s, masked: true, fault: {type: replica-kill, replicas: 2}}
  - {name: stop, duration: 3s, masked: true, fault: {type: replica-stop, pause: 1s}}
  - {name: slow, duration: 4s, masked: true, fault: {type: replica-slow, rate: 0.25, latency: 500ms}}
  - {name: wrong, duration: 5s, masked: true, fault: {type: replica-wrong, vote: true}}
  - {name: errors, duration: 6s, fault: {type: replica-error, status: 503, rate: 0.5, replicas: 5}}
  - {name: controller, duration: 7s, masked: true, fault: {type: controller-kill}}
  - {name: rollout v2.1, duration: 8s, masked: true, fault: {type: bad-rollout}}
  - {name: calm_1, duration: 9s}
  - {name: disaster, duration: 10s, fault: {type: disaster}}
`

func TestParseScenarioEveryFault(t *testing.T) {
	s, err := ParseScenario([]byte(everyFault))
	if err != nil {
		t.Fatal(err)
	}
	maxFailed := 3
	sec := func(n float64) Duration { return Duration(n * float64(time.Second)) }
	want := &Scenario{
		Name: "every fault", Description: "one phase per fault type",
		Site:       SiteSpec{Replicas: 5, BackupInterval: sec(10)},
		Load:       LoadSpec{Rate: 20, Model: "iris", Timeout: sec(2), Workers: 4},
		Objectives: Objectives{RTO: sec(30), RTOFull: sec(60), RPO: sec(45), MaxFailedRequests: &maxFailed},
		Phases: []Phase{
			{Name: "kill", Duration: sec(2), Masked: true, Fault: &Fault{Type: FaultReplicaKill, Replicas: 2}},
			{Name: "stop", Duration: sec(3), Masked: true, Fault: &Fault{Type: FaultReplicaStop, Replicas: 1, Pause: sec(1)}},
			{Name: "slow", Duration: sec(4), Masked: true, Fault: &Fault{Type: FaultReplicaSlow, Replicas: 1, Rate: 0.25, Latency: sec(0.5)}},
			{Name: "wrong", Duration: sec(5), Masked: true, Fault: &Fault{Type: FaultReplicaWrong, Replicas: 1, Rate: 1, Vote: true}},
			{Name: "errors", Duration: sec(6), Fault: &Fault{Type: FaultReplicaError, Replicas: 5, Rate: 0.5, Status: 503}},
			{Name: "controller", Duration: sec(7), Masked: true, Fault: &Fault{Type: FaultControllerKill}},
			{Name: "rollout v2.1", Duration: sec(8), Masked: true, Fault: &Fault{Type: FaultBadRollout}},
			{Name: "calm_1", Duration: sec(9)},
			{Name: "disaster", Duration: sec(10), Fault: &Fault{Type: FaultDisaster}},
		},
	}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("parsed\n%+v\nwant\n%+v", s, want)
	}
	if i, ok := s.Disaster(); !ok || i != 8 {
		t.Errorf("Disaster() = %d, %v", i, ok)
	}
	if d := s.Duration(); d != 54*time.Second {
		t.Errorf("Duration() = %s, want 54s", d)
	}
	if err := s.Check(5); err != nil {
		t.Errorf("Check(5): %v", err)
	}
	assertRoundTrip(t, s)
}

// assertRoundTrip marshals s and parses it again.
func assertRoundTrip(t *testing.T, s *Scenario) {
	t.Helper()
	b, err := yaml.Marshal(s)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	again, err := ParseScenario(b)
	if err != nil {
		t.Fatalf("parse the marshalled scenario: %v\n%s", err, b)
	}
	if !reflect.DeepEqual(again, s) {
		t.Fatalf("round trip changed the scenario\nbefore %+v\nafter  %+v\nYAML:\n%s", s, again, b)
	}
}

func TestParseScenarioDefaults(t *testing.T) {
	s, err := ParseScenario([]byte(`name: d
phases:
  - name: a
    duration: 1s
    fault: {type: replica-slow}
  - name: b
    duration: 1s
    fault: {type: replica-error}
`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Site != (SiteSpec{Replicas: 3, BackupInterval: Duration(30 * time.Second)}) {
		t.Errorf("site %+v", s.Site)
	}
	if s.Load != (LoadSpec{Rate: 50, Timeout: Duration(5 * time.Second), Workers: 16}) {
		t.Errorf("load %+v", s.Load)
	}
	if s.Objectives != (Objectives{}) {
		t.Errorf("objectives %+v, want none judged", s.Objectives)
	}
	if f := *s.Phases[0].Fault; f != (Fault{Type: FaultReplicaSlow, Replicas: 1, Rate: 1, Latency: Duration(2 * time.Second)}) {
		t.Errorf("slow fault %+v", f)
	}
	if f := *s.Phases[1].Fault; f != (Fault{Type: FaultReplicaError, Replicas: 1, Rate: 1, Status: 500}) {
		t.Errorf("error fault %+v", f)
	}
	if _, ok := s.Disaster(); ok {
		t.Error("Disaster() found one")
	}
	assertRoundTrip(t, s)
}

func TestScenarioErrorIsInvalid(t *testing.T) {
	_, err := ParseScenario([]byte("name: x\nphases: []\n"))
	if !errors.Is(err, ErrInvalidScenario) {
		t.Fatalf("err = %v, want ErrInvalidScenario", err)
	}
	_, err = ParseScenario([]byte("name: [x\n"))
	if !errors.Is(err, ErrInvalidScenario) {
		t.Fatalf("syntax err = %v, want ErrInvalidScenario", err)
	}
}

func TestScenarioValidateInCode(t *testing.T) {
	s := &Scenario{Name: "code", Site: SiteSpec{Replicas: 3, BackupInterval: Duration(time.Second)},
		Load:   LoadSpec{Rate: 1, Timeout: Duration(time.Second), Workers: 1},
		Phases: []Phase{{Name: "p", Duration: Duration(time.Second), Fault: &Fault{Type: FaultReplicaKill, Replicas: 1, Latency: Duration(time.Second)}}}}
	err := s.Validate()
	if err == nil || err.Error() != "phases[0].fault.latency: applies only to replica-slow, not to replica-kill" {
		t.Fatalf("Validate() = %v", err)
	}
	s.Phases[0].Fault.Latency = 0
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
}

func BenchmarkParseScenarioDefault(b *testing.B) {
	_, raw, err := Builtin("default")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseScenario(raw); err != nil {
			b.Fatal(err)
		}
	}
}
