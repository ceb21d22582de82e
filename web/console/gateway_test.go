package console

import (
	"strings"
	"testing"

	"github.com/a-h/templ"
)

// Fixtures and tests of the registry (providers, models, MCP servers, agents), team
// (virtual gateway) and fleet pages.

var regionOpts = []RegionOption{{Name: "eu", Label: "Europe"}, {Name: "us"}, {Name: "ap"}}

func fullProviders() ProvidersView {
	return ProvidersView{
		Shell: sampleShell(NavModels),
		Providers: []ProviderRow{
			{ID: "p1", Name: "openai", Type: ProviderOpenAICompatible, BaseURL: "https://api.openai.com/v1", HasCredential: true, NativeResponses: true, Shared: Shared{All: true}},
			{ID: "p2", Name: "azure", Type: ProviderAzureOpenAI, BaseURL: "https://acme.openai.azure.com", APIVersion: "2024-10-21", Shared: Shared{Teams: []string{"Research"}}},
			{ID: "p3", Name: "claude", Type: ProviderAnthropic, BaseURL: "https://api.anthropic.com", HasCredential: true},
		},
		Teams:     teamLinks,
		CanManage: true,
	}
}

func fullModels() ModelsView {
	return ModelsView{
		Shell: sampleShell(NavModels),
		Models: []ModelRow{
			{ID: "m1", Name: "gpt-4o", Provider: "openai", UpstreamModel: "gpt-4o-2024-08-06", InputPrice: "$2.50", OutputPrice: "$10.00", CachedPrice: "$1.25",
				ContextWindow: "128,000", Shared: Shared{All: true}, Limits: "600 rpm · 100k tpm",
				Routing: "weighted · 2 deployments · 2 retries · fallback: gpt-mini"},
			{ID: "m2", Name: "claude-sonnet", Provider: "claude", UpstreamModel: "claude-sonnet-4-5", InputPrice: "$3.00", OutputPrice: "$15.00",
				Regions: []string{"eu", "us"}, Shared: Shared{Teams: []string{"Platform", "Research"}}},
		},
		Providers: []ProviderOption{{ID: "p1", Name: "openai"}, {ID: "p3", Name: "claude"}},
		Regions:   regionOpts,
		Teams:     teamLinks,
		CanManage: true,
	}
}

func fullMCP() MCPServersView {
	return MCPServersView{
		Shell: sampleShell(NavMCP),
		Servers: []MCPServerRow{
			{ID: "s1", Name: "github", URL: "https://mcp.github.test/mcp", Transport: TransportStreamableHTTP, AuthHeader: "Authorization", HasCredential: true, Shared: Shared{All: true}},
			{ID: "s2", Name: "jira", URL: "https://jira.test/sse", Transport: TransportSSE, AuthHeader: "X-Api-Key", Shared: Shared{}},
		},
		Teams:     teamLinks,
		CanManage: true,
	}
}

func fullAgents() AgentsView {
	return AgentsView{
		Shell: sampleShell(NavAgents),
		Agents: []AgentRow{
			{ID: "a1", Name: "planner", CardURL: "https://planner.test/.well-known/agent-card.json", AuthHeader: "Authorization", HasCredential: true, Shared: Shared{All: true}},
			{ID: "a2", Name: "booker", CardURL: "https://booker.test/card.json", Shared: Shared{Teams: []string{"Platform"}}},
		},
		Teams:     teamLinks,
		CanManage: true,
	}
}

