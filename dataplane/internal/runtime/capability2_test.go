package runtime

import (
	"errors"
	"strings"
	"testing"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/google/go-cmp/cmp"
)

// registrySnapshot is testSnapshot with every capability 2 feature in use: regions,
// aliases, other-region models, key narrowing, MCP servers and A2A agents.
func registrySnapshot(orgID string) *gatehousev1.Snapshot {
	s := testSnapshot(orgID)
	_, sumE := keyFor("eeeeeeeeeeee")
	_, sumF := keyFor("ffffffffffff")
	_, sumG := keyFor("gggggggggggg")
	_, sumH := keyFor("hhhhhhhhhhhh")
	_, sumI := keyFor("iiiiiiiiiiii")
	_, sumJ := keyFor("jjjjjjjjjjjj")
	s.Teams[0].Regions = []string{"us", testRegion}
	s.Teams[0].Aliases = []*gatehousev1.ModelAlias{
		{Alias: "fast", Model: "small"},
		{Alias: "smart", Model: "big"},
		{Alias: "far", Model: "us-only"},
		// Shadows the org model "big" for team t1 only.
		{Alias: "big", Model: "small"},
		{Alias: "t2-model", Model: "team2-only"},
	}
	s.Teams = append(s.Teams,
		&gatehousev1.Team{Id: "t3", Slug: "three", Regions: []string{"us"}},
		&gatehousev1.Team{Id: "t4", Slug: "four"},
	)
	s.Keys = append(s.Keys,
		// Narrowed in every way capability 2 allows.
		&gatehousev1.ApiKey{Id: "eeeeeeeeeeee", TeamId: "t1", SecretSha256: sumE, AgentIdentity: "planner",
			AllowedModels: []string{"fast", "big"}, AllowedTools: []string{"github/search", "jira/*"},
			AllowedAgents: []string{"researcher"}, AllowedRegions: []string{testRegion, "us"}},
		// Team t3 may only be used in "us".
		&gatehousev1.ApiKey{Id: "ffffffffffff", TeamId: "t3", SecretSha256: sumF},
		// The key itself may only be used in "us".
		&gatehousev1.ApiKey{Id: "gggggggggggg", TeamId: "t1", SecretSha256: sumG, AllowedRegions: []string{"us"}},
		// Allowed the target of an alias, not the alias.
		&gatehousev1.ApiKey{Id: "hhhhhhhhhhhh", TeamId: "t1", SecretSha256: sumH, AllowedModels: []string{"small"}},
		&gatehousev1.ApiKey{Id: "iiiiiiiiiiii", TeamId: "t4", SecretSha256: sumI},
		// Allowed only an alias of a model offered elsewhere.
		&gatehousev1.ApiKey{Id: "jjjjjjjjjjjj", TeamId: "t1", SecretSha256: sumJ, AllowedModels: []string{"far"}},
	)
	s.Providers = append(s.Providers,
		&gatehousev1.Provider{Id: "p2", Type: gatehousev1.ProviderType_PROVIDER_TYPE_ANTHROPIC, BaseUrl: "https://api.anthropic.com/v1", ApiKey: "sk-ant"},
		&gatehousev1.Provider{Id: "p3", Type: gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI, BaseUrl: "https://x.openai.azure.com/openai", ApiKey: "az", ApiVersion: "2024-10-21"},
		&gatehousev1.Provider{Id: "p4", Type: gatehousev1.ProviderType_PROVIDER_TYPE_GEMINI, BaseUrl: "https://generativelanguage.googleapis.com/v1beta", ApiKey: "gm"},
	)
	s.Models = append(s.Models,
		&gatehousev1.Model{Id: "m4", Name: "claude", ProviderId: "p2", UpstreamModel: "claude-x", ContextWindow: 200_000},
		&gatehousev1.Model{Id: "m5", Name: "azure", ProviderId: "p3", UpstreamModel: "gpt-deploy"},
		&gatehousev1.Model{Id: "m6", Name: "gemini", ProviderId: "p4", UpstreamModel: "gemini-x"},
	)
	s.OtherRegionModels = []*gatehousev1.RegionalModel{
		{Name: "us-only", Regions: []string{"us"}},
		{Name: "apac", Regions: []string{"jp", "au", "jp"}},
	}
	s.McpServers = []*gatehousev1.McpServer{
		{Id: "s1", Name: "github", Url: "https://mcp.github.example/mcp", Transport: gatehousev1.McpTransport_MCP_TRANSPORT_STREAMABLE_HTTP,
			AuthHeader: "Authorization", Credential: "Bearer ghp"},
		{Id: "s2", Name: "jira", Url: "http://jira.internal:8080/sse", Transport: gatehousev1.McpTransport_MCP_TRANSPORT_SSE,
			TeamIds: []string{"t2"}},
		{Id: "s3", Name: "docs", Url: "https://docs.example/mcp?tenant=1", Transport: gatehousev1.McpTransport_MCP_TRANSPORT_STREAMABLE_HTTP,
			TeamIds: []string{"t1", "t4"}},
	}
	s.Agents = []*gatehousev1.A2AAgent{
		{Id: "a1", Name: "researcher", CardUrl: "https://agents.example/researcher/.well-known/agent-card.json",
			AuthHeader: "X-Api-Key", Credential: "agent-secret"},
		{Id: "a2", Name: "writer", CardUrl: "https://agents.example/writer", TeamIds: []string{"t4"}},
	}
	return s
}

