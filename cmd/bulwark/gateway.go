package main

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/gateway"
)

func newGatewayCmd(g *globals) *cobra.Command {
	var configPath, listen, token string
	cmd := &cobra.Command{
		Use:   "gateway --config FILE",
		Short: "Route OIP requests to replicas: health checks, ejection, retries, hedging, voting",
		Long: `Gateway speaks the Open Inference Protocol v2 to clients and to replicas
(Bulwark nodes or any OIP server), so a client cannot tell it from a node. It
health-checks replicas, ejects outliers, retries on another replica within a
budget, hedges slow requests, can vote across replicas, sheds load, prefers
the local zone, and drains replicas on request. The admin API (/admin/status,
/admin/replicas/drain|undrain, /admin/reload) needs the bearer token.
SIGHUP re-reads the config file without dropping requests.`,
		Example: "  bulwark gateway --config gateway.yaml\n  BULWARK_ADMIN_TOKEN=s3cret bulwark gateway --config gateway.yaml --listen 0.0.0.0:8000",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				return usageError{errors.New("--config is required (see docs/gateway.md for the format)")}
			}
			token = tokenFromEnv(token)
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
	cmd.Flags().StringVarP(&configPath, "config", "c", "", "gateway configuration file (YAML)")
	cmd.Flags().StringVar(&listen, "listen", "", "override the config's listen address")
	cmd.Flags().StringVar(&token, "admin-token", "", "bearer token for the admin API [$BULWARK_ADMIN_TOKEN]")
	return cmd
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
