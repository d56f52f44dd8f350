package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/node"
	"github.com/bulwark-ml/bulwark/internal/runtime/builtin"
	"github.com/bulwark-ml/bulwark/internal/version"
)

const defaultNodeAddr = "127.0.0.1:8000"

// nodeFlags are the serving node's settings, shared by `node` and `up`.
type nodeFlags struct {
	listen          string
	maxBody         int64
	readTimeout     time.Duration
	writeTimeout    time.Duration
	shutdownTimeout time.Duration
	chaos           bool
	adminToken      string
	name            string
	models          []string
	memoryLimit     int64
}

func (f *nodeFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", defaultNodeAddr, "address for the OIP v2 REST API and /metrics")
	fl.Int64Var(&f.maxBody, "max-body-bytes", 64<<20, "largest inference request body accepted (larger gets 413)")
	fl.DurationVar(&f.readTimeout, "read-timeout", 30*time.Second, "time allowed to read a whole request")
	fl.DurationVar(&f.writeTimeout, "write-timeout", 60*time.Second, "time allowed for an inference and its response")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM, how long in-flight requests may take to finish")
	fl.StringVar(&f.name, "name", "bulwark", "node name reported by GET /v2 and in logs")
	fl.Int64Var(&f.memoryLimit, "memory-limit", 0, "soft memory limit in bytes; 0 = automatic (2 × model files + 40 MiB unless $GOMEMLIMIT is set), negative = leave Go's setting")
	fl.StringArrayVar(&f.models, "model", nil, "serve only this model version, NAME:VERSION (or NAME for all its versions); repeatable; default every version in the store")
	fl.BoolVar(&f.chaos, "chaos", false, "enable chaos mode: fault injection through /admin/chaos (needs an admin token)")
	// The default is read from the environment in start, not here, so that
	// --help never prints the token.
	fl.StringVar(&f.adminToken, "admin-token", "", "bearer token for the admin API [$BULWARK_ADMIN_TOKEN]")
}

// start opens the store, binds the listener and starts serving in the
// background. The returned channel yields Serve's result.
func (f *nodeFlags) start(ctx context.Context, g *globals) (*node.Server, net.Addr, <-chan error, error) {
	log := g.log.With("node", f.name)
	store, err := modelstore.Open(g.site)
	if err != nil {
		return nil, nil, nil, err
	}
	srv, err := node.New(node.Config{
		Store: store, Runtime: builtin.New(), Logger: log,
		MaxBodyBytes: f.maxBody, ReadTimeout: f.readTimeout, WriteTimeout: f.writeTimeout,
		ShutdownTimeout: f.shutdownTimeout, NodeName: f.name, Version: version.Version,
		Chaos: f.chaos, AdminToken: tokenFromEnv(f.adminToken), Models: f.models, MemoryLimit: f.memoryLimit,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, nil, fmt.Errorf("%w (is another bulwark running? choose another address with --listen)", err)
		}
		return nil, nil, nil, err
	}
	done := make(chan error, 1)
	go func() {
		err := srv.Serve(ctx, ln)
		srv.Close()
		done <- err
	}()
	log.Info("node listening", "component", "cli", "addr", ln.Addr().String(), "site", g.site)
	return srv, ln.Addr(), done, nil
}

func newNodeCmd(g *globals) *cobra.Command {
	f := &nodeFlags{}
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Serve the site's models over the Open Inference Protocol (KServe V2)",
		Long: `Node serves every model version in the site's model store (or only the
versions named with --model) over the Open
Inference Protocol v2 REST API: /v2/health/live, /v2/health/ready, /v2,
/v2/models/{name}[/versions/{version}][/ready|/infer], and Prometheus
metrics at /metrics. Each version's checksums are verified before it is
loaded; a version that fails is reported not ready and the others serve.
SIGTERM or Ctrl-C stops accepting, finishes in-flight requests, then exits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, _, done, err := f.start(cmd.Context(), g)
			if err != nil {
				return err
			}
			return <-done
		},
	}
	f.register(cmd)
	return cmd
}
