// Package stack runs the whole Gatehouse system from its real binaries: the demo
// upstream, the control plane (with embedded NATS) and one gateway per region. Both
// `make dev` and the end-to-end tests use it, so what a developer runs is what the
// tests run. It does not build the binaries.
package stack

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options configures a stack.
type Options struct {
	// BinDir holds controlplane, gateway and demo-upstream.
	BinDir string
	// StateDir holds logs, the NATS store and gateway spools.
	StateDir string
	// DatabaseURL is the control plane's database (it must exist).
	DatabaseURL string
	// Addresses; empty picks a free loopback port.
	ControlPlaneAddr, NATSAddr, UpstreamAddr string
	// GatewayAddrs maps region to gateway address; empty address picks a free port.
	GatewayAddrs map[string]string
	// IdPAddr is the dev OIDC provider's address (started as a process) unless
	// IdPIssuer names an IdP the caller runs itself.
	IdPAddr, IdPIssuer string
	// Replicas is how many extra gateways to run in each region (besides the first).
	Replicas int
	Secrets  Secrets
	// LogOutput, if set, also receives every process's output (stderr).
	LogOutput io.Writer
	// GatewayEnv is extra environment of every gateway (NAME=value).
	GatewayEnv []string
}

// Secrets are the stack's shared secrets.
type Secrets struct {
	AdminToken string
	ConfigKeys string
	MasterKeys string
	// UpstreamAPIKey is what the demo upstream requires from the gateway.
	UpstreamAPIKey string
	// IdPClientSecret is the console's client secret at the dev IdP.
	IdPClientSecret string
}

// Dev IdP client and users.
const (
	IdPClientID       = "gatehouse-dev"
	DevAdminEmail     = "admin@demo.gatehouse.dev"
	DevDeveloperEmail = "dev@demo.gatehouse.dev"
	DevPlatformEmail  = "ops@gatehouse.dev"
	DevUsersJSON      = `[{"email":"admin@demo.gatehouse.dev","name":"Demo Admin","email_verified":true,"groups":["gatehouse-admins"],"subject":"demo-admin"},` +
		`{"email":"dev@demo.gatehouse.dev","name":"Demo Developer","email_verified":true,"groups":["platform-developers"],"subject":"demo-dev"},` +
		`{"email":"ops@gatehouse.dev","name":"Platform Operator","email_verified":true,"groups":["platform-admins"],"subject":"ops"}]`
)

// Secrets returns the secrets the stack was started with.
func (s *Stack) Secrets() Secrets { return s.opts.Secrets }

// NewSecrets generates fresh secrets.
func NewSecrets() Secrets {
	return Secrets{
		AdminToken:      "gha_" + randomB64(24),
		ConfigKeys:      "cfg-" + randomHex(4) + ":" + base64.StdEncoding.EncodeToString(randomBytes(32)),
		MasterKeys:      "master-" + randomHex(4) + ":" + base64.StdEncoding.EncodeToString(randomBytes(32)),
		UpstreamAPIKey:  "sk-demo-" + randomB64(18),
		IdPClientSecret: "idp-" + randomB64(18),
	}
}

// Stack is a running system.
type Stack struct {
	opts         Options
	ControlPlane string // base URL
	Upstream     string // base URL, e.g. http://127.0.0.1:8070/v1
	NATSURL      string
	Gateways     map[string]string // region -> base URL of its first gateway
	// Fleet maps region -> base URLs of all its gateways (the first one included).
	Fleet         map[string][]string
	IdP           string // issuer URL
	mu            sync.Mutex
	procs         map[string]*exec.Cmd
	logs          map[string]*os.File
	exited        map[string]chan struct{}
	regions       []string
	gatewayAddrs  map[string]string
	cpAddr        string
	natsAddr      string
	upstreamAddrs string
	idpAddr       string
	replicas      [][2]string // name, region
}

