// Command benchstack runs the system that scripts/bench.sh measures: the real stack of
// package stack (demo upstream, control plane with embedded NATS, one gateway) on free
// loopback ports, with a fresh database and fresh secrets, the seeded demo org and key
// (its team with generous limits), and a second, slow demo upstream (--token-delay) behind its own provider and model
// for the concurrent-streams test. Once the gateway serves both models it prints one
// JSON line (URLs, keys, pids) on stdout; on SIGINT or SIGTERM it stops everything and
// drops its database. It measures nothing itself.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse-dev/gatehouse/e2e/stack"
	"github.com/jackc/pgx/v5"
)

// slowModel is the model served by the slow upstream.
const slowModel = "demo-chat-slow"

// info is what benchstack prints once the stack is ready.
type info struct {
	GatewayURL      string `json:"gateway_url"`
	GatewayPID      int    `json:"gateway_pid"`
	MetricsURL      string `json:"metrics_url"`
	Key             string `json:"key"`
	Model           string `json:"model"`
	SlowModel       string `json:"slow_model"`
	UpstreamURL     string `json:"upstream_url"`
	UpstreamAddr    string `json:"upstream_addr"`
	UpstreamPID     int    `json:"upstream_pid"`
	UpstreamKey     string `json:"upstream_key"`
	SlowUpstreamURL string `json:"slow_upstream_url"`
	SlowUpstreamPID int    `json:"slow_upstream_pid"`
	ControlPlaneURL string `json:"controlplane_url"`
	ControlPlanePID int    `json:"controlplane_pid"`
	Database        string `json:"database"`
	StateDir        string `json:"state_dir"`
}

