// Package app wires the gateway together: the NATS connection, config sync, the usage
// recorder, heartbeats, the routing state, the LLM client, tracing and the HTTP server,
// and runs them with an orderly shutdown (drain HTTP, then flush usage and traces, then
// close NATS). It is the only package that knows every other one; it holds no request
// logic.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/configsync"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/heartbeat"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/httpapi"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/httpserver"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/limit"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/llm"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/peers"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/policy"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/rawconn"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/routing"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/usage"
)

// Config is the gateway's configuration, as parsed from flags and the environment.
type Config struct {
	Region string
	Listen string
	// MetricsListen, when set, is the address of the operator's port: /metrics (and
	// /healthz, /readyz) are served there and /metrics no longer on Listen.
	MetricsListen string
	NATSURL       string
	Keyring       *wire.Keyring
	GatewayID     string
	MaxBodyBytes  int64
	SpoolDir      string
	SpoolMaxBytes int64
	// ConfigCacheDir, when set, keeps the last applied (sealed) snapshots on disk so
	// the gateway can start while NATS is unreachable; ConfigCacheGrace is how long it
	// waits for the live config before serving them (default 5s).
	ConfigCacheDir   string
	ConfigCacheGrace time.Duration
	UpstreamTimeout  time.Duration
	// StreamIdleTimeout bounds the silence between stream events after the first
	// token (0: none; see llm.Config).
	StreamIdleTimeout time.Duration
	// TTFTTimeout, MaxRetries (negative for none), RetryBackoff, BreakerFailures and
	// BreakerCooldown are the routing defaults of models that set none (see
	// llm.Config).
	TTFTTimeout     time.Duration
	MaxRetries      int
	RetryBackoff    time.Duration
	BreakerFailures int
	BreakerCooldown time.Duration
	// OTLPEndpoint, when set, exports traces over OTLP/HTTP to this collector base URL;
	// TraceBatchTimeout is the export period (default 5s).
	OTLPEndpoint      string
	TraceBatchTimeout time.Duration
	// AccessLog logs one line per LLM request, to AccessLogOut (default os.Stderr).
	AccessLog    bool
	AccessLogOut io.Writer
	// EntraAuthority is the Microsoft Entra ID authority of Azure OpenAI providers
	// authenticated by Entra ID (default llm.DefaultEntraAuthority; tests use http on
	// loopback).
	EntraAuthority string
	// AllowLinkLocalUpstreams lets upstream connections reach the addresses
	// wire.UpstreamAddrRefused names (cloud metadata and the like).
	AllowLinkLocalUpstreams bool
	// Admitter and Guard are the limits and guardrails hooks of the HTTP API (nil:
	// none); see httpapi/hooks.go.
	Admitter httpapi.Admitter
	Guard    httpapi.Guard
	// ShutdownTimeout bounds the HTTP drain on shutdown (default 30s).
	ShutdownTimeout time.Duration
	// HeartbeatInterval is the status period (default 5s).
	HeartbeatInterval time.Duration
	// UsageFlushInterval is the usage batching period (default 100ms).
	UsageFlushInterval time.Duration
	Version            string
	Logger             *slog.Logger
}

// App is a wired gateway.
type App struct {
	cfg      Config
	log      *slog.Logger
	started  time.Time
	nc       *nats.Conn
	store    *runtime.Store
	syncer   *configsync.Syncer
	recorder *usage.Recorder
	router   *routing.Router
	llm      *llm.Client
	// stopTracing flushes and stops the trace exporter; nil when tracing is off.
	stopTracing func(context.Context) error
	api         *httpapi.Server
	heartbeat   *heartbeat.Publisher
	// peers counts the region's live gateways; limiter enforces this gateway's share of
	// every limit. Both are nil when a test supplies its own Admitter.
	peers    *peers.Tracker
	limiter  *limit.Limiter
	server   *httpserver.Server
	listener net.Listener
	// metricsServer serves the operator's port (nil without Config.MetricsListen).
	metricsServer   *http.Server
	metricsListener net.Listener
}

