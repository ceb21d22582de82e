package configpub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/configpub"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/cptest"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/natsbus"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

var update = flag.Bool("update", false, "rewrite golden files")

var all = store.Sharing{All: true}

const search = "22222222-2222-2222-2222-22222222222b"

func sampleConfig() store.OrgConfig {
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	hash := bytes.Repeat([]byte{0xab}, 32)
	return store.OrgConfig{
		Org:     store.Org{ID: "11111111-1111-1111-1111-111111111111", Slug: "acme", Name: "Acme"},
		Epoch:   7,
		Version: 42,
		Teams: []store.Team{
			{ID: "22222222-2222-2222-2222-22222222222b", Slug: "search", Name: "Search", Regions: []string{"eu", "us"}},
			{ID: "22222222-2222-2222-2222-22222222222a", Slug: "ads", Name: "Ads", Suspended: true},
		},
		Keys: []store.ActiveKey{
			{Key: store.Key{ID: "bbbbbbbbbbbb", TeamID: "22222222-2222-2222-2222-22222222222b", Name: "ci", AllowedModels: []string{"z", "a"}, ExpiresAt: &exp,
				AgentIdentity: "ci-bot", AllowedTools: []string{"github/*"}, AllowedRegions: []string{"eu"}}, SecretSHA256: hash},
			{Key: store.Key{ID: "aaaaaaaaaaaa", TeamID: "22222222-2222-2222-2222-22222222222a", Name: "dev"}, SecretSHA256: hash},
		},
		Providers: []store.ProviderWithSecret{
			{Provider: store.Provider{ID: "33333333-3333-3333-3333-333333333333", Name: "openai", Type: "openai-compatible", BaseURL: "https://api.example.com/v1", SharedWith: all}, APIKey: "sk-test"},
			{Provider: store.Provider{ID: "33333333-3333-3333-3333-33333333333a", Name: "claude", Type: "anthropic", BaseURL: "https://api.anthropic.example", SharedWith: store.Sharing{Teams: []string{search}}}, APIKey: "sk-ant"},
		},
		Models: []store.Model{
			{ID: "44444444-4444-4444-4444-444444444444", Name: "gpt-demo", ProviderID: "33333333-3333-3333-3333-333333333333",
				UpstreamModel: "gpt-4o-mini", InputPricePerMTokMicros: 150000, OutputPricePerMTokMicros: 600000, CachedInputPricePerMTokMicros: 75000, ContextWindow: 128000, SharedWith: all},
			{ID: "44444444-4444-4444-4444-44444444444e", Name: "eu-only", ProviderID: "33333333-3333-3333-3333-333333333333",
				UpstreamModel: "gpt-4o", Regions: []string{"eu"}, SharedWith: all},
			{ID: "44444444-4444-4444-4444-44444444444c", Name: "claude", ProviderID: "33333333-3333-3333-3333-33333333333a",
				UpstreamModel: "claude-sonnet", SharedWith: all},
		},
		Aliases:    []store.Alias{{TeamID: search, Alias: "fast", Model: "gpt-demo"}, {TeamID: search, Alias: "eu", Model: "eu-only"}},
		MCPServers: []store.MCPServerWithSecret{{MCPServer: store.MCPServer{ID: "55555555-5555-5555-5555-555555555555", Name: "github", URL: "https://mcp.example.com/mcp", Transport: "streamable-http", AuthHeader: "Authorization", SharedWith: all}, Credential: "ghp_x"}},
		Agents:     []store.AgentWithSecret{{Agent: store.Agent{ID: "66666666-6666-6666-6666-666666666666", Name: "planner", CardURL: "https://agents.example.com/.well-known/agent-card.json", AuthHeader: "X-Api-Key", SharedWith: store.Sharing{Teams: []string{search}}}}},
	}
}

