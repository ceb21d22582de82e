package console

// View models: plain structs the control plane fills in and the components render. They
// hold display-ready values (formatted dates, pretty JSON, human names); the components do
// no lookups and make no decisions beyond what to show. Every identifier is a string: the
// handler formats UUIDs and numbers.

// NavSection names the console section a page belongs to; the left nav marks it active.
type NavSection string

// The console's sections. NavNone marks no nav link active.
const (
	NavNone    NavSection = ""
	NavTeams   NavSection = "teams" // also the team (virtual gateway) pages
	NavMembers NavSection = "members"
	NavSSO     NavSection = "sso"
	NavTokens  NavSection = "tokens"
	NavAudit   NavSection = "audit"
	NavModels  NavSection = "models" // models and providers
	NavMCP     NavSection = "mcp"
	NavAgents  NavSection = "agents"
	NavFleet   NavSection = "fleet"
	NavUsage   NavSection = "usage"
)

// FlashKind says how a flash message is styled and announced.
type FlashKind string

// Flash kinds.
const (
	FlashSuccess FlashKind = "success"
	FlashError   FlashKind = "error"
)

// Flash is a one-time message shown above the page content, typically after a
// POST-redirect-GET. The zero value (empty Message) shows nothing.
type Flash struct {
	Kind    FlashKind
	Message string
}

// FieldErrors maps a form field's name to the message shown under it. A form is re-rendered
// with the submitted values and these errors; a nil map means no errors.
type FieldErrors map[string]string

// User is the signed-in user shown in the top bar.
type User struct {
	Name            string
	Email           string
	IsPlatformAdmin bool
}

// OrgLink is one organization in the org switcher.
type OrgLink struct {
	ID      string
	Slug    string
	Name    string
	Current bool
}

// OrgRef names the organization the page is about; its Slug builds every org-scoped URL.
type OrgRef struct {
	Slug string
	Name string
}

// TeamLink is one team in the team switcher or a team select.
type TeamLink struct {
	Slug    string
	Name    string
	Current bool
}

// Shell is what every signed-in page's frame shows: the top bar, the left nav, the flash.
type Shell struct {
	Title      string // the page's title, in <title> and as its heading
	User       User
	CSRFToken  string // copied into every POST form as csrf_token
	Orgs       []OrgLink
	CurrentOrg OrgRef
	Teams      []TeamLink // the current org's teams, for the team switcher
	Nav        NavSection
	Flash      Flash
}

// LoginView is the sign-in page. It has no shell: nobody is signed in yet.
type LoginView struct {
	Email     string // the submitted address, kept when re-rendering after an error
	Error     string // shown in a banner; empty = none
	Next      string // where to go after sign-in; posted back as next
	CSRFToken string
}

// ErrorView is a friendly error page. It never carries a stack trace or an error string
// from a Go error: the handler logs the detail and puts a safe message here.
type ErrorView struct {
	Status    int    // HTTP status, shown as a small label; 0 = not shown
	Title     string // empty = the status text
	Message   string
	RequestID string // shown in small print so users can quote it
	BackURL   string // empty = "/"
}

// TeamsView is the organization's team list.
type TeamsView struct {
	Shell     Shell
	Teams     []TeamRow
	Form      TeamForm
	CanCreate bool
}

// TeamRow is one team in the teams table.
type TeamRow struct {
	ID        string
	Slug      string
	Name      string
	Members   int
	Suspended bool
}

// TeamForm is the "Create team" form. Errors keys: slug, name.
type TeamForm struct {
	Slug   string
	Name   string
	Errors FieldErrors
}

// MemberSource says how a member got into the organization.
type MemberSource string

// Member sources.
const (
	SourceSSOGroup MemberSource = "sso-group" // granted by an IdP group mapping at sign-in
	SourceManual   MemberSource = "manual"    // invited or edited in the console
)

