// Command demo-upstream serves the deterministic OpenAI-compatible demo
// upstream (package demoupstream) that `make dev`, e2e tests and benchmarks
// point the gateway at. It logs one JSON line with its address once it
// accepts connections and shuts down gracefully on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gatehouse-dev/gatehouse/e2e/demoupstream"
)

const (
	defaultListen = "127.0.0.1:8070"
	// shutdownGrace bounds how long in-flight (possibly slow, paced)
	// responses may take to finish after a signal.
	shutdownGrace = 5 * time.Second
)

type config struct {
	listen          string
	apiKey          string
	tokenDelay      time.Duration
	firstTokenDelay time.Duration
}

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo-upstream:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg, logger)
	stop()
	if err != nil {
		logger.Error("demo upstream failed", slog.String("error", err.Error()))
		os.Exit(1)
	}
}

// parseConfig reads flags, with defaults from the environment.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	cfg := config{listen: defaultListen}
	if v := getenv("DEMO_UPSTREAM_ADDR"); v != "" {
		cfg.listen = v
	}
	cfg.apiKey = getenv("DEMO_UPSTREAM_API_KEY")

	fs := flag.NewFlagSet("demo-upstream", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.listen, "listen", cfg.listen, "address to listen on; port 0 picks a free port (env DEMO_UPSTREAM_ADDR)")
	fs.StringVar(&cfg.apiKey, "api-key", cfg.apiKey, "require 'Authorization: Bearer <key>' when set (env DEMO_UPSTREAM_API_KEY)")
	fs.DurationVar(&cfg.tokenDelay, "token-delay", 0, "delay between streamed chunks")
	fs.DurationVar(&cfg.firstTokenDelay, "first-token-delay", 0, "delay before the first chunk")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if cfg.tokenDelay < 0 || cfg.firstTokenDelay < 0 {
		return config{}, errors.New("delays must not be negative")
	}
	return cfg, nil
}

// run serves until ctx ends, then drains in-flight requests.
func run(ctx context.Context, cfg config, logger *slog.Logger) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler: demoupstream.New(demoupstream.Options{
			APIKey:          cfg.apiKey,
			TokenDelay:      cfg.tokenDelay,
			FirstTokenDelay: cfg.firstTokenDelay,
			Logger:          logger,
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("demo upstream listening", slog.String("addr", ln.Addr().String()))

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("demo upstream shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
