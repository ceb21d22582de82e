package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/gatehouse-dev/gatehouse/proto/wire"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/app"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/fakecp"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/httpapi"
)

const (
	region       = "eu-test"
	upstreamKey  = "sk-upstream-secret-0123456789"
	promptTokens = 11
	outputTokens = 7
	cachedTokens = 3
)

// upstreamCall is what the fake provider saw.
type upstreamCall struct {
	Path          string
	Authorization string
	Body          map[string]any
	Wire          wireCall
	Header        http.Header
	Query         string
}

// fakeUpstream is an OpenAI-compatible provider whose behaviour depends on the
// upstream model id it is asked for.
type fakeUpstream struct {
	t   testing.TB
	srv *httptest.Server

	mu      sync.Mutex
	last    *upstreamCall
	calls   int
	history []upstreamCall
	// release unblocks "up-block" streams after their first chunk.
	release chan struct{}
	// cancelled receives when an "up-block" request's context ends early.
	cancelled chan struct{}
}

// newFakeUpstream starts the fake provider; handler, when not nil, replaces its
// behaviour.
func newFakeUpstream(t testing.TB, handler http.Handler) *fakeUpstream {
	u := &fakeUpstream{t: t, release: make(chan struct{}), cancelled: make(chan struct{}, 16)}
	if handler == nil {
		handler = http.HandlerFunc(u.serve)
	}
	u.srv = httptest.NewServer(handler)
	t.Cleanup(u.srv.Close)
	return u
}

func (u *fakeUpstream) lastCall() (upstreamCall, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.last == nil {
		return upstreamCall{}, errors.New("upstream not called")
	}
	return *u.last, nil
}

// allCalls returns every call the fake provider saw, oldest first.
func (u *fakeUpstream) allCalls() []upstreamCall {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.history)
}

func (u *fakeUpstream) serve(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	_ = json.NewDecoder(r.Body).Decode(&body)
	c, ok := parseWireCall(r, body)
	u.mu.Lock()
	u.last = &upstreamCall{Path: r.URL.Path, Authorization: r.Header.Get("Authorization"), Body: body, Wire: c, Header: r.Header.Clone(), Query: r.URL.RawQuery}
	u.calls++
	u.history = append(u.history, *u.last)
	u.mu.Unlock()
	if !ok {
		http.Error(w, "unknown upstream route", http.StatusNotFound)
		return
	}
	// Azure also takes the fake directory's Entra ID tokens (entra_test.go).
	entraToken := c.format == "azure" && strings.HasPrefix(c.credential, "Bearer entra-token-")
	if c.credential != upstreamKey && c.credential != "Bearer "+upstreamKey && !entraToken {
		writeWireError(w, c.format, http.StatusUnauthorized, "wrong credential")
		return
	}
	u.serveWire(w, r, c)
}

// fixture is one org's config plus the keys to use it.
type fixture struct {
	snap    *gatehousev1.Snapshot
	frozen  *gatehousev1.Snapshot
	key     string // team-a, every model
	limited string // team-a, only "echo" (and so its alias "fast")
	expired string
	teamB   string // suspended team
	frozenK string // suspended org
	agent   string // team-a, agent identity "planner", only the alias "fast"
	usOnly  string // team-a, a key that may only be used in us-test
	teamC   string // team-c, a team that may only be used in us-test
}