func fullTeam() TeamView {
	s := sampleShell(NavTeams)
	s.Title = "Platform"
	return TeamView{
		Shell:       s,
		Slug:        "platform",
		Name:        "Platform",
		OrgRegions:  regionOpts,
		RegionsForm: RegionsForm{Regions: []string{"eu", "us"}},
		Models: []ModelRow{
			{ID: "m1", Name: "gpt-4o", Provider: "openai"},
			{ID: "m2", Name: "claude-sonnet", Provider: "claude", Regions: []string{"eu"}},
		},
		MCPServers: []MCPServerRow{{ID: "s1", Name: "github", URL: "https://mcp.github.test/mcp"}},
		Agents:     []AgentRow{{ID: "a1", Name: "planner", CardURL: "https://planner.test/card.json"}},
		Aliases:    []AliasRow{{Alias: "fast", Model: "gpt-4o"}, {Alias: "team/smart", Model: "claude-sonnet"}},
		Keys: []KeyRow{
			{ID: "k1", Name: "bot", Prefix: "gk_ab12…", AgentIdentity: "support-bot", Models: []string{"fast"}, Tools: []string{"github/*"},
				Agents: []string{"planner"}, Regions: []string{"eu"}, CreatedAt: "2026-01-02", ExpiresAt: "2026-04-02", Limits: "60 rpm · 10k tpm"},
			{ID: "k2", Name: "plain", Prefix: "gk_cd34…", CreatedAt: "2026-01-03"},
			{ID: "k3", Name: "old", Prefix: "gk_ef56…", Revoked: true},
			{ID: "k4", Name: "stale", Prefix: "gk_gh78…", Expired: true, ExpiresAt: "2026-01-01"},
		},
		GatewayURL:    "https://gw.acme.test/",
		CanManage:     true,
		CanManageKeys: true,
		Limits:        LimitsForm{RPM: "600", TPM: "100000", MaxConcurrent: "10"},
		Guardrails: []GuardrailRow{
			{ID: "g1", Name: "no cards", Detector: DetectorCard, Mode: GuardrailBlock, Direction: DirectionBoth},
			{ID: "g2", Name: "ticket ids", Detector: DetectorCustomRegex, Mode: GuardrailRedact, Direction: DirectionResponse, Pattern: `\bPROJ-[0-9]+\b`},
			{ID: "g3", Name: "injection", Detector: DetectorPromptInjection, Mode: GuardrailAudit, Direction: DirectionRequest},
		},
		GuardrailTriggers: []TriggerRow{
			{At: "10:02:03", RuleName: "no cards", Detector: DetectorCard, Mode: GuardrailBlock, Direction: DirectionRequest, Matches: "2", RequestID: "req-9",
				Texts: []string{"arguments", "reasoning"}},
			{At: "09:58:00", Detector: DetectorEmail, Mode: GuardrailRedact, Direction: DirectionResponse, Matches: "1", RequestID: "req-8"},
		},
	}
}

func fullFleet() FleetView {
	return FleetView{
		Shell: sampleShell(NavFleet),
		Regions: []FleetRegion{
			{Name: "eu", Label: "Europe", LatestVersion: "42", Gateways: []GatewayRow{
				{ID: "gw-eu-1", BuildVersion: "v1.4.0", Capability: 2, Ready: true, InFlight: 7, LastSeen: "3s ago", Status: GatewayLive, AppliedVersion: "42"},
				{ID: "gw-eu-2", BuildVersion: "v1.3.0", Capability: 1, Ready: true, InFlight: 0, LastSeen: "4s ago", Status: GatewayLive, AppliedVersion: "41", Lag: 1,
					NACKVersion: "42", NACKReason: "capability 2 required"},
				{ID: "gw-eu-3", BuildVersion: "v1.4.0", Capability: 2, LastSeen: "45s ago", Status: GatewayStale, AppliedVersion: "39", Lag: 3},
				{ID: "gw-eu-4", LastSeen: "2h ago", Status: GatewayGone},
			}},
			{Name: "us", LatestVersion: "7"},
		},
	}
}

