package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Options are the gateway's settings that are not routing: they do not
// change on a reload.
type Options struct {
	Logger *slog.Logger
	// ConfigPath is the file POST /admin/reload re-reads; empty disables
	// reloading through the admin API (Update still works).
	ConfigPath string
	// Reload, when set, replaces LoadConfig(ConfigPath) for reloads, so a
	// caller can re-apply its command-line overrides to every new config.
	Reload func() (*Config, error)
	// ShutdownTimeout bounds how long Serve waits for in-flight requests
	// once its context is cancelled (default 30s).
	ShutdownTimeout time.Duration
}

// Gateway is the fault-tolerant OIP gateway. It is safe for concurrent use.
type Gateway struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	client  *http.Client
	handler http.Handler
	tab     atomic.Pointer[routingTable]
	// follower feeds the routing table from a controller; nil when the
	// configuration file does.
	follower atomic.Pointer[Follower]

	mu       sync.Mutex // serializes Update, Start and the checker set
	runCtx   context.Context
	checkers map[*replica]context.CancelFunc
}

// routingTable is one immutable generation of the configuration: Update
// builds a new one and swaps it in whole.
type routingTable struct {
	cfg    *Config
	models map[string]*model
	names  []string // sorted
}

// New builds a gateway for cfg. It sends no traffic and runs no health
// checks until Start or Serve.
func New(cfg *Config, opts Options) (*Gateway, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	g := &Gateway{
		opts: opts, log: opts.Logger.With("component", "gateway"),
		client: newHTTPClient(), checkers: map[*replica]context.CancelFunc{},
	}
	g.metrics = newMetrics(g)
	g.tab.Store(&routingTable{cfg: &Config{}, models: map[string]*model{}})
	if err := g.Update(cfg); err != nil {
		return nil, err
	}
	g.handler = g.routes()
	return g, nil
}

func (g *Gateway) table() *routingTable { return g.tab.Load() }

func (g *Gateway) zone() string { return g.table().cfg.Zone }

// Config returns the configuration in force (a copy owned by the gateway:
// read it, do not modify it).
func (g *Gateway) Config() *Config { return g.table().cfg }

// Handler serves the OIP REST API, GET /metrics and /admin/*.
func (g *Gateway) Handler() http.Handler { return g.handler }

// Update swaps in a new configuration atomically: models, replicas,
// policies, zone and admin token. A replica whose address stays in a model
// keeps its state (health, ejection, breaker, drain, counters); in-flight
// requests finish on the replicas they started on, removed ones included.
// It does not read files, so a controller can drive it with routing
// tables as well as the CLI with a config file.
func (g *Gateway) Update(cfg *Config) error {
	if cfg == nil {
		return errors.New("gateway: nil config")
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("gateway: invalid config: %w", err)
	}
	cfg = cfg.clone() // the caller may reuse its Config; ours must not change under us
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.table()
	tab := &routingTable{cfg: cfg, models: make(map[string]*model, len(cfg.Models)), names: sortedKeys(cfg.Models)}
	keep := map[*replica]*model{}
	for _, name := range tab.names {
		mc := cfg.Models[name]
		p := mc.Policy.clone()
		m := old.models[name]
		if m == nil {
			m = newModel(name, &p, g.log, g.metrics)
		} else {
			m.setPolicy(&p)
		}
		reps := make([]*replica, 0, len(mc.Replicas))
		for _, rc := range mc.Replicas {
			r := m.find(rc.Address)
			if r == nil {
				r = newReplica(rc)
			}
			r.mu.Lock()
			r.zone = rc.Zone
			r.mu.Unlock()
			reps = append(reps, r)
			keep[r] = m
		}
		m.set.Store(newReplicaSet(reps, &mc))
		tab.models[name] = m
	}
	g.tab.Store(tab)
	for _, m := range old.models {
		for _, r := range m.replicas() {
			if keep[r] == nil && r.pool != nil {
				r.pool.closeIdle(true) // its requests in flight finish on their own connections
			}
		}
	}
	for r, cancel := range g.checkers {
		if keep[r] == nil {
			cancel()
			delete(g.checkers, r)
		}
	}
	if g.runCtx != nil {
		for r, m := range keep {
			g.startChecker(m, r)
		}
	}
	g.log.Info("routing table updated", "models", len(tab.models), "replicas", len(keep), "zone", cfg.Zone)
	return nil
}

// Start runs the health checkers until ctx ends. Serve calls it; call it
// yourself when you mount Handler on your own server. Later calls do nothing.
func (g *Gateway) Start(ctx context.Context) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.runCtx != nil {
		return
	}
	g.runCtx = ctx
	for _, m := range g.table().models {
		for _, r := range m.replicas() {
			g.startChecker(m, r)
		}
	}
}

// startChecker starts r's health checker if it has none. Caller holds g.mu.
func (g *Gateway) startChecker(m *model, r *replica) {
	if g.checkers[r] != nil {
		return
	}
	ctx, cancel := context.WithCancel(g.runCtx)
	g.checkers[r] = cancel
	go g.check(ctx, m, r)
}

// ListenAndServe listens on addr (the config's listen address, say) and
// calls Serve.
func (g *Gateway) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("gateway: listen: %w", err)
	}
	return g.Serve(ctx, ln)
}

// Serve starts the health checkers and serves on ln until ctx is
// cancelled, then shuts down gracefully: the listener closes at once and
// in-flight requests finish, for up to Options.ShutdownTimeout. It
// returns nil after a clean shutdown.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	g.Start(ctx)
	hs := &http.Server{
		Handler:           g.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
		// No WriteTimeout: each request is bounded by its model's timeout.
		// Requests get a fresh base context, not ctx: cancelling ctx starts
		// the shutdown, which must let in-flight requests finish.
	}
	g.log.Info("serving", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("gateway: serve: %w", err)
	case <-ctx.Done():
	}
	g.log.Info("shutting down", "timeout", g.opts.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.opts.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
		return fmt.Errorf("gateway: graceful shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("gateway: serve: %w", err)
	}
	g.client.CloseIdleConnections()
	for _, m := range g.table().models {
		for _, r := range m.replicas() {
			if r.pool != nil {
				r.pool.closeIdle(false)
			}
		}
	}
	g.log.Info("stopped")
	return nil
}

// Ready reports whether every configured model has at least one replica
// that can take a request: what GET /v2/health/ready answers.
func (g *Gateway) Ready() bool { return g.notReady() == "" }

func (g *Gateway) notReady() string {
	tab := g.table()
	if len(tab.names) == 0 {
		if f := g.follower.Load(); f != nil {
			if st := f.Status(); st.Generation == 0 {
				msg := "no routing table yet from the controller at " + st.Source
				if st.LastError != "" {
					msg += ": " + st.LastError
				}
				return msg
			}
			return "the controller's routing table has no models"
		}
		return "no models are configured"
	}
	now := time.Now()
	for _, name := range tab.names {
		if m := tab.models[name]; m.available(now) == 0 {
			return m.unavailableMsg(now, "")
		}
	}
	return ""
}