func TestRegions(t *testing.T) {
	t.Parallel()
	rt := mustRuntime(t, registrySnapshot("o1"))
	now := time.UnixMilli(5000)
	tests := []struct {
		name    string
		key     string
		wantErr error
	}{
		{"team and key allow the region", "eeeeeeeeeeee", nil},
		{"team allows every region", "iiiiiiiiiiii", nil},
		{"team excludes the region", "ffffffffffff", ErrRegionNotAllowed},
		{"key excludes the region", "gggggggggggg", ErrRegionNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			token, _ := keyFor(tt.key)
			k, err := rt.Authenticate(token, now)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if k == nil {
				t.Fatal("no key returned; a refused key must still be attributable")
			}
			if tt.wantErr != nil {
				var re *RegionError
				if !errors.As(err, &re) || re.Region != testRegion {
					t.Fatalf("err = %#v, want a RegionError for %q", err, testRegion)
				}
			}
		})
	}
}

func TestRegionRefusedAfterSuspension(t *testing.T) {
	t.Parallel()
	snap := registrySnapshot("o1")
	snap.Teams[2].Suspended = true // t3, which may not be used in this region either
	rt := mustRuntime(t, snap)
	token, _ := keyFor("ffffffffffff")
	if _, err := rt.Authenticate(token, time.UnixMilli(5000)); !errors.Is(err, ErrTeamSuspended) {
		t.Fatalf("err = %v, want suspension to be reported first", err)
	}
}

func TestKeyModelCapability2(t *testing.T) {
	t.Parallel()
	rt := mustRuntime(t, registrySnapshot("o1"))
	tests := []struct {
		name    string
		key     string
		model   string
		want    string // upstream model
		wantErr error
	}{
		{"alias", "aaaaaaaaaaaa", "fast", "gpt-small", nil},
		{"alias shadows org model for its team", "aaaaaaaaaaaa", "big", "gpt-small", nil},
		{"org model through another alias", "aaaaaaaaaaaa", "smart", "gpt-big", nil},
		{"shadowed name is still the model for other teams", "iiiiiiiiiiii", "big", "gpt-big", nil},
		{"alias of another team", "iiiiiiiiiiii", "fast", "", ErrModelNotFound},
		{"alias checks the target's teams", "aaaaaaaaaaaa", "t2-model", "", ErrModelNotAllowed},
		{"allow-list names the alias", "eeeeeeeeeeee", "fast", "gpt-small", nil},
		{"allow-list naming the alias does not grant the target by name", "eeeeeeeeeeee", "small", "", ErrModelNotAllowed},
		{"allow-list entry of a shadowed name means the alias", "eeeeeeeeeeee", "big", "gpt-small", nil},
		{"allow-list entry of a shadowed name does not grant its other aliases", "eeeeeeeeeeee", "smart", "", ErrModelNotAllowed},
		{"allow-list names the target", "hhhhhhhhhhhh", "fast", "gpt-small", nil},
		{"allow-list names the target directly", "hhhhhhhhhhhh", "small", "gpt-small", nil},
		{"allow-list lacks alias and target", "hhhhhhhhhhhh", "smart", "", ErrModelNotAllowed},
		{"model offered elsewhere", "aaaaaaaaaaaa", "us-only", "", ErrModelNotInRegion},
		{"alias of a model offered elsewhere", "aaaaaaaaaaaa", "far", "", ErrModelNotInRegion},
		{"unknown everywhere", "aaaaaaaaaaaa", "nowhere", "", ErrModelNotFound},
		{"anthropic model compiles", "aaaaaaaaaaaa", "claude", "claude-x", nil},
		{"gemini model compiles", "aaaaaaaaaaaa", "gemini", "gemini-x", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := rt.keys[tt.key].Model(tt.model)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && m.UpstreamModel != tt.want {
				t.Fatalf("upstream model = %q, want %q", m.UpstreamModel, tt.want)
			}
		})
	}

	_, err := rt.keys["aaaaaaaaaaaa"].Model("far")
	var nir *ModelNotInRegionError
	if !errors.As(err, &nir) {
		t.Fatalf("err = %v, want a ModelNotInRegionError", err)
	}
	want := &ModelNotInRegionError{Model: "far", Target: "us-only", Region: testRegion, OfferedIn: []string{"us"}}
	if diff := cmp.Diff(want, nir); diff != "" {
		t.Errorf("not-in-region error (-want +got):\n%s", diff)
	}
	_, err = rt.keys["aaaaaaaaaaaa"].Model("apac")
	if !errors.As(err, &nir) || !cmp.Equal(nir.OfferedIn, []string{"au", "jp"}) {
		t.Errorf("offered in = %v, want sorted and de-duplicated", err)
	}
	if got := err.Error(); got != `model "apac" is not offered in region "eu" (offered in: au, jp)` {
		t.Errorf("message = %q", got)
	}
}