func TestGatewayPages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		c       templ.Component
		want    []string
		notWant []string
	}{
		// Providers
		{
			name: "providers",
			c:    Providers(fullProviders()),
			want: []string{
				testID("model-tabs"), `href="/orgs/acme/providers" aria-current="page"`, `href="/orgs/acme/models" data-testid="nav-models" aria-current="page"`,
				testID("providers-table"), testID("provider-row-p1"), testID("provider-row-p2"), testID("provider-row-p3"),
				">OpenAI-compatible<", ">Azure OpenAI<", ">Anthropic<", "<code>2024-10-21</code>", "<code>https://api.openai.com/v1</code>",
				">Set<", "Not set", ">All teams<", ">Research<", "No teams",
				`<form method="post" action="/orgs/acme/providers/p1/delete"`, testID("delete-provider-p1"),
				`<form method="post" action="/orgs/acme/providers" class="form-grid" data-testid="provider-form"`,
				`name="name"`, `<select id="f-type" name="type" required>`, `<option value="openai-compatible" selected>`,
				`<option value="gemini">Gemini</option>`, `name="base_url" type="url"`, `name="api_key" type="password"`, `name="api_version"`,
				testID("sharing"), `<input type="radio" id="share-all" name="share" value="all" checked>`,
				`<input type="radio" id="share-teams" name="share" value="teams"`, `name="teams" value="platform"`, `name="teams" value="research"`,
				testID("add-provider"), testID("provider-native-responses-p1"), ">Responses API: native<",
				`<input type="checkbox" id="native_responses" name="native_responses" value="on"`,
			},
			notWant: []string{testID("empty-state"), testID("page-error"), `name="teams" value="platform" checked`,
				testID("provider-native-responses-p2"), `name="native_responses" value="on" checked`},
		},
		{
			name:    "providers read-only",
			c:       func() templ.Component { v := fullProviders(); v.CanManage = false; return Providers(v) }(),
			want:    []string{testID("providers-table"), ">All teams<"},
			notWant: []string{"/delete", testID("provider-form"), `method="post" action="/orgs/acme/providers"`},
		},
		{
			name: "providers empty, errors",
			c: Providers(ProvidersView{
				Shell: sampleShell(NavModels), Teams: teamLinks, CanManage: true,
				Error: "Provider openai is still used by 2 models.",
				Form: ProviderForm{Name: "x", Type: ProviderGemini, BaseURL: "nope", Sharing: SharingForm{Mode: ShareTeams, Teams: []string{"research"}},
					Errors: FieldErrors{"base_url": "Use an https URL.", "teams": "Pick at least one team.", "api_version": "Azure only."}},
			}),
			want: []string{
				testID("empty-state"), "No providers yet", `role="alert" data-testid="page-error">Provider openai is still used by 2 models.<`,
				`data-testid="error-base_url">Use an https URL.<`, `data-testid="error-teams">Pick at least one team.<`, `data-testid="error-api_version">Azure only.<`,
				`<option value="gemini" selected>Gemini</option>`, `value="nope"`,
				`id="share-teams" name="share" value="teams" checked`, `name="teams" value="research" checked`, `aria-describedby="f-share-error"`,
			},
			notWant: []string{testID("providers-table"), `value="all" checked`, `name="teams" value="platform" checked`},
		},
		{
			name:    "providers empty, read-only",
			c:       Providers(ProvidersView{Shell: sampleShell(NavModels)}),
			want:    []string{testID("empty-state"), "An organization admin can add one."},
			notWant: []string{testID("provider-form")},
		},
		// Models
		{
			name: "models",
			c:    Models(fullModels()),
			want: []string{
				`href="/orgs/acme/models" aria-current="page"`, testID("models-table"), testID("model-row-m1"), testID("model-row-m2"),
				"<code>gpt-4o-2024-08-06</code>", ">$2.50<", ">$10.00<", ">$1.25<", ">128,000<", "All regions", "<code>eu</code>", "<code>us</code>",
				">Platform<", ">Research<",
				`<form method="post" action="/orgs/acme/models/m2/delete"`, testID("delete-model-m2"),
				`<form method="post" action="/orgs/acme/models" class="form-grid" data-testid="model-form"`,
				`<select id="f-provider_id" name="provider_id"`, `<option value="" selected>Choose a provider</option>`, `<option value="p3">claude</option>`,
				`name="upstream_model"`, `name="input_price" type="text"`, `inputmode="decimal"`, `name="output_price"`, `name="cached_price"`,
				`name="context_window" type="number"`, testID("model-regions"),
				`id="model-regions-eu" name="regions" value="eu"`, `<label for="model-regions-eu">Europe (eu)</label>`, `<label for="model-regions-us">us</label>`,
				testID("sharing"), testID("add-model"),
			},
			notWant: []string{testID("empty-state"), `name="regions" value="eu" checked`},
		},
		{
			name: "models cached price missing shows a dash",
			c:    Models(fullModels()),
			want: []string{`<td class="num nowrap">—</td>`},
		},
		{
			name:    "models empty, read-only",
			c:       Models(ModelsView{Shell: sampleShell(NavModels)}),
			want:    []string{testID("empty-state"), "No models yet"},
			notWant: []string{testID("models-table"), testID("model-form")},
		},
		{
			name: "models errors",
			c: func() templ.Component {
				v := fullModels()
				v.Models, v.Providers = nil, nil
				v.Form = ModelForm{Name: "m", ProviderID: "p9", InputPrice: "abc", Regions: []string{"us"},
					Errors: FieldErrors{"input_price": "Use a decimal number of dollars.", "provider_id": "Choose a provider.", "regions": "Unknown region."}}
				return Models(v)
			}(),
			want: []string{
				testID("empty-state"), `data-testid="error-input_price">Use a decimal number of dollars.<`, `data-testid="error-provider_id">Choose a provider.<`,
				`data-testid="error-regions">Unknown region.<`, `value="abc"`, `name="regions" value="us" checked`,
				"No providers yet: add one on the Providers tab first.",
			},
			notWant: []string{`name="regions" value="eu" checked`},
		},
		// MCP servers
		{
			name: "mcp",
			c:    MCPServers(fullMCP()),
			want: []string{
				`href="/orgs/acme/mcp" data-testid="nav-mcp" aria-current="page"`, testID("mcp-table"), testID("mcp-row-s1"), testID("mcp-row-s2"),
				">Streamable HTTP<", ">SSE<", "<code>https://mcp.github.test/mcp</code>", ">Set<", "Not set", ">All teams<", "No teams",
				`<form method="post" action="/orgs/acme/mcp/s1/delete"`, testID("delete-mcp-s1"),
				`<form method="post" action="/orgs/acme/mcp" class="form-grid" data-testid="mcp-form"`,
				`name="url" type="url"`, `<option value="streamable-http" selected>Streamable HTTP</option>`,
				`name="auth_header" type="text" value="Authorization"`, `name="credential" type="password"`, testID("sharing"), testID("add-mcp"),
			},
			notWant: []string{testID("empty-state"), testID("page-error")},
		},
		{
			name: "mcp empty, errors",
			c: MCPServers(MCPServersView{Shell: sampleShell(NavMCP), Teams: teamLinks, CanManage: true, Error: "Could not delete.",
				Form: MCPServerForm{Name: "Bad Name", Transport: TransportSSE, AuthHeader: "X-Key", Errors: FieldErrors{"name": "Lowercase only.", "auth_header": "Bad header.", "share": "Choose."}}}),
			want: []string{
				testID("empty-state"), "No MCP servers yet", testID("page-error"), `data-testid="error-name">Lowercase only.<`, `data-testid="error-auth_header">Bad header.<`,
				`data-testid="error-share">Choose.<`, `<option value="sse" selected>SSE</option>`, `value="X-Key"`, `value="Bad Name"`,
			},
			notWant: []string{testID("mcp-table")},
		},
		{
			name:    "mcp read-only",
			c:       func() templ.Component { v := fullMCP(); v.CanManage = false; return MCPServers(v) }(),
			want:    []string{testID("mcp-table")},
			notWant: []string{"/delete", testID("mcp-form")},
		},
		// Agents
		{
			name: "agents",
			c:    Agents(fullAgents()),
			want: []string{
				`href="/orgs/acme/agents" data-testid="nav-agents" aria-current="page"`, testID("agents-table"), testID("agent-row-a1"), testID("agent-row-a2"),
				"<code>https://planner.test/.well-known/agent-card.json</code>", ">Set<", "Not set", ">All teams<", ">Platform<",
				`<form method="post" action="/orgs/acme/agents/a2/delete"`, testID("delete-agent-a2"),
				`<form method="post" action="/orgs/acme/agents" class="form-grid" data-testid="agent-form"`,
				`name="card_url" type="url"`, `name="auth_header" type="text" value="Authorization"`, `name="credential" type="password"`, testID("add-agent"),
			},
			notWant: []string{testID("empty-state")},
		},
		{
			name: "agents empty, errors",
			c: Agents(AgentsView{Shell: sampleShell(NavAgents), CanManage: true,
				Form: AgentForm{CardURL: "http://x", Errors: FieldErrors{"card_url": "Use https.", "credential": "Too long."}}}),
			want: []string{
				testID("empty-state"), "No agents yet", `data-testid="error-card_url">Use https.<`, `data-testid="error-credential">Too long.<`,
				`value="http://x"`, "The organization has no teams yet.",
			},
			notWant: []string{testID("agents-table")},
		},
		{
			name:    "agents read-only empty",
			c:       Agents(AgentsView{Shell: sampleShell(NavAgents)}),
			want:    []string{testID("empty-state"), "An organization admin can register one."},
			notWant: []string{testID("agent-form")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			html := render(t, tt.c)
			for _, w := range tt.want {
				if !strings.Contains(html, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(html, w) {
					t.Errorf("page has %q", w)
				}
			}
		})
	}
}

