package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// A gateway fed by a controller: the Follower long-polls the controller's
// routing table, applies each new one with Update (no request is dropped:
// replicas that stay keep their state, removed ones finish their
// requests), and keeps the last one on disk. While the controller cannot
// be reached the gateway keeps routing by the last table it has, from
// memory or, after a restart, from the cache file: the data plane does
// not depend on the control plane being up (static stability).
//
// The table supplies models; the configuration file (Base) supplies the
// rest: listen address, zone, admin token, defaults, and models of its
// own. A model in both is routed as the controller says.

// Table is one routing table from a controller.
type Table struct {
	Generation int64
	// Models is a configuration document holding the models section only
	// (JSON or YAML), each model's policy in full.
	Models []byte
}

// TableSource gives routing tables; a controller's API client is one.
type TableSource interface {
	// NextTable returns the current table once its generation differs
	// from since (at once if it already does), or, after the source's
	// longest wait, the table of generation since, still current. An error
	// means the source could not answer; the caller keeps what it has.
	NextTable(ctx context.Context, since int64) (*Table, error)
}

// FollowerOptions configure a Follower; Source and Base are required.
type FollowerOptions struct {
	Source TableSource
	// SourceName says where tables come from (the controller's URL), for
	// logs and status.
	SourceName string
	// CacheFile keeps the last applied table; empty keeps none.
	CacheFile string
	// Base is the configuration the table's models are put into. It is
	// called once by NewFollower and again by every Reload.
	Base func() (*Config, error)
	// PollTimeout bounds one poll, long enough for the source's own wait
	// (a controller holds a poll up to 30s) [45s]. A controller that
	// accepts the connection and never answers (stopped) is noticed then.
	PollTimeout time.Duration
	// MinBackoff and MaxBackoff bound the doubling delay between polls
	// that fail [100ms, 5s].
	MinBackoff, MaxBackoff time.Duration
}

// RoutingStatus is a Follower's state: what GET /admin/status reports as
// routing and the bulwark_gateway_routing_* metrics.
type RoutingStatus struct {
	Source     string `json:"source"`
	Generation int64  `json:"generation"` // of the table in force; 0 before the first
	// Confirmed is when the controller last said the table is current.
	Confirmed  *time.Time `json:"confirmed,omitempty"`
	AgeSeconds float64    `json:"ageSeconds"` // since Confirmed
	Connected  bool       `json:"connected"`  // the last poll got an answer
	FromCache  bool       `json:"fromCache"`  // the table was read from the cache file; the controller has not answered since the start
	LastError  string     `json:"lastError,omitempty"`
	Updates    int64      `json:"updates"`  // tables applied
	Rejected   int64      `json:"rejected"` // tables refused as invalid
}

// Follower keeps a gateway's routing table in step with a controller.
type Follower struct {
	g   *Gateway
	opt FollowerOptions
	log *slog.Logger

	mu        sync.Mutex
	base      *Config
	table     *cachedTable           // the table in force; nil before the first
	models    map[string]ModelConfig // table's models, parsed
	written   time.Time              // the cache file's last write
	fromCache bool
	connected bool
	lastErr   string
	updates   int64
	rejected  int64
	shadowed  map[string]bool // file models the controller routes, warned about once
}

// NewFollower attaches a follower to g, reading the base configuration.
// It polls nothing until Run.
func NewFollower(g *Gateway, opt FollowerOptions) (*Follower, error) {
	if opt.Source == nil || opt.Base == nil {
		return nil, errors.New("gateway: follower needs a Source and a Base")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opt.PollTimeout, 45*time.Second)
	def(&opt.MinBackoff, 100*time.Millisecond)
	def(&opt.MaxBackoff, 5*time.Second)
	base, err := opt.Base()
	if err != nil {
		return nil, err
	}
	f := &Follower{g: g, opt: opt, base: base, shadowed: map[string]bool{},
		log: g.log.With("routing", opt.SourceName)}
	g.follower.Store(f)
	return f, nil
}

// Restore applies the table kept in the cache file, if there is one: a
// gateway started while its controller is down serves what it served
// before. It returns the generation applied (0 for none); a cache that
// is corrupt or does not validate is an error and changes nothing.
func (f *Follower) Restore() (int64, error) {
	if f.opt.CacheFile == "" {
		return 0, nil
	}
	t, err := readCache(f.opt.CacheFile)
	if err != nil || t == nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.applyLocked(t); err != nil {
		return 0, fmt.Errorf("routing cache %s: %w", f.opt.CacheFile, err)
	}
	f.fromCache, f.written = true, t.Confirmed
	f.log.Info("routing table restored from the cache", "generation", t.Generation, "confirmed", t.Confirmed.Format(time.RFC3339),
		"age", time.Since(t.Confirmed).Round(time.Second), "file", f.opt.CacheFile)
	return t.Generation, nil
}

