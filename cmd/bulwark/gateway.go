package main

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/control"
	"github.com/bulwark-ml/bulwark/internal/gateway"
)

func newGatewayCmd(g *globals) *cobra.Command {
	var configPath, listen, token, controllerURL, cache string
	cmd := &cobra.Command{
		Use:   "gateway (--config FILE | --controller URL)",
		Short: "Route OIP requests to replicas: health checks, ejection, retries, hedging, voting",
		Long: `Gateway speaks the Open Inference Protocol v2 to clients and to replicas
(Bulwark nodes or any OIP server), so a client cannot tell it from a node. It
health-checks replicas, ejects outliers, retries on another replica within a
budget, hedges slow requests, can vote across replicas, splits traffic
between model versions by weight, sheds load, prefers the local zone, and
drains replicas on request. The admin API (/admin/status,
/admin/replicas/drain|undrain, /admin/reload) needs the bearer token.

Its routing comes from a configuration file (--config; SIGHUP re-reads it
without dropping requests), or from a controller (--controller): the
gateway long-polls the controller's routing table, applies every new one
without dropping requests, and keeps the last one in --routing-cache, so
that it keeps serving, even across its own restart, while the controller
is down. With both, the file gives the listen address, zone, admin token,
defaults and models of its own; the controller's models win over the
file's models of the same name.`,
		Example: "  bulwark gateway --config gateway.yaml\n" +
			"  BULWARK_ADMIN_TOKEN=s3cret bulwark gateway --config gateway.yaml --listen 0.0.0.0:8000\n" +
			"  bulwark gateway --controller http://127.0.0.1:8100",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" && controllerURL == "" {
				return usageError{errors.New("--config or --controller is required (see docs/gateway.md)")}
			}
			token = tokenFromEnv(token)
			if controllerURL != "" {
				if cache == "" {
					cache = filepath.Join(g.site, "gateway", "routing.json")
				}
				return serveFollowingGateway(cmd, g, followFlags{config: configPath, listen: listen, token: token, controller: controllerURL, cache: cache})
			}
			// Every load, at start and on reload, applies the flags over the file.
			load := func() (*gateway.Config, error) {
				cfg, err := gateway.LoadConfig(configPath)
				if err != nil {
					return nil, fmt.Errorf("%w: %v", errInvalidConfig, err)
				}
				if listen != "" {
					cfg.Listen = listen
				}
				if token != "" {
					cfg.Admin.Token = token
				}
				return cfg, nil
			}
			cfg, err := load()
			if err != nil {
				return err
			}
			gw, err := gateway.New(cfg, gateway.Options{Logger: g.log, ConfigPath: configPath, Reload: load})
			if err != nil {
				return err
			}
			ln, err := listenTCP(cfg.Listen)
			if err != nil {
				return err
			}
			go reloadOnHangup(cmd.Context(), g, gw, load)
			fmt.Fprintf(cmd.OutOrStdout(), "gateway serving on http://%s\n", ln.Addr())
			return gw.Serve(cmd.Context(), ln)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&configPath, "config", "c", "", "gateway configuration file (YAML); with --controller, optional and its models section too")
	f.StringVar(&controllerURL, "controller", "", "take the routing table from this controller (e.g. http://127.0.0.1:8100)")
	f.StringVar(&cache, "routing-cache", "", "with --controller, where the last routing table is kept (default <site>/gateway/routing.json)")
	f.StringVar(&listen, "listen", "", "override the config's listen address")
	f.StringVar(&token, "admin-token", "", "bearer token for the admin API, and the controller's [$BULWARK_ADMIN_TOKEN, else the config's, else <site>/admin-token]")
	return cmd
}

// followFlags configure a gateway fed by a controller.
type followFlags struct {
	config     string // optional configuration file
	listen     string // overrides the file's
	token      string // from the flag or the environment; may be empty
	controller string
	cache      string
}

// serveFollowingGateway runs `bulwark gateway --controller`.
func serveFollowingGateway(cmd *cobra.Command, g *globals, ff followFlags) error {
	ctx := cmd.Context()
	gw, follower, err := startFollowingGateway(g, ff)
	if err != nil {
		return err
	}
	ln, err := listenTCP(gw.Config().Listen)
	if err != nil {
		return err
	}
	go follower.Run(ctx)
	go reloadOnHangup(ctx, g, gw, follower.Reload)
	fmt.Fprintf(cmd.OutOrStdout(), "gateway serving on http://%s (routing from the controller at %s)\n", ln.Addr(), ff.controller)
	return gw.Serve(ctx, ln)
}

// startFollowingGateway builds a gateway whose models come from the
// controller, restored from the routing cache if there is one. The
// caller runs the follower and serves.
func startFollowingGateway(g *globals, ff followFlags) (*gateway.Gateway, *gateway.Follower, error) {
	ctlToken := ff.token
	if ctlToken == "" {
		ctlToken, _ = siteAdminToken(g.site, false)
	}
	// Each load, at start and on reload, applies the flags over the file.
	load := func() (*gateway.Config, error) {
		cfg := &gateway.Config{Listen: gateway.DefaultListen, Defaults: gateway.DefaultPolicy(), Models: map[string]gateway.ModelConfig{}}
		if ff.config != "" {
			c, err := gateway.LoadPartialConfig(ff.config)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", errInvalidConfig, err)
			}
			cfg = c
		}
		if ff.listen != "" {
			cfg.Listen = ff.listen
		}
		if ff.token != "" || cfg.Admin.Token == "" {
			// One token for the site: what bulwark status reads.
			cfg.Admin.Token = ctlToken
		}
		return cfg, nil
	}
	base, err := load()
	if err != nil {
		return nil, nil, err
	}
	var follower *gateway.Follower
	reload := func() (*gateway.Config, error) { return follower.Reload() }
	gw, err := gateway.New(base, gateway.Options{Logger: g.log, Reload: reload})
	if err != nil {
		return nil, nil, err
	}
	follower, err = gateway.NewFollower(gw, gateway.FollowerOptions{
		Source: control.NewClient(ff.controller, ctlToken), SourceName: ff.controller,
		CacheFile: ff.cache, Base: load,
	})
	if err != nil {
		return nil, nil, err
	}
	if gen, err := follower.Restore(); err != nil {
		// The cache is only a copy: the controller's next table replaces it.
		g.log.Error("routing cache not used", "component", "cli", "err", err)
	} else if gen == 0 {
		g.log.Info("no routing cache yet; waiting for the controller's table", "component", "cli", "controller", ff.controller)
	}
	return gw, follower, nil
}

// errInvalidConfig marks configuration errors (exit code 4).
var errInvalidConfig = errors.New("invalid configuration")

// listenTCP binds addr with a message that says what to do when it is taken.
func listenTCP(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%w (is another bulwark running? choose another address with --listen)", err)
	}
	return ln, err
}
