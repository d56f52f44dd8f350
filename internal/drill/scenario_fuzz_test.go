package drill

import (
	"reflect"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParseScenario: any bytes give a scenario or an error, never a
// panic; a scenario that parses is valid, and marshalling and parsing it
// again gives the same scenario.
func FuzzParseScenario(f *testing.F) {
	for _, name := range BuiltinNames() {
		_, raw, err := Builtin(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	for _, seed := range []string{
		everyFault,
		"",
		"name: t\nphases: [{name: a, duration: 1s}]\n",
		"name: t\nphases:\n  - {name: a, duration: 10s, masked: true, fault: {type: replica-stop, pause: 9s}}\n",
		"name: [x\n",
		"name: &a t\ndescription: *a\nphases: [&p {name: a, duration: 1s}, *p]\n",
		"name: t\nphases: [{name: a, duration: 1s, fault: {type: replica-slow, rate: .nan, latency: -1s}}]\n",
		"name: t\nobjectives: {rto: 1m, maxFailedRequests: -1}\nphases: {}\n",
		"name: t\n---\nname: u\n",
		"- 1\n- 2\n",
		"name: t\nload: {rate: 1e9, timeout: 9223372036854775807ns}\nphases: [{name: '', duration: 25h}]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseScenario(b)
		if err != nil {
			if s != nil {
				t.Fatalf("a scenario and an error: %v", err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("a parsed scenario fails Validate: %v", err)
		}
		out, err := yaml.Marshal(s)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		again, err := ParseScenario(out)
		if err != nil {
			t.Fatalf("parse the marshalled scenario: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(again, s) {
			t.Fatalf("round trip changed the scenario\nbefore %+v\nafter  %+v", s, again)
		}
	})
}