func TestTeamPage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		c       templ.Component
		want    []string
		notWant []string
	}{
		{
			name: "team",
			c:    Team(fullTeam()),
			want: []string{
				`href="/orgs/acme/teams" data-testid="nav-teams" aria-current="page"`, `data-testid="page-title">`, "Platform",
				// state
				`<form method="post" action="/orgs/acme/teams/platform/suspend" class="confirm-body" data-testid="suspend-form"`,
				`<input type="hidden" name="suspended" value="true">`, testID("suspend-team"),
				// regions
				`<form method="post" action="/orgs/acme/teams/platform/regions" class="form-grid" data-testid="regions-form"`,
				`id="team-regions-eu" name="regions" value="eu" checked`, `id="team-regions-us" name="regions" value="us" checked`,
				`id="team-regions-ap" name="regions" value="ap">`, testID("save-regions"),
				// usable
				testID("team-models-table"), testID("team-model-gpt-4o"), testID("team-mcp-github"), testID("team-agent-planner"),
				// aliases
				testID("aliases-table"), testID("alias-row-fast"), "<code>gpt-4o</code>",
				`<form method="post" action="/orgs/acme/teams/platform/aliases/fast/delete"`,
				`<form method="post" action="/orgs/acme/teams/platform/aliases/team%2Fsmart/delete"`, testID("delete-alias-fast"),
				`<form method="post" action="/orgs/acme/teams/platform/aliases" class="form-grid" data-testid="alias-form"`,
				`name="alias"`, `<select id="f-model_id" name="model_id" required>`, `<option value="m2">claude-sonnet</option>`, testID("add-alias"),
				// keys
				testID("keys-table"), testID("key-row-k1"), "<code>gk_ab12…</code>", "<code>support-bot</code>", "The team",
				testID("key-narrowing-k1"), "Models:</span> <code>fast</code>", "Tools:</span> <code>github/*</code>", "Agents:</span> <code>planner</code>",
				"Regions:</span> <code>eu</code>", "Everything the team can use", "2026-04-02", "Never",
				">Active<", ">Revoked<", ">Expired<",
				`<form method="post" action="/orgs/acme/teams/platform/keys/k1/revoke"`, testID("revoke-key-k1"),
				`<form method="post" action="/orgs/acme/teams/platform/keys" class="form-grid" data-testid="key-form"`,
				`name="agent_identity"`, `name="allowed_tools" type="text"`, `name="expires_in_days" type="number"`,
				`name="allowed_models" value="gpt-4o"`, `name="allowed_models" value="claude-sonnet"`, `name="allowed_models" value="fast"`,
				`name="allowed_models" value="team/smart"`, `name="allowed_agents" value="planner"`,
				`id="key-regions-eu" name="allowed_regions" value="eu"`, `id="key-regions-us" name="allowed_regions" value="us"`,
				"Servers: github.", testID("create-key"),
			},
			notWant: []string{
				testID("team-suspended"), testID("new-key"), testID("new-key-secret"), testID("page-error"), "keys/k3/revoke",
				`name="allowed_regions" value="ap"`, `value="false"`,
			},
		},
		{
			name: "team suspended, read-only",
			c: func() templ.Component {
				v := fullTeam()
				v.Suspended, v.CanManage, v.CanManageKeys = true, false, false
				return Team(v)
			}(),
			want: []string{
				testID("team-suspended"), ">Suspended<", "suspended", testID("team-regions-readonly"), "<code>eu</code>",
				testID("aliases-table"), testID("keys-table"), testID("team-models-table"),
			},
			notWant: []string{
				"<form method=\"post\" action=\"/orgs/acme/teams", testID("suspend-form"), testID("regions-form"), testID("alias-form"),
				testID("key-form"), "/revoke", "/delete",
			},
		},
		{
			name: "team suspended can resume",
			c:    func() templ.Component { v := fullTeam(); v.Suspended = true; return Team(v) }(),
			want: []string{
				`<form method="post" action="/orgs/acme/teams/platform/suspend" class="inline" data-testid="suspend-form"`,
				`<input type="hidden" name="suspended" value="false">`, testID("resume-team"),
			},
			notWant: []string{`name="suspended" value="true"`, testID("suspend-team")},
		},
		{
			name: "team keys only",
			c:    func() templ.Component { v := fullTeam(); v.CanManage = false; return Team(v) }(),
			want: []string{testID("key-form"), testID("revoke-key-k1")},
			notWant: []string{
				testID("suspend-form"), testID("regions-form"), testID("alias-form"), "aliases/fast/delete",
			},
		},
		{
			name: "team new key",
			c: func() templ.Component {
				v := fullTeam()
				v.NewKeySecret = "gk_ab12SECRET"
				return Team(v)
			}(),
			want: []string{
				testID("new-key"), `data-testid="new-key-secret">gk_ab12SECRET<`, "Copy it now, it will not be shown again.",
				testID("new-key-curl"), "curl https://gw.acme.test/v1/chat/completions", "Authorization: Bearer gk_ab12SECRET",
				"&#34;model&#34;: &#34;gpt-4o&#34;",
			},
		},
		{
			name: "team new key with model and no gateway URL",
			c: func() templ.Component {
				v := fullTeam()
				v.NewKeySecret, v.NewKeyModel, v.GatewayURL = "gk_x", "fast", ""
				return Team(v)
			}(),
			want: []string{"curl $GATEWAY_URL/v1/chat/completions", "&#34;model&#34;: &#34;fast&#34;"},
		},
		{
			name: "team empty",
			c: Team(TeamView{Shell: sampleShell(NavTeams), Slug: "empty", Name: "Empty", CanManage: true, CanManageKeys: true,
				OrgRegions: regionOpts}),
			want: []string{
				testID("empty-state"), "No models", "No MCP servers", "No agents", "No aliases", "No keys yet",
				"The team has no models or aliases.", "The team has no agents.", "The team has no MCP servers.",
				`name="allowed_regions" value="ap"`, `name="allowed_regions" value="eu"`,
			},
			notWant: []string{testID("team-models-table"), testID("aliases-table"), testID("keys-table"), testID("team-mcp-list"), testID("team-agents-list")},
		},
		{
			name:    "team empty, read-only keys",
			c:       Team(TeamView{Shell: sampleShell(NavTeams), Slug: "empty"}),
			want:    []string{"No keys yet", "A team admin can create one.", `data-testid="page-title">`, "empty"},
			notWant: []string{testID("key-form")},
		},
		{
			name: "team errors",
			c: func() templ.Component {
				v := fullTeam()
				v.Error = "Alias fast is used by key bot."
				v.RegionsForm = RegionsForm{Regions: []string{"ap"}, Errors: FieldErrors{"regions": "Unknown region."}}
				v.AliasForm = AliasForm{Alias: "gpt-4o", ModelID: "m2", Errors: FieldErrors{"alias": "Already a model name."}}
				v.KeyForm = KeyForm{Name: "k", AgentIdentity: "bad id", AllowedModels: []string{"fast"}, AllowedTools: "nope", AllowedAgents: []string{"planner"},
					AllowedRegions: []string{"ap"}, ExpiresInDays: "0",
					Errors: FieldErrors{"agent_identity": "Letters, digits and ._:@/- only.", "allowed_tools": "Use server/tool or server/*.",
						"expires_in_days": "Use 1 or more days.", "allowed_models": "Unknown model.", "allowed_agents": "Unknown agent.", "allowed_regions": "Not a team region."}}
				return Team(v)
			}(),
			want: []string{
				`role="alert" data-testid="page-error">Alias fast is used by key bot.<`,
				`data-testid="error-regions">Unknown region.<`, `id="team-regions-ap" name="regions" value="ap" checked`,
				`data-testid="error-alias">Already a model name.<`, `<option value="m2" selected>claude-sonnet</option>`,
				`data-testid="error-agent_identity">Letters, digits and ._:@/- only.<`, `data-testid="error-allowed_tools">Use server/tool or server/*.<`,
				`data-testid="error-expires_in_days">Use 1 or more days.<`, `data-testid="error-allowed_models">Unknown model.<`,
				`data-testid="error-allowed_agents">Unknown agent.<`, `data-testid="error-allowed_regions">Not a team region.<`,
				`name="allowed_models" value="fast" checked`, `name="allowed_agents" value="planner" checked`, `name="allowed_regions" value="ap" checked`,
				`value="bad id"`, `value="nope"`,
			},
			notWant: []string{`name="allowed_models" value="gpt-4o" checked`, `name="allowed_regions" value="eu"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			html := render(t, tt.c)
			for _, w := range tt.want {
				if !strings.Contains(html, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(html, w) {
					t.Errorf("page has %q", w)
				}
			}
		})
	}
}

// rowOf is the <tr> of html whose data-testid is id.
func rowOf(t *testing.T, html, id string) string {
	t.Helper()
	i := strings.Index(html, `data-testid="`+id+`"`)
	if i < 0 {
		t.Fatalf("no %s", id)
	}
	j := strings.Index(html[i:], "</tr>")
	if j < 0 {
		t.Fatalf("unclosed row %s", id)
	}
	return html[i : i+j]
}

func TestFleetPage(t *testing.T) {
	t.Parallel()
	html := render(t, Fleet(fullFleet()))
	for _, want := range []string{
		`href="/orgs/acme/fleet" data-testid="nav-fleet" aria-current="page"`,
		`href="/orgs/acme/fleet" data-testid="fleet-refresh"`, `href="/orgs/acme/fleet?auto=1" data-testid="fleet-auto-on"`,
		testID("region-eu"), "Europe (eu)", testID("region-us"), testID("gateways-eu"), `data-testid="live-count-eu">`, ">2 live gateways<",
		`data-testid="live-count-us">`, ">0 live gateways<", "latest config <code>42</code>",
		testID("gateway-row-gw-eu-1"), testID("gateway-row-gw-eu-4"), "<code>gw-eu-1</code>", "v1.4.0", "3s ago", "2h ago",
		">Live<", ">Stale<", ">Gone<", ">Ready<", ">Not ready<",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(html, `http-equiv="refresh"`) || strings.Contains(html, "<form") && strings.Contains(html, `method="post" action="/orgs`) {
		t.Error("fleet auto-refreshes or posts without being asked")
	}

	// The region without gateways has an empty state; the one with gateways has none.
	us := html[strings.Index(html, testID("region-us")):]
	if !strings.Contains(us, testID("empty-state")) || !strings.Contains(us, "No gateways in this region") {
		t.Error("empty region lacks its empty state")
	}
	eu := html[strings.Index(html, testID("region-eu")):strings.Index(html, testID("region-us"))]
	if strings.Contains(eu, testID("empty-state")) {
		t.Error("region with gateways shows an empty state")
	}

	for id, want := range map[string][]string{
		"gateway-row-gw-eu-1": {`data-testid="sync-gw-eu-1">`, ">In sync<", "applied <code>42</code>", `<td class="num">7</td>`, `<td class="num">2</td>`},
		"gateway-row-gw-eu-2": {">1 version behind<", "applied <code>41</code>", `data-testid="nack-gw-eu-2"`, ">Rejected<", "<code>42</code>", "capability 2 required"},
		"gateway-row-gw-eu-3": {">3 versions behind<", "applied <code>39</code>"},
		"gateway-row-gw-eu-4": {">Not applied<", `class="is-disabled"`},
	} {
		row := rowOf(t, html, id)
		for _, w := range want {
			if !strings.Contains(row, w) {
				t.Errorf("%s lacks %q", id, w)
			}
		}
		if id != "gateway-row-gw-eu-2" && strings.Contains(row, "nack-") {
			t.Errorf("%s shows a NACK it does not have", id)
		}
	}

	v := fullFleet()
	v.AutoRefresh = true
	html = render(t, Fleet(v))
	for _, want := range []string{
		`<meta http-equiv="refresh" content="5">`, `href="/orgs/acme/fleet?auto=1" data-testid="fleet-refresh"`,
		`href="/orgs/acme/fleet" data-testid="fleet-auto-off"`, "Reloading every 5 seconds.",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("auto-refreshing page lacks %q", want)
		}
	}
	if strings.Index(html, `http-equiv="refresh"`) > strings.Index(html, "</head>") {
		t.Error("refresh meta outside <head>")
	}

	html = render(t, Fleet(FleetView{Shell: sampleShell(NavFleet)}))
	if !strings.Contains(html, testID("empty-state")) || !strings.Contains(html, "No regions") {
		t.Error("fleet without regions lacks its empty state")
	}

	if tone, text := syncState(GatewayRow{}, ""); tone != "neutral" || text != "No config" {
		t.Errorf("syncState without any config = %s %q", tone, text)
	}
}