func newFixture(upstreamURL, deadURL string) *fixture {
	f := &fixture{}
	var sums [8][]byte
	f.key, sums[0] = fakecp.NewKey("acmekey00001")
	f.limited, sums[1] = fakecp.NewKey("acmekey00002")
	f.expired, sums[2] = fakecp.NewKey("acmekey00003")
	f.teamB, sums[3] = fakecp.NewKey("acmekey00004")
	f.frozenK, sums[4] = fakecp.NewKey("frozenkey001")
	f.agent, sums[5] = fakecp.NewKey("acmekey00005")
	f.usOnly, sums[6] = fakecp.NewKey("acmekey00006")
	f.teamC, sums[7] = fakecp.NewKey("acmekey00007")
	provider := func(id, url string) *gatehousev1.Provider {
		return &gatehousev1.Provider{Id: id, Name: id, Type: gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE, BaseUrl: url, ApiKey: upstreamKey}
	}
	model := func(name, upstream, provider string) *gatehousev1.Model {
		return &gatehousev1.Model{
			Id: "m-" + name, Name: name, ProviderId: provider, UpstreamModel: upstream,
			InputPricePerMtokMicros: 2_000_000, OutputPricePerMtokMicros: 8_000_000, CachedInputPricePerMtokMicros: 500_000,
		}
	}
	teamBOnly := model("team-b-only", "up-echo", "up")
	teamBOnly.TeamIds = []string{"team-b"}
	anthropic := provider("anthropic", upstreamURL+"/v1")
	anthropic.Type = gatehousev1.ProviderType_PROVIDER_TYPE_ANTHROPIC
	azure := provider("azure", upstreamURL+"/openai")
	azure.Type, azure.ApiVersion = gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI, azureAPIVersion
	gemini := provider("gemini", upstreamURL+"/v1beta")
	gemini.Type = gatehousev1.ProviderType_PROVIDER_TYPE_GEMINI
	f.snap = &gatehousev1.Snapshot{
		Org: &gatehousev1.Organization{Id: "acme", Slug: "acme", Name: "Acme"},
		Teams: []*gatehousev1.Team{
			{Id: "team-a", Slug: "a", Regions: []string{region, "us-test"}, Aliases: []*gatehousev1.ModelAlias{
				{Alias: "fast", Model: "echo"},
				{Alias: "far", Model: "us-only"},
			}},
			{Id: "team-b", Slug: "b", Suspended: true},
			{Id: "team-c", Slug: "c", Regions: []string{"us-test"}},
		},
		Keys: []*gatehousev1.ApiKey{
			{Id: "acmekey00001", TeamId: "team-a", SecretSha256: sums[0]},
			{Id: "acmekey00002", TeamId: "team-a", SecretSha256: sums[1], AllowedModels: []string{"echo"}},
			{Id: "acmekey00003", TeamId: "team-a", SecretSha256: sums[2], ExpiresAtUnixMs: time.Now().Add(-time.Hour).UnixMilli()},
			{Id: "acmekey00004", TeamId: "team-b", SecretSha256: sums[3]},
			{Id: "acmekey00005", TeamId: "team-a", SecretSha256: sums[5], AgentIdentity: "planner", AllowedModels: []string{"fast"},
				AllowedTools: []string{"github/*"}, AllowedAgents: []string{"researcher"}},
			{Id: "acmekey00006", TeamId: "team-a", SecretSha256: sums[6], AllowedRegions: []string{"us-test"}},
			{Id: "acmekey00007", TeamId: "team-c", SecretSha256: sums[7]},
		},
		Providers: []*gatehousev1.Provider{provider("up", upstreamURL+"/v1"), provider("dead", deadURL+"/v1"), anthropic, azure, gemini},
		Models: []*gatehousev1.Model{
			model("echo", "up-echo", "up"),
			model("block", "up-block", "up"),
			model("auth-fail", "up-401", "up"),
			model("limited", "up-429", "up"),
			model("slow", "up-slow", "up"),
			model("dead", "up-echo", "dead"),
			model("claude", "claude-sonnet", "anthropic"),
			model("azure-gpt", "gpt-deploy", "azure"),
			model("gemini", "gemini-flash", "gemini"),
			model("tool", "up-tool", "up"),
			model("claude-tool", "up-tool", "anthropic"),
			model("azure-tool", "up-tool", "azure"),
			model("gemini-tool", "up-tool", "gemini"),
			model("claude-block", "up-block", "anthropic"),
			teamBOnly,
		},
		OtherRegionModels: []*gatehousev1.RegionalModel{{Name: "us-only", Regions: []string{"us-test"}}},
		McpServers: []*gatehousev1.McpServer{{Id: "mcp-1", Name: "github", Url: "https://mcp.example/mcp",
			Transport: gatehousev1.McpTransport_MCP_TRANSPORT_STREAMABLE_HTTP, AuthHeader: "Authorization", Credential: "Bearer mcp-secret"}},
		Agents: []*gatehousev1.A2AAgent{{Id: "agent-1", Name: "researcher", CardUrl: "https://agents.example/researcher", TeamIds: []string{"team-a"}}},
	}
	f.frozen = &gatehousev1.Snapshot{
		Org:   &gatehousev1.Organization{Id: "frozen", Slug: "frozen", Suspended: true},
		Teams: []*gatehousev1.Team{{Id: "team-f"}},
		Keys:  []*gatehousev1.ApiKey{{Id: "frozenkey001", TeamId: "team-f", SecretSha256: sums[4]}},
	}
	return f
}