func main() {
	binDir := flag.String("bin", "bin", "directory of the controlplane, gateway, demo-upstream and dev-idp binaries")
	stateDir := flag.String("state-dir", "", "directory for logs, the NATS store and spools (required)")
	tokenDelay := flag.Duration("token-delay", 200*time.Millisecond, "delay between streamed chunks of the slow upstream")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *binDir, *stateDir, *tokenDelay); err != nil {
		fmt.Fprintln(os.Stderr, "benchstack:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, binDir, stateDir string, tokenDelay time.Duration) error {
	if stateDir == "" {
		return errors.New("--state-dir is required")
	}
	binDir, err := filepath.Abs(binDir)
	if err != nil {
		return err
	}
	if stateDir, err = filepath.Abs(stateDir); err != nil {
		return err
	}
	adminURL := os.Getenv("GATEHOUSE_TEST_DATABASE_URL")
	if adminURL == "" {
		return errors.New("GATEHOUSE_TEST_DATABASE_URL is not set; run `make db-up` and source .dev/db.env")
	}
	dbName := "gatehouse_bench_" + randomHex(6)
	dbURL, err := createDatabase(ctx, adminURL, dbName)
	if err != nil {
		return err
	}
	defer dropDatabase(adminURL, dbName)

	secrets := stack.NewSecrets()
	st, err := stack.Start(ctx, stack.Options{BinDir: binDir, StateDir: stateDir, DatabaseURL: dbURL, Secrets: secrets})
	if err != nil {
		return fmt.Errorf("start stack: %w", err)
	}
	defer st.Stop()

	slow, slowURL, err := startSlowUpstream(ctx, binDir, stateDir, secrets.UpstreamAPIKey, tokenDelay)
	if err != nil {
		return err
	}
	defer stopProcess(slow)

	admin := stack.NewAdmin(st.ControlPlane, secrets.AdminToken)
	demo, err := stack.Seed(ctx, admin, st.Upstream, secrets.UpstreamAPIKey, "")
	if err != nil {
		return err
	}
	if err := admin.Do(ctx, "POST", "/orgs/demo/providers", map[string]any{
		"name": "demo-upstream-slow", "type": "openai-compatible", "base_url": slowURL, "api_key": secrets.UpstreamAPIKey,
	}, nil); err != nil {
		return fmt.Errorf("seed slow provider: %w", err)
	}
	if err := admin.Do(ctx, "POST", "/orgs/demo/models", map[string]any{
		"name": slowModel, "provider": "demo-upstream-slow", "upstream_model": "demo-chat",
		"input_price_per_mtok_micros": 150_000, "output_price_per_mtok_micros": 600_000,
	}, nil); err != nil {
		return fmt.Errorf("seed slow model: %w", err)
	}
	// Limits on, high enough never to refuse: the gateway does the accounting on every
	// request without the benchmark measuring refusals.
	if err := admin.Do(ctx, "PUT", "/orgs/demo/teams/platform/limits", map[string]any{
		"rpm": 1_000_000_000, "tpm": 1_000_000_000_000, "max_concurrent": 1_000_000,
	}, nil); err != nil {
		return fmt.Errorf("set team limits: %w", err)
	}
	gw := st.Gateways["local"]
	if err := waitForModels(ctx, gw, demo.Key, demo.Model, slowModel); err != nil {
		return err
	}

	upURL, err := url.Parse(st.Upstream)
	if err != nil {
		return err
	}
	out := info{
		GatewayURL: gw, MetricsURL: gw + "/metrics", Key: demo.Key, Model: demo.Model, SlowModel: slowModel,
		UpstreamURL: st.Upstream, UpstreamAddr: upURL.Host, UpstreamKey: secrets.UpstreamAPIKey,
		SlowUpstreamURL: slowURL, SlowUpstreamPID: slow.Process.Pid,
		ControlPlaneURL: st.ControlPlane, Database: dbName, StateDir: stateDir,
	}
	gwURL, err := url.Parse(gw)
	if err != nil {
		return err
	}
	if out.GatewayPID, err = childPID("gateway", gwURL.Host); err != nil {
		return err
	}
	if out.UpstreamPID, err = childPID("demo-upstream", upURL.Host); err != nil {
		return err
	}
	cpURL, err := url.Parse(st.ControlPlane)
	if err != nil {
		return err
	}
	if out.ControlPlanePID, err = childPID("controlplane", cpURL.Host); err != nil {
		return err
	}
	line, err := json.Marshal(out)
	if err != nil {
		return err
	}
	fmt.Println(string(line))
	<-ctx.Done()
	return nil
}

// startSlowUpstream runs a second demo upstream that paces its streams; package stack
// starts its own without delays.
func startSlowUpstream(ctx context.Context, binDir, stateDir, apiKey string, tokenDelay time.Duration) (*exec.Cmd, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	logFile, err := os.OpenFile(filepath.Join(stateDir, "logs", "demo-upstream-slow.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, "", err
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(binDir, "demo-upstream"), "--listen", addr, "--token-delay", tokenDelay.String())
	cmd.Env = append(os.Environ(), "DEMO_UPSTREAM_API_KEY="+apiKey)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start slow upstream: %w", err)
	}
	base := "http://" + addr + "/v1"
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/models")
		if err == nil {
			resp.Body.Close()
			return cmd, base, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stopProcess(cmd)
			return nil, "", fmt.Errorf("slow upstream not ready at %s: %w", base, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func stopProcess(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// waitForModels waits until the gateway lists every model for key (config propagated).
func waitForModels(ctx context.Context, gateway, key string, models ...string) error {
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for {
		last = listsModels(ctx, gateway, key, models)
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gateway did not serve %v within 30s: %w", models, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func listsModels(ctx context.Context, gateway, key string, models []string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", gateway+"/v1/models", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /v1/models: %d", resp.StatusCode)
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return err
	}
	have := map[string]bool{}
	for _, m := range list.Data {
		have[m.ID] = true
	}
	for _, m := range models {
		if !have[m] {
			return fmt.Errorf("model %s not listed yet", m)
		}
	}
	return nil
}

// childPID finds our child process running binary bin whose arguments name addr:
// package stack keeps its processes to itself.
func childPID(bin, addr string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command, which is in parentheses: state, ppid, ...
		i := strings.LastIndexByte(string(stat), ')')
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(self) {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if filepath.Base(args[0]) != bin {
			continue
		}
		for _, a := range args[1:] {
			if a == addr || strings.HasSuffix(a, "="+addr) {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no child process %s serving %s", bin, addr)
}

func createDatabase(ctx context.Context, adminURL, name string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("connect to Postgres: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// dropDatabase runs after the control plane stopped; it must not depend on the
// (cancelled) run context.
func dropDatabase(adminURL, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchstack: drop database:", err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "drop database if exists "+pgx.Identifier{name}.Sanitize()+" with (force)"); err != nil {
		fmt.Fprintln(os.Stderr, "benchstack: drop database:", err)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = io.ReadFull(rand.Reader, b)
	return hex.EncodeToString(b)
}
