package drill

import (
	"errors"
	"strings"
	"testing"
)

// phase0 is a scenario whose only phase (lines 3-5) gets the fault or
// fields of a test case appended from line 6.
func phase0(extra string) string {
	return "name: t\nphases:\n  - name: a\n    duration: 10s\n    masked: false\n" + extra
}

func TestParseScenarioErrors(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		want []string // each a substring of the error
	}{
		{"unknown fault field", phase0("    fault:\n      type: replica-slow\n      rat: 0.5\n"),
			[]string{`line 8: phases[0].fault: unknown field "rat" (known: type, replicas,`}},
		{"unknown top field", "nme: t\nphases: [{name: a, duration: 1s}]\n",
			[]string{`line 1: document: unknown field "nme"`, "line 1: name: required"}},
		{"unknown site field", "name: t\nsite:\n  replica: 3\nphases: [{name: a, duration: 1s}]\n",
			[]string{`line 3: site: unknown field "replica" (known: replicas, backupInterval)`}},
		{"given twice", "name: t\nname: u\nphases: [{name: a, duration: 1s}]\n",
			[]string{"line 2: name: given twice (first on line 1)"}},
		{"integer type", "name: t\nsite: {replicas: three}\nphases: [{name: a, duration: 1s}]\n",
			[]string{`line 2: site.replicas: must be an integer, got "three"`}},
		{"duration without unit", "name: t\nsite:\n  backupInterval: 30\nphases: [{name: a, duration: 1s}]\n",
			[]string{`line 3: site.backupInterval: must be a duration such as 30s or 2m, got "30"`}},
		{"mapping type", "name: t\nload: 50\nphases: [{name: a, duration: 1s}]\n",
			[]string{`line 2: load: must be a mapping, got "50"`}},
		{"list type", "name: t\nphases: {name: a}\n", []string{"line 2: phases: must be a list, got a mapping"}},
		{"bool type", phase0("    fault: {type: replica-wrong, vote: yes}\n"),
			[]string{`line 6: phases[0].fault.vote: must be true or false, got "yes"`}},
		{"number type", phase0("    fault: {type: replica-slow, rate: half}\n"),
			[]string{`line 6: phases[0].fault.rate: must be a number, got "half"`}},
		{"empty name", "name: ''\nphases: [{name: a, duration: 1s}]\n", []string{"line 1: name: must not be empty"}},
		{"no phases", "name: t\nphases: []\n", []string{"line 2: phases: at least one phase is required"}},
		{"missing phases", "name: t\n", []string{"line 1: phases: required"}},
		{"phase fields required", "name: t\nphases:\n  - masked: true\n",
			[]string{"line 3: phases[0].name: required", "line 3: phases[0].duration: required"}},
		{"phase not a mapping", "name: t\nphases:\n  - baseline\n",
			[]string{`line 3: phases[0]: must be a mapping, got "baseline"`}},
		{"duplicate phase names", "name: t\nphases:\n  - {name: a, duration: 1s}\n  - {name: a, duration: 1s}\n",
			[]string{`line 4: phases[1].name: "a" is also the name of phases[0]`}},
		{"empty phase name", "name: t\nphases:\n  - {name: '', duration: 1s}\n",
			[]string{"line 3: phases[0].name: must not be empty"}},
		{"unsafe phase name", "name: t\nphases:\n  - {name: 'a/../b', duration: 1s}\n",
			[]string{`line 3: phases[0].name: may hold only letters, digits, '-', '_', '.' and spaces, got "a/../b"`}},
		{"zero duration", "name: t\nphases:\n  - name: a\n    duration: 0s\n",
			[]string{"line 4: phases[0].duration: must be positive and at most 24h0m0s, got 0s"}},
		{"too long", "name: t\nphases:\n  - name: a\n    duration: 25h\n",
			[]string{"line 4: phases[0].duration: must be positive and at most 24h0m0s, got 25h0m0s"}},
		{"unknown fault type", phase0("    fault: {type: rat}\n"),
			[]string{`line 6: phases[0].fault.type: unknown fault type "rat" (one of: replica-kill, replica-stop, replica-slow, replica-wrong, replica-error, controller-kill, bad-rollout, disaster)`}},
		{"fault type missing", phase0("    fault: {replicas: 1}\n"), []string{"line 6: phases[0].fault.type: required"}},
		{"latency on kill", phase0("    fault:\n      type: replica-kill\n      latency: 2s\n"),
			[]string{"line 8: phases[0].fault.latency: applies only to replica-slow, not to replica-kill"}},
		{"zero vote still given", phase0("    fault:\n      type: replica-error\n      vote: false\n"),
			[]string{"line 8: phases[0].fault.vote: applies only to replica-wrong"}},
		{"replicas on controller", phase0("    fault: {type: controller-kill, replicas: 1}\n"),
			[]string{"line 6: phases[0].fault.replicas: applies only to replica-kill, replica-stop, replica-slow, replica-wrong, replica-error, not to controller-kill"}},
		{"rate zero", phase0("    fault:\n      type: replica-slow\n      rate: 0\n"),
			[]string{"line 8: phases[0].fault.rate: must be more than 0 and at most 1"}},
		{"rate above one", phase0("    fault: {type: replica-error, rate: 1.5}\n"),
			[]string{"line 6: phases[0].fault.rate: must be more than 0 and at most 1 (a share of requests), got 1.5"}},
		{"rate nan", phase0("    fault: {type: replica-error, rate: .nan}\n"), []string{"phases[0].fault.rate: must be more than 0"}},
		{"status", phase0("    fault:\n      type: replica-error\n      status: 302\n"),
			[]string{"line 8: phases[0].fault.status: must be an HTTP error status, 400 to 599, got 302"}},
		{"replicas zero", phase0("    fault:\n      type: replica-kill\n      replicas: 0\n"),
			[]string{"line 8: phases[0].fault.replicas: must be at least 1, got 0"}},
		{"negative pause", phase0("    fault:\n      type: replica-stop\n      pause: -1s\n"),
			[]string{"line 8: phases[0].fault.pause: must be at least 0 and shorter than the phase (10s), got -1s"}},
		{"pause as long as phase", phase0("    fault:\n      type: replica-stop\n      pause: 10s\n"),
			[]string{"line 8: phases[0].fault.pause: must be at least 0 and shorter than the phase"}},
		{"load rate zero", "name: t\nload:\n  rate: 0\nphases: [{name: a, duration: 1s}]\n",
			[]string{"line 3: load.rate: must be 1 to 100000 requests a second, got 0"}},
		{"load rate too high", "name: t\nload:\n  rate: 100001\nphases: [{name: a, duration: 1s}]\n",
			[]string{"line 3: load.rate: must be 1 to 100000"}},
		{"load timeout zero", "name: t\nload:\n  timeout: 0\nphases: [{name: a, duration: 1s}]\n",
			[]string{"line 3: load.timeout: must be positive and at most 10m0s, got 0s"}},
		{"load timeout too long", "name: t\nload:\n  timeout: 11m\nphases: [{name: a, duration: 1s}]\n",
			[]string{"line 3: load.timeout: must be positive and at most 10m0s, got 11m0s"}},
		{"load model", "name: t\nload:\n  model: ../x\nphases: [{name: a, duration: 1s}]\n",
			[]string{"line 3: load.model: "}},
		{"site replicas", "name: t\nsite:\n  replicas: 0\nphases: [{name: a, duration: 1s}]\n",
			[]string{"line 3: site.replicas: must be 1 to 100, got 0"}},
		{"two disasters", "name: t\nphases:\n  - {name: a, duration: 1s, fault: {type: disaster}}\n  - {name: b, duration: 1s, fault: {type: disaster}}\n",
			[]string{"line 4: phases[1].fault.type: a second disaster (the first is phases[0]); a scenario may have at most one"}},
		{"masked disaster", "name: t\nphases:\n  - name: a\n    duration: 1s\n    masked: true\n    fault: {type: disaster}\n",
			[]string{"line 5: phases[0].masked: a disaster cannot be masked: clients of the destroyed site see errors until it is recovered"}},
		{"masked wrong without vote", "name: t\nphases:\n  - name: a\n    duration: 1s\n    masked: true\n    fault: {type: replica-wrong}\n",
			[]string{"line 6: phases[0].fault.vote: a masked replica-wrong phase needs vote: true"}},
		{"masked not a bool", "name: t\nphases:\n  - name: a\n    duration: 10s\n    masked: yes\n",
			[]string{`line 5: phases[0].masked: must be true or false, got "yes"`}},
		{"negative objectives", "name: t\nobjectives:\n  rpo: -1s\n  maxFailedRequests: -2\nphases: [{name: a, duration: 1s, fault: {type: disaster}}]\n",
			[]string{"line 3: objectives.rpo: must not be negative, got -1s", "line 4: objectives.maxFailedRequests: must not be negative, got -2"}},
		{"rto without disaster", "name: t\nobjectives:\n  rto: 1m\n  rtoFull: 2m\n  rpo: 1m\nphases: [{name: a, duration: 1s}]\n",
			[]string{"line 3: objectives.rto: needs a disaster phase", "line 4: objectives.rtoFull: needs a disaster phase", "line 5: objectives.rpo: needs a disaster phase"}},
		{"several documents", "name: t\n---\nname: u\n", []string{"line 3: document: 2 documents in one file"}},
		{"empty document", "# nothing\n", []string{"document: empty: expected a scenario"}},
		{"list document", "- name: t\n", []string{"line 1: document: must be a mapping, got a list"}},
		{"yaml syntax", "name: t\n  phases: [\n", []string{"invalid scenario: yaml: line"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := ParseScenario([]byte(c.doc))
			if err == nil {
				t.Fatalf("no error; parsed %+v", s)
			}
			if !errors.Is(err, ErrInvalidScenario) {
				t.Errorf("error %v is not ErrInvalidScenario", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
				}
			}
		})
	}
}