// MembersView is the organization's member list.
type MembersView struct {
	Shell     Shell
	Members   []MemberRow
	Teams     []TeamLink // the org's teams, for the invite form's team select
	Roles     []string   // org roles: org_admin, member, viewer
	TeamRoles []string   // team roles: team_admin, member, viewer
	Invite    InviteForm
	CanManage bool
}

// MemberRow is one member in the members table.
type MemberRow struct {
	UserID   string
	Email    string
	Name     string
	OrgRole  string
	Teams    []MemberTeamRole
	Disabled bool
	Source   MemberSource
}

// MemberTeamRole is a member's role in one team.
type MemberTeamRole struct {
	TeamSlug string
	TeamName string
	Role     string
}

// InviteForm is the "Invite by email" form. Team empty = an organization-level role.
// Errors keys: email, team, role.
type InviteForm struct {
	Email  string
	Team   string
	Role   string
	Errors FieldErrors
}

// SSOView is the organization's single sign-on settings.
type SSOView struct {
	Shell       Shell
	Conn        SSOForm
	RedirectURI string // the callback URL to register at the IdP; read-only
	Mappings    []GroupMappingRow
	MappingForm MappingForm
	Teams       []TeamLink // for the mapping form's team select
	Roles       []string   // for the mapping form's role select
	CanManage   bool
}

// SSOForm is the OIDC connection form. A blank client secret keeps the stored one.
// Errors keys: issuer, client_id, client_secret, allowed_domains, enabled.
type SSOForm struct {
	Issuer         string
	ClientID       string
	HasSecret      bool   // a client secret is stored
	AllowedDomains string // comma-separated
	Enabled        bool
	Errors         FieldErrors
}

// GroupMappingRow maps an IdP group to a role, in a team or (TeamSlug empty) the organization.
type GroupMappingRow struct {
	ID       string
	Group    string
	TeamSlug string
	TeamName string
	Role     string
}

// MappingForm is the "Add mapping" form. Team empty = an organization-level role.
// Errors keys: group, team, role.
type MappingForm struct {
	Group  string
	Team   string
	Role   string
	Errors FieldErrors
}

// TokensView is the organization's API tokens.
type TokensView struct {
	Shell           Shell
	Tokens          []TokenRow
	Form            TokenForm
	AvailableScopes []ScopeOption
	NewSecret       string // the secret of a token just created, shown once; empty = none
	CanManage       bool
}

// TokenRow is one token in the tokens table. Dates are display-ready strings.
type TokenRow struct {
	ID         string
	Name       string
	Prefix     string // the displayable start of the secret, e.g. "gh_3fa9…"
	Scopes     []string
	Owner      string // an email or "service account <name>"
	CreatedAt  string
	LastUsedAt string // empty = never used
	ExpiresAt  string // empty = never expires
	Revoked    bool
	Expired    bool
}

// TokenForm is the "Create token" form. ExpiresInDays empty = never expires.
// Errors keys: name, scopes, service_account, expires_in_days.
type TokenForm struct {
	Name           string
	Scopes         []string // checked scopes
	ServiceAccount bool
	ExpiresInDays  string
	Errors         FieldErrors
}

// ScopeOption is one scope checkbox.
type ScopeOption struct {
	Value string
	Label string
}

// AuditView is a page of the organization's audit log, newest first.
type AuditView struct {
	Shell   Shell
	Entries []AuditRow
	Filter  AuditFilter
	NextURL string // the next (older) page; empty = none
}

// AuditRow is one audit entry. Before and After are pretty-printed JSON, possibly empty.
type AuditRow struct {
	ID         string
	At         string
	Actor      string
	Action     string
	TargetType string
	TargetID   string
	Before     string
	After      string
}

// AuditFilter is the audit log's filter form, submitted with GET.
// Query parameters: actor, action, target_type, since (YYYY-MM-DD).
type AuditFilter struct {
	Actor      string
	Action     string
	TargetType string
	Since      string
}

// ---- Registry: providers, models, MCP servers, A2A agents ----