func TestGatewayPagesEscapeUserStrings(t *testing.T) {
	t.Parallel()
	const evil = `<script>alert(1)</script>`
	s := sampleShell(NavModels)
	s.Teams[0].Name = evil

	prov := fullProviders()
	prov.Shell, prov.Error = s, evil
	prov.Providers[0].Name, prov.Providers[0].BaseURL = evil, evil
	prov.Providers[1].Shared.Teams = []string{evil}
	prov.Teams = []TeamLink{{Slug: "x", Name: evil}}
	prov.Form = ProviderForm{Name: evil, Errors: FieldErrors{"name": evil}}

	models := fullModels()
	models.Shell = s
	models.Models[0].Name, models.Models[0].InputPrice, models.Models[1].Regions = evil, evil, []string{evil}
	models.Providers[0].Name = evil
	models.Regions = []RegionOption{{Name: "eu", Label: evil}}

	mcp := fullMCP()
	mcp.Shell = s
	mcp.Servers[0].URL, mcp.Servers[0].AuthHeader = evil, evil
	mcp.Form.AuthHeader = evil

	agents := fullAgents()
	agents.Shell = s
	agents.Agents[0].CardURL = evil
	agents.Form.CardURL = evil

	team := fullTeam()
	team.Shell, team.Name, team.NewKeySecret, team.GatewayURL, team.NewKeyModel = s, evil, evil, evil, evil
	team.Keys[0].Name, team.Keys[0].Tools, team.Keys[0].AgentIdentity = evil, []string{evil}, evil
	team.Aliases[0].Model = evil
	team.Agents[0].Name = evil
	team.KeyForm.AllowedTools = evil

	fleet := fullFleet()
	fleet.Shell = s
	fleet.Regions[0].Gateways[1].NACKReason = evil
	fleet.Regions[0].Gateways[0].ID = evil
	fleet.Regions[0].Label = evil

	for name, c := range map[string]templ.Component{
		"providers": Providers(prov), "models": Models(models), "mcp": MCPServers(mcp), "agents": Agents(agents),
		"team": Team(team), "fleet": Fleet(fleet),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			html := render(t, c)
			if strings.Contains(html, "<script") {
				t.Error("user-supplied <script> rendered raw")
			}
			if !strings.Contains(html, "&lt;script&gt;") {
				t.Error("escaped user string missing")
			}
		})
	}
}

func TestGatewayPathsAreEscaped(t *testing.T) {
	t.Parallel()
	v := fullTeam()
	v.Slug = "a b"
	v.Keys[0].ID = "k/1"
	html := render(t, Team(v))
	for _, want := range []string{
		`action="/orgs/acme/teams/a%20b/suspend"`, `action="/orgs/acme/teams/a%20b/keys/k%2F1/revoke"`,
		`action="/orgs/acme/teams/a%20b/aliases/team%2Fsmart/delete"`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	p := fullProviders()
	p.Providers[0].ID = "../x"
	if html := render(t, Providers(p)); !strings.Contains(html, `action="/orgs/acme/providers/..%2Fx/delete"`) {
		t.Error("provider id not path-escaped")
	}
}
