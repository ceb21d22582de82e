// Command controlplane runs the Gatehouse control plane, or applies its migrations
// (`controlplane migrate`).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/app"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/database"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/natsbus"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/sso"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()}))
	if err := run(ctx, os.Args[1:], log); err != nil {
		log.Error("controlplane failed", "error", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, log *slog.Logger) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("controlplane "+cmd, flag.ContinueOnError)
	var cfg app.Config
	var regions string
	var showVersion bool
	fs.StringVar(&cfg.DatabaseURL, "database-url", env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/gatehouse?sslmode=disable"), "Postgres URL (DATABASE_URL)")
	fs.StringVar(&cfg.Listen, "listen", env("GATEHOUSE_CONTROLPLANE_ADDR", "127.0.0.1:8080"), "HTTP listen address (GATEHOUSE_CONTROLPLANE_ADDR)")
	fs.StringVar(&cfg.NATSURL, "nats-url", env("NATS_URL", "nats://127.0.0.1:4222"), "NATS URL (NATS_URL); ignored with --embedded-nats")
	fs.BoolVar(&cfg.EmbeddedNATS, "embedded-nats", env("GATEHOUSE_EMBEDDED_NATS", "") == "true", "run an in-process NATS server with JetStream (GATEHOUSE_EMBEDDED_NATS=true)")
	fs.StringVar(&cfg.EmbeddedNATSListen, "embedded-nats-listen", env("GATEHOUSE_EMBEDDED_NATS_ADDR", "127.0.0.1:14222"), "embedded NATS listen address")
	fs.StringVar(&cfg.EmbeddedNATSStore, "embedded-nats-store", env("GATEHOUSE_EMBEDDED_NATS_STORE", ".dev/nats"), "embedded NATS JetStream store directory")
	fs.StringVar(&regions, "regions", env("GATEHOUSE_REGIONS", "local"), "comma-separated regions to publish config to (GATEHOUSE_REGIONS)")
	fs.StringVar(&cfg.PublicURL, "public-url", env("GATEHOUSE_PUBLIC_URL", ""), "URL browsers use to reach the console (GATEHOUSE_PUBLIC_URL); default http://<listen>")
	fs.DurationVar(&cfg.SessionIdle, "session-idle", 2*time.Hour, "console session idle timeout")
	fs.DurationVar(&cfg.SessionAbsolute, "session-absolute", 12*time.Hour, "console session absolute timeout")
	fs.Int64Var(&cfg.UsageStreamMaxBytes, "usage-stream-max-bytes", envInt64("GATEHOUSE_USAGE_STREAM_MAX_BYTES", natsbus.DefaultUsageMaxBytes),
		"bound of the usage stream's backlog (events not yet ingested); when full, gateways keep their batches in their spools (GATEHOUSE_USAGE_STREAM_MAX_BYTES)")
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if showVersion {
		fmt.Println(version)
		return nil
	}
	cfg.AdminToken = os.Getenv("GATEHOUSE_ADMIN_TOKEN")
	cfg.ConfigKeys = os.Getenv("GATEHOUSE_CONFIG_KEYS")
	cfg.MasterKeys = os.Getenv("GATEHOUSE_MASTER_KEYS")
	cfg.Version = version
	cfg.AllowLinkLocalUpstreams = os.Getenv("GATEHOUSE_ALLOW_LINK_LOCAL_UPSTREAMS") == "true"
	cfg.GatewayURL = os.Getenv("GATEHOUSE_GATEWAY_URL")
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + cfg.Listen
	}
	if issuer := os.Getenv("GATEHOUSE_PLATFORM_OIDC_ISSUER"); issuer != "" {
		cfg.Platform = &sso.Platform{
			Issuer: issuer, ClientID: os.Getenv("GATEHOUSE_PLATFORM_OIDC_CLIENT_ID"), ClientSecret: os.Getenv("GATEHOUSE_PLATFORM_OIDC_CLIENT_SECRET"),
			Domains: list(os.Getenv("GATEHOUSE_PLATFORM_OIDC_DOMAINS")), AdminEmails: list(os.Getenv("GATEHOUSE_PLATFORM_ADMINS")),
			AdminGroup: os.Getenv("GATEHOUSE_PLATFORM_ADMIN_GROUP"),
		}
	}
	cfg.Regions = list(regions)

	switch cmd {
	case "serve":
		return app.Run(ctx, cfg, log, nil)
	case "rotate-keys":
		pool, err := database.Open(ctx, cfg.DatabaseURL)
		if err != nil {
			return err
		}
		defer pool.Close()
		if err := database.Migrate(ctx, pool, log); err != nil {
			return err
		}
		kr, err := wire.ParseKeyring(cfg.MasterKeys)
		if err != nil {
			return fmt.Errorf("master keys: %w", err)
		}
		n, err := store.New(pool, kr).RotateSecrets(ctx, "rotate-keys command")
		if err != nil {
			return err
		}
		log.Info("secrets re-sealed under the active master key", "key_id", kr.ActiveKeyID(), "resealed", n)
		fmt.Printf("re-sealed %d credentials under key %s\n", n, kr.ActiveKeyID())
		return nil
	case "migrate":
		pool, err := database.Open(ctx, cfg.DatabaseURL)
		if err != nil {
			return err
		}
		defer pool.Close()
		return database.Migrate(ctx, pool, log)
	default:
		return fmt.Errorf("unknown command %q (want serve, migrate or rotate-keys)", cmd)
	}
}

// list splits a comma-separated setting, dropping blanks.
func list(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(strings.ToLower(p)); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// envInt64 is the integer in the environment variable name, or def when it is unset
// or not a number.
func envInt64(name string, def int64) int64 {
	if v, err := strconv.ParseInt(os.Getenv(name), 10, 64); err == nil {
		return v
	}
	return def
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("GATEHOUSE_LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}