// Sharing modes, posted as the radio "share" of every registry form.
const (
	ShareAll   = "all"   // every team of the org, present and future
	ShareTeams = "teams" // only the teams posted as repeated "teams" (team slugs)
)

// SharingForm is the sharing part of a registry form: the radio share ("all" or "teams";
// empty = "all") and the checked team slugs, posted as repeated "teams".
// Its errors use the form's Errors keys share and teams.
type SharingForm struct {
	Mode  string   // ShareAll, ShareTeams, or empty (= ShareAll)
	Teams []string // checked team slugs
}

// Shared says which teams may use a registry entry, for display: "All teams" when All,
// else the team names (none = "No teams").
type Shared struct {
	All   bool
	Teams []string // team names, when !All
}

// RegionOption is one of the org's known regions, as a checkbox.
type RegionOption struct {
	Name  string // the region's name, posted as the value
	Label string // its display name; empty = Name
}

// Provider types, the values of the provider form's type select.
const (
	ProviderOpenAICompatible = "openai-compatible"
	ProviderAnthropic        = "anthropic"
	ProviderAzureOpenAI      = "azure-openai"
	ProviderGemini           = "gemini"
)

// ProvidersView is the organization's upstream LLM providers.
type ProvidersView struct {
	Shell     Shell
	Providers []ProviderRow
	Form      ProviderForm
	Teams     []TeamLink // the org's teams, for the sharing checkboxes
	Error     string     // a page-level error, e.g. a delete refused while models use it; empty = none
	CanManage bool
}

// ProviderRow is one provider in the providers table.
type ProviderRow struct {
	ID         string
	Name       string
	Type       string // one of the Provider* constants
	BaseURL    string
	APIVersion string // Azure OpenAI only; empty = not shown
	// NativeResponses: every Responses request goes to the provider's own API.
	NativeResponses bool
	HasCredential   bool // a credential (API key or client secret) is stored
	Shared          Shared
	// AzureTenantID and AzureClientID: the Microsoft Entra ID app registration an Azure
	// OpenAI provider authenticates as (its credential is the client secret); empty = it
	// authenticates with the API key.
	AzureTenantID string
	AzureClientID string
}

// ProviderForm is the "Add provider" form. The API key is never echoed back.
// Errors keys: name, type, base_url, api_key, api_version, native_responses,
// azure_tenant_id, azure_client_id, share, teams.
type ProviderForm struct {
	Name            string
	Type            string // empty = openai-compatible
	BaseURL         string
	APIVersion      string
	NativeResponses bool
	AzureTenantID   string // Azure OpenAI with Microsoft Entra ID only
	AzureClientID   string
	Sharing         SharingForm
	Errors          FieldErrors
}

// ProviderView is one provider's page: what it is and, for managers, the edit form.
type ProviderView struct {
	Shell     Shell
	Provider  ProviderRow
	Form      ProviderEditForm
	Teams     []TeamLink // the org's teams, for the sharing checkboxes
	Models    []string   // names of the models served by it (primary or deployment)
	Error     string     // a page-level error; empty = none
	CanManage bool
}

// ProviderEditForm edits a provider (POST /orgs/{org}/providers/{id}). The stored API
// key is never shown: a new one replaces it, an empty field keeps it, RemoveKey
// removes it. Errors keys: name, base_url, api_key, api_version, native_responses,
// azure_tenant_id, azure_client_id, share, teams.
type ProviderEditForm struct {
	Name            string
	BaseURL         string
	APIVersion      string
	NativeResponses bool
	AzureTenantID   string // Azure OpenAI only; both empty = the API key
	AzureClientID   string
	RemoveKey       bool
	Sharing         SharingForm
	Errors          FieldErrors
}

// ProviderOption is one provider in the model form's provider select.
type ProviderOption struct {
	ID   string // posted as provider_id
	Name string
}

// ModelsView is the organization's models.
type ModelsView struct {
	Shell     Shell
	Models    []ModelRow
	Form      ModelForm
	Providers []ProviderOption // for the provider select
	Regions   []RegionOption   // the org's known regions, for the region checkboxes
	Teams     []TeamLink       // for the sharing checkboxes
	Error     string           // a page-level error; empty = none
	CanManage bool
}