// Start starts the demo upstream, the control plane and the gateways, and waits until
// each is ready.
func Start(ctx context.Context, o Options) (*Stack, error) {
	if len(o.GatewayAddrs) == 0 {
		o.GatewayAddrs = map[string]string{"local": ""}
	}
	if err := os.MkdirAll(filepath.Join(o.StateDir, "logs"), 0o755); err != nil {
		return nil, err
	}
	s := &Stack{opts: o, procs: map[string]*exec.Cmd{}, logs: map[string]*os.File{}, exited: map[string]chan struct{}{},
		Gateways: map[string]string{}, gatewayAddrs: map[string]string{}, Fleet: map[string][]string{}}
	var err error
	if s.upstreamAddrs, err = addrOrFree(o.UpstreamAddr); err != nil {
		return nil, err
	}
	if s.cpAddr, err = addrOrFree(o.ControlPlaneAddr); err != nil {
		return nil, err
	}
	if s.natsAddr, err = addrOrFree(o.NATSAddr); err != nil {
		return nil, err
	}
	for region, addr := range o.GatewayAddrs {
		if s.gatewayAddrs[region], err = addrOrFree(addr); err != nil {
			return nil, err
		}
		s.regions = append(s.regions, region)
		s.Gateways[region] = "http://" + s.gatewayAddrs[region]
		s.Fleet[region] = append(s.Fleet[region], s.Gateways[region])
		for i := 1; i <= o.Replicas; i++ {
			name := fmt.Sprintf("%s-%d", region, i)
			if s.gatewayAddrs[name], err = addrOrFree(""); err != nil {
				return nil, err
			}
			s.replicas = append(s.replicas, [2]string{name, region})
			s.Fleet[region] = append(s.Fleet[region], "http://"+s.gatewayAddrs[name])
		}
	}
	s.IdP = o.IdPIssuer
	if s.IdP == "" {
		if s.idpAddr, err = addrOrFree(o.IdPAddr); err != nil {
			return nil, err
		}
		s.IdP = "http://" + s.idpAddr
	}
	s.Upstream = "http://" + s.upstreamAddrs + "/v1"
	s.ControlPlane = "http://" + s.cpAddr
	s.NATSURL = "nats://" + s.natsAddr

	if s.idpAddr != "" {
		err := s.spawn("dev-idp", "dev-idp", []string{"--listen", s.idpAddr, "--users", DevUsersJSON},
			[]string{"DEV_IDP_CLIENT_ID=" + IdPClientID, "DEV_IDP_CLIENT_SECRET=" + o.Secrets.IdPClientSecret})
		if err == nil {
			err = s.waitHTTP(ctx, "dev-idp", s.IdP+"/.well-known/openid-configuration", http.StatusOK)
		}
		if err != nil {
			s.Stop()
			return nil, err
		}
	}
	if err := s.StartUpstream(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	if err := s.StartControlPlane(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	for _, region := range s.regions {
		if err := s.StartGateway(ctx, region); err != nil {
			s.Stop()
			return nil, err
		}
	}
	for _, r := range s.replicas {
		if err := s.startGateway(ctx, r[0], r[1]); err != nil {
			s.Stop()
			return nil, err
		}
	}
	return s, nil
}

// StartUpstream (re)starts the demo upstream.
func (s *Stack) StartUpstream(ctx context.Context) error {
	err := s.spawn("demo-upstream", "demo-upstream", []string{"--listen", s.upstreamAddrs}, []string{"DEMO_UPSTREAM_API_KEY=" + s.opts.Secrets.UpstreamAPIKey})
	if err != nil {
		return err
	}
	return s.waitHTTP(ctx, "demo-upstream", s.Upstream+"/models", http.StatusUnauthorized, http.StatusOK)
}

// StartControlPlane (re)starts the control plane with its embedded NATS.
func (s *Stack) StartControlPlane(ctx context.Context) error {
	err := s.spawn("controlplane", "controlplane", []string{
		"serve", "--listen", s.cpAddr, "--embedded-nats", "--embedded-nats-listen", s.natsAddr,
		"--embedded-nats-store", filepath.Join(s.opts.StateDir, "nats"), "--regions", strings.Join(s.regions, ","),
	}, []string{
		"DATABASE_URL=" + s.opts.DatabaseURL,
		"GATEHOUSE_ADMIN_TOKEN=" + s.opts.Secrets.AdminToken,
		"GATEHOUSE_CONFIG_KEYS=" + s.opts.Secrets.ConfigKeys,
		"GATEHOUSE_MASTER_KEYS=" + s.opts.Secrets.MasterKeys,
		"GATEHOUSE_PLATFORM_OIDC_ISSUER=" + s.IdP,
		"GATEHOUSE_PLATFORM_OIDC_CLIENT_ID=" + IdPClientID,
		"GATEHOUSE_PLATFORM_OIDC_CLIENT_SECRET=" + s.opts.Secrets.IdPClientSecret,
		"GATEHOUSE_PLATFORM_OIDC_DOMAINS=gatehouse.dev",
		"GATEHOUSE_PLATFORM_ADMIN_GROUP=platform-admins",
		"GATEHOUSE_GATEWAY_URL=" + s.Gateways[s.regions[0]],
	})
	if err != nil {
		return err
	}
	return s.waitHTTP(ctx, "controlplane", s.ControlPlane+"/readyz", http.StatusOK)
}

// StartGateway (re)starts the gateway of region and waits until it has its config.
func (s *Stack) StartGateway(ctx context.Context, region string) error {
	return s.startGateway(ctx, region, region)
}

// startGateway starts gateway "gateway-<key>" of region on the address reserved for key.
func (s *Stack) startGateway(ctx context.Context, key, region string) error {
	name := "gateway-" + key
	err := s.spawn(name, "gateway", []string{
		"--region", region, "--listen", s.gatewayAddrs[key], "--nats-url", s.NATSURL,
		"--gateway-id", name, "--spool-dir", filepath.Join(s.opts.StateDir, "spool-"+key),
		"--cache-dir", filepath.Join(s.opts.StateDir, "cache-"+key),
	}, append([]string{"GATEHOUSE_CONFIG_KEYS=" + s.opts.Secrets.ConfigKeys}, s.opts.GatewayEnv...))
	if err != nil {
		return err
	}
	return s.waitHTTP(ctx, name, "http://"+s.gatewayAddrs[key]+"/readyz", http.StatusOK)
}

func (s *Stack) spawn(name, bin string, args, env []string) error {
	logFile, err := os.OpenFile(filepath.Join(s.opts.StateDir, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(s.opts.BinDir, bin), args...)
	cmd.Env = append(os.Environ(), env...)
	var out io.Writer = logFile
	if s.opts.LogOutput != nil {
		out = io.MultiWriter(logFile, prefixWriter{name: name, w: s.opts.LogOutput})
	}
	cmd.Stdout, cmd.Stderr = out, out
	// Children die with us even if we are killed hard.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.procs[name], s.logs[name], s.exited[name] = cmd, logFile, done
	s.mu.Unlock()
	return nil
}

// waitHTTP polls url until it answers one of want, the process exits, or 60s pass.
func (s *Stack) waitHTTP(ctx context.Context, name, url string, want ...int) error {
	s.mu.Lock()
	done := s.exited[name]
	s.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			for _, w := range want {
				if resp.StatusCode == w {
					return nil
				}
			}
		}
		select {
		case <-done:
			// The log's end goes into the error: a test's state directory is gone by
			// the time anyone reads the failure.
			logPath := filepath.Join(s.opts.StateDir, "logs", name+".log")
			return fmt.Errorf("%s exited before it was ready; the end of %s:\n%s", name, logPath, logTail(logPath, 20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready at %s after 60s; see its log", name, url)
		}
	}
}

// Kill stops one process (by name: demo-upstream, controlplane, gateway-<region>)
// with SIGTERM, then SIGKILL after 10 s.
func (s *Stack) Kill(name string) {
	s.mu.Lock()
	cmd, done, logf := s.procs[name], s.exited[name], s.logs[name]
	delete(s.procs, name)
	delete(s.logs, name)
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	logf.Close()
}

// Stop stops everything, gateways first.
func (s *Stack) Stop() {
	for _, r := range s.replicas {
		s.Kill("gateway-" + r[0])
	}
	for _, region := range s.regions {
		s.Kill("gateway-" + region)
	}
	s.Kill("controlplane")
	s.Kill("demo-upstream")
	s.Kill("dev-idp")
}

// StateDir is where the stack keeps logs, the NATS store, spools and caches.
func (s *Stack) StateDir() string { return s.opts.StateDir }

// LogPath is the log file of a process.
func (s *Stack) LogPath(name string) string {
	return filepath.Join(s.opts.StateDir, "logs", name+".log")
}

func addrOrFree(addr string) (string, error) {
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return "", fmt.Errorf("address %s is busy (is another Gatehouse running?): %w", addr, err)
		}
		ln.Close()
		return addr, nil
	}
	return freeAddr()
}

// logTail is the last n lines of the file at path (or why it could not be read).
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// freeAddr returns a loopback address whose port was free, chosen at random below the
// kernel's ephemeral range. The child binds it later: a port the kernel handed out
// (port 0) can meanwhile become the source port of any outgoing connection on the
// machine — a gateway once failed to start so under make test's load — while a port
// below that range can only be taken by another listener.
// Ports already handed out by this process (several stacks, and every child of one,
// are given ports before any child binds), and well-known local services' ports.
var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{4222: true, 5432: true, 6222: true, 8080: true, 8090: true, 8222: true, 14222: true}
)

func freeAddr() (string, error) {
	lo, hi := 20000, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var first, last int
		if _, err := fmt.Sscan(string(b), &first, &last); err == nil {
			lo, hi = max(10240, first-12000), first
		}
	}
	if hi-lo >= 1000 {
		portsMu.Lock()
		defer portsMu.Unlock()
		for range 200 {
			p := lo + mrand.IntN(hi-lo)
			if portsUsed[p] {
				continue
			}
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err == nil {
				addr := ln.Addr().String()
				ln.Close()
				portsUsed[p] = true
				return addr, nil
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

type prefixWriter struct {
	name string
	w    io.Writer
}

func (p prefixWriter) Write(b []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line == "" {
			continue
		}
		if _, err := fmt.Fprintf(p.w, "%-16s %s", p.name, line); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) //nolint:errcheck // never fails
	return b
}

func randomHex(n int) string { return fmt.Sprintf("%x", randomBytes(n)) }

func randomB64(n int) string { return base64.RawURLEncoding.EncodeToString(randomBytes(n)) }