func TestParseScenarioCollectsErrorsInLineOrder(t *testing.T) {
	doc := "name: ''\nload:\n  rate: 0\n  timeout: forever\nphases:\n  - {name: a, duration: 0s, fault: {type: rat}}\n"
	_, err := ParseScenario([]byte(doc))
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{"line 1: name:", "line 3: load.rate:", "line 4: load.timeout:", "line 6: phases[0]."}
	if len(lines) != 5 {
		t.Fatalf("got %d errors, want 5:\n%v", len(lines), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("error %d = %q, want prefix %q", i, lines[i], w)
		}
	}
}

func TestParseScenarioBadValueNotRepeated(t *testing.T) {
	// A duration that does not parse is one error, not also "must be positive".
	_, err := ParseScenario([]byte("name: t\nphases:\n  - {name: a, duration: soon}\n"))
	if err == nil || strings.Count(err.Error(), "phases[0].duration") != 1 {
		t.Fatalf("err = %v, want exactly one error on phases[0].duration", err)
	}
}

func TestParseScenarioMaskedBadRolloutAllowed(t *testing.T) {
	doc := "name: t\nphases:\n  - name: a\n    duration: 10s\n    masked: true\n    fault: {type: bad-rollout}\n"
	if _, err := ParseScenario([]byte(doc)); err != nil {
		t.Fatalf("a masked bad rollout: %v", err)
	}
}

