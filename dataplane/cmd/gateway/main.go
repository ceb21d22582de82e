// Command gateway is the Gatehouse data plane: a stateless regional gateway that
// enforces the config the control plane publishes over NATS and streams usage back.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse-dev/gatehouse/proto/wire"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/app"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/gcpace"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/logwriter"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(2)
	}
	if cfg.printVersion {
		fmt.Println(cfg.app.Version)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if cfg.gcFloorMiB > 0 && os.Getenv("GOGC") == "" {
		defer gcpace.Start(uint64(cfg.gcFloorMiB) << 20).Stop()
	}
	err = run(ctx, cfg.app)
	stop()
	if err != nil {
		cfg.app.Logger.Error("gateway failed", "err", err)
	}
	if cfg.logs != nil {
		_ = cfg.logs.Close()
	}
	if err != nil {
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg app.Config) error {
	a, err := app.New(cfg)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

type config struct {
	app          app.Config
	printVersion bool
	// logs buffers the log lines written to stderr (nil: unbuffered).
	logs *logwriter.Writer
	// gcFloorMiB paces the garbage collector (see gcpace); 0 leaves GOGC alone.
	gcFloorMiB int
}

// parseConfig reads flags, each falling back to an environment variable and then to a
// default.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	region := fs.String("region", env("GATEHOUSE_REGION", "local"), "gateway group this gateway serves (env GATEHOUSE_REGION)")
	listen := fs.String("listen", env("GATEHOUSE_GATEWAY_ADDR", "127.0.0.1:8090"), "HTTP listen address (env GATEHOUSE_GATEWAY_ADDR)")
	metricsListen := fs.String("metrics-listen", getenv("GATEHOUSE_METRICS_ADDR"), "the operator's port: serve /metrics (and /healthz, /readyz) on this address and no longer on the public one; empty keeps /metrics on --listen (env GATEHOUSE_METRICS_ADDR)")
	natsURL := fs.String("nats-url", env("NATS_URL", "nats://127.0.0.1:4222"), "NATS server URLs (env NATS_URL)")
	keys := fs.String("config-keys", getenv("GATEHOUSE_CONFIG_KEYS"), "config decryption keys id:base64-32-bytes[,...] (env GATEHOUSE_CONFIG_KEYS, required)")
	gatewayID := fs.String("gateway-id", getenv("GATEHOUSE_GATEWAY_ID"), "gateway id in heartbeats and usage (env GATEHOUSE_GATEWAY_ID, default hostname-random)")
	maxBody := fs.String("max-body-bytes", env("GATEHOUSE_MAX_BODY_BYTES", strconv.Itoa(4<<20)), "largest accepted request body (env GATEHOUSE_MAX_BODY_BYTES)")
	spoolDir := fs.String("spool-dir", env("GATEHOUSE_SPOOL_DIR", defaultSpoolDir()), "directory of the usage spool (env GATEHOUSE_SPOOL_DIR)")
	cacheDir := fs.String("cache-dir", getenv("GATEHOUSE_CONFIG_CACHE_DIR"), "directory of the on-disk cache of applied (still sealed) config snapshots, so the gateway can start while NATS is unreachable; empty disables it (env GATEHOUSE_CONFIG_CACHE_DIR)")
	cacheGrace := fs.String("cache-grace", env("GATEHOUSE_CONFIG_CACHE_GRACE", "5s"), "how long to wait for the live config at start before serving the cached one (env GATEHOUSE_CONFIG_CACHE_GRACE)")
	upstreamTimeout := fs.String("upstream-timeout", env("GATEHOUSE_UPSTREAM_TIMEOUT", "10m"), "bound on one upstream exchange, streams included (env GATEHOUSE_UPSTREAM_TIMEOUT)")
	ttft := fs.String("ttft-timeout", env("GATEHOUSE_TTFT_TIMEOUT", "0s"), "default time-to-first-token timeout of streams, retried on another attempt; 0 disables it; a model's routing overrides it (env GATEHOUSE_TTFT_TIMEOUT)")
	streamIdle := fs.String("stream-idle-timeout", env("GATEHOUSE_STREAM_IDLE_TIMEOUT", "0s"), "once a stream's first token came, end it with an error event when its provider sends nothing for this long (time spent writing to a slow caller does not count); 0 disables it (env GATEHOUSE_STREAM_IDLE_TIMEOUT)")
	retries := fs.String("max-retries", env("GATEHOUSE_MAX_RETRIES", "2"), "default retries after a failed upstream attempt (429, 5xx, connection errors, timeouts) before falling back (env GATEHOUSE_MAX_RETRIES)")
	backoff := fs.String("retry-backoff", env("GATEHOUSE_RETRY_BACKOFF", "250ms"), "default base of the exponential backoff with full jitter between retries (env GATEHOUSE_RETRY_BACKOFF)")
	breakerFailures := fs.String("breaker-failures", env("GATEHOUSE_BREAKER_FAILURES", "5"), "default consecutive failures that open a deployment's circuit breaker (env GATEHOUSE_BREAKER_FAILURES)")
	breakerCooldown := fs.String("breaker-cooldown", env("GATEHOUSE_BREAKER_COOLDOWN", "30s"), "default time an open circuit breaker waits before a probe (env GATEHOUSE_BREAKER_COOLDOWN)")
	otlp := fs.String("otlp-endpoint", getenv("OTEL_EXPORTER_OTLP_ENDPOINT"), "OpenTelemetry collector base URL for traces over OTLP/HTTP, e.g. http://collector:4318; empty disables tracing (env OTEL_EXPORTER_OTLP_ENDPOINT)")
	accessLog := fs.String("access-log", env("GATEHOUSE_ACCESS_LOG", "true"), "log one JSON line per LLM request (no prompt contents unless the team enables log_contents) (env GATEHOUSE_ACCESS_LOG)")
	entraAuthority := fs.String("azure-authority", env("GATEHOUSE_AZURE_AUTHORITY", "https://login.microsoftonline.com"), "Microsoft Entra ID authority that Azure OpenAI providers authenticated by Entra ID get their tokens from; a sovereign cloud's gateways set its own, e.g. https://login.microsoftonline.us; plain http only on loopback, for tests (env GATEHOUSE_AZURE_AUTHORITY)")
	allowLinkLocal := fs.String("allow-link-local-upstreams", env("GATEHOUSE_ALLOW_LINK_LOCAL_UPSTREAMS", "false"), "let upstream connections reach link-local and cloud metadata addresses, which are refused at dial time otherwise (env GATEHOUSE_ALLOW_LINK_LOCAL_UPSTREAMS, as on the control plane)")
	gcFloor := fs.String("gc-floor-mib", env("GATEHOUSE_GC_FLOOR_MIB", "20"), "the heap may grow by at least this many MiB between garbage collections (GOGC follows the live heap, between 100 and 400); 0, or GOGC set in the environment, leaves the runtime's pacing alone (env GATEHOUSE_GC_FLOOR_MIB)")
	logFlush := fs.String("log-flush-interval", env("GATEHOUSE_LOG_FLUSH_INTERVAL", "100ms"), "log lines are buffered and written to stderr this often, so the access log costs no system call per request; 0 writes every line at once (env GATEHOUSE_LOG_FLUSH_INTERVAL)")
	logLevel := fs.String("log-level", env("GATEHOUSE_LOG_LEVEL", "info"), "debug, info, warn or error (env GATEHOUSE_LOG_LEVEL)")
	fs.BoolVar(&cfg.printVersion, "version", false, "print the build version and exit")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.app.Version = buildVersion()
	if cfg.printVersion {
		return cfg, nil
	}

	if err := wire.ValidRegion(*region); err != nil {
		return cfg, fmt.Errorf("--region: %w", err)
	}
	if *keys == "" {
		return cfg, errors.New("--config-keys (GATEHOUSE_CONFIG_KEYS) is required")
	}
	kr, err := wire.ParseKeyring(*keys)
	if err != nil {
		return cfg, fmt.Errorf("--config-keys: %w", err)
	}
	body, err := strconv.ParseInt(*maxBody, 10, 64)
	if err != nil || body <= 0 {
		return cfg, fmt.Errorf("--max-body-bytes: want a positive integer, got %q", *maxBody)
	}
	timeout, err := time.ParseDuration(*upstreamTimeout)
	if err != nil || timeout <= 0 {
		return cfg, fmt.Errorf("--upstream-timeout: want a positive duration, got %q", *upstreamTimeout)
	}
	grace, err := time.ParseDuration(*cacheGrace)
	if err != nil || grace <= 0 {
		return cfg, fmt.Errorf("--cache-grace: want a positive duration, got %q", *cacheGrace)
	}
	for _, d := range []struct {
		name string
		raw  string
		zero bool
		dst  *time.Duration
	}{
		{"--ttft-timeout", *ttft, true, &cfg.app.TTFTTimeout},
		{"--stream-idle-timeout", *streamIdle, true, &cfg.app.StreamIdleTimeout},
		{"--retry-backoff", *backoff, false, &cfg.app.RetryBackoff},
		{"--breaker-cooldown", *breakerCooldown, false, &cfg.app.BreakerCooldown},
	} {
		v, err := time.ParseDuration(d.raw)
		if err != nil || v < 0 || (v == 0 && !d.zero) {
			return cfg, fmt.Errorf("%s: want a positive duration, got %q", d.name, d.raw)
		}
		*d.dst = v
	}
	n, err := strconv.Atoi(*retries)
	if err != nil || n < 0 || n > 10 {
		return cfg, fmt.Errorf("--max-retries: want 0 to 10, got %q", *retries)
	}
	// 0 retries must mean none, while a zero llm.Config field means the default.
	cfg.app.MaxRetries = n
	if n == 0 {
		cfg.app.MaxRetries = -1
	}
	if cfg.app.BreakerFailures, err = strconv.Atoi(*breakerFailures); err != nil || cfg.app.BreakerFailures < 1 {
		return cfg, fmt.Errorf("--breaker-failures: want a positive integer, got %q", *breakerFailures)
	}
	if cfg.app.AllowLinkLocalUpstreams, err = strconv.ParseBool(*allowLinkLocal); err != nil {
		return cfg, fmt.Errorf("--allow-link-local-upstreams: want true or false, got %q", *allowLinkLocal)
	}
	if cfg.app.AccessLog, err = strconv.ParseBool(*accessLog); err != nil {
		return cfg, fmt.Errorf("--access-log: want true or false, got %q", *accessLog)
	}
	if *otlp != "" {
		if u, err := url.Parse(*otlp); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cfg, fmt.Errorf("--otlp-endpoint: want an http(s) URL, got %q", *otlp)
		}
		cfg.app.OTLPEndpoint = *otlp
	}
	if u, err := url.Parse(*entraAuthority); err != nil || !(u.Scheme == "https" || u.Scheme == "http" && loopbackHost(u.Hostname())) ||
		u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return cfg, fmt.Errorf("--azure-authority: want an https URL such as https://login.microsoftonline.com (http on loopback only), got %q", *entraAuthority)
	}
	cfg.app.EntraAuthority = *entraAuthority
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return cfg, fmt.Errorf("--log-level: %w", err)
	}
	if *gatewayID == "" {
		*gatewayID = defaultGatewayID()
	}
	if !validSubjectToken(*gatewayID) {
		return cfg, fmt.Errorf("--gateway-id: %q must be 1 to 64 characters without '.', '*', '>' or spaces", *gatewayID)
	}
	cfg.app.Region = *region
	cfg.app.Listen = *listen
	cfg.app.MetricsListen = *metricsListen
	cfg.app.NATSURL = *natsURL
	cfg.app.Keyring = kr
	cfg.app.GatewayID = *gatewayID
	cfg.app.MaxBodyBytes = body
	cfg.app.SpoolDir = *spoolDir
	cfg.app.ConfigCacheDir = *cacheDir
	cfg.app.ConfigCacheGrace = grace
	cfg.app.UpstreamTimeout = timeout
	if cfg.gcFloorMiB, err = strconv.Atoi(*gcFloor); err != nil || cfg.gcFloorMiB < 0 || cfg.gcFloorMiB > 4096 {
		return cfg, fmt.Errorf("--gc-floor-mib: want 0 to 4096, got %q", *gcFloor)
	}
	flushEvery, err := time.ParseDuration(*logFlush)
	if err != nil || flushEvery < 0 {
		return cfg, fmt.Errorf("--log-flush-interval: want a duration, got %q", *logFlush)
	}
	var logOut io.Writer = os.Stderr
	if flushEvery > 0 {
		cfg.logs = logwriter.New(os.Stderr, flushEvery)
		logOut = cfg.logs
	}
	cfg.app.Logger = slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: level}))
	cfg.app.AccessLogOut = logOut
	return cfg, nil
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}

func defaultSpoolDir() string {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "gatehouse", "usage-spool")
}

func defaultGatewayID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "gateway"
	}
	host = strings.Map(func(r rune) rune {
		if strings.ContainsRune(".*> \t\r\n", r) {
			return '-'
		}
		return r
	}, host)
	if len(host) > 48 {
		host = host[:48]
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// validSubjectToken reports whether s can be one token of a NATS subject.
func validSubjectToken(s string) bool {
	return s != "" && len(s) <= 64 && !strings.ContainsAny(s, ".*> \t\r\n")
}

// loopbackHost reports whether host is localhost or a loopback address.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
