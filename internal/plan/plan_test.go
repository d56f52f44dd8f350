package plan

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/control"
)

func parseDeployment(t *testing.T, doc string) *control.Deployment {
	t.Helper()
	d, err := control.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestTopologyOf(t *testing.T) {
	cases := []struct {
		name, doc string
		zones     []ZoneReplicas
		k         int
	}{
		{"no zones", "replicas: 3\n", []ZoneReplicas{{"", 3}}, 1},
		{"round robin", "replicas: 4\n  zones: [a, b, c]\n", []ZoneReplicas{{"a", 2}, {"b", 1}, {"c", 1}}, 1},
		{"more zones than replicas", "replicas: 2\n  zones: [a, b, c]\n", []ZoneReplicas{{"a", 1}, {"b", 1}}, 1},
		{"voting", "replicas: 3\n  zones: [a, b, c]\n  policy: {vote: {enabled: true}}\n", []ZoneReplicas{{"a", 1}, {"b", 1}, {"c", 1}}, 2},
		{"voting of 5", "replicas: 5\n  policy: {vote: {enabled: true, replicas: 5}}\n", []ZoneReplicas{{"", 5}}, 3},
	}
	for _, c := range cases {
		d := parseDeployment(t, "apiVersion: bulwark.dev/v1\nkind: Deployment\nmetadata: {name: iris}\nspec:\n  model: iris\n  versions: [{version: \"1\"}]\n  "+c.doc)
		top, err := TopologyOf(d)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if top.K != c.k || len(top.Zones) != len(c.zones) || top.Deployment != "iris" {
			t.Fatalf("%s: got %+v, want zones %v k %d", c.name, top, c.zones, c.k)
		}
		for i := range c.zones {
			if top.Zones[i] != c.zones[i] {
				t.Errorf("%s: zone %d = %v, want %v", c.name, i, top.Zones[i], c.zones[i])
			}
		}
	}
}

// A canary's versions are pooled by the gateway; a version at weight 0
// gets no traffic and does not count.
func TestTopologyOfCanary(t *testing.T) {
	d := parseDeployment(t, `apiVersion: bulwark.dev/v1
kind: Deployment
metadata: {name: iris}
spec:
  model: iris
  versions: [{version: "1", weight: 90}, {version: "2", weight: 10}, {version: "3", weight: 0}]
  replicas: 3
  zones: [a, b]
`)
	top, err := TopologyOf(d)
	if err != nil {
		t.Fatal(err)
	}
	if top.N() != 6 || top.Zones[0] != (ZoneReplicas{"a", 4}) || top.Zones[1] != (ZoneReplicas{"b", 2}) {
		t.Errorf("topology %+v, want a:4 b:2", top)
	}
	if got := top.Describe(); got != "6 replicas in zones a (4), b (2)" {
		t.Errorf("Describe = %q", got)
	}
}

func threeZones(k int) Topology {
	return Topology{Deployment: "iris", K: k, KReason: "test", Zones: []ZoneReplicas{{"a", 1}, {"b", 1}, {"c", 1}}}
}

// The defaults, worked by hand:
//
//	RTO = 1 GiB / 100 MiB/s + 2 s + 1 s = 10.24 + 3 = 13.24 s
//	M = 1 y / 0.1 = 10 y = 315,360,000 s; δ = 300 s
//	Young = √(2 · 300 · 315360000) = 434,989.655 s
//	Daly = Young · [1 + √(300/630720000)/3 + (300/630720000)/9] − 300 = 434,789.678 s
//	T = Daly + δ = 435,089.678 s; RPO = T/2 + δ = 217,844.839 s, worst T + δ = 435,389.678 s
func TestComputeDefaults(t *testing.T) {
	r, err := Compute(Inputs{Topology: threeZones(2), Assumptions: Defaults()})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "RTO", float64(r.Recovery.RTO), 13.24, 1e-9)
	near(t, "M", float64(r.Backup.SiteMTBF), 315360000, 1e-3)
	near(t, "Young", float64(r.Backup.Young), 434989.6550494046, 1e-6)
	near(t, "Daly", float64(r.Backup.Daly), 434789.6780384571, 1e-6)
	near(t, "T", float64(r.Backup.Interval), 434789.6780384571+300, 1e-6)
	near(t, "RPO", float64(r.Backup.RPOExpected), (434789.6780384571+300)/2+300, 1e-6)
	near(t, "worst RPO", float64(r.Backup.RPOWorst), 434789.6780384571+600, 1e-6)
	if r.Backup.IntervalSource != "daly" {
		t.Errorf("interval source %q", r.Backup.IntervalSource)
	}
	// Serving: 2 of 3 across three zones, each replica up with A·Az.
	a, _ := RepairAvailability(30*Day, 0.2)
	az, _ := RateAvailability(1, 4*Hour)
	p := a * az
	want := 3*p*p*(1-p) + p*p*p
	near(t, "serving", r.Availability.Serving, want, 1e-12)
	// Site: a disaster every 10 y, down for 13.24 s.
	near(t, "site", r.Availability.Site, 315360000/(315360000+13.24), 1e-15)
	near(t, "overall", r.Availability.Overall, want*r.Availability.Site, 1e-12)
	near(t, "downtime", float64(r.Availability.OverallDowntimePerYear), (1-r.Availability.Overall)*float64(Year), 1e-3)
	near(t, "nines", r.Availability.OverallNines, -math.Log10(1-r.Availability.Overall), 1e-6)
	checkFinite(t, r)
}

