// Command dev-idp serves the development OpenID Connect provider (package
// devidp) that `make dev` and e2e tests sign users in with. It registers one
// client, logs one JSON line with its address and issuer once it accepts
// connections, and shuts down gracefully on SIGINT or SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse-dev/gatehouse/e2e/devidp"
)

const (
	defaultListen       = "127.0.0.1:8060"
	defaultClientID     = "gatehouse-dev"
	defaultClientSecret = "dev-secret"
	shutdownGrace       = 5 * time.Second
)

// defaultUsers are the demo organization's people.
func defaultUsers() []devidp.User {
	return []devidp.User{
		{Subject: "demo-admin", Email: "admin@demo.gatehouse.dev", Name: "Demo Admin", EmailVerified: true, Groups: []string{"gatehouse-admins"}},
		{Subject: "demo-dev", Email: "dev@demo.gatehouse.dev", Name: "Demo Developer", EmailVerified: true, Groups: []string{"platform-developers"}},
	}
}

type config struct {
	listen       string
	issuer       string // empty: http://<bound address>
	clientID     string
	clientSecret string
	redirectURIs []string
	users        []devidp.User
	autoApprove  bool
}

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dev-idp:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg, logger)
	stop()
	if err != nil {
		logger.Error("dev idp failed", slog.String("error", err.Error()))
		os.Exit(1)
	}
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// parseConfig reads flags, with defaults from the environment.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	envOr := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	cfg := config{
		listen:       envOr("DEV_IDP_ADDR", defaultListen),
		clientID:     envOr("DEV_IDP_CLIENT_ID", defaultClientID),
		clientSecret: envOr("DEV_IDP_CLIENT_SECRET", defaultClientSecret),
	}
	usersJSON := getenv("DEV_IDP_USERS")
	var redirects stringList

	fs := flag.NewFlagSet("dev-idp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.listen, "listen", cfg.listen, "address to listen on; port 0 picks a free port (env DEV_IDP_ADDR)")
	fs.StringVar(&cfg.issuer, "issuer", "", "issuer URL, scheme://host[:port] (default http://<listen address>)")
	fs.StringVar(&cfg.clientID, "client-id", cfg.clientID, "OAuth client id (env DEV_IDP_CLIENT_ID)")
	fs.StringVar(&cfg.clientSecret, "client-secret", cfg.clientSecret, "OAuth client secret (env DEV_IDP_CLIENT_SECRET)")
	fs.Var(&redirects, "redirect-uri", "allowed redirect URI, repeatable (default: any http loopback URI)")
	fs.StringVar(&usersJSON, "users", usersJSON, `users as a JSON array of {"subject","email","name","email_verified","groups"} (env DEV_IDP_USERS; default: two demo users)`)
	fs.BoolVar(&cfg.autoApprove, "auto-approve", false, "sign in at once when login_hint is a known email, without the sign-in page")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if cfg.clientID == "" || cfg.clientSecret == "" {
		return config{}, errors.New("client id and secret must not be empty")
	}
	cfg.redirectURIs = redirects
	cfg.users = defaultUsers()
	if usersJSON != "" {
		users, err := parseUsers(usersJSON)
		if err != nil {
			return config{}, fmt.Errorf("users: %w", err)
		}
		cfg.users = users
	}
	return cfg, nil
}

// parseUsers decodes a JSON array of users, rejecting unknown keys so that a
// typo does not silently drop a claim.
func parseUsers(s string) ([]devidp.User, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	var users []devidp.User
	if err := dec.Decode(&users); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON array")
	}
	if len(users) == 0 {
		return nil, errors.New("no users")
	}
	return users, nil
}

// run serves until ctx ends, then drains in-flight requests.
func run(ctx context.Context, cfg config, logger *slog.Logger) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	issuer := cfg.issuer
	if issuer == "" {
		issuer = "http://" + reachableAddr(addr)
	}
	idp, err := devidp.New(devidp.Options{
		Issuer:      issuer,
		Clients:     []devidp.Client{{ID: cfg.clientID, Secret: cfg.clientSecret, RedirectURIs: cfg.redirectURIs}},
		Users:       cfg.users,
		AutoApprove: cfg.autoApprove,
		Logger:      logger,
	})
	if err != nil {
		return fmt.Errorf("new provider: %w", err)
	}
	srv := &http.Server{
		Handler:           idp.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("dev idp listening", slog.String("addr", addr), slog.String("issuer", issuer),
		slog.String("client_id", cfg.clientID), slog.Int("users", len(cfg.users)), slog.Bool("auto_approve", cfg.autoApprove))

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("dev idp shutting down")
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

// reachableAddr replaces an unspecified listen host (0.0.0.0, ::) with
// loopback, so that the default issuer is a URL a browser can open.
func reachableAddr(addr string) string {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().IsUnspecified() {
		return addr
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), ap.Port()).String()
}
