package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is the gateway's whole configuration: where it listens, its zone,
// its admin token, and the models it routes with their replicas and
// effective policies. LoadConfig and ParseConfig fill every policy field
// (defaults merged under each model's overrides); a Config built in code
// should start from DefaultPolicy and must pass Validate.
type Config struct {
	Listen   string                 `yaml:"listen"`
	Zone     string                 `yaml:"zone"`
	Admin    AdminConfig            `yaml:"admin"`
	Defaults Policy                 `yaml:"defaults"`
	Models   map[string]ModelConfig `yaml:"models"`
}

// AdminConfig guards /admin/*. An empty token disables the admin API.
// TokenFile is read by LoadConfig/ParseConfig into Token, so the secret
// need not live in the config file.
type AdminConfig struct {
	Token     string `yaml:"token"`
	TokenFile string `yaml:"tokenFile"`
}

// ModelConfig is one routed model. Policy is the effective policy: after
// parsing it holds the defaults with the model's overrides applied.
//
// Versions, when given, splits the model's traffic by weight between the
// replicas of each version (a canary): a request goes to a version chosen
// by weight among those with a replica available, then to one of its
// replicas. Without it every replica takes an equal part. Either way a
// request that names a version (/v2/models/M/versions/V/...) goes only to
// replicas labelled with V, when any replica is.
type ModelConfig struct {
	Replicas []ReplicaConfig `yaml:"replicas"`
	Versions []VersionConfig `yaml:"versions"`
	Policy   Policy          `yaml:"policy"`
}

// ReplicaConfig is one OIP server that serves the model.
type ReplicaConfig struct {
	Address string `yaml:"address"` // http(s) base URL
	Zone    string `yaml:"zone"`
	// Version is the model version the replica serves; required, and
	// listed in the model's versions, when the model splits by weight.
	Version string `yaml:"version"`
}

// VersionConfig is one version's share of a model's traffic. Weights are
// relative (90 and 10, or 9 and 1, split alike); a version of weight 0
// gets requests only when no weighted version has a replica available,
// or when a request names it.
type VersionConfig struct {
	Version string `yaml:"version"`
	Weight  int    `yaml:"weight"`
}

// Policy is how the gateway treats one model's requests and replicas.
type Policy struct {
	// Timeout is the overall deadline of a client request (a shorter
	// X-Bulwark-Timeout header wins).
	Timeout time.Duration `yaml:"timeout"`
	// MaxPending caps requests in flight for the model; more are shed with 429.
	MaxPending int `yaml:"maxPending"`
	// MaxBodyBytes bounds a buffered request body, as the node does; 413 above.
	MaxBodyBytes int64         `yaml:"maxBodyBytes"`
	Retry        RetryPolicy   `yaml:"retry"`
	Hedge        HedgePolicy   `yaml:"hedge"`
	Vote         VotePolicy    `yaml:"vote"`
	Health       HealthPolicy  `yaml:"health"`
	Outlier      OutlierPolicy `yaml:"outlier"`
	Breaker      BreakerPolicy `yaml:"breaker"`
	Zones        ZonePolicy    `yaml:"zones"`
}

// RetryPolicy: Attempts counts every try of a request, first and hedges
// included. Budget is the share of requests that may earn a retry, on top
// of MinPerSecond retries per second, so a sick backend cannot cause a
// retry storm.
type RetryPolicy struct {
	Attempts      int           `yaml:"attempts"`
	PerTryTimeout time.Duration `yaml:"perTryTimeout"`
	Budget        float64       `yaml:"budget"`
	MinPerSecond  float64       `yaml:"minPerSecond"`
	On            []string      `yaml:"on"` // connect, 5xx (with 429), timeout
}

// Retry conditions of RetryPolicy.On.
const (
	RetryOnConnect = "connect"
	RetryOn5xx     = "5xx"
	RetryOnTimeout = "timeout"
)