// New builds the gateway and binds its listener. It does not wait for NATS: the
// connection is retried forever in the background.
func New(cfg Config) (*App, error) {
	if err := wire.ValidRegion(cfg.Region); err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	if cfg.Keyring == nil {
		return nil, errors.New("app: no config keyring")
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 5 * time.Second
	}
	log := cfg.Logger.With("gateway_id", cfg.GatewayID, "region", cfg.Region)
	a := &App{cfg: cfg, log: log, started: time.Now(), store: &runtime.Store{}}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	nc, err := nats.Connect(cfg.NATSURL,
		nats.Name("gatehouse-gateway "+cfg.GatewayID),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		// Fail publishes while disconnected instead of buffering them: usage goes to
		// the spool and heartbeats are simply skipped.
		nats.ReconnectBufSize(-1),
		nats.ConnectHandler(func(*nats.Conn) { log.Info("nats connected") }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("nats disconnected", "err", err) }),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("nats reconnected") }),
		// Usage events go out on this connection after every request: raw writes,
		// as the HTTP connections', keep them from waking the runtime's monitor.
		nats.SetCustomDialer(rawDialer(rawconn.WrapDial((&net.Dialer{Timeout: 2 * time.Second}).DialContext))),
	)
	if err != nil {
		return nil, fmt.Errorf("app: connect nats: %w", err)
	}
	a.nc = nc
	cleanup := func(err error) (*App, error) {
		nc.Close()
		if a.stopTracing != nil {
			_ = a.stopTracing(context.Background())
		}
		return nil, err
	}

	a.syncer, err = configsync.New(configsync.Config{
		Conn: nc, Region: cfg.Region, Keyring: cfg.Keyring, Store: a.store, Logger: log, Registerer: reg,
		CacheDir: cfg.ConfigCacheDir, CacheGrace: cfg.ConfigCacheGrace,
		// Report config changes at once; a.heartbeat is set below, before Run starts.
		OnChange: func() {
			if a.heartbeat != nil {
				a.heartbeat.Kick()
			}
			a.pruneRoutingState()
		},
	})
	if err != nil {
		return cleanup(fmt.Errorf("app: %w", err))
	}
	a.recorder, err = usage.New(usage.Config{
		Conn: nc, Region: cfg.Region, GatewayID: cfg.GatewayID,
		SpoolDir: cfg.SpoolDir, SpoolMaxBytes: cfg.SpoolMaxBytes, FlushInterval: cfg.UsageFlushInterval,
		Logger: log, Registerer: reg,
	})
	if err != nil {
		return cleanup(fmt.Errorf("app: %w", err))
	}
	var tracer trace.Tracer
	if cfg.OTLPEndpoint != "" {
		if tracer, a.stopTracing, err = newTracing(cfg.OTLPEndpoint, cfg); err != nil {
			return cleanup(fmt.Errorf("app: %w", err))
		}
	}
	a.router, err = routing.New(routing.Config{Registerer: reg})
	if err != nil {
		return cleanup(fmt.Errorf("app: %w", err))
	}
	responseIDs, err := llm.NewResponseIDs(cfg.Keyring)
	if err != nil {
		return cleanup(fmt.Errorf("app: response ids: %w", err))
	}
	a.llm, err = llm.NewClient(llm.Config{
		ResponseIDs: responseIDs,
		Timeout:     cfg.UpstreamTimeout, TTFTTimeout: cfg.TTFTTimeout, StreamIdleTimeout: cfg.StreamIdleTimeout, MaxRetries: cfg.MaxRetries, RetryBackoff: cfg.RetryBackoff,
		BreakerFailures: cfg.BreakerFailures, BreakerCooldown: cfg.BreakerCooldown,
		Router: a.router, Tracer: tracer, Logger: log, Registerer: reg,
		AllowLinkLocalUpstreams: cfg.AllowLinkLocalUpstreams, EntraAuthority: cfg.EntraAuthority,
	})
	if err != nil {
		return cleanup(fmt.Errorf("app: %w", err))
	}
	admitter, guard := cfg.Admitter, cfg.Guard
	if admitter == nil {
		a.peers, err = peers.New(peers.Options{Conn: nc, Region: cfg.Region, Self: cfg.GatewayID, Interval: cfg.HeartbeatInterval,
			Floor: readPeerCount(cfg.ConfigCacheDir), Logger: log, Registerer: reg})
		if err != nil {
			return cleanup(fmt.Errorf("app: %w", err))
		}
		a.limiter, err = limit.New(limit.Options{Peers: a.peers.Count, Registerer: reg})
		if err != nil {
			return cleanup(fmt.Errorf("app: %w", err))
		}
		admitter = policy.NewLimits(a.limiter)
	}
	if guard == nil {
		guard = policy.NewGuardrails()
	}
	a.api, err = httpapi.New(httpapi.Config{
		Store: a.store, LLM: a.llm, Usage: a.recorder, MaxBodyBytes: cfg.MaxBodyBytes,
		Logger: log, Registerer: reg, Gatherer: reg, MetricsApart: cfg.MetricsListen != "", Tracer: tracer, AccessLog: cfg.AccessLog, AccessLogOut: cfg.AccessLogOut,
		Admitter: admitter, Guard: guard,
	})
	if err != nil {
		return cleanup(fmt.Errorf("app: %w", err))
	}
	a.heartbeat = heartbeat.New(nc, cfg.Region, cfg.GatewayID, cfg.HeartbeatInterval, a.status, log)
	// A lean HTTP/1.1 server: the request's own goroutine reads, handles and
	// answers it (see httpserver); net/http's costs several wake-ups a request.
	a.server = &httpserver.Server{
		Handler:           a.api.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		Logger:            log,
	}
	a.listener, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return cleanup(fmt.Errorf("app: listen: %w", err))
	}
	if cfg.MetricsListen != "" {
		if a.metricsListener, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			_ = a.listener.Close()
			return cleanup(fmt.Errorf("app: metrics listen: %w", err))
		}
		a.metricsServer = &http.Server{Handler: a.api.MetricsHandler(), ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	}
	return a, nil
}