// ModelRow is one model. Prices are display-ready USD per million tokens, e.g. "$2.50";
// ContextWindow is display-ready, e.g. "128,000" (empty = unknown).
type ModelRow struct {
	ID            string
	Name          string
	Provider      string // the provider's name
	UpstreamModel string
	InputPrice    string
	OutputPrice   string
	CachedPrice   string
	ContextWindow string
	Regions       []string // region names or labels; empty = "All regions"
	Shared        Shared
	Limits        string // display, e.g. LimitsLabel(...); empty = "No limits"
	Routing       string // display, e.g. RoutingSummary(...); empty = "Default"
}

// ModelForm is the "Add model" form. Prices are USD per million tokens as decimal text
// ("2.50"); regions are checked region names (none = every region).
// Errors keys: name, provider_id, upstream_model, input_price, output_price, cached_price,
// context_window, regions, share, teams.
type ModelForm struct {
	Name          string
	ProviderID    string
	UpstreamModel string
	InputPrice    string
	OutputPrice   string
	CachedPrice   string
	ContextWindow string
	Regions       []string
	Sharing       SharingForm
	Errors        FieldErrors
}

// MCP server transports, the values of the MCP server form's transport select.
const (
	TransportStreamableHTTP = "streamable-http"
	TransportSSE            = "sse"
)

// MCPServersView is the organization's upstream MCP servers.
type MCPServersView struct {
	Shell     Shell
	Servers   []MCPServerRow
	Form      MCPServerForm
	Teams     []TeamLink
	Error     string // a page-level error; empty = none
	CanManage bool
}

// MCPServerRow is one MCP server.
type MCPServerRow struct {
	ID            string
	Name          string
	URL           string
	Transport     string // TransportStreamableHTTP or TransportSSE
	AuthHeader    string
	HasCredential bool
	Shared        Shared
}

// MCPServerForm is the "Add MCP server" form. The credential is never echoed back.
// AuthHeader empty renders as "Authorization"; Transport empty as streamable-http.
// Errors keys: name, url, transport, auth_header, credential, share, teams.
type MCPServerForm struct {
	Name       string
	URL        string
	Transport  string
	AuthHeader string
	Sharing    SharingForm
	Errors     FieldErrors
}

// AgentsView is the organization's upstream A2A agents.
type AgentsView struct {
	Shell     Shell
	Agents    []AgentRow
	Form      AgentForm
	Teams     []TeamLink
	Error     string // a page-level error; empty = none
	CanManage bool
}

// AgentRow is one A2A agent, registered by its agent card URL.
type AgentRow struct {
	ID            string
	Name          string
	CardURL       string
	AuthHeader    string
	HasCredential bool
	Shared        Shared
}

// AgentForm is the "Add agent" form. The credential is never echoed back; AuthHeader
// empty renders as "Authorization".
// Errors keys: name, card_url, auth_header, credential, share, teams.
type AgentForm struct {
	Name       string
	CardURL    string
	AuthHeader string
	Sharing    SharingForm
	Errors     FieldErrors
}

// ---- Team (virtual gateway) ----