// HedgePolicy sends a second copy of a slow request to another replica.
type HedgePolicy struct {
	Enabled    bool          `yaml:"enabled"`
	Delay      HedgeDelay    `yaml:"delay"`
	Percentile float64       `yaml:"percentile"` // of recent latencies, for an adaptive delay
	MinDelay   time.Duration `yaml:"minDelay"`
	MaxDelay   time.Duration `yaml:"maxDelay"`
	Budget     float64       `yaml:"budget"` // share of requests that may be hedged
}

// HedgeDelay is "adaptive" (the zero value) or a fixed duration.
type HedgeDelay struct {
	Fixed time.Duration // 0 means adaptive
}

// String is the YAML spelling.
func (d HedgeDelay) String() string {
	if d.Fixed == 0 {
		return "adaptive"
	}
	return d.Fixed.String()
}

// VotePolicy turns on N-modular redundancy: every request goes to Replicas
// replicas and the majority answer is returned.
type VotePolicy struct {
	Enabled    bool    `yaml:"enabled"`
	Replicas   int     `yaml:"replicas"`
	Tolerance  float64 `yaml:"tolerance"`  // relative, with the same absolute floor, for floats
	EjectAfter int     `yaml:"ejectAfter"` // disagreements before ejection; 0 never ejects
}