// deadURL returns the URL of a port nothing listens on.
func deadURL(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

type harness struct {
	cp       *fakecp.CP
	upstream *fakeUpstream
	fx       *fixture
	app      *app.App
	url      string
	stop     func()
}

type harnessOptions struct {
	upstreamTimeout time.Duration
	maxBody         int64
	noBucket        bool
	spoolDir        string
	logger          *slog.Logger
	upstream        http.Handler
	cacheDir        string
	cacheGrace      time.Duration
	// extra changes the org snapshot before it is published.
	extra func(*gatehousev1.Snapshot)
	// otlpEndpoint turns tracing on.
	otlpEndpoint string
	// admitter, guard and accessLog configure the HTTP API's hooks and access log.
	admitter  httpapi.Admitter
	guard     httpapi.Guard
	accessLog bool
	// accessLogOut receives the access log lines.
	accessLogOut io.Writer
	// metricsListen moves /metrics to an operator's port.
	metricsListen string
	// streamIdleTimeout is the gateway's --stream-idle-timeout.
	streamIdleTimeout time.Duration
	// entraAuthority is the gateway's --azure-authority.
	entraAuthority string
}

func startHarness(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	var cpOpts []fakecp.Option
	if o.noBucket {
		cpOpts = append(cpOpts, fakecp.WithoutBucket())
	}
	h := &harness{cp: fakecp.Start(t, cpOpts...), upstream: newFakeUpstream(t, o.upstream)}
	h.fx = newFixture(h.upstream.srv.URL, deadURL(t))
	if o.extra != nil {
		o.extra(h.fx.snap)
	}
	if !o.noBucket {
		h.cp.Publish(region, h.fx.snap)
		h.cp.Publish(region, h.fx.frozen)
	}
	h.startGateway(t, o)
	if !o.noBucket {
		fakecp.Eventually(t, 10*time.Second, func() error {
			if !h.app.Ready() {
				return errors.New("gateway not ready")
			}
			return nil
		})
	}
	return h
}

func (h *harness) startGateway(t testing.TB, o harnessOptions) {
	t.Helper()
	kr, err := wire.ParseKeyring(h.cp.KeysSpec)
	if err != nil {
		t.Fatal(err)
	}
	if o.upstreamTimeout == 0 {
		o.upstreamTimeout = time.Minute
	}
	if o.maxBody == 0 {
		o.maxBody = 4 << 20
	}
	if o.spoolDir == "" {
		o.spoolDir = t.TempDir()
	}
	if o.logger == nil {
		o.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a, err := app.New(app.Config{
		Region: region, Listen: "127.0.0.1:0", MetricsListen: o.metricsListen, NATSURL: h.cp.URL(), Keyring: kr,
		GatewayID: "gw-test", MaxBodyBytes: o.maxBody, SpoolDir: o.spoolDir,
		UpstreamTimeout: o.upstreamTimeout, StreamIdleTimeout: o.streamIdleTimeout, HeartbeatInterval: 50 * time.Millisecond,
		UsageFlushInterval: 20 * time.Millisecond, ShutdownTimeout: 5 * time.Second,
		ConfigCacheDir: o.cacheDir, ConfigCacheGrace: o.cacheGrace,
		OTLPEndpoint: o.otlpEndpoint, TraceBatchTimeout: 50 * time.Millisecond,
		Admitter: o.admitter, Guard: o.guard, AccessLog: o.accessLog, AccessLogOut: o.accessLogOut, EntraAuthority: o.entraAuthority,
		Version: "test-1", Logger: o.logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.app = a
	h.url = "http://" + a.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("gateway run: %v", err)
			}
		})
	}
	t.Cleanup(h.stop)
}

// usageEvents returns every usage event the gateway published, keyed by request id.
func (h *harness) usageEvents() (map[string]*gatehousev1.UsageEvent, error) {
	batches, err := h.cp.UsageBatches()
	if err != nil {
		return nil, err
	}
	out := map[string]*gatehousev1.UsageEvent{}
	for _, b := range batches {
		for _, ev := range b.Events {
			out[ev.RequestId] = ev
		}
	}
	return out, nil
}

// waitEvent waits for a usage event that match accepts and returns it; what names
// the one waited for.
func (h *harness) waitEvent(t testing.TB, what string, match func(*gatehousev1.UsageEvent) bool) *gatehousev1.UsageEvent {
	t.Helper()
	var ev *gatehousev1.UsageEvent
	fakecp.Eventually(t, 5*time.Second, func() error {
		evs, err := h.usageEvents()
		if err != nil {
			return err
		}
		for _, e := range evs {
			if match(e) {
				ev = e
				return nil
			}
		}
		return fmt.Errorf("no usage event for %s (%d events)", what, len(evs))
	})
	return ev
}

// waitModelUsage waits for a usage event of model and returns it.
func (h *harness) waitModelUsage(t testing.TB, model string) *gatehousev1.UsageEvent {
	t.Helper()
	return h.waitEvent(t, "the model "+model, func(e *gatehousev1.UsageEvent) bool { return e.Model == model })
}

// waitUsage waits for the usage event of a request.
func (h *harness) waitUsage(t testing.TB, requestID string) *gatehousev1.UsageEvent {
	t.Helper()
	return h.waitEvent(t, "request "+requestID, func(e *gatehousev1.UsageEvent) bool { return e.RequestId == requestID })
}

// do sends a raw request to the gateway.
func (h *harness) do(t testing.TB, method, path string, header map[string]string, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, h.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

func bearer(key string) map[string]string { return map[string]string{"Authorization": "Bearer " + key} }
