package gateway

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const exampleConfig = `
listen: 127.0.0.1:8000
zone: a
admin:
  token: s3cret
defaults:
  timeout: 5s
  retry: {attempts: 4, perTryTimeout: 1s}
  hedge: {delay: 20ms}
models:
  iris:
    replicas:
      - {address: "http://127.0.0.1:8001", zone: a}
      - {address: "http://127.0.0.1:8002/", zone: b}
    policy: {vote: {enabled: true}, retry: {budget: 0.5}}
  mnist:
    replicas:
      - address: https://mnist.internal:9000
`

func TestParseConfigMergesDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte(exampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8000" || cfg.Zone != "a" || cfg.Admin.Token != "s3cret" {
		t.Errorf("top level: %+v", cfg)
	}
	def := DefaultPolicy()
	// defaults: the file's fields, built-in defaults for the rest.
	if cfg.Defaults.Timeout != 5*time.Second || cfg.Defaults.Retry.Attempts != 4 ||
		cfg.Defaults.Retry.PerTryTimeout != time.Second || cfg.Defaults.Retry.Budget != def.Retry.Budget ||
		cfg.Defaults.Hedge.Delay.Fixed != 20*time.Millisecond || !cfg.Defaults.Hedge.Enabled ||
		cfg.Defaults.Breaker != def.Breaker || cfg.Defaults.MaxBodyBytes != DefaultMaxBodyBytes {
		t.Errorf("defaults not merged: %+v", cfg.Defaults)
	}
	// iris overrides two fields; everything else comes from the merged defaults.
	iris := cfg.Models["iris"].Policy
	want := cfg.Defaults.clone()
	want.Vote.Enabled = true
	want.Retry.Budget = 0.5
	if !reflect.DeepEqual(iris, want) {
		t.Errorf("iris policy:\n got %+v\nwant %+v", iris, want)
	}
	if iris.Vote.Replicas != 3 || iris.Retry.Attempts != 4 {
		t.Errorf("override lost a default: %+v", iris)
	}
	if m := cfg.Models["mnist"].Policy; !reflect.DeepEqual(m, cfg.Defaults) {
		t.Errorf("mnist should have the defaults: %+v", m)
	}
	if got := cfg.Models["iris"].Replicas[1]; got.Zone != "b" {
		t.Errorf("replica: %+v", got)
	}
}

