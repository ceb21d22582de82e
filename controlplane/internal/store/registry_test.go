package store_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/cptest"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	"github.com/gatehouse-dev/gatehouse/controlplane/pgtest"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
)

// fakeResolver answers DNS from a table (the network edge we do not own).
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func TestUpstreamURLGuard(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.New(t)
	res := fakeResolver{
		"evil.example":   {netip.MustParseAddr("169.254.169.254")},
		"ok.example":     {netip.MustParseAddr("203.0.113.7")},
		"v6meta.example": {netip.MustParseAddr("fd00:ec2::254")},
	}
	st := store.New(pool, cptest.Keyring(t, "m"), store.WithResolver(res))
	if err := st.EnsureRegions(ctx, []string{"eu", "us"}); err != nil {
		t.Fatal(err)
	}
	org, err := st.CreateOrg(ctx, "test", "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url string
		ok  bool
	}{
		{"https://ok.example/v1", true},
		{"http://127.0.0.1:8070/v1", true},
		{"http://169.254.169.254/latest", false},
		{"http://[fe80::1]/v1", false},
		{"https://evil.example/v1", false},
		{"https://v6meta.example/v1", false},
		{"http://metadata.google.internal/v1", false},
		{"https://unresolvable.example/v1", true},
		{"http://0.0.0.0/v1", false},
	}
	for i, tc := range tests {
		_, err := st.CreateProvider(ctx, "test", org.ID, store.NewProvider{Name: "p" + string(rune('a'+i)), BaseURL: tc.url})
		var ve *store.ValidationError
		if tc.ok != (err == nil) || (!tc.ok && (!errors.As(err, &ve) || ve.Fields["base_url"] == "")) {
			t.Errorf("%s: err = %v, want ok=%v", tc.url, err, tc.ok)
		}
	}
	// MCP server and agent URLs get the same guard.
	if _, err := st.CreateMCPServer(ctx, "test", org.ID, store.NewMCPServer{Name: "m", URL: "http://169.254.169.254/mcp"}); err == nil {
		t.Error("MCP server pointing at the metadata service accepted")
	}
	if _, err := st.CreateAgent(ctx, "test", org.ID, store.NewAgent{Name: "a", CardURL: "https://evil.example/card"}); err == nil {
		t.Error("agent pointing at the metadata service accepted")
	}
	// The platform may allow it.
	allowed := store.New(pool, cptest.Keyring(t, "m"), store.WithResolver(res), store.AllowLinkLocalUpstreams(true))
	if _, err := allowed.CreateProvider(ctx, "test", org.ID, store.NewProvider{Name: "meta", BaseURL: "http://169.254.169.254/v1"}); err != nil {
		t.Fatalf("allowed by platform config: %v", err)
	}
}

func TestRegistryLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := cptest.Store(t)
	if err := st.EnsureRegions(ctx, []string{"eu", "us"}); err != nil {
		t.Fatal(err)
	}
	org, team := seed(t, st)
	other, err := st.CreateTeam(ctx, actor, org.ID, "ads", "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.CreateProvider(ctx, actor, org.ID, store.NewProvider{Name: "azure", Type: "azure-openai", BaseURL: "https://x.openai.azure.com", APIVersion: "2024-10-21",
		Share: &store.Sharing{Teams: []string{"search"}}})
	if err != nil {
		t.Fatal(err)
	}
	if p.SharedWith.All || len(p.SharedWith.Teams) != 1 || p.SharedWith.Teams[0] != team.ID {
		t.Fatalf("sharing = %+v", p.SharedWith)
	}
	if _, err := st.CreateProvider(ctx, actor, org.ID, store.NewProvider{Name: "az2", Type: "azure-openai", BaseURL: "https://y.example"}); err == nil {
		t.Fatal("azure provider without api_version accepted")
	}
	if _, err := st.CreateProvider(ctx, actor, org.ID, store.NewProvider{Name: "bad", Type: "bedrock", BaseURL: "https://y.example"}); err == nil {
		t.Fatal("unknown provider type accepted")
	}
	if _, err := st.CreateProvider(ctx, actor, org.ID, store.NewProvider{Name: "claude", Type: "anthropic", BaseURL: "https://y.example", NativeResponses: true}); err == nil {
		t.Fatal("native_responses accepted for an anthropic provider")
	}
	oai, err := st.CreateProvider(ctx, actor, org.ID, store.NewProvider{Name: "openai-native", BaseURL: "https://api.openai.example/v1", NativeResponses: true})
	if err != nil || !oai.NativeResponses {
		t.Fatalf("native provider = %+v, %v", oai, err)
	}
	if list, err := st.ListProviders(ctx, org.ID); err != nil || !slices.ContainsFunc(list, func(p store.Provider) bool { return p.ID == oai.ID && p.NativeResponses }) ||
		slices.ContainsFunc(list, func(p store.Provider) bool { return p.Name == "azure" && p.NativeResponses }) {
		t.Fatalf("listed providers = %+v, %v", list, err)
	}
	m, err := st.CreateModel(ctx, actor, org.ID, store.NewModel{Name: "eu-gpt", Provider: "azure", Regions: []string{"EU"}, ContextWindow: 128000})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Regions) != 1 || m.Regions[0] != "eu" {
		t.Fatalf("regions = %v", m.Regions)
	}
	if _, err := st.CreateModel(ctx, actor, org.ID, store.NewModel{Name: "mars", Provider: "azure", Regions: []string{"mars"}}); err == nil {
		t.Fatal("unknown region accepted")
	}
	if _, err := st.CreateAlias(ctx, actor, org.ID, team.ID, "fast", "eu-gpt"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateAlias(ctx, actor, org.ID, team.ID, "fast", "gpt-demo"); err == nil {
		t.Fatal("duplicate alias accepted")
	}
	// Deleting what is in use is a conflict that says why; nothing changes.
	var ve *store.ValidationError
	if err := st.DeleteProvider(ctx, actor, org.ID, p.ID); !errors.As(err, &ve) || !ve.Conflict || ve.Fields["in_use"] == "" {
		t.Fatalf("delete provider in use: %v", err)
	}
	if err := st.DeleteModel(ctx, actor, org.ID, m.ID); !errors.As(err, &ve) || !ve.Conflict {
		t.Fatalf("delete model in use: %v", err)
	}
	if _, err := st.CreateMCPServer(ctx, actor, org.ID, store.NewMCPServer{Name: "github", URL: "https://mcp.example.com/mcp", Credential: "ghp_secret_value"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateAgent(ctx, actor, org.ID, store.NewAgent{Name: "planner", CardURL: "https://agents.example.com/card", Share: &store.Sharing{Teams: []string{other.ID}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetTeamRegions(ctx, actor, org.ID, team.ID, []string{"eu"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.CreateKey(ctx, actor, org.ID, team.ID, store.NewKey{Name: "k", AgentIdentity: "ci-bot", AllowedTools: []string{"github/*"}, AllowedRegions: []string{"eu"}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.CreateKey(ctx, actor, org.ID, team.ID, store.NewKey{Name: "k2", AllowedTools: []string{"no-slash"}}); err == nil {
		t.Fatal("malformed tool accepted")
	}
	cfg, err := st.LoadOrgConfig(ctx, org.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Aliases) != 1 || len(cfg.MCPServers) != 1 || cfg.MCPServers[0].Credential != "ghp_secret_value" || len(cfg.Agents) != 1 ||
		cfg.Agents[0].SharedWith.All || cfg.Agents[0].SharedWith.Teams[0] != other.ID {
		t.Fatalf("config: aliases %v mcp %v agents %v", cfg.Aliases, cfg.MCPServers, cfg.Agents)
	}
	if _, err := st.SetTeamSuspended(ctx, actor, org.ID, team.ID, true); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteAlias(ctx, actor, org.ID, team.ID, "fast"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteModel(ctx, actor, org.ID, m.ID); err != nil {
		t.Fatalf("delete unused model: %v", err)
	}
	if err := st.DeleteProvider(ctx, actor, org.ID, p.ID); err != nil {
		t.Fatalf("delete unused provider: %v", err)
	}
}

func TestRotateSecrets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.New(t)
	oldKey := bytes.Repeat([]byte{1}, 32)
	newKey := bytes.Repeat([]byte{2}, 32)
	old, _ := wire.NewKeyring("old", oldKey)
	st := store.New(pool, old)
	org, err := st.CreateOrg(ctx, "test", "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateProvider(ctx, "test", org.ID, store.NewProvider{Name: "p", BaseURL: "https://x.example", APIKey: "sk-rotate-me"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SaveSSO(ctx, "test", org.ID, store.SSOInput{Issuer: "https://idp.example", ClientID: "c", ClientSecret: "cs-rotate", AllowedDomains: []string{"acme.com"}, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateMCPServer(ctx, "test", org.ID, store.NewMCPServer{Name: "m", URL: "https://m.example/mcp", Credential: "mcp-rotate"}); err != nil {
		t.Fatal(err)
	}
	both, err := wire.ParseKeyring("new:" + b64(newKey) + ",old:" + b64(oldKey))
	if err != nil {
		t.Fatal(err)
	}
	rotated := store.New(pool, both)
	n, err := rotated.RotateSecrets(ctx, "test")
	if err != nil || n != 3 {
		t.Fatalf("rotated %d, %v", n, err)
	}
	if n, _ := rotated.RotateSecrets(ctx, "test"); n != 0 {
		t.Fatalf("second rotation re-sealed %d", n)
	}
	// The new key alone now opens everything.
	onlyNew, _ := wire.NewKeyring("new", newKey)
	cfg, err := store.New(pool, onlyNew).LoadOrgConfig(ctx, org.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Providers[0].APIKey != "sk-rotate-me" || cfg.MCPServers[0].Credential != "mcp-rotate" {
		t.Fatalf("credentials after rotation: %+v %+v", cfg.Providers, cfg.MCPServers)
	}
	sso, err := store.New(pool, onlyNew).SSOForOrg(ctx, org.ID)
	if err != nil || sso.ClientSecret != "cs-rotate" {
		t.Fatalf("sso secret after rotation: %v", err)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
