package store_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/cptest"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	"github.com/gatehouse-dev/gatehouse/controlplane/pgtest"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"
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
	// An Entra ID client secret, sealed apart from API keys, is re-sealed as one.
	if _, err := st.CreateProvider(ctx, "test", org.ID, azureProvider("z-entra", entraTenant, entraClient, "cs-entra-rotate")); err != nil {
		t.Fatal(err)
	}
	both, err := wire.ParseKeyring("new:" + b64(newKey) + ",old:" + b64(oldKey))
	if err != nil {
		t.Fatal(err)
	}
	rotated := store.New(pool, both)
	n, err := rotated.RotateSecrets(ctx, "test")
	if err != nil || n != 4 {
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
	if cfg.Providers[0].APIKey != "sk-rotate-me" || cfg.Providers[1].APIKey != "cs-entra-rotate" || cfg.MCPServers[0].Credential != "mcp-rotate" {
		t.Fatalf("credentials after rotation: %+v %+v", cfg.Providers, cfg.MCPServers)
	}
	// What an API key is sealed with does not open the client secret: a release that
	// knows only API keys could not send it as one.
	var sealed []byte
	var kid string
	if err := pool.QueryRow(ctx, `select api_key_sealed, api_key_key_id from providers where name = 'z-entra'`).Scan(&sealed, &kid); err != nil {
		t.Fatal(err)
	}
	if _, err := onlyNew.OpenBytes(kid, sealed, []byte("gatehouse/provider-credential/"+org.ID)); err == nil {
		t.Fatal("the client secret opens as an API key")
	}
	sso, err := store.New(pool, onlyNew).SSOForOrg(ctx, org.ID)
	if err != nil || sso.ClientSecret != "cs-rotate" {
		t.Fatalf("sso secret after rotation: %v", err)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// Microsoft Entra ID app registrations of the tests (made up).
const (
	entraTenant = "11111111-2222-4333-8444-555555555555"
	entraClient = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
)

// azureProvider is an Azure OpenAI provider to create, with Entra ID when tenant is set.
func azureProvider(name, tenant, client, key string) store.NewProvider {
	return store.NewProvider{Name: name, Type: "azure-openai", BaseURL: "https://acme.openai.azure.com", APIVersion: "2024-10-21",
		AzureTenantID: tenant, AzureClientID: client, APIKey: key}
}

// TestAzureEntraProvider registers Azure OpenAI providers that authenticate with
// Microsoft Entra ID: the ids come back trimmed from create, get and list, the client
// secret is sealed, reaches only the snapshot and is never returned, a malformed
// registration is refused on its field without a row or an audit entry written, and the
// database's constraints hold the same rules.
func TestAzureEntraProvider(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := cptest.Store(t)
	org, _ := seed(t, st)
	const secret = "entra-client-secret-789"
	p, err := st.CreateProvider(ctx, actor, org.ID, azureProvider("entra", " "+entraTenant+" ", entraClient+"\n", secret))
	if err != nil {
		t.Fatal(err)
	}
	if p.AzureTenantID != entraTenant || p.AzureClientID != entraClient || !p.HasCredential {
		t.Fatalf("created = %+v", p)
	}
	got, err := st.GetProvider(ctx, org.ID, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, got); diff != "" {
		t.Fatalf("get differs from create (-create +get):\n%s", diff)
	}
	if diff := cmp.Diff(p, providerNamed(t, st, org.ID, "entra")); diff != "" {
		t.Fatalf("list differs from create (-create +list):\n%s", diff)
	}
	raw, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"azure_tenant_id":"`+entraTenant+`","azure_client_id":"`+entraClient+`"`) || strings.Contains(string(raw), secret) {
		t.Fatalf("provider JSON = %s", raw)
	}
	if cp := configProvider(t, st, org.ID, p.ID); cp.APIKey != secret || cp.AzureTenantID != entraTenant || cp.AzureClientID != entraClient {
		t.Fatalf("snapshot provider = %+v", cp)
	}
	assertNowhereInClear(t, st, secret)
	if d, err := st.CreateProvider(ctx, actor, org.ID, azureProvider("entra-domain", "contoso.onmicrosoft.com", entraClient, "s")); err != nil || d.AzureTenantID != "contoso.onmicrosoft.com" {
		t.Fatalf("tenant by domain: %+v, %v", d, err)
	}
	keyed, err := st.CreateProvider(ctx, actor, org.ID, azureProvider("keyed", "", "", "azure-api-key"))
	if err != nil || keyed.AzureTenantID != "" || keyed.AzureClientID != "" {
		t.Fatalf("API key provider = %+v, %v", keyed, err)
	}
	if raw, _ := json.Marshal(keyed); strings.Contains(string(raw), "azure_") {
		t.Fatalf("API key provider JSON = %s", raw)
	}

	before, _ := st.FilterAudit(ctx, org.ID, store.AuditFilter{Limit: 100})
	for name, tc := range map[string]struct {
		in    store.NewProvider
		field string
	}{
		"openai-compatible with Entra ID": {store.NewProvider{Name: "x1", BaseURL: "https://api.example.com/v1", APIKey: "k",
			AzureTenantID: entraTenant, AzureClientID: entraClient}, "azure_tenant_id"},
		"anthropic with a client id": {store.NewProvider{Name: "x2", Type: "anthropic", BaseURL: "https://api.anthropic.example", APIKey: "k",
			AzureClientID: entraClient}, "azure_client_id"},
		"tenant without client":      {azureProvider("x3", entraTenant, "", "s"), "azure_client_id"},
		"client without tenant":      {azureProvider("x4", " ", entraClient, "s"), "azure_tenant_id"},
		"tenant with a path":         {azureProvider("x5", "contoso.onmicrosoft.com/oauth2", entraClient, "s"), "azure_tenant_id"},
		"multi-tenant alias":         {azureProvider("x6", "common", entraClient, "s"), "azure_tenant_id"},
		"client id not a GUID":       {azureProvider("x7", entraTenant, "my-app", "s"), "azure_client_id"},
		"Entra ID without a secret":  {azureProvider("x8", entraTenant, entraClient, ""), "api_key"},
		"API key fields still apply": {store.NewProvider{Name: "x9", Type: "azure-openai", BaseURL: "https://acme.openai.azure.com", APIKey: "s", AzureTenantID: entraTenant, AzureClientID: entraClient}, "api_version"},
	} {
		var ve *store.ValidationError
		if _, err := st.CreateProvider(ctx, actor, org.ID, tc.in); !errors.As(err, &ve) || ve.Fields[tc.field] == "" {
			t.Errorf("%s: err = %v, want a validation error on %s", name, err, tc.field)
		}
	}
	var ve *store.ValidationError
	if _, err := st.CreateProvider(ctx, actor, org.ID, azureProvider("x10", entraTenant, entraClient, "")); !errors.As(err, &ve) ||
		!strings.Contains(ve.Fields["api_key"], "client secret") {
		t.Errorf("Entra ID without a secret: %v, want the field to name the client secret", err)
	}
	after, _ := st.FilterAudit(ctx, org.ID, store.AuditFilter{Limit: 100})
	list, err := st.ListProviders(ctx, org.ID)
	if err != nil || len(list) != 4 || len(after) != len(before) {
		t.Fatalf("refused providers left %d providers (want 4) and %d audit rows, %v", len(list), len(after)-len(before), err)
	}

	// The database itself keeps the ids paired, on Azure OpenAI providers only, and
	// with a client secret, whatever writes the row.
	keyless, err := st.CreateProvider(ctx, actor, org.ID, azureProvider("keyless", "", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	entraIDs := "azure_tenant_id = 'contoso.onmicrosoft.com', azure_client_id = '" + entraClient + "'"
	for _, tc := range []struct{ id, set, constraint string }{
		{keyed.ID, "azure_tenant_id = 'contoso.onmicrosoft.com'", "providers_azure_entra_pair_ck"},
		{providerNamed(t, st, org.ID, "openai").ID, entraIDs, "providers_azure_entra_type_ck"},
		{keyless.ID, entraIDs, "providers_azure_entra_secret_ck"},
		{p.ID, "api_key_sealed = null, api_key_key_id = null", "providers_azure_entra_secret_ck"},
	} {
		_, err := st.Pool().Exec(ctx, "update providers set "+tc.set+" where id = $1", tc.id)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.ConstraintName != tc.constraint {
			t.Errorf("set %s: err = %v, want %s", tc.set, err, tc.constraint)
		}
	}
}