func TestParseConfigMinimal(t *testing.T) {
	cfg, err := ParseConfig([]byte("models:\n  m:\n    replicas: [{address: 'http://h:1'}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != DefaultListen || !reflect.DeepEqual(cfg.Defaults, DefaultPolicy()) {
		t.Errorf("defaults: %+v", cfg)
	}
}

func TestParseConfigErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string // substrings of the error
	}{
		{"unknown top-level field", "listen: x:1\nmodel: {}\n", []string{"line 2", "model", "unknown field"}},
		{"unknown nested field", "defaults:\n  retry:\n    attempt: 3\nmodels: {m: {replicas: [{address: 'http://h'}]}}\n",
			[]string{"line 3", "defaults.retry.attempt", "unknown field"}},
		{"unknown field in model policy", "models:\n  m:\n    replicas: [{address: 'http://h'}]\n    policy:\n      hedge: {delya: 1s}\n",
			[]string{"line 5", "models.m.policy.hedge.delya", "unknown field"}},
		{"bad duration", "defaults:\n  timeout: 10\nmodels: {m: {replicas: [{address: 'http://h'}]}}\n",
			[]string{"line 2", "defaults.timeout", "time.Duration"}},
		{"bad hedge delay", "defaults:\n  hedge: {delay: soon}\nmodels: {m: {replicas: [{address: 'http://h'}]}}\n",
			[]string{"line 2", "defaults.hedge.delay", "adaptive"}},
		{"ratio out of range", "defaults:\n  retry:\n    budget: 1.5\nmodels: {m: {replicas: [{address: 'http://h'}]}}\n",
			[]string{"line 3", "defaults.retry.budget", "between 0 and 1"}},
		{"model ratio out of range", "models:\n  m:\n    replicas: [{address: 'http://h'}]\n    policy:\n      breaker: {failureRatio: -1}\n",
			[]string{"line 5", "models.m.policy.breaker.failureRatio"}},
		{"not http", "models:\n  m:\n    replicas:\n      - address: ftp://h\n",
			[]string{"line 4", "models.m.replicas[0].address", "http"}},
		{"no replicas", "models:\n  m:\n    replicas: []\n", []string{"line 3", "models.m.replicas", "at least one replica"}},
		{"no models", "listen: x:1\n", []string{"models", "at least one model"}},
		{"duplicate replica", "models:\n  m:\n    replicas: [{address: 'http://h:1'}, {address: 'http://h:1/'}]\n",
			[]string{"line 3", "listed twice"}},
		{"syntax", "models: [\n", []string{"line"}},
		{"both tokens", "admin: {token: a, tokenFile: b}\nmodels: {m: {replicas: [{address: 'http://h'}]}}\n",
			[]string{"line 1", "admin.tokenFile", "not both"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(c.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestInvalidDefaultReportedOnce(t *testing.T) {
	_, err := ParseConfig([]byte("defaults:\n  hedge: {budget: 2}\nmodels:\n  a: {replicas: [{address: 'http://h'}]}\n  b: {replicas: [{address: 'http://h'}]}\n"))
	if err == nil || strings.Count(err.Error(), "budget") != 1 {
		t.Errorf("want one error about defaults.hedge.budget, got %v", err)
	}
}

func TestLoadConfigTokenFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(path, []byte("admin: {tokenFile: token}\nmodels: {m: {replicas: [{address: 'http://h'}]}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Token != "s3cret" {
		t.Errorf("token %q", cfg.Admin.Token)
	}
}

func TestValidateProgrammaticConfig(t *testing.T) {
	p := DefaultPolicy()
	p.Retry.Attempts = 0
	cfg := &Config{Defaults: DefaultPolicy(), Models: map[string]ModelConfig{"m": {Replicas: []ReplicaConfig{{Address: "http://h"}}, Policy: p}}}
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "models.m.policy.retry.attempts") {
		t.Errorf("got %v", err)
	}
}

func TestEjectionGrows(t *testing.T) {
	o := OutlierPolicy{BaseEjection: time.Second, MaxEjection: 5 * time.Second}
	var got []time.Duration
	for n := 1; n <= 5; n++ {
		got = append(got, ejectionFor(&o, n))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestBudget(t *testing.T) {
	b := newBudget(0.2, 0)
	now := time.Now()
	allowed := 0
	for range 100 {
		b.deposit()
		if b.withdraw(now) {
			allowed++
		}
	}
	if allowed != 20 {
		t.Errorf("0.2 of 100 requests: %d retries allowed, want 20", allowed)
	}
	// The floor refills with time even with no traffic.
	f := newBudget(0, 10)
	for f.withdraw(now) {
	}
	if !f.withdraw(now.Add(time.Second)) {
		t.Error("the floor did not refill")
	}
}

func TestLatencyPercentile(t *testing.T) {
	var w latencyWindow
	if _, ok := w.percentile(0.95); ok {
		t.Error("estimate from no samples")
	}
	for i := 1; i <= 100; i++ {
		w.observe(time.Duration(i) * time.Millisecond)
	}
	if d, _ := w.percentile(0.95); d != 95*time.Millisecond {
		t.Errorf("p95 = %v", d)
	}
	h := HedgePolicy{Percentile: 0.95, MinDelay: time.Millisecond, MaxDelay: 50 * time.Millisecond}
	if d := hedgeDelay(&h, &w); d != 50*time.Millisecond {
		t.Errorf("clamped delay = %v", d)
	}
}