// MetricsAddr is the address of the operator's port ("" without Config.MetricsListen).
func (a *App) MetricsAddr() string {
	if a.metricsListener == nil {
		return ""
	}
	return a.metricsListener.Addr().String()
}

// Addr is the address the HTTP server listens on.
func (a *App) Addr() string { return a.listener.Addr().String() }

// Ready reports whether the initial config has been loaded.
func (a *App) Ready() bool { return a.syncer.Ready() }

// pruneRoutingState forgets the routing state (breakers, latencies) of deployments
// that left the config.
func (a *App) pruneRoutingState() {
	rt := a.store.Load()
	if rt == nil || a.router == nil {
		return
	}
	keep := map[string]struct{}{}
	for _, id := range rt.OrgIDs() {
		org, _ := rt.Org(id)
		for _, m := range org.Models() {
			for _, d := range m.Deployments {
				keep[d.StateKey] = struct{}{}
			}
		}
	}
	a.router.Retain(func(key string) bool {
		_, ok := keep[key]
		return ok
	})
}

func (a *App) status() *gatehousev1.GatewayStatus {
	return &gatehousev1.GatewayStatus{
		GatewayId:       a.cfg.GatewayID,
		Region:          a.cfg.Region,
		BuildVersion:    a.cfg.Version,
		Capability:      wire.Capability,
		StartedAtUnixMs: a.started.UnixMilli(),
		Ready:           a.syncer.Ready(),
		InFlight:        a.api.InFlight(),
		Orgs:            a.syncer.States(),
	}
}