func TestKeyModelsAndAliases(t *testing.T) {
	t.Parallel()
	rt := mustRuntime(t, registrySnapshot("o1"))
	type listing struct {
		Models  []string
		Aliases map[string]string // alias → org model name
	}
	list := func(k *Key) listing {
		var l listing
		for _, m := range k.Models() {
			l.Models = append(l.Models, m.Name)
		}
		for _, a := range k.Aliases() {
			if l.Aliases == nil {
				l.Aliases = map[string]string{}
			}
			l.Aliases[a.Name] = a.Model.Name
		}
		return l
	}
	tests := []struct {
		name string
		key  string
		want listing
	}{
		{"team t1: shadowed model and aliases elsewhere or of other teams left out", "aaaaaaaaaaaa", listing{
			Models:  []string{"azure", "claude", "gemini", "small"},
			Aliases: map[string]string{"big": "small", "fast": "small", "smart": "big"},
		}},
		{"allow-list of alias and shadowed name", "eeeeeeeeeeee", listing{
			Aliases: map[string]string{"big": "small", "fast": "small"},
		}},
		{"allow-list of a target", "hhhhhhhhhhhh", listing{
			Models:  []string{"small"},
			Aliases: map[string]string{"big": "small", "fast": "small"},
		}},
		{"allow-list of an alias offered elsewhere", "jjjjjjjjjjjj", listing{}},
		{"team without aliases", "iiiiiiiiiiii", listing{Models: []string{"azure", "big", "claude", "gemini", "small"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, list(rt.keys[tt.key])); diff != "" {
				t.Errorf("listing (-want +got):\n%s", diff)
			}
		})
	}
}

func TestProviderTypes(t *testing.T) {
	t.Parallel()
	org := mustCompile(t, registrySnapshot("o1"))
	type prov struct {
		Type                                      gatehousev1.ProviderType
		ChatURL, ResponsesURL, Auth, Key, Version string
	}
	tests := []struct {
		model string
		want  prov
	}{
		{"small", prov{gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE, "https://api.example.com/v1/chat/completions",
			"https://api.example.com/v1/responses", "Bearer sk-up", "sk-up", ""}},
		{"claude", prov{gatehousev1.ProviderType_PROVIDER_TYPE_ANTHROPIC, "", "", "", "sk-ant", ""}},
		{"azure", prov{gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI, "", "https://x.openai.azure.com/openai/v1/responses", "", "az", "2024-10-21"}},
		{"gemini", prov{gatehousev1.ProviderType_PROVIDER_TYPE_GEMINI, "", "", "", "gm", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			t.Parallel()
			m, ok := org.Model(tt.model)
			if !ok {
				t.Fatalf("no model %s", tt.model)
			}
			p := m.Provider
			got := prov{p.Type, p.ChatCompletionsURL, p.ResponsesURL, p.Authorization, p.APIKey, p.APIVersion}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("provider (-want +got):\n%s", diff)
			}
		})
	}
	if m, _ := org.Model("claude"); m.ContextWindow != 200_000 {
		t.Errorf("context window = %d", m.ContextWindow)
	}
	// native_responses holds for an OpenAI-compatible provider only: the gateway
	// speaks no other provider's Responses API.
	snap := registrySnapshot("o2")
	for _, p := range snap.Providers {
		p.NativeResponses = true
	}
	org = mustCompile(t, snap)
	for _, name := range []string{"small", "claude", "azure", "gemini"} {
		m, _ := org.Model(name)
		if want := m.Provider.Type == gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE; m.Provider.NativeResponses != want {
			t.Errorf("%s: native responses %v, want %v", name, m.Provider.NativeResponses, want)
		}
	}
}

