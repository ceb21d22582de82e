// Package app wires the control plane: Postgres, NATS, the config publisher, the usage
// ingester, the admin API and the console, and runs them until the context ends.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/adminapi"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/configpub"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/console"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/database"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/fleet"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/natsbus"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/rbac"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/session"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/sso"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/usageingest"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config is the control plane's configuration.
type Config struct {
	Listen      string
	DatabaseURL string
	// AdminToken is the bootstrap admin API token.
	AdminToken string
	// ConfigKeys seal config snapshots for the gateways (wire.ParseKeyring format).
	ConfigKeys string
	// MasterKeys seal upstream credentials at rest (same format).
	MasterKeys string
	// NATSURL is used unless EmbeddedNATS is set.
	NATSURL            string
	EmbeddedNATS       bool
	EmbeddedNATSListen string
	EmbeddedNATSStore  string
	// UsageStreamMaxBytes bounds the usage stream's backlog (0: natsbus's default).
	UsageStreamMaxBytes int64
	Regions             []string
	Version             string
	// PublicURL is where browsers reach the control plane (the OIDC callback is
	// PublicURL/auth/callback). Cookies are Secure unless it is http on loopback.
	PublicURL string
	// GatewayURL is the public gateway URL shown in the console's key examples.
	GatewayURL string
	// AllowLinkLocalUpstreams lets upstream URLs point at link-local and cloud metadata
	// addresses (refused by default: SSRF).
	AllowLinkLocalUpstreams bool
	// Platform, if set, is the IdP that signs in platform admins.
	Platform        *sso.Platform
	SessionIdle     time.Duration
	SessionAbsolute time.Duration
}

// Run runs the control plane until ctx ends. ready, if not nil, is called with the
// HTTP address once everything is serving.
func Run(ctx context.Context, cfg Config, log *slog.Logger, ready func(addr string)) error {
	for _, r := range cfg.Regions {
		if err := wire.ValidRegion(r); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	if len(cfg.Regions) == 0 {
		return errors.New("config: at least one region is required")
	}
	configKeys, err := wire.ParseKeyring(cfg.ConfigKeys)
	if err != nil {
		return fmt.Errorf("config keys: %w", err)
	}
	masterKeys, err := wire.ParseKeyring(cfg.MasterKeys)
	if err != nil {
		return fmt.Errorf("master keys: %w", err)
	}

	pool, err := database.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := database.Migrate(ctx, pool, log); err != nil {
		return err
	}

	natsURL := cfg.NATSURL
	if cfg.EmbeddedNATS {
		srv, url, err := natsbus.StartEmbedded(natsbus.EmbeddedOptions{Listen: cfg.EmbeddedNATSListen, StoreDir: cfg.EmbeddedNATSStore}, log)
		if err != nil {
			return err
		}
		defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
		natsURL = url
	}
	nc, err := natsbus.Connect(natsURL, "gatehouse-controlplane", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	var res natsbus.Resources
	for {
		ensureCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		res, err = natsbus.Ensure(ensureCtx, js, natsbus.EnsureOptions{UsageMaxBytes: cfg.UsageStreamMaxBytes, Log: log})
		cancel()
		if err == nil {
			break
		}
		log.Warn("jetstream not ready; retrying", "error", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}

	st := store.New(pool, masterKeys, store.AllowLinkLocalUpstreams(cfg.AllowLinkLocalUpstreams))
	if err := st.EnsureRegions(ctx, cfg.Regions); err != nil {
		return err
	}
	pub := configpub.NewPublisher(st, res.Config, configKeys, cfg.Regions, natsbus.MaxConfigValueBytes, log.With("component", "configpub"))
	ing := usageingest.New(pool, js, log.With("component", "usageingest"))

	authz, err := rbac.New(ctx, st, log.With("component", "rbac"))
	if err != nil {
		return err
	}
	secure, err := cookiesSecure(cfg.PublicURL)
	if err != nil {
		return err
	}
	if !secure {
		log.Warn("console cookies are not Secure: the public URL is plain http on loopback (development only)", "public_url", cfg.PublicURL)
	}
	redirect := strings.TrimRight(cfg.PublicURL, "/") + "/auth/callback"
	api := adminapi.New(st, authz, authz.Reload, cfg.AdminToken, log.With("component", "adminapi"))
	con := console.New(console.Config{
		Store: st, Authz: authz, Reload: authz.Reload, Health: health{pool: pool, nc: nc},
		Sessions: session.New(session.Config{Secure: secure, Idle: cfg.SessionIdle, Absolute: cfg.SessionAbsolute}, st),
		SSO:      sso.New(sso.Config{RedirectURL: redirect, Platform: cfg.Platform}, st, log.With("component", "sso")),
		Version:  cfg.Version, Regions: cfg.Regions, RedirectURI: redirect, GatewayURL: cfg.GatewayURL, Log: log.With("component", "console"),
	})
	handler := Router(api, con, health{pool: pool, nc: nc})

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rbacChanged := make(chan struct{}, 1)
	go database.Listen(ctx, pool, store.RBACChannel, rbacChanged, log)
	go authz.Run(ctx, rbacChanged, 30*time.Second)
	errc := make(chan error, 4)
	go func() { errc <- pub.Run(ctx) }()
	go func() { errc <- fleet.New(st, nc, log.With("component", "fleet")).Run(ctx) }()
	go func() { errc <- ing.Run(ctx) }()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
			return
		}
		errc <- nil
	}()
	log.Info("control plane listening", "addr", ln.Addr().String(), "regions", cfg.Regions, "nats_url", natsURL)
	if ready != nil {
		ready(ln.Addr().String())
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	cancel()
	shutdownCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	_ = srv.Shutdown(shutdownCtx)
	return runErr
}

// Router holds every route of the control plane's HTTP server.
func Router(api *adminapi.API, con *console.Console, h health) http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.RequestID, requestIDHeader, middleware.Recoverer)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	r.Get("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if !h.DatabaseOK(ctx) || !h.NATSOK() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	r.Route("/api/v1", api.Routes)
	r.Group(con.Routes)
	return r
}

func requestIDHeader(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", middleware.GetReqID(r.Context()))
		next.ServeHTTP(w, r)
	})
}

// cookiesSecure decides the Secure flag from the public URL: https always; plain http
// only on loopback, for development.
func cookiesSecure(public string) (bool, error) {
	u, err := url.Parse(public)
	if err != nil || u.Host == "" {
		return false, fmt.Errorf("config: public url %q is not an absolute URL", public)
	}
	switch {
	case u.Scheme == "https":
		return true, nil
	case u.Scheme == "http" && (u.Hostname() == "127.0.0.1" || u.Hostname() == "localhost" || u.Hostname() == "::1"):
		return false, nil
	}
	return false, fmt.Errorf("config: public url %q must be https (plain http is allowed on loopback only)", public)
}

type health struct {
	pool *pgxpool.Pool
	nc   *nats.Conn
}

func (h health) DatabaseOK(ctx context.Context) bool { return h.pool.Ping(ctx) == nil }
func (h health) NATSOK() bool                        { return h.nc.IsConnected() }