// Run serves until ctx is done, then drains HTTP, flushes usage (to NATS or the spool)
// and closes the NATS connection. It returns an error only when serving failed.
func (a *App) Run(ctx context.Context) error {
	a.log.Info("gateway starting", "addr", a.Addr(), "version", a.cfg.Version, "capability", wire.Capability)
	var wg sync.WaitGroup
	bgCtx, stopBG := context.WithCancel(ctx)
	defer stopBG()
	usageCtx, stopUsage := context.WithCancel(context.WithoutCancel(ctx))
	defer stopUsage()
	wg.Go(func() { _ = a.syncer.Run(bgCtx) })
	wg.Go(func() { _ = a.heartbeat.Run(bgCtx) })
	if a.peers != nil {
		wg.Go(func() { _ = a.peers.Run(bgCtx) })
		wg.Go(func() { _ = a.limiter.Run(bgCtx) })
		if a.cfg.ConfigCacheDir != "" {
			wg.Go(func() { a.keepPeerCount(bgCtx) })
		}
	}
	usageDone := make(chan struct{})
	go func() {
		defer close(usageDone)
		_ = a.recorder.Run(usageCtx)
	}()

	serveErr := make(chan error, 2)
	go func() { serveErr <- a.server.Serve(a.listener) }()
	if a.metricsServer != nil {
		a.log.Info("metrics on the operator's port", "addr", a.MetricsAddr())
		go func() {
			if err := a.metricsServer.Serve(a.metricsListener); !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("metrics: %w", err)
			}
		}()
	}

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("serve http: %w", err)
	}

	a.log.Info("gateway shutting down", "in_flight", a.api.InFlight())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
	defer cancel()
	a.api.Drain() // probes on the operator's port, open through the drain, see it at once
	if err := a.server.Shutdown(sctx); err != nil {
		a.log.Warn("http drain incomplete, closing connections", "err", err)
		_ = a.server.Close()
	}
	if a.metricsServer != nil {
		_ = a.metricsServer.Close()
	}
	// Every Emit has happened now: flush what is left.
	stopUsage()
	<-usageDone
	stopBG()
	wg.Wait()
	if a.stopTracing != nil {
		if err := a.stopTracing(sctx); err != nil {
			a.log.Warn("trace export incomplete", "err", err)
		}
	}
	a.llm.Close()
	a.nc.Close()
	a.log.Info("gateway stopped")
	return runErr
}

// rawDialer is a dial function as nats.go's CustomDialer (no context).
type rawDialer func(ctx context.Context, network, addr string) (net.Conn, error)

func (d rawDialer) Dial(network, address string) (net.Conn, error) {
	return d(context.Background(), network, address)
}

// peerCountFile, in the config cache directory, keeps the region's gateway count this
// gateway last knew, for the next start (peers.Options.Floor).
const peerCountFile = "peers.count"

// readPeerCount returns the count kept in dir, or 0.
func readPeerCount(dir string) int {
	if dir == "" {
		return 0
	}
	b, err := os.ReadFile(filepath.Join(dir, peerCountFile))
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 1 || n > 10000 {
		return 0
	}
	return n
}

// keepPeerCount writes the region's gateway count to the config cache directory every
// heartbeat interval it changed, once the tracker has settled.
func (a *App) keepPeerCount(ctx context.Context) {
	tick := time.NewTicker(a.cfg.HeartbeatInterval)
	defer tick.Stop()
	kept := readPeerCount(a.cfg.ConfigCacheDir)
	warned := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !a.peers.Settled() {
			continue
		}
		n := a.peers.Heard()
		if n == kept {
			continue
		}
		path := filepath.Join(a.cfg.ConfigCacheDir, peerCountFile)
		tmp := path + ".tmp"
		err := os.WriteFile(tmp, []byte(strconv.Itoa(n)+"\n"), 0o600)
		if err == nil {
			err = os.Rename(tmp, path)
		}
		if err != nil {
			_ = os.Remove(tmp)
			if !warned { // once: a read-only directory stays one
				a.log.Warn("peer count not kept", "err", err)
				warned = true
			}
			continue
		}
		kept = n
	}
}
