// Command devstack is `make dev`: it runs the whole system locally from the binaries in
// ./bin — the demo upstream, the control plane with embedded NATS and a gateway in
// region local — against the Postgres that `make db-up` found, seeds a demo org, and
// prints the URLs, the admin token and a working key. Ctrl-C stops everything.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse-dev/gatehouse/e2e/stack"
	"github.com/jackc/pgx/v5"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	stateDir, err := filepath.Abs(".dev")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	adminURL := os.Getenv("GATEHOUSE_TEST_DATABASE_URL")
	if adminURL == "" {
		return errors.New("GATEHOUSE_TEST_DATABASE_URL is not set; run `make dev`, which runs `make db-up` first")
	}
	dbURL, err := ensureDatabase(ctx, adminURL, "gatehouse_dev")
	if err != nil {
		return err
	}
	secrets, err := loadSecrets(filepath.Join(stateDir, "secrets.env"))
	if err != nil {
		return err
	}
	binDir, err := filepath.Abs("bin")
	if err != nil {
		return err
	}
	fmt.Println("Starting Gatehouse (logs in .dev/logs)…")
	st, err := stack.Start(ctx, stack.Options{
		BinDir: binDir, StateDir: stateDir, DatabaseURL: dbURL, Secrets: secrets,
		ControlPlaneAddr: envOr("GATEHOUSE_CONTROLPLANE_ADDR", "127.0.0.1:8080"),
		NATSAddr:         envOr("GATEHOUSE_EMBEDDED_NATS_ADDR", "127.0.0.1:14222"),
		UpstreamAddr:     envOr("DEMO_UPSTREAM_ADDR", "127.0.0.1:8070"),
		IdPAddr:          envOr("DEV_IDP_ADDR", "127.0.0.1:8060"),
		GatewayAddrs:     map[string]string{"local": envOr("GATEHOUSE_GATEWAY_ADDR", "127.0.0.1:8090")},
	})
	if err != nil {
		return err
	}
	defer st.Stop()

	prev := readEnvFile(filepath.Join(stateDir, "env"))
	admin := stack.NewAdmin(st.ControlPlane, secrets.AdminToken)
	demo, err := stack.Seed(ctx, admin, st.Upstream, secrets.UpstreamAPIKey, prev["GATEHOUSE_DEMO_KEY"])
	if err != nil {
		return err
	}
	if err := stack.SeedSSO(ctx, admin, st.IdP, secrets.IdPClientSecret); err != nil {
		return err
	}
	gw := st.Gateways["local"]
	if err := waitForKey(ctx, gw, demo.Key); err != nil {
		return err
	}
	env := [][2]string{
		{"GATEHOUSE_CONSOLE_URL", st.ControlPlane},
		{"GATEHOUSE_API_URL", st.ControlPlane + "/api/v1"},
		{"GATEHOUSE_GATEWAY_URL", gw},
		{"GATEHOUSE_ADMIN_TOKEN", secrets.AdminToken},
		{"GATEHOUSE_DEV_LOGIN", stack.DevAdminEmail},
		{"GATEHOUSE_DEV_PLATFORM_LOGIN", stack.DevPlatformEmail},
		{"GATEHOUSE_DEV_IDP_URL", st.IdP},
		{"GATEHOUSE_DEMO_KEY", demo.Key},
		{"GATEHOUSE_DEMO_MODEL", demo.Model},
		{"GATEHOUSE_DEMO_UPSTREAM_URL", st.Upstream},
		{"GATEHOUSE_DEMO_UPSTREAM_KEY", secrets.UpstreamAPIKey},
		{"NATS_URL", st.NATSURL},
		{"DATABASE_URL", dbURL},
	}
	var b strings.Builder
	for _, kv := range env {
		fmt.Fprintf(&b, "%s=%s\n", kv[0], kv[1])
	}
	if err := os.WriteFile(filepath.Join(stateDir, "env"), []byte(b.String()), 0o600); err != nil {
		return err
	}
	fmt.Printf(`
Gatehouse is running. Written to .dev/env:

%s
Sign in to the console at %s with %s (or %s, a platform admin).

Try it:
  source .dev/env
  curl -s $GATEHOUSE_GATEWAY_URL/v1/chat/completions \
    -H "Authorization: Bearer $GATEHOUSE_DEMO_KEY" -H 'Content-Type: application/json' \
    -d '{"model":"demo-chat","messages":[{"role":"user","content":"Hello"}]}'

Press Ctrl-C to stop.
`, b.String(), st.ControlPlane, stack.DevAdminEmail, stack.DevPlatformEmail)
	<-ctx.Done()
	fmt.Println("\nStopping…")
	return nil
}

// waitForKey waits until the gateway accepts the demo key (config propagated).
func waitForKey(ctx context.Context, gateway, key string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := stack.KeyWorks(ctx, gateway, key)
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gateway did not accept the demo key within 30s: %v", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func ensureDatabase(ctx context.Context, adminURL, name string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("connect to Postgres: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "select exists (select 1 from pg_database where datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		if _, err := conn.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize()); err != nil {
			return "", fmt.Errorf("create database %s: %w", name, err)
		}
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// loadSecrets reads the dev secrets, generating them on first run. They persist so
// credentials sealed in the database stay readable across runs.
func loadSecrets(path string) (stack.Secrets, error) {
	kv := readEnvFile(path)
	if kv["GATEHOUSE_ADMIN_TOKEN"] != "" && kv["GATEHOUSE_CONFIG_KEYS"] != "" && kv["GATEHOUSE_MASTER_KEYS"] != "" && kv["DEMO_UPSTREAM_API_KEY"] != "" && kv["DEV_IDP_CLIENT_SECRET"] != "" {
		return stack.Secrets{AdminToken: kv["GATEHOUSE_ADMIN_TOKEN"], ConfigKeys: kv["GATEHOUSE_CONFIG_KEYS"],
			MasterKeys: kv["GATEHOUSE_MASTER_KEYS"], UpstreamAPIKey: kv["DEMO_UPSTREAM_API_KEY"], IdPClientSecret: kv["DEV_IDP_CLIENT_SECRET"]}, nil
	}
	s := stack.NewSecrets()
	if kv["GATEHOUSE_MASTER_KEYS"] != "" {
		// Keep the keys that sealed what the dev database already holds.
		s.AdminToken, s.ConfigKeys, s.MasterKeys, s.UpstreamAPIKey = kv["GATEHOUSE_ADMIN_TOKEN"], kv["GATEHOUSE_CONFIG_KEYS"], kv["GATEHOUSE_MASTER_KEYS"], kv["DEMO_UPSTREAM_API_KEY"]
	}
	content := fmt.Sprintf("GATEHOUSE_ADMIN_TOKEN=%s\nGATEHOUSE_CONFIG_KEYS=%s\nGATEHOUSE_MASTER_KEYS=%s\nDEMO_UPSTREAM_API_KEY=%s\nDEV_IDP_CLIENT_SECRET=%s\n",
		s.AdminToken, s.ConfigKeys, s.MasterKeys, s.UpstreamAPIKey, s.IdPClientSecret)
	return s, os.WriteFile(path, []byte(content), 0o600)
}

func readEnvFile(path string) map[string]string {
	out := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
