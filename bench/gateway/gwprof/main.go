// Command gwprof runs the Bulwark gateway from a config file, as `bulwark
// gateway --config FILE` does, and serves net/http/pprof on a second
// loopback address so that the gateway can be profiled under load:
//
//	gwprof -config gateway.yaml -pprof 127.0.0.1:18299 &
//	go tool pprof -top http://127.0.0.1:18299/debug/pprof/profile?seconds=8
//
// It exists for bench/gateway/overhead.sh (PROFILE=1); the CLI does not
// expose pprof.
package main

import (
	"context"
	"flag"
	"log"
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"syscall"

	"github.com/bulwark-ml/bulwark/internal/gateway"
)

func main() {
	config := flag.String("config", "", "gateway configuration file (YAML)")
	pprofAddr := flag.String("pprof", "127.0.0.1:18299", "address for /debug/pprof (loopback)")
	flag.Parse()
	cfg, err := gateway.LoadConfig(*config)
	if err != nil {
		log.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	g, err := gateway.New(cfg, gateway.Options{Logger: logger, ConfigPath: *config})
	if err != nil {
		log.Fatal(err)
	}
	go func() { log.Fatal(http.ListenAndServe(*pprofAddr, nil)) }()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := g.ListenAndServe(ctx, cfg.Listen); err != nil {
		log.Fatal(err)
	}
}