// TestAzureRoot: an Azure OpenAI endpoint registered with or without the classic
// /openai or the v1 API's /openai/v1, or behind an API gateway's own path, has one
// resource root.
func TestAzureRoot(t *testing.T) {
	for base, want := range map[string]string{
		"https://x.openai.azure.com/openai":      "https://x.openai.azure.com",
		"https://x.openai.azure.com/openai/":     "https://x.openai.azure.com",
		"https://x.openai.azure.com/openai/v1":   "https://x.openai.azure.com",
		"https://x.openai.azure.com/openai/v1/":  "https://x.openai.azure.com",
		"https://x.openai.azure.com":             "https://x.openai.azure.com",
		"https://apim.example.com/team-a/openai": "https://apim.example.com/team-a",
		"https://apim.example.com/openai-proxy":  "https://apim.example.com/openai-proxy",
	} {
		if got := AzureRoot(base); got != want {
			t.Errorf("AzureRoot(%q) = %q, want %q", base, got, want)
		}
	}
}

func TestKeyNarrowing(t *testing.T) {
	t.Parallel()
	rt := mustRuntime(t, registrySnapshot("o1"))
	narrow, open := rt.keys["eeeeeeeeeeee"], rt.keys["aaaaaaaaaaaa"]
	if narrow.AgentIdentity != "planner" || open.AgentIdentity != "" {
		t.Errorf("agent identities = %q, %q", narrow.AgentIdentity, open.AgentIdentity)
	}
	tools := []struct {
		name         string
		server, tool string
		narrow, open bool
	}{
		{"listed tool", "github", "search", true, true},
		{"unlisted tool of a listed server", "github", "delete_repo", false, true},
		{"server wildcard", "jira", "create_issue", true, true},
		{"wildcard does not cross servers", "jiraX", "create_issue", false, true},
		{"unlisted server", "docs", "search", false, true},
		{"tool name with a slash", "jira", "a/b", true, true},
		{"empty server", "", "search", false, true},
	}
	for _, tt := range tools {
		t.Run("tool "+tt.name, func(t *testing.T) {
			t.Parallel()
			if got := narrow.ToolAllowed(tt.server, tt.tool); got != tt.narrow {
				t.Errorf("narrowed key: ToolAllowed(%q, %q) = %v", tt.server, tt.tool, got)
			}
			if got := open.ToolAllowed(tt.server, tt.tool); got != tt.open {
				t.Errorf("open key: ToolAllowed(%q, %q) = %v", tt.server, tt.tool, got)
			}
		})
	}
	agents := []struct {
		name         string
		narrow, open bool
	}{
		{"researcher", true, true},
		{"writer", false, true},
		{"", false, true},
	}
	for _, tt := range agents {
		t.Run("agent "+tt.name, func(t *testing.T) {
			t.Parallel()
			if got := narrow.AgentAllowed(tt.name); got != tt.narrow {
				t.Errorf("narrowed key: AgentAllowed(%q) = %v", tt.name, got)
			}
			if got := open.AgentAllowed(tt.name); got != tt.open {
				t.Errorf("open key: AgentAllowed(%q) = %v", tt.name, got)
			}
		})
	}
}

