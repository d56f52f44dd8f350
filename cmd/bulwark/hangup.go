package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/bulwark-ml/bulwark/internal/gateway"
)

// reloadOnHangup re-reads the gateway config on SIGHUP, as operators of
// HAProxy and nginx expect. A bad file is logged and the running
// configuration kept.
func reloadOnHangup(ctx context.Context, g *globals, gw *gateway.Gateway, load func() (*gateway.Config, error)) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			cfg, err := load()
			if err == nil {
				err = gw.Update(cfg)
			}
			if err != nil {
				g.log.Error("config reload failed; keeping the running configuration", "component", "cli", "err", err)
				continue
			}
			g.log.Info("config reloaded", "component", "cli")
		}
	}
}