// Run polls the source until ctx ends. The first poll asks for any
// generation, so it answers at once; later ones wait for a change.
func (f *Follower) Run(ctx context.Context) {
	var since int64 // no controller generation is 0: the first poll answers at once
	backoff := f.opt.MinBackoff
	for {
		pctx, cancel := context.WithTimeout(ctx, f.opt.PollTimeout)
		t, err := f.opt.Source.NextTable(pctx, since)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil && t == nil {
			err = errors.New("no table in the answer")
		}
		if err != nil {
			f.failed(err)
			d := time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
			backoff = min(2*backoff, f.opt.MaxBackoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
			continue
		}
		backoff = f.opt.MinBackoff
		since = t.Generation
		f.received(t)
	}
}

// failed records a poll that got no table; only the first failure of an
// outage is logged as a warning.
func (f *Follower) failed(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	first := f.connected || f.lastErr == ""
	f.connected, f.lastErr = false, err.Error()
	if !first {
		f.log.Debug("controller still unreachable", "err", err)
		return
	}
	if f.table == nil {
		f.log.Warn("controller unreachable and no routing table yet; retrying with backoff", "err", err)
		return
	}
	f.log.Warn("controller unreachable; serving the last routing table, retrying with backoff",
		"generation", f.table.Generation, "age", time.Since(f.table.Confirmed).Round(time.Second), "err", err)
}

// received handles an answer: a new table is applied and cached, the
// same one is confirmed current.
func (f *Follower) received(t *Table) {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.connected && f.lastErr != "" {
		f.log.Info("controller reachable again", "generation", t.Generation)
	}
	f.connected, f.lastErr, f.fromCache = true, "", false
	// The same generation with other contents happens when a controller's
	// state was restored from an older backup: its count started lower.
	if f.table != nil && f.table.Generation == t.Generation && bytes.Equal(f.table.Models, t.Models) {
		f.table.Confirmed = now
		// Keep the file's confirmation roughly current, so that a
		// restart reports a truthful age, without an fsync every poll.
		if now.Sub(f.written) >= time.Minute {
			f.persistLocked()
		}
		return
	}
	ct := &cachedTable{Generation: t.Generation, Source: f.opt.SourceName, Confirmed: now, Models: t.Models}
	if err := f.applyLocked(ct); err != nil {
		f.rejected++
		f.lastErr = fmt.Sprintf("table generation %d refused: %v", t.Generation, err)
		f.log.Error("routing table refused; keeping the current one", "generation", t.Generation, "err", err)
		return
	}
	f.persistLocked()
}

// applyLocked parses t, puts its models into the base configuration and
// swaps the result in. Caller holds f.mu.
func (f *Follower) applyLocked(t *cachedTable) error {
	models, err := parseModels(t.Models)
	if err != nil {
		return err
	}
	if err := f.g.Update(f.composeLocked(models)); err != nil {
		return err
	}
	f.table, f.models = t, models
	f.updates++
	return nil
}

func (f *Follower) composeLocked(models map[string]ModelConfig) *Config {
	cfg := f.base.clone()
	for name, m := range models {
		if _, both := f.base.Models[name]; both && !f.shadowed[name] {
			f.shadowed[name] = true
			f.log.Warn("model is in the configuration file and in the controller's routing table; the controller's wins", "model", name)
		}
		cfg.Models[name] = m
	}
	return cfg
}

// persistLocked writes the table in force to the cache file; a failure
// is logged (the table still serves), and retried at the next change.
func (f *Follower) persistLocked() {
	if f.opt.CacheFile == "" || f.table == nil {
		return
	}
	if err := writeCache(f.opt.CacheFile, f.table); err != nil {
		f.log.Error("routing cache not written", "err", err)
		return
	}
	f.written = f.table.Confirmed
}

// Reload re-reads the base configuration and returns it with the current
// table's models put in, for Update: what SIGHUP and POST /admin/reload
// do for a gateway fed by a controller.
func (f *Follower) Reload() (*Config, error) {
	base, err := f.opt.Base()
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.base = base
	return f.composeLocked(f.models), nil
}

// Status reports the follower's state.
func (f *Follower) Status() RoutingStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := RoutingStatus{Source: f.opt.SourceName, Connected: f.connected, FromCache: f.fromCache,
		LastError: f.lastErr, Updates: f.updates, Rejected: f.rejected}
	if f.table != nil {
		c := f.table.Confirmed
		st.Generation, st.Confirmed, st.AgeSeconds = f.table.Generation, &c, time.Since(c).Seconds()
	}
	return st
}