func TestMCPServersAndAgents(t *testing.T) {
	t.Parallel()
	org := mustCompile(t, registrySnapshot("o1"))
	names := func(list any) []string {
		var out []string
		switch l := list.(type) {
		case []*MCPServer:
			for _, s := range l {
				out = append(out, s.Name)
			}
		case []*Agent:
			for _, a := range l {
				out = append(out, a.Name)
			}
		}
		return out
	}
	tests := []struct {
		team       string
		wantMCP    []string
		wantAgents []string
	}{
		{"t1", []string{"docs", "github"}, []string{"researcher"}},
		{"t2", []string{"github", "jira"}, []string{"researcher"}},
		{"t4", []string{"docs", "github"}, []string{"researcher", "writer"}},
		{"ghost", []string{"github"}, []string{"researcher"}},
	}
	for _, tt := range tests {
		t.Run(tt.team, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.wantMCP, names(org.MCPServersForTeam(tt.team))); diff != "" {
				t.Errorf("MCPServersForTeam (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantAgents, names(org.AgentsForTeam(tt.team))); diff != "" {
				t.Errorf("AgentsForTeam (-want +got):\n%s", diff)
			}
			for _, name := range []string{"github", "jira", "docs", "nope"} {
				_, got := org.MCPServerForTeam(tt.team, name)
				want := false
				for _, w := range tt.wantMCP {
					want = want || w == name
				}
				if got != want {
					t.Errorf("MCPServerForTeam(%q, %q) = %v, want %v", tt.team, name, got, want)
				}
			}
			for _, name := range []string{"researcher", "writer", "nope"} {
				_, got := org.AgentForTeam(tt.team, name)
				want := false
				for _, w := range tt.wantAgents {
					want = want || w == name
				}
				if got != want {
					t.Errorf("AgentForTeam(%q, %q) = %v, want %v", tt.team, name, got, want)
				}
			}
		})
	}

	s, _ := org.MCPServerForTeam("t1", "github")
	if s.ID != "s1" || s.URL.String() != "https://mcp.github.example/mcp" || s.Transport != gatehousev1.McpTransport_MCP_TRANSPORT_STREAMABLE_HTTP ||
		s.AuthHeader != "Authorization" || s.Credential != "Bearer ghp" {
		t.Errorf("github server = %+v", s)
	}
	a, _ := org.AgentForTeam("t4", "researcher")
	if a.ID != "a1" || a.CardURL.Host != "agents.example" || a.AuthHeader != "X-Api-Key" || a.Credential != "agent-secret" {
		t.Errorf("researcher agent = %+v", a)
	}
	// A snapshot without registry entries has none to offer.
	empty := mustCompile(t, testSnapshot("o2"))
	if got := empty.MCPServersForTeam("t1"); len(got) != 0 {
		t.Errorf("servers of an empty registry = %v", got)
	}
	if _, ok := empty.AgentForTeam("t1", "researcher"); ok {
		t.Error("agent found in an empty registry")
	}
}

// TestAzureEntra: an Azure OpenAI provider registered with a Microsoft Entra ID app
// keeps its client secret for the token endpoint only (no API key to send), and a
// registration the gateway could not use refuses the snapshot.
func TestAzureEntra(t *testing.T) {
	t.Parallel()
	entra := func(s *gatehousev1.Snapshot, tenant, client, secret string, typ gatehousev1.ProviderType) {
		for _, p := range s.Providers {
			if p.Id == "p3" {
				p.AzureEntra = &gatehousev1.AzureEntra{TenantId: tenant, ClientId: client}
				p.ApiKey, p.Type = secret, typ
			}
		}
	}
	const client = "66666666-7777-8888-9999-000000000000"
	azure := gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI
	snap := registrySnapshot("o1")
	entra(snap, "contoso.onmicrosoft.com", client, "the-secret", azure)
	org := mustCompile(t, snap)
	m, _ := org.Model("azure")
	p := m.Provider
	if p.APIKey != "" || p.Authorization != "" || p.Entra == nil || p.Entra.TenantID != "contoso.onmicrosoft.com" ||
		p.Entra.ClientID != client || p.Entra.Secret != "the-secret" || p.Entra.Key == "" || strings.Contains(p.Entra.Key, "the-secret") {
		t.Fatalf("provider %+v, entra %+v", p, p.Entra)
	}
	// Another secret is another registration for the token cache.
	snap = registrySnapshot("o1")
	entra(snap, "contoso.onmicrosoft.com", client, "rotated", azure)
	if m2, _ := mustCompile(t, snap).Model("azure"); m2.Provider.Entra.Key == p.Entra.Key {
		t.Fatal("a rotated secret kept the registration's cache key")
	}
	for name, tc := range map[string]struct {
		tenant, client, secret string
		typ                    gatehousev1.ProviderType
		want                   string
	}{
		"tenant with a path": {"contoso.com/../common", client, "s", azure, "tenant_id"},
		"common tenant":      {"common", client, "s", azure, "tenant_id"},
		"client not a guid":  {"contoso.onmicrosoft.com", "app", "s", azure, "client_id"},
		"no secret":          {"contoso.onmicrosoft.com", client, "", azure, "client secret"},
		"not azure":          {"contoso.onmicrosoft.com", client, "s", gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE, "azure-openai providers only"},
	} {
		snap := registrySnapshot("o1")
		entra(snap, tc.tenant, tc.client, tc.secret, tc.typ)
		_, err := Compile(testMeta("o1"), snap)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %q", name, err, tc.want)
		}
	}
}