// TeamView is one team's virtual gateway: its state, regions, what it can use, its model
// aliases and its keys.
type TeamView struct {
	Shell     Shell
	Slug      string
	Name      string
	Suspended bool
	Error     string // a page-level error; empty = none

	OrgRegions  []RegionOption // the org's known regions, for the region checkboxes
	RegionsForm RegionsForm    // the team's regions (or the re-submitted ones)

	// What the team can use, as computed by the handler (sharing, regions).
	Models     []ModelRow // Name, Provider and Regions are shown; ID feeds the alias form
	MCPServers []MCPServerRow
	Agents     []AgentRow

	Aliases   []AliasRow
	AliasForm AliasForm

	Keys         []KeyRow
	KeyForm      KeyForm
	NewKeySecret string // the secret of a key just created, shown once; empty = none
	NewKeyModel  string // the model the curl example names; empty = the team's first model or alias
	GatewayURL   string // the gateway's base URL for the curl example, e.g. "https://gw.example.com"

	CanManage     bool // suspend/resume, regions, aliases, limits, guardrails, log contents
	CanManageKeys bool // create and revoke keys

	// Limits for the whole team (all its keys together); the stored values, or the
	// re-submitted ones with Errors.
	Limits LimitsForm

	Guardrails    []GuardrailRow
	GuardrailForm GuardrailForm
	// LogContents: prompt and completion contents of the team's requests are logged.
	LogContents bool
	// GuardrailTriggers are the team's recent guardrail triggers (the last 24 hours),
	// newest first.
	GuardrailTriggers []TriggerRow
}

// RegionsForm is the team's region checkboxes; none checked = every region.
// Errors keys: regions.
type RegionsForm struct {
	Regions []string
	Errors  FieldErrors
}

// AliasRow is one team-local model name.
type AliasRow struct {
	Alias string
	Model string // the model's name
}

// AliasForm is the "Add alias" form. Errors keys: alias, model_id.
type AliasForm struct {
	Alias   string
	ModelID string // a ModelRow.ID of the team's models
	Errors  FieldErrors
}

// KeyRow is one team key. Empty narrowing lists mean no narrowing; dates are display-ready.
type KeyRow struct {
	ID            string
	Name          string
	Prefix        string // the displayable start of the secret
	AgentIdentity string // empty = the team itself
	Models        []string
	Tools         []string // "server/tool" or "server/*"
	Agents        []string
	Regions       []string
	CreatedAt     string
	ExpiresAt     string // empty = never expires
	Revoked       bool
	Expired       bool
	Limits        string // display, e.g. LimitsLabel(...); empty = "No limits"
}

// KeyForm is the "Create key" form. AllowedModels are model or alias names,
// AllowedAgents agent names, AllowedRegions region names (each posted repeated; none =
// no narrowing); AllowedTools is the comma-separated text as typed. RPM, TPM and
// MaxConcurrent are the key's own limits as typed (empty or 0 = unlimited).
// Errors keys: name, agent_identity, allowed_models, allowed_tools, allowed_agents,
// allowed_regions, expires_in_days, rpm, tpm, max_concurrent.
type KeyForm struct {
	Name           string
	AgentIdentity  string
	AllowedModels  []string
	AllowedTools   string
	AllowedAgents  []string
	AllowedRegions []string
	ExpiresInDays  string
	RPM            string
	TPM            string
	MaxConcurrent  string
	Errors         FieldErrors
}

// ---- Limits ----

// LimitsForm is a limits form (team, model) or its stored values: requests per minute,
// tokens (prompt + completion) per minute and requests in flight at once, as decimal text.
// Empty or "0" = unlimited. Posted as rpm, tpm, max_concurrent; Errors keys are the same.
type LimitsForm struct {
	RPM           string
	TPM           string
	MaxConcurrent string
	Errors        FieldErrors
}

// Label is the limits for display, e.g. "600 rpm · 100k tpm · 10 concurrent", or
// "No limits".
func (f LimitsForm) Label() string { return LimitsLabel(f.RPM, f.TPM, f.MaxConcurrent) }

// ---- Guardrails ----

// Guardrail detectors, the values of the guardrail form's detector select.
const (
	DetectorEmail           = "email"
	DetectorPhone           = "phone"
	DetectorCard            = "card" // payment card numbers passing the Luhn check
	DetectorIBAN            = "iban"
	DetectorAPIKey          = "api_key"
	DetectorPrivateKey      = "private_key" // PEM private keys
	DetectorPromptInjection = "prompt_injection"
	DetectorCustomRegex     = "custom_regex" // the rule's Pattern, an RE2 regular expression
)