func TestComputeAssumedIntervalAndK(t *testing.T) {
	a := Defaults()
	a.BackupInterval, a.K = 24*Hour, 3
	r, err := Compute(Inputs{Topology: threeZones(1), Assumptions: a})
	if err != nil {
		t.Fatal(err)
	}
	if r.Backup.IntervalSource != "assumed" || r.Backup.Interval != 24*Hour {
		t.Errorf("interval %v from %s", r.Backup.Interval, r.Backup.IntervalSource)
	}
	near(t, "RPO", float64(r.Backup.RPOExpected), float64(12*Hour+5*Minute), 1e-9)
	if r.Topology.K != 3 || r.Availability.K != 3 || r.Topology.KReason != "serving.k assumed" {
		t.Errorf("k = %d (%s), want the assumed 3", r.Topology.K, r.Topology.KReason)
	}
}

func TestComputeRefusesBadInput(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Inputs)
		want string
	}{
		{"zero MTBF", func(in *Inputs) { in.Assumptions.ReplicaMTBF = 0 }, "replica.mtbf: must be a positive"},
		{"negative MTTR", func(in *Inputs) { in.Assumptions.ReplicaMTTR = -1 }, "replica.mttr: must be a positive"},
		{"k above n", func(in *Inputs) { in.Topology.K = 4 }, "serving.k: 4 replicas must be up but the deployment has 3"},
		{"assumed k above n", func(in *Inputs) { in.Assumptions.K = 5 }, "serving.k: 5 replicas must be up"},
		{"no replicas", func(in *Inputs) { in.Topology.Zones = nil }, "no replicas"},
		{"k zero", func(in *Inputs) { in.Topology.K = 0 }, "serving.k: must be at least 1"},
		{"restore never ends", func(in *Inputs) { in.Assumptions.RestoreThroughput = 1e-320 }, "not a finite number"},
	}
	for _, c := range cases {
		in := Inputs{Topology: threeZones(1), Assumptions: Defaults()}
		c.edit(&in)
		_, err := Compute(in)
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error %v, want ErrInvalid containing %q", c.name, err, c.want)
		}
	}
}