// HealthPolicy drives the active checker of each replica.
type HealthPolicy struct {
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`
	Rise     int           `yaml:"rise"` // successes that make an unhealthy replica healthy
	Fall     int           `yaml:"fall"` // failures that make a healthy replica unhealthy
}

// OutlierPolicy ejects a replica after consecutive failed tries.
type OutlierPolicy struct {
	ConsecutiveFailures int           `yaml:"consecutiveFailures"` // 0 disables
	BaseEjection        time.Duration `yaml:"baseEjection"`
	MaxEjection         time.Duration `yaml:"maxEjection"`
	MaxEjectedPercent   int           `yaml:"maxEjectedPercent"`
}

// BreakerPolicy is each replica's circuit breaker.
type BreakerPolicy struct {
	FailureRatio float64       `yaml:"failureRatio"`
	MinRequests  int           `yaml:"minRequests"`
	Window       time.Duration `yaml:"window"`
	OpenFor      time.Duration `yaml:"openFor"`
}

// ZonePolicy: traffic stays in the gateway's zone while it has at least
// MinHealthy available replicas.
type ZonePolicy struct {
	MinHealthy int `yaml:"minHealthy"`
}

// Defaults for Config fields other than policies.
const (
	DefaultListen       = "127.0.0.1:8000"
	DefaultMaxBodyBytes = 64 << 20
)

// DefaultPolicy is the policy of a model that overrides nothing.
func DefaultPolicy() Policy {
	return Policy{
		Timeout:      10 * time.Second,
		MaxPending:   1024,
		MaxBodyBytes: DefaultMaxBodyBytes,
		Retry: RetryPolicy{Attempts: 3, PerTryTimeout: 2 * time.Second, Budget: 0.2, MinPerSecond: 10,
			On: []string{RetryOnConnect, RetryOn5xx, RetryOnTimeout}},
		Hedge: HedgePolicy{Enabled: true, Percentile: 0.95, MinDelay: 2 * time.Millisecond,
			MaxDelay: time.Second, Budget: 0.05},
		Vote:    VotePolicy{Replicas: 3, Tolerance: 1e-5, EjectAfter: 3},
		Health:  HealthPolicy{Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 2},
		Outlier: OutlierPolicy{ConsecutiveFailures: 3, BaseEjection: 5 * time.Second, MaxEjection: 2 * time.Minute, MaxEjectedPercent: 50},
		Breaker: BreakerPolicy{FailureRatio: 0.5, MinRequests: 20, Window: 10 * time.Second, OpenFor: 5 * time.Second},
		Zones:   ZonePolicy{MinHealthy: 1},
	}
}

// clone copies c deeply enough that changing the copy's models, replicas
// or policies leaves c alone.
func (c *Config) clone() *Config {
	out := *c
	out.Defaults = c.Defaults.clone()
	out.Models = make(map[string]ModelConfig, len(c.Models))
	for name, m := range c.Models {
		m.Replicas = slices.Clone(m.Replicas)
		m.Versions = slices.Clone(m.Versions)
		m.Policy = m.Policy.clone()
		out.Models[name] = m
	}
	return &out
}

// clone copies p deeply enough that decoding onto the copy cannot change p.
func (p Policy) clone() Policy {
	p.Retry.On = slices.Clone(p.Retry.On)
	return p
}

func (p *Policy) retryOn(cond string) bool { return slices.Contains(p.Retry.On, cond) }

// ConfigError is one invalid field. Line is its line in the YAML file, 0
// for a Config built in code.
type ConfigError struct {
	Line  int
	Field string // dotted path, e.g. models.iris.policy.retry.budget
	Msg   string
}

func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Msg)
	}
	return e.Field + ": " + e.Msg
}

// locator finds fields of a parsed file: line returns the line of a dotted
// field path (or of its nearest ancestor that is in the file), exact whether
// the field itself is written there.
type locator interface {
	line(field string) int
	exact(field string) bool
}

// Validate checks every field; the error joins one *ConfigError per problem.
func (c *Config) Validate() error { return c.validate(nil) }

func (c *Config) validate(loc locator) error {
	v := validator{loc: loc}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			v.add("listen", "must be host:port: %v", err)
		}
	}
	v.policy("defaults", &c.Defaults)
	// An invalid default is reported once, under defaults, not again for
	// every model that inherits it.
	inherited := map[string]bool{}
	for _, e := range v.errs {
		inherited[strings.TrimPrefix(e.(*ConfigError).Field, "defaults")] = true
	}
	for _, name := range sortedKeys(c.Models) {
		m := c.Models[name]
		path := "models." + name
		if name == "" || strings.ContainsAny(name, "/ \t\n") {
			v.add(path, "model name must be non-empty with no slashes or spaces")
		}
		if len(m.Replicas) == 0 {
			v.add(path+".replicas", "at least one replica is required")
		}
		seen := map[string]bool{}
		for i, r := range m.Replicas {
			rp := path + ".replicas[" + strconv.Itoa(i) + "]"
			if err := checkAddress(r.Address); err != nil {
				v.add(rp+".address", "%v", err)
			} else if seen[normalizeAddress(r.Address)] {
				v.add(rp+".address", "replica %s is listed twice", r.Address)
			}
			seen[normalizeAddress(r.Address)] = true
		}
		v.versions(path, &m)
		sub := validator{loc: v.loc}
		sub.policy(path+".policy", &m.Policy)
		for _, e := range sub.errs {
			f := e.(*ConfigError).Field
			if inherited[strings.TrimPrefix(f, path+".policy")] && (v.loc == nil || !v.loc.exact(f)) {
				continue
			}
			v.errs = append(v.errs, e)
		}
	}
	return errors.Join(v.errs...)
}

// versions checks a model's traffic split: distinct named versions with
// weights of at least 0, and every replica labelled with one of them.
func (v *validator) versions(path string, m *ModelConfig) {
	if len(m.Versions) == 0 {
		return
	}
	listed := map[string]bool{}
	for i, vc := range m.Versions {
		vp := path + ".versions[" + strconv.Itoa(i) + "]"
		switch {
		case vc.Version == "":
			v.add(vp+".version", "required")
		case listed[vc.Version]:
			v.add(vp+".version", "version %q is listed twice", vc.Version)
		}
		listed[vc.Version] = true
		if vc.Weight < 0 {
			v.add(vp+".weight", "must not be negative, got %d", vc.Weight)
		}
	}
	for i, r := range m.Replicas {
		if !listed[r.Version] {
			v.add(path+".replicas["+strconv.Itoa(i)+"].version", "%q is not one of the model's versions (%s): with versions, every replica names its version",
				r.Version, strings.Join(sortedKeys(listed), ", "))
		}
	}
}

func checkAddress(a string) error {
	if a == "" {
		return errors.New("required")
	}
	u, err := url.Parse(a)
	if err != nil {
		return fmt.Errorf("not a URL: %v", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q must be an http:// or https:// URL with a host", a)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q must not have a query or fragment", a)
	}
	return nil
}

// normalizeAddress is the replica's identity: the address without a
// trailing slash, so "http://h:1/" and "http://h:1" are one replica.
func normalizeAddress(a string) string { return strings.TrimRight(a, "/") }

type validator struct {
	loc  locator
	errs []error
}

func (v *validator) add(field, format string, args ...any) {
	line := 0
	if v.loc != nil {
		line = v.loc.line(field)
	}
	v.errs = append(v.errs, &ConfigError{Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) positive(field string, d time.Duration) {
	if d <= 0 {
		v.add(field, "must be a positive duration, got %v", d)
	}
}

func (v *validator) atLeast(field string, n, min int) {
	if n < min {
		v.add(field, "must be at least %d, got %d", min, n)
	}
}

func (v *validator) ratio(field string, f float64) {
	if !(f >= 0 && f <= 1) {
		v.add(field, "must be between 0 and 1, got %v", f)
	}
}

func (v *validator) policy(p string, pol *Policy) {
	v.positive(p+".timeout", pol.Timeout)
	v.atLeast(p+".maxPending", pol.MaxPending, 1)
	if pol.MaxBodyBytes < 1 {
		v.add(p+".maxBodyBytes", "must be at least 1, got %d", pol.MaxBodyBytes)
	}
	r := pol.Retry
	v.atLeast(p+".retry.attempts", r.Attempts, 1)
	v.positive(p+".retry.perTryTimeout", r.PerTryTimeout)
	v.ratio(p+".retry.budget", r.Budget)
	if !(r.MinPerSecond >= 0) {
		v.add(p+".retry.minPerSecond", "must not be negative, got %v", r.MinPerSecond)
	}
	for _, on := range r.On {
		if on != RetryOnConnect && on != RetryOn5xx && on != RetryOnTimeout {
			v.add(p+".retry.on", "unknown condition %q (known: connect, 5xx, timeout)", on)
		}
	}
	h := pol.Hedge
	if h.Delay.Fixed < 0 {
		v.add(p+".hedge.delay", "must be adaptive or a positive duration")
	}
	if !(h.Percentile > 0 && h.Percentile <= 1) {
		v.add(p+".hedge.percentile", "must be in (0,1], got %v", h.Percentile)
	}
	if h.MinDelay < 0 {
		v.add(p+".hedge.minDelay", "must not be negative")
	}
	if h.MaxDelay < h.MinDelay || h.MaxDelay <= 0 {
		v.add(p+".hedge.maxDelay", "must be positive and at least minDelay (%v), got %v", h.MinDelay, h.MaxDelay)
	}
	v.ratio(p+".hedge.budget", h.Budget)
	vo := pol.Vote
	v.atLeast(p+".vote.replicas", vo.Replicas, 1)
	if !(vo.Tolerance >= 0) {
		v.add(p+".vote.tolerance", "must not be negative, got %v", vo.Tolerance)
	}
	v.atLeast(p+".vote.ejectAfter", vo.EjectAfter, 0)
	v.positive(p+".health.interval", pol.Health.Interval)
	v.positive(p+".health.timeout", pol.Health.Timeout)
	v.atLeast(p+".health.rise", pol.Health.Rise, 1)
	v.atLeast(p+".health.fall", pol.Health.Fall, 1)
	o := pol.Outlier
	v.atLeast(p+".outlier.consecutiveFailures", o.ConsecutiveFailures, 0)
	v.positive(p+".outlier.baseEjection", o.BaseEjection)
	if o.MaxEjection < o.BaseEjection {
		v.add(p+".outlier.maxEjection", "must be at least baseEjection (%v), got %v", o.BaseEjection, o.MaxEjection)
	}
	if o.MaxEjectedPercent < 0 || o.MaxEjectedPercent > 100 {
		v.add(p+".outlier.maxEjectedPercent", "must be between 0 and 100, got %d", o.MaxEjectedPercent)
	}
	b := pol.Breaker
	v.ratio(p+".breaker.failureRatio", b.FailureRatio)
	v.atLeast(p+".breaker.minRequests", b.MinRequests, 1)
	v.positive(p+".breaker.window", b.Window)
	v.positive(p+".breaker.openFor", b.OpenFor)
	v.atLeast(p+".zones.minHealthy", pol.Zones.MinHealthy, 0)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
