package plan

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseAssumptionsEveryKey(t *testing.T) {
	a, err := ParseAssumptions([]byte(`
replica: {mtbf: 720h, mttr: 500ms}
zone:
  failuresPerYear: 2.5
  mttr: 2h
site:
  disastersPerYear: 0.05
backup:
  duration: 10m
  interval: 1d
restore:
  size: 2GiB
  throughput: 50MB/s
  startup: 3s
  firstInference: 250ms
serving:
  k: 2
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Assumptions{
		ReplicaMTBF: 720 * Hour, ReplicaMTTR: 0.5, ZoneFailuresPerYear: 2.5, ZoneMTTR: 2 * Hour,
		SiteDisastersPerYear: 0.05, BackupDuration: 10 * Minute, BackupInterval: Day,
		RestoreSize: 2 << 30, RestoreThroughput: 50e6, RestoreStartup: 3, FirstInference: 0.25, K: 2,
	}
	got := a
	got.Sources = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parsed\n%+v\nwant\n%+v", got, want)
	}
	if len(a.Sources) != len(Keys()) || a.Sources["replica.mtbf"] != "file" {
		t.Errorf("sources = %v, want every key from the file", a.Sources)
	}
}

func TestParseAssumptionsEmptyIsDefaults(t *testing.T) {
	for _, doc := range []string{"", "\n# nothing\n", "---\n", "replica:\n"} {
		a, err := ParseAssumptions([]byte(doc))
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		d := Defaults()
		if a.ReplicaMTBF != d.ReplicaMTBF || a.ReplicaMTTR != DefaultReplicaMTTR || len(a.Sources) != 0 {
			t.Errorf("%q: got %+v, want the defaults", doc, a)
		}
	}
	if err := Defaults().Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

func TestParseAssumptionsErrors(t *testing.T) {
	cases := []struct{ doc, want string }{
		{"replica:\n  mtbf: 0s\n", "line 2: replica.mtbf: must be a positive, finite duration, got 0 s"},
		{"replica:\n  mtbf: -5h\n", "line 2: replica.mtbf: must be a positive"},
		{"replica:\n  mtfb: 5h\n", "line 2: replica.mtfb: unknown key (known: mtbf, mttr)"},
		{"replicas:\n  mtbf: 5h\n", "line 1: replicas: unknown section (known: replica, zone, site, backup, restore, serving)"},
		{"replica:\n  mtbf: 5h\n  mtbf: 6h\n", "line 3: replica.mtbf: given twice (first on line 2)"},
		{"site: {disastersPerYear: 1}\nsite: {disastersPerYear: 2}\n", "line 2: site: given twice (first on line 1)"},
		{"replica:\n  mtbf: 720\n", `line 2: replica.mtbf: "720" is not a duration (such as 200ms, 4h, 30d or 10y)`},
		{"replica:\n  mtbf: [1h]\n", "line 2: replica.mtbf: must be a value, got a list"},
		{"replica:\n  mtbf:\n", "line 2: replica.mtbf: must be a value, got nothing"},
		{"replica: 5h\n", `line 1: replica: must be a mapping, got "5h"`},
		{"- 1\n", "line 1: document: must be a mapping, got a list"},
		{"zone: {failuresPerYear: -1}\n", "line 1: zone.failuresPerYear: must not be negative"},
		{"zone: {failuresPerYear: .nan}\n", `zone.failuresPerYear: ".nan" is not a number`},
		{"site: {disastersPerYear: 0}\n", "line 1: site.disastersPerYear: must be positive"},
		{"backup: {interval: 4m}\n", "line 1: backup.interval: must be longer than backup.duration (5 min)"},
		{"restore: {size: lots}\n", `restore.size: "lots" is not a size`},
		{"restore: {throughput: 0MB/s}\n", "line 1: restore.throughput: must be positive"},
		{"restore: {throughput: fast}\n", `restore.throughput: "fast" is not a throughput`},
		{"serving: {k: two}\n", `line 1: serving.k: "two" is not a whole number`},
		{"serving: {k: -1}\n", "line 1: serving.k: must not be negative"},
		{"replica: {mtbf: 1h}\n---\nreplica: {mtbf: 2h}\n", "line 3: document: an assumptions file holds one document"},
		{"replica: {mtbf: 1h\n", "yaml:"},
	}
	for _, c := range cases {
		_, err := ParseAssumptions([]byte(c.doc))
		if err == nil {
			t.Errorf("%q: no error, want %q", c.doc, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n got %v\nwant %q", c.doc, err, c.want)
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v is not ErrInvalid", c.doc, err)
		}
	}
}

// Every problem is reported, in one error.
func TestParseAssumptionsReportsAll(t *testing.T) {
	_, err := ParseAssumptions([]byte("replica:\n  mtbf: soon\n  mtbb: 1h\nzone: {mttr: never}\n"))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"line 2: replica.mtbf", "line 3: replica.mtbb", "line 4: zone.mttr"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// Range errors come with the others, in line order, and a value that
	// did not read is not also called out of range.
	_, err = ParseAssumptions([]byte("replica:\n  mtbf: 0s\nzone:\n  failuresPerYear: 1\n  mtr: 1h\nsite: {disastersPerYear: often}\n"))
	want := "line 2: replica.mtbf: must be a positive, finite duration, got 0 s\n" +
		"line 5: zone.mtr: unknown key (known: failuresPerYear, mttr)\n" +
		`line 6: site.disastersPerYear: "often" is not a number`
	if err == nil || err.Error() != want {
		t.Errorf("error\n%v\nwant\n%s", err, want)
	}
}

// A value that does not read leaves the assumption as it was.
func TestSetKeepsValueOnError(t *testing.T) {
	a := Defaults()
	for _, key := range []string{"replica.mtbf", "zone.failuresPerYear", "backup.interval", "restore.size", "restore.throughput", "serving.k"} {
		before := a.Show(key)
		if err := a.Set(key, "nonsense", "flag"); err == nil {
			t.Errorf("%s: no error", key)
		}
		if a.Show(key) != before || a.Sources[key] != "" {
			t.Errorf("%s: %q from %q after a failed Set, want %q", key, a.Show(key), a.Sources[key], before)
		}
	}
}

func TestUnits(t *testing.T) {
	durations := map[string]Seconds{"200ms": 0.2, "4h": 4 * Hour, "1h30m": 90 * Minute, "30d": 30 * Day, "0.5y": Year / 2, "10y": 10 * Year, "0": 0}
	for s, want := range durations {
		if got, err := parseDuration(s); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	sizes := map[string]float64{"1024": 1024, "2GiB": 2 << 30, "500 MB": 500e6, "1.5kib": 1536, "3B": 3, "1TB": 1e12}
	for s, want := range sizes {
		if got, err := parseBytes(s); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if got, err := parseThroughput("100MiB/s"); err != nil || got != 100<<20 {
		t.Errorf("parseThroughput = %v, %v", got, err)
	}
	for _, bad := range []string{"", "d", "xy", "1e400d", "inf"} {
		if _, err := parseDuration(bad); err == nil {
			t.Errorf("parseDuration(%q): no error", bad)
		}
	}
	shown := map[Seconds]string{0.2: "200 ms", 120 * Minute: "2 h", 7001.388888: "1.945 h", 30 * Day: "30 d", 10 * Year: "10 y", 0: "0 s", 42: "42 s"}
	for s, want := range shown {
		if got := s.String(); got != want {
			t.Errorf("Seconds(%v).String() = %q, want %q", float64(s), got, want)
		}
	}
	if got := formatBytes(1 << 30); got != "1 GiB" {
		t.Errorf("formatBytes = %q", got)
	}
	if got := (1e12 * Year).Duration(); got <= 0 {
		t.Errorf("Duration of a huge time = %v, want saturated positive", got)
	}
}

func TestSetFromFlag(t *testing.T) {
	a := Defaults()
	if err := a.Set("replica.mtbf", "7d", "flag"); err != nil {
		t.Fatal(err)
	}
	if a.ReplicaMTBF != 7*Day || a.Sources["replica.mtbf"] != "flag" || a.Show("replica.mtbf") != "7 d" {
		t.Errorf("after Set: %v from %q shown %q", a.ReplicaMTBF, a.Sources["replica.mtbf"], a.Show("replica.mtbf"))
	}
	if err := a.Set("replica.mtbff", "7d", "flag"); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown key: %v", err)
	}
	if err := a.Set("replica.mtbf", "weekly", "flag"); err == nil || !strings.Contains(err.Error(), "replica.mtbf") {
		t.Errorf("bad value: %v", err)
	}
}

// FuzzParseAssumptions: any bytes either fail with ErrInvalid or give
// assumptions that validate and plan to finite numbers.
func FuzzParseAssumptions(f *testing.F) {
	f.Add([]byte("replica: {mtbf: 720h, mttr: 200ms}\nzone: {failuresPerYear: 1, mttr: 4h}\n"))
	f.Add([]byte("site: {disastersPerYear: 0.1}\nbackup: {duration: 5m, interval: 1d}\n"))
	f.Add([]byte("restore: {size: 2GiB, throughput: 100MiB/s, startup: 2s, firstInference: 1s}\nserving: {k: 2}\n"))
	f.Add([]byte("replica: &x {mtbf: 1h}\nzone: *x\n"))
	f.Add([]byte("restore: {size: 1e300TiB, throughput: 1e-300B/s}\n"))
	f.Add([]byte("replica: {mtbf: 1e300y, mttr: 1e300y}\n"))
	f.Add([]byte("- [\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAssumptions(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("parsed assumptions do not validate: %v", err)
		}
		a.K = 0
		r, err := Compute(Inputs{Topology: Topology{K: 1, Zones: []ZoneReplicas{{"a", 2}, {"b", 1}}}, Assumptions: a})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("compute: %v is not ErrInvalid", err)
			}
			return
		}
		checkFinite(t, r)
	})
}