// Guardrail modes, the values of the guardrail form's mode select.
const (
	GuardrailBlock  = "block"  // refuse the request or cut the response
	GuardrailRedact = "redact" // replace each match with a placeholder
	GuardrailAudit  = "audit"  // let it pass and record the trigger
)

// Guardrail directions, the values of the guardrail form's direction select.
const (
	DirectionRequest  = "request"
	DirectionResponse = "response"
	DirectionBoth     = "both"
)

// GuardrailRow is one guardrail rule of a team. Detector, Mode and Direction are the
// constants above (shown with their labels); Pattern is set for custom_regex only.
type GuardrailRow struct {
	ID        string
	Name      string
	Detector  string
	Mode      string
	Direction string
	Pattern   string
}

// GuardrailForm is the "Add guardrail" form. Pattern only matters for custom_regex.
// Empty Mode renders as block, empty Direction as request.
// Errors keys: name, detector, mode, direction, pattern.
type GuardrailForm struct {
	Name      string
	Detector  string
	Mode      string
	Direction string
	Pattern   string
	Errors    FieldErrors
}

// TriggerRow is one recent guardrail trigger (never the matched text). At and Matches are
// display-ready; RuleName empty = the rule was deleted since (shown as "—").
type TriggerRow struct {
	At        string
	RuleName  string
	Detector  string
	Mode      string
	Direction string
	Matches   string
	RequestID string
	// Texts is where the rule matched (see GuardrailTextsLabel); empty when the
	// gateway did not say.
	Texts []string
}

// ---- Model detail: deployments and routing ----

// Routing strategies, the values of the routing form's strategy select. Empty renders
// as weighted.
const (
	RoutingWeighted  = "weighted"
	RoutingLeastBusy = "least-busy"
	RoutingLatency   = "latency"
)

// ModelView is one model's page: its deployments, routing, fallbacks and limits.
type ModelView struct {
	Shell Shell
	Model ModelRow // the model; its Provider and UpstreamModel are the primary deployment

	// Deployments are the model's extra deployments. The page lists the model's own
	// provider and upstream model first, as the primary deployment (weight 1, not
	// deletable here), then these.
	Deployments    []DeploymentRow
	DeploymentForm DeploymentForm
	Providers      []ProviderOption // for the deployment form's provider select

	Routing   RoutingForm
	AllModels []string // the org's model names, for the fallback selects (the model itself is left out)

	Limits LimitsForm // the model's limits across the org

	Settings ModelSettingsForm // prices, upstream model, context window

	Error     string // a page-level error; empty = none
	CanManage bool
}

// ModelSettingsForm edits a model's prices (US dollars per million tokens, "" = free),
// upstream model id and context window (POST /orgs/{org}/models/{id}/settings). Errors
// keys: input_price, output_price, cached_price, upstream_model, context_window.
type ModelSettingsForm struct {
	UpstreamModel string
	InputPrice    string
	OutputPrice   string
	CachedPrice   string
	ContextWindow string
	Errors        FieldErrors
}

// DeploymentRow is one extra deployment of a model. Weight is display-ready ("0" and ""
// count as 1).
type DeploymentRow struct {
	ID            string
	Provider      string // the provider's name
	UpstreamModel string
	Weight        string
}

// DeploymentForm is the "Add deployment" form. Weight empty = 1.
// Errors keys: provider_id, upstream_model, weight.
type DeploymentForm struct {
	ProviderID    string
	UpstreamModel string
	Weight        string
	Errors        FieldErrors
}

// RoutingForm is the routing form: how the model's deployments are chosen and retried.
// Numbers are decimal text; empty (or 0) = the gateway's default. Fallbacks are model
// names, in the order tried, posted as repeated fallbacks (empty values to be dropped).
// Errors keys: strategy, max_retries, retry_backoff_ms, timeout_ms, ttft_timeout_ms,
// stream_idle_timeout_ms, breaker_failures, breaker_cooldown_ms, fallbacks.
type RoutingForm struct {
	Strategy       string // RoutingWeighted, RoutingLeastBusy, RoutingLatency; empty = weighted
	MaxRetries     string
	RetryBackoffMs string
	TimeoutMs      string
	TTFTTimeoutMs  string
	// StreamIdleTimeoutMs: the longest silence between stream events after the first
	// token.
	StreamIdleTimeoutMs string
	BreakerFailures     string
	BreakerCooldownMs   string
	Fallbacks           []string
	Errors              FieldErrors
}