func TestScenarioCheck(t *testing.T) {
	cases := []struct {
		name     string
		phases   string
		replicas int
		want     string // "" for no error
	}{
		{"kill one of three", "{name: a, duration: 1s, masked: true, fault: {type: replica-kill}}", 3, ""},
		{"kill all masked", "{name: a, duration: 1s, masked: true, fault: {type: replica-kill, replicas: 3}}", 3,
			"phases[0]: kills 3 of 3 replicas: nothing can mask that"},
		{"stop the only replica", "{name: a, duration: 1s, masked: true, fault: {type: replica-stop}}", 1,
			"phases[0]: stops 1 of 1 replicas: nothing can mask that"},
		{"kill all unmasked", "{name: a, duration: 1s, fault: {type: replica-kill, replicas: 3}}", 3, ""},
		{"more than the site", "{name: a, duration: 1s, fault: {type: replica-error, replicas: 4}}", 3,
			"phases[0]: fails requests on 4 replicas, but the site has 3"},
		{"wrong one of three", "{name: a, duration: 1s, masked: true, fault: {type: replica-wrong, vote: true}}", 3, ""},
		{"wrong two of five", "{name: a, duration: 1s, masked: true, fault: {type: replica-wrong, vote: true, replicas: 2}}", 5,
			"phases[0]: corrupts the answers of 2 of 5 replicas: a vote of 3 needs 2 right answers, so at most 1 of them may be wrong"},
		{"wrong one of two", "{name: a, duration: 1s, masked: true, fault: {type: replica-wrong, vote: true}}", 2,
			"phases[0]: corrupts the answers of 1 of 2 replicas: a vote of 3 needs 2 right answers"},
		{"controller on one replica", "{name: a, duration: 1s, masked: true, fault: {type: controller-kill}}", 1, ""},
		{"no replicas", "{name: a, duration: 1s}", 0, "site.replicas: the site has 0 replicas"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := ParseScenario([]byte("name: t\nphases:\n  - " + c.phases + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			err = s.Check(c.replicas)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("Check(%d) = %v, want nil", c.replicas, err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("Check(%d) = %v, want %q", c.replicas, err, c.want)
			case c.want != "" && !errors.Is(err, ErrInvalidScenario):
				t.Fatalf("Check error %v is not ErrInvalidScenario", err)
			}
		})
	}
}