// The JSON names every input, every formula and every result, with units
// in the names.
func TestResultJSONShape(t *testing.T) {
	a := Defaults()
	if err := a.Set("replica.mtbf", "7d", "flag"); err != nil {
		t.Fatal(err)
	}
	r, err := Compute(Inputs{Topology: threeZones(2), Assumptions: a})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var withFormulas struct {
		Formulas []map[string]any `json:"formulas"`
	}
	if err := json.Unmarshal(b, &withFormulas); err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	if len(top) != 6 {
		t.Errorf("top-level keys: %d, want 6 (topology, assumptions, availability, recovery, backup, formulas)", len(top))
	}
	m := map[string]map[string]any{}
	for _, section := range []string{"topology", "assumptions", "availability", "recovery", "backup"} {
		var s map[string]any
		if err := json.Unmarshal(top[section], &s); err != nil {
			t.Fatalf("%s: %v", section, err)
		}
		m[section] = s
	}
	want := map[string][]string{
		"topology":     {"deployment", "zones", "k", "kReason"},
		"assumptions":  {"replicaMtbfSeconds", "replicaMttrSeconds", "zoneFailuresPerYear", "zoneMttrSeconds", "siteDisastersPerYear", "backupDurationSeconds", "backupIntervalSeconds", "restoreSizeBytes", "restoreThroughputBytesPerSecond", "restoreStartupSeconds", "firstInferenceSeconds", "servingK", "sources"},
		"availability": {"replica", "zone", "k", "n", "serving", "servingUnavailability", "servingDowntimeSecondsPerYear", "servingNines", "site", "overall", "overallUnavailability", "overallDowntimeSecondsPerYear", "overallNines"},
		"recovery":     {"transferSeconds", "rtoSeconds"},
		"backup":       {"siteMtbfSeconds", "deltaSeconds", "youngSeconds", "dalySeconds", "intervalSeconds", "intervalSource", "rpoExpectedSeconds", "rpoWorstSeconds"},
	}
	for section, keys := range want {
		for _, k := range keys {
			if _, ok := m[section][k]; !ok {
				t.Errorf("%s lacks %q: %v", section, k, m[section])
			}
		}
		if len(m[section]) != len(keys) {
			t.Errorf("%s has %d keys, want %d: %v", section, len(m[section]), len(keys), m[section])
		}
	}
	if m["assumptions"]["replicaMtbfSeconds"] != float64(7*Day) || m["assumptions"]["sources"].(map[string]any)["replica.mtbf"] != "flag" {
		t.Errorf("assumptions %v", m["assumptions"])
	}
	names := map[string]bool{}
	for _, f := range withFormulas.Formulas {
		for _, k := range []string{"section", "name", "formula", "substituted", "value", "unit"} {
			if _, ok := f[k]; !ok {
				t.Errorf("formula %v lacks %q", f, k)
			}
		}
		names[f["name"].(string)] = true
	}
	for _, n := range []string{"replica availability", "zone availability", "serving availability (k of n, with zones)", "RTO", "Young (1974)", "Daly (2006)", "expected RPO", "worst RPO", "nines"} {
		if !names[n] {
			t.Errorf("no formula %q among %v", n, names)
		}
	}
}

// The Young and Daly formulas are printed with their numbers.
func TestFormulasSubstituted(t *testing.T) {
	a := Defaults()
	a.BackupDuration, a.SiteDisastersPerYear = 5*Minute, float64(Year/(24*Hour))
	r, err := Compute(Inputs{Topology: threeZones(1), Assumptions: a})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range r.Formulas {
		switch f.Name {
		case "Young (1974)":
			if f.Substituted != "√(2 · 300 s · 86400 s)" || f.Show() != "2 h" {
				t.Errorf("Young: %q = %s", f.Substituted, f.Show())
			}
		case "Daly (2006)":
			if !strings.HasPrefix(f.Substituted, "√(2 · 300 s · 86400 s) · [1 + (1/3) · √(300 s / (2 · 86400 s))") || f.Show() != "1.945 h" {
				t.Errorf("Daly: %q = %s", f.Substituted, f.Show())
			}
		}
	}
	if got := ShowProbability(0.999702); got != "0.999702" {
		t.Errorf("ShowProbability(0.999702) = %q", got)
	}
	if got := ShowProbability(1 - 7.716e-8); got != "0.99999992284" {
		t.Errorf("ShowProbability(1 − 7.716e-8) = %q", got)
	}
}

func checkFinite(t *testing.T, r Result) {
	t.Helper()
	if _, err := json.Marshal(r); err != nil {
		t.Fatalf("result does not encode: %v", err)
	}
	for _, f := range r.Formulas {
		if math.IsNaN(f.Value) || math.IsInf(f.Value, 0) {
			t.Fatalf("%s = %v", f.Name, f.Value)
		}
	}
	if av := r.Availability; !(av.Serving >= 0 && av.Serving <= 1 && av.Overall >= 0 && av.Overall <= av.Serving) {
		t.Fatalf("availability out of range: %+v", av)
	}
}

// BenchmarkCompute plans a 3-zone, 2-of-3 deployment and a 100-replica one
// over 7 zones: the drill calls Compute once per report, so this only
// shows that a plan costs nothing next to a measurement.
func BenchmarkCompute(b *testing.B) {
	big := Topology{K: 60}
	for i := range 7 {
		big.Zones = append(big.Zones, ZoneReplicas{Zone: string(rune('a' + i)), Replicas: 14 + i%3})
	}
	for _, c := range []struct {
		name string
		top  Topology
	}{{"3-replicas", threeZones(2)}, {"big", big}} {
		b.Run(c.name, func(b *testing.B) {
			in := Inputs{Topology: c.top, Assumptions: Defaults()}
			for b.Loop() {
				if _, err := Compute(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
