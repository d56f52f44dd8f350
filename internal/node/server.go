package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/runtime"
)

// Config configures a Server. Store and Runtime are required; zero values
// elsewhere take the defaults below.
type Config struct {
	Store   *modelstore.Store
	Runtime runtime.Runtime
	Logger  *slog.Logger

	// MaxBodyBytes bounds an inference request body (default 64 MiB);
	// larger bodies get 413.
	MaxBodyBytes int64

	// HTTP server timeouts. ReadHeaderTimeout (default 10s) guards against
	// slow-header clients; WriteTimeout (default 60s) bounds a whole
	// inference, IdleTimeout (default 120s) a kept-alive connection.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration // default 30s
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration

	// ShutdownTimeout bounds how long Serve waits for in-flight requests
	// once its context is cancelled (default 30s).
	ShutdownTimeout time.Duration

	// NodeName and Version are reported by GET /v2.
	NodeName string // default "bulwark"
	Version  string // default "dev"

	// Chaos enables chaos mode: fault injection on inference requests,
	// set through /admin/chaos (see chaos.go). Off, those endpoints do not
	// exist. On, AdminToken is required and guards them.
	Chaos      bool
	AdminToken string
	// ChaosExit ends the process for the "exit" fault (default os.Exit);
	// tests replace it.
	ChaosExit func(code int)

	// MemoryLimit is the soft memory limit (debug.SetMemoryLimit) the node
	// sets for the whole process, in bytes. 0 (the default) is automatic:
	// unless the GOMEMLIMIT environment variable is set, twice the size of
	// the model files the node serves plus 40 MiB, updated as models load.
	// A negative value leaves the Go runtime's setting alone. The limit
	// makes the garbage collector work harder near it; it never fails an
	// allocation. See memory.go.
	MemoryLimit int64

	// Models restricts the node to these versions, "NAME:VERSION" (or
	// "NAME" for all of a model's versions); empty serves every version in
	// the store. The controller starts one node per deployment version.
	Models []string
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 64 << 20
	}
	def(&c.ReadHeaderTimeout, 10*time.Second)
	def(&c.ReadTimeout, 30*time.Second)
	def(&c.WriteTimeout, 60*time.Second)
	def(&c.IdleTimeout, 120*time.Second)
	def(&c.ShutdownTimeout, 30*time.Second)
	if c.NodeName == "" {
		c.NodeName = "bulwark"
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ChaosExit == nil {
		c.ChaosExit = os.Exit
	}
}

// Server is a serving node. Create it with New, then either call Serve
// (which loads the models in the background) or, to embed it, call Reload
// and mount Handler yourself.
type Server struct {
	cfg     Config
	log     *slog.Logger
	models  *manager
	metrics *metrics
	handler http.Handler
	chaos   *chaos // nil unless Config.Chaos

	loadOnce sync.Once
	loading  sync.WaitGroup
	closed   sync.Once
}

// New builds a server. It loads nothing yet.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("node: Config.Store is required")
	}
	if cfg.Runtime == nil {
		return nil, errors.New("node: Config.Runtime is required")
	}
	if cfg.Chaos && cfg.AdminToken == "" {
		return nil, errors.New("node: chaos mode needs an admin token")
	}
	filter, err := newModelFilter(cfg.Models)
	if err != nil {
		return nil, err
	}
	cfg.setDefaults()
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "node"), metrics: newMetrics()}
	if cfg.Chaos {
		s.chaos = newChaos(&cfg, s.log, s.metrics)
		s.log.Warn("chaos mode is on: faults can be injected through /admin/chaos")
	}
	s.models = &manager{
		store: cfg.Store, rt: cfg.Runtime, log: s.log, metrics: s.metrics,
		models: map[string]*modelEntry{}, filter: filter,
		mem: newMemoryPolicy(cfg.MemoryLimit, s.log.Info),
	}
	s.handler = s.routes()
	return s, nil
}

// Handler serves the OIP REST API and GET /metrics.
func (s *Server) Handler() http.Handler { return s.handler }

// Reload rescans the store: it loads versions pushed since the last scan
// and retries versions that failed, keeping loaded ones serving. It is safe
// to call at any time, concurrently with requests; calls are serialized.
// The error is about the scan itself (the store cannot be listed); a
// version that fails to load is reported through ModelStatus instead.
func (s *Server) Reload(ctx context.Context) error {
	return s.models.reload(ctx)
}

// ModelStatus lists every model version the node knows, by name and then
// version order.
func (s *Server) ModelStatus() []ModelStatus { return s.models.status() }

// Ready reports whether the first load has finished and at least one
// model version is serving: what GET /v2/health/ready answers.
func (s *Server) Ready() bool {
	loaded, ready := s.models.anyReady()
	return loaded && ready
}

// ListenAndServe listens on addr (e.g. ":8080") and calls Serve.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("node: listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is cancelled, then shuts down gracefully:
// the listener closes at once (new connections are refused) and in-flight
// requests run to completion, for up to ShutdownTimeout. The first call
// also starts loading the models in the background; the node is live at
// once and ready when a model is. Serve returns nil after a clean shutdown.
// It does not close the models: call Close after it returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.loadOnce.Do(func() {
		s.loading.Add(1)
		go func() {
			defer s.loading.Done()
			if err := s.Reload(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("loading models failed", "err", err)
			}
		}()
	})
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		// Requests get a fresh base context, not ctx: cancelling ctx starts
		// the shutdown, which must let in-flight inferences finish.
	}
	if s.chaos != nil {
		hs.RegisterOnShutdown(s.chaos.stop) // release hung requests so they can finish
	}
	s.log.Info("serving", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("node: serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
		return fmt.Errorf("node: graceful shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("node: serve: %w", err)
	}
	s.log.Info("stopped")
	return nil
}

// Close waits for a background load to stop and releases every model.
// Call it once no request can arrive any more (after Serve returns).
func (s *Server) Close() error {
	s.closed.Do(func() {
		s.loading.Wait()
		s.models.close()
	})
	return nil
}