func TestCompileGolden(t *testing.T) {
	t.Parallel()
	built := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	c, err := configpub.Compile(sampleConfig(), "eu", built, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := protojson.Marshal(&gatehousev1.Envelope{Meta: c.Meta})
	if err != nil {
		t.Fatal(err)
	}
	snapJSON, err := protojson.Marshal(c.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	// protojson randomises whitespace; re-indent for a stable golden file.
	var got bytes.Buffer
	for _, b := range [][]byte{raw, snapJSON} {
		if err := json.Indent(&got, b, "", "  "); err != nil {
			t.Fatal(err)
		}
		got.WriteByte('\n')
	}
	golden := filepath.Join("testdata", "snapshot.golden.json")
	if *update {
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got.String()); diff != "" {
		t.Fatalf("snapshot differs from golden (-want +got):\n%s", diff)
	}

	if c.Meta.MinGatewayCapability != 2 || len(c.Snapshot.Models) != 3 || len(c.Snapshot.OtherRegionModels) != 0 {
		t.Fatalf("eu snapshot: capability %d, %d models, %d elsewhere", c.Meta.MinGatewayCapability, len(c.Snapshot.Models), len(c.Snapshot.OtherRegionModels))
	}
	us, err := configpub.Compile(sampleConfig(), "us", built, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(us.Snapshot.Models) != 2 || len(us.Snapshot.OtherRegionModels) != 1 || us.Snapshot.OtherRegionModels[0].Name != "eu-only" {
		t.Fatalf("us snapshot models %v elsewhere %v", us.Snapshot.Models, us.Snapshot.OtherRegionModels)
	}
	// A capability-1 org stays readable by capability-1 gateways.
	plain := sampleConfig()
	plain.Teams[0].Regions, plain.Teams[1].Regions, plain.Aliases, plain.MCPServers, plain.Agents = nil, nil, nil, nil, nil
	plain.Keys[0].AgentIdentity, plain.Keys[0].AllowedTools, plain.Keys[0].AllowedRegions = "", nil, nil
	plain.Providers, plain.Models = plain.Providers[:1], plain.Models[:1]
	if c1, err := configpub.Compile(plain, "eu", built, 1<<20); err != nil || c1.Meta.MinGatewayCapability != 1 {
		t.Fatalf("plain org: capability %d, %v", c1.Meta.MinGatewayCapability, err)
	}

	// Deterministic: the same input compiles to the same bytes, whatever the input order.
	cfg := sampleConfig()
	cfg.Teams[0], cfg.Teams[1] = cfg.Teams[1], cfg.Teams[0]
	c2, err := configpub.Compile(cfg, "eu", built, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Body, c2.Body) || c.Meta.Sha256 != c2.Meta.Sha256 {
		t.Fatal("compile is not deterministic")
	}
}

func TestCompileRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*store.OrgConfig)
		max    int
		want   string
	}{
		{"key with missing team", func(c *store.OrgConfig) { c.Keys[0].TeamID = "nope" }, 1 << 20, "missing team"},
		{"model with missing provider", func(c *store.OrgConfig) { c.Models[0].ProviderID = "nope" }, 1 << 20, "missing provider"},
		{"duplicate model name", func(c *store.OrgConfig) {
			m := c.Models[0]
			m.ID = "55555555-5555-5555-5555-555555555555"
			c.Models = append(c.Models, m)
		}, 1 << 20, "duplicate model name"},
		{"bad provider url", func(c *store.OrgConfig) { c.Providers[0].BaseURL = "not a url" }, 1 << 20, "invalid base url"},
		{"alias to missing model", func(c *store.OrgConfig) { c.Aliases[0].Model = "nope" }, 1 << 20, "missing model"},
		{"duplicate mcp name", func(c *store.OrgConfig) {
			m := c.MCPServers[0]
			m.ID = "77777777-7777-7777-7777-777777777777"
			c.MCPServers = append(c.MCPServers, m)
		}, 1 << 20, "duplicate"},
		{"too large", func(*store.OrgConfig) {}, 100, "size limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sampleConfig()
			tc.mutate(&cfg)
			_, err := configpub.Compile(cfg, "eu", time.Now(), tc.max)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	_, err := configpub.Compile(sampleConfig(), "eu", time.Now(), 100)
	if !errors.Is(err, configpub.ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

// TestCompileLeavesUnusableModelsOut: a model whose sharing and its provider's do not
// meet is left out, and so are the aliases and fallbacks naming it — the org still
// compiles (one sharing edit must not stop every later change from being published).
func TestCompileLeavesUnusableModelsOut(t *testing.T) {
	t.Parallel()
	cfg := sampleConfig()
	cfg.Models[2].SharedWith = store.Sharing{Teams: []string{"22222222-2222-2222-2222-22222222222a"}} // claude: ads only; its provider: search only
	cfg.Models[0].Routing.Fallbacks = []string{"claude"}
	cfg.Aliases = append(cfg.Aliases, store.Alias{TeamID: search, Alias: "smart", Model: "claude"})
	c, err := configpub.Compile(cfg, "eu", time.Now(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	snap := c.Snapshot
	for _, m := range snap.Models {
		if m.Name == "claude" {
			t.Fatal("a model nobody may use is in the snapshot")
		}
		if m.Name == "gpt-demo" && len(m.Fallbacks) != 0 {
			t.Fatalf("gpt-demo still falls back to %v", m.Fallbacks)
		}
	}
	for _, tm := range snap.Teams {
		for _, a := range tm.Aliases {
			if a.Alias == "smart" {
				t.Fatal("the alias to a model nobody may use is in the snapshot")
			}
		}
		if tm.Id == search && len(tm.Aliases) != 2 {
			t.Fatalf("search's other aliases went too: %v", tm.Aliases)
		}
	}
	// The org's config is compiled once per region: leaving the fallback out of one
	// snapshot must not change the config the next is compiled from.
	if cfg.Models[0].Routing.Fallbacks[0] != "claude" {
		t.Fatalf("compiling changed the config's fallbacks: %q", cfg.Models[0].Routing.Fallbacks)
	}
	if _, err := configpub.Compile(cfg, "us", time.Now(), 1<<20); err != nil {
		t.Fatalf("the next region's compile: %v", err)
	}
}

// TestCompileKeepsDeploymentsToTheirProvidersTeams: a deployment on a provider shared
// with fewer teams than its model is left out (those teams would reach that provider
// through it); one whose provider every team of the model may use stays.
func TestCompileKeepsDeploymentsToTheirProvidersTeams(t *testing.T) {
	t.Parallel()
	cfg := sampleConfig()
	cfg.Models = append(cfg.Models, store.Model{ID: "44444444-4444-4444-4444-44444444444f", Name: "search-gpt",
		ProviderID: "33333333-3333-3333-3333-333333333333", UpstreamModel: "gpt-4o", SharedWith: store.Sharing{Teams: []string{search}}})
	claude := "33333333-3333-3333-3333-33333333333a" // shared with search only
	cfg.Deployments = []store.Deployment{
		{ID: "88888888-8888-8888-8888-888888888881", ModelID: "44444444-4444-4444-4444-444444444444", ProviderID: claude, UpstreamModel: "claude-sonnet", Weight: 1}, // gpt-demo: every team
		{ID: "88888888-8888-8888-8888-888888888882", ModelID: "44444444-4444-4444-4444-44444444444f", ProviderID: claude, UpstreamModel: "claude-sonnet", Weight: 1}, // search-gpt: search
	}
	c, err := configpub.Compile(cfg, "eu", time.Now(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	deps := map[string]int{}
	for _, m := range c.Snapshot.Models {
		deps[m.Name] = len(m.Deployments)
	}
	if deps["gpt-demo"] != 0 || deps["search-gpt"] != 1 {
		t.Fatalf("deployments per model = %v, want gpt-demo 0 (its teams may not all use claude's provider), search-gpt 1", deps)
	}
}

// TestOutboxSurvivesCrash commits changes while no publisher runs (the control plane
// died between commit and publish), then starts one and expects every region's value.
func TestOutboxSurvivesCrash(t *testing.T) {
	t.Parallel()
	st := cptest.Store(t)
	ns := cptest.StartNATS(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	org, err := st.CreateOrg(ctx, "test", "acme", "Acme")
	if err != nil {
		t.Fatal(err)
	}
	team, err := st.CreateTeam(ctx, "test", org.ID, "search", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateProvider(ctx, "test", org.ID, store.NewProvider{Name: "up", BaseURL: "http://127.0.0.1:1/v1", APIKey: "sk-very-secret-upstream"}); err != nil {
		t.Fatal(err)
	}
	key, _, err := st.CreateKey(ctx, "test", org.ID, team.ID, store.NewKey{Name: "k"})
	if err != nil {
		t.Fatal(err)
	}

	kr := cptest.Keyring(t, "cfg-1")
	pub := configpub.NewPublisher(st, ns.Config, kr, []string{"eu", "us"}, natsbus.MaxConfigValueBytes, slog.New(slog.DiscardHandler))
	go pub.Run(ctx) //nolint:errcheck // ends with ctx

	open := func(region string) (*gatehousev1.SnapshotMeta, *gatehousev1.Snapshot, []byte, error) {
		e, err := ns.Config.Get(ctx, wire.ConfigKey(region, org.ID))
		if err != nil {
			return nil, nil, nil, err
		}
		m, s, err := kr.Open(e.Value())
		return m, s, e.Value(), err
	}
	for _, region := range []string{"eu", "us"} {
		cptest.Eventually(t, 10*time.Second, func() error {
			meta, snap, raw, err := open(region)
			if err != nil {
				return err
			}
			if meta.Region != region || meta.OrgId != org.ID || len(snap.Keys) != 1 || snap.Keys[0].Id != key.ID {
				return errors.New("snapshot incomplete")
			}
			if bytes.Contains(raw, []byte("sk-very-secret-upstream")) {
				t.Fatal("upstream credential in clear in NATS")
			}
			return nil
		})
	}
	cptest.Eventually(t, 5*time.Second, func() error {
		p, err := st.PendingConfig(ctx, 10)
		if err != nil || len(p) != 0 {
			return errors.New("outbox not drained")
		}
		return nil
	})

	// A revocation is published with a higher version and without the key.
	meta0, _, _, _ := open("eu")
	if _, err := st.RevokeKey(ctx, "test", org.ID, team.ID, key.ID); err != nil {
		t.Fatal(err)
	}
	cptest.Eventually(t, 5*time.Second, func() error {
		meta, snap, _, err := open("eu")
		if err != nil {
			return err
		}
		if len(snap.Keys) != 0 || meta.Version <= meta0.Version {
			return errors.New("revocation not published")
		}
		return nil
	})
}

func TestCompileCapability3(t *testing.T) {
	t.Parallel()
	cfg := sampleConfig()
	cfg.Teams[1].Limits = store.Limits{RPM: 600}
	cfg.Guardrails = []store.Guardrail{{ID: "g1", TeamID: search, Name: "pii", Detector: "email", Mode: "redact", Direction: "both"}}
	cfg.Models[0].Routing = store.Routing{Strategy: "least-busy", MaxRetries: 2, StreamIdleTimeoutMs: 45_000, Fallbacks: []string{"claude"}}
	cfg.Deployments = []store.Deployment{{ID: "d1", ModelID: cfg.Models[0].ID, ProviderID: cfg.Providers[0].ID, UpstreamModel: "gpt-4o-mini-b", Weight: 2}}
	c, err := configpub.Compile(cfg, "eu", time.Now(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if c.Meta.MinGatewayCapability != 3 {
		t.Fatalf("capability = %d", c.Meta.MinGatewayCapability)
	}
	var m *gatehousev1.Model
	for _, x := range c.Snapshot.Models {
		if x.Name == "gpt-demo" {
			m = x
		}
	}
	if m.Routing.GetStrategy() != gatehousev1.RoutingStrategy_ROUTING_STRATEGY_LEAST_BUSY || m.Routing.GetStreamIdleTimeoutMs() != 45_000 ||
		len(m.Deployments) != 1 || m.Fallbacks[0] != "claude" {
		t.Fatalf("model = %v", m)
	}
	cfg.Models[0].Routing.Fallbacks = []string{"nope"}
	if _, err := configpub.Compile(cfg, "eu", time.Now(), 1<<20); err == nil {
		t.Fatal("fallback to a missing model compiled")
	}
}

// TestCompileAzureEntra: an Azure OpenAI provider with a Microsoft Entra ID app
// registration carries it (its credential is the client secret) and needs capability
// 4; a plain Azure OpenAI provider compiles as before, at capability 2; what a gateway
// would refuse (Entra ID without a secret or on another type) is refused here first.
func TestCompileAzureEntra(t *testing.T) {
	t.Parallel()
	azure := store.ProviderWithSecret{Provider: store.Provider{ID: "33333333-3333-3333-3333-33333333333b", Name: "azure", Type: "azure-openai",
		BaseURL: "https://acme.openai.azure.com", APIVersion: "2024-10-21", SharedWith: all}, APIKey: "azure-key"}
	plain := sampleConfig()
	plain.Providers = append(plain.Providers, azure)
	c, err := configpub.Compile(plain, "eu", time.Now(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if c.Meta.MinGatewayCapability != 2 || providerIn(c.Snapshot, azure.ID).GetAzureEntra() != nil {
		t.Fatalf("plain azure: capability %d, provider %v", c.Meta.MinGatewayCapability, providerIn(c.Snapshot, azure.ID))
	}

	azure.AzureTenantID, azure.AzureClientID, azure.APIKey = "contoso.onmicrosoft.com", "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", "client-secret"
	cfg := sampleConfig()
	cfg.Providers = append(cfg.Providers, azure)
	c, err = configpub.Compile(cfg, "eu", time.Now(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	p := providerIn(c.Snapshot, azure.ID)
	want := &gatehousev1.AzureEntra{TenantId: "contoso.onmicrosoft.com", ClientId: "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"}
	if c.Meta.MinGatewayCapability != 4 || !proto.Equal(p.GetAzureEntra(), want) || p.GetApiKey() != "client-secret" {
		t.Fatalf("entra azure: capability %d, provider %v", c.Meta.MinGatewayCapability, p)
	}
	if c.Meta.MinGatewayCapability > wire.Capability {
		t.Fatalf("capability %d exceeds the gateways' %d", c.Meta.MinGatewayCapability, wire.Capability)
	}

	for name, mutate := range map[string]func(*store.ProviderWithSecret){
		"no client secret":  func(p *store.ProviderWithSecret) { p.APIKey = "" },
		"not azure":         func(p *store.ProviderWithSecret) { p.Type = "openai-compatible" },
		"bad tenant":        func(p *store.ProviderWithSecret) { p.AzureTenantID = "common" },
		"client id missing": func(p *store.ProviderWithSecret) { p.AzureClientID = "" },
	} {
		bad := sampleConfig()
		p := azure
		mutate(&p)
		bad.Providers = append(bad.Providers, p)
		if _, err := configpub.Compile(bad, "eu", time.Now(), 1<<20); err == nil || !strings.Contains(err.Error(), "azure_entra") {
			t.Errorf("%s: err = %v, want an azure_entra refusal", name, err)
		}
	}
}

func providerIn(s *gatehousev1.Snapshot, id string) *gatehousev1.Provider {
	for _, p := range s.Providers {
		if p.Id == id {
			return p
		}
	}
	return nil
}