// ---- Usage ----

// Usage ranges, the values of the usage page's ?range=. Empty = 24h.
const (
	UsageRange1h  = "1h"
	UsageRange24h = "24h"
	UsageRange7d  = "7d"
)

// UsageView is the organization's usage over a range. The handler filters by the team
// marked Current in Shell.Teams (the team switcher's ?team=), if any; the range links
// keep that filter.
type UsageView struct {
	Shell     Shell
	Range     string // UsageRange1h, UsageRange24h or UsageRange7d; empty = 24h
	Totals    UsageTotals
	Breakdown []UsageRow  // per team and model
	Recent    []RecentRow // the newest requests, newest first
}

// UsageTotals are the range's totals, display-ready (e.g. "12,345", "$3.21").
// Empty counts show as "0", an empty cost as "$0.00".
type UsageTotals struct {
	Requests         string
	Errors           string
	PromptTokens     string
	CompletionTokens string
	Cost             string
}

// UsageRow is one team and model's usage over the range. Everything is display-ready;
// latencies are milliseconds without a unit (e.g. "120"), empty = "—".
type UsageRow struct {
	Team             string // the team's name
	Model            string
	Requests         string
	Errors           string
	PromptTokens     string
	CompletionTokens string
	// CacheTokens are the prompt tokens read from and written to the provider's
	// prompt cache (parts of PromptTokens), e.g. "1,200 / 300".
	CacheTokens  string
	Cost         string
	P50LatencyMs string
	P95LatencyMs string
}

// RecentRow is one recent request. Everything is display-ready; Status is the HTTP status
// code (e.g. "200"), LatencyMs milliseconds without a unit, Retries a count ("0" or empty =
// none), Fallback the model that answered instead (empty = none), Deployment the
// deployment that served it.
type RecentRow struct {
	At            string
	RequestID     string
	Team          string
	KeyID         string
	AgentIdentity string // empty = the team itself
	Model         string
	ServiceTier   string // the provider's processing tier, e.g. "flex"; empty = none reported
	Endpoint      string // e.g. "/v1/chat/completions"
	Status        string
	Streamed      bool
	Tokens        string
	Cost          string
	LatencyMs     string
	Deployment    string
	Retries       string
	Fallback      string
}

// ---- Fleet ----

// GatewayStatus is how recently a gateway reported.
type GatewayStatus string

// Gateway statuses.
const (
	GatewayLive  GatewayStatus = "live"
	GatewayStale GatewayStatus = "stale"
	GatewayGone  GatewayStatus = "gone"
)

// FleetView is the gateway fleet, per region, with this org's config state on each.
type FleetView struct {
	Shell       Shell
	Regions     []FleetRegion
	AutoRefresh bool // reload every 5 seconds (the page links to ?auto=1 to turn it on)
}

// FleetRegion is one region's gateways. LatestVersion is this org's latest published config
// version in the region, display-ready (e.g. "42"); empty = none published.
type FleetRegion struct {
	Name          string
	Label         string // display name; empty = Name
	LatestVersion string
	Gateways      []GatewayRow
}

// GatewayRow is one gateway and the state of this org's config on it. Versions are
// display-ready strings; Lag is how many versions AppliedVersion is behind the region's
// LatestVersion (0 = in sync).
type GatewayRow struct {
	ID             string
	BuildVersion   string
	Capability     int
	Ready          bool
	InFlight       int
	LastSeen       string // e.g. "3s ago"
	Status         GatewayStatus
	AppliedVersion string // empty = this org's config not applied
	Lag            int
	NACKVersion    string // the version it rejected; empty = none
	NACKReason     string
}
