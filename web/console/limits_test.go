package console

import (
	"html"
	"regexp"
	"strings"
	"testing"

	"github.com/a-h/templ"
)

// Fixtures and tests of limits, guardrails, the model page (deployments, routing,
// fallbacks) and the usage page.

func fullModel() ModelView {
	s := sampleShell(NavModels)
	s.Title = "gpt-4o"
	return ModelView{
		Shell: s,
		Model: ModelRow{ID: "m1", Name: "gpt-4o", Provider: "openai", UpstreamModel: "gpt-4o-2024-08-06", InputPrice: "$2.50", OutputPrice: "$10.00",
			ContextWindow: "128,000", Shared: Shared{All: true}, Limits: "600 rpm", Routing: "least-busy · 3 deployments · 2 retries · fallback: gpt-mini"},
		Deployments: []DeploymentRow{
			{ID: "d1", Provider: "azure", UpstreamModel: "gpt-4o", Weight: "3"},
			{ID: "d2", Provider: "openai-eu", UpstreamModel: "gpt-4o-2024-08-06"},
		},
		Providers: []ProviderOption{{ID: "p1", Name: "openai"}, {ID: "p2", Name: "azure"}},
		Routing: RoutingForm{Strategy: RoutingLeastBusy, MaxRetries: "2", RetryBackoffMs: "250", TimeoutMs: "60000", TTFTTimeoutMs: "8000", StreamIdleTimeoutMs: "45000",
			BreakerFailures: "5", BreakerCooldownMs: "30000", Fallbacks: []string{"gpt-mini"}},
		AllModels: []string{"gpt-4o", "gpt-mini", "claude-sonnet"},
		Limits:    LimitsForm{RPM: "600"},
		CanManage: true,
	}
}

func fullUsage() UsageView {
	return UsageView{
		Shell:  sampleShell(NavUsage),
		Range:  UsageRange7d,
		Totals: UsageTotals{Requests: "12,345", Errors: "12", PromptTokens: "1.2M", CompletionTokens: "340k", Cost: "$42.10"},
		Breakdown: []UsageRow{
			{Team: "Platform", Model: "gpt-4o", Requests: "10,000", Errors: "10", PromptTokens: "1M", CompletionTokens: "300k", CacheTokens: "600k / 20k", Cost: "$40.00",
				P50LatencyMs: "420", P95LatencyMs: "1,900"},
			{Team: "Research", Model: "claude-sonnet", Requests: "2,345", Errors: "2", PromptTokens: "200k", CompletionTokens: "40k", Cost: "$2.10"},
		},
		Recent: []RecentRow{
			{At: "10:02:03", RequestID: "req-1", Team: "Platform", KeyID: "k1", AgentIdentity: "support-bot", Model: "gpt-4o", ServiceTier: "flex", Endpoint: "/v1/chat/completions",
				Status: "200", Streamed: true, Tokens: "1,234", Cost: "$0.01", LatencyMs: "812", Deployment: "azure/gpt-4o", Retries: "1", Fallback: ""},
			{At: "10:01:00", RequestID: "req-2", Team: "Research", KeyID: "k7", Model: "claude-sonnet", Endpoint: "/v1/messages",
				Status: "503", Tokens: "0", Cost: "$0.00", LatencyMs: "30,000", Retries: "0", Fallback: "gpt-mini"},
			{At: "10:00:00", RequestID: "req-3", Team: "Research", KeyID: "k7", Model: "claude-sonnet", Status: "429"},
		},
	}
}

func TestLimitsLabel(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		rpm, tpm, conc, want string
	}{
		{"600", "100000", "10", "600 rpm · 100k tpm · 10 concurrent"},
		{"", "", "", "No limits"},
		{"0", "0", "0", "No limits"},
		{"", "2500000", "", "2.5M tpm"},
		{"1234", "", "0", "1,234 rpm"},
		{"1500", "", "", "1.5k rpm"},
		{"", "3000000000", "", "3B tpm"},
		{"", "", " 4 ", "4 concurrent"},
		{"lots", "", "", "lots rpm"},
	} {
		if got := LimitsLabel(tt.rpm, tt.tpm, tt.conc); got != tt.want {
			t.Errorf("LimitsLabel(%q, %q, %q) = %q, want %q", tt.rpm, tt.tpm, tt.conc, got, tt.want)
		}
	}
	if got := (LimitsForm{TPM: "100000"}).Label(); got != "100k tpm" {
		t.Errorf("LimitsForm.Label = %q", got)
	}
	for in, want := range map[string]string{"999": "999", "1000": "1k", "12345": "12,345", "1000000": "1M", "1234567": "1,234,567", "-2000": "-2k", "1200000000000": "1,200B"} {
		if got := compactCount(in); got != want {
			t.Errorf("compactCount(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRoutingSummary(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		strategy  string
		n         int
		retries   string
		fallbacks []string
		want      string
	}{
		{RoutingWeighted, 2, "2", []string{"gpt-mini"}, "weighted · 2 deployments · 2 retries · fallback: gpt-mini"},
		{"", 1, "", nil, "weighted · 1 deployment"},
		{RoutingLatency, 3, "1", []string{"a", "b"}, "latency · 3 deployments · 1 retry · fallback: a, b"},
		{RoutingLeastBusy, 1, "0", nil, "least-busy · 1 deployment"},
	} {
		if got := RoutingSummary(tt.strategy, tt.n, tt.retries, tt.fallbacks); got != tt.want {
			t.Errorf("RoutingSummary = %q, want %q", got, tt.want)
		}
	}
}

func TestLabels(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		DetectorEmail: "Email addresses", DetectorPhone: "Phone numbers", DetectorCard: "Payment card numbers", DetectorIBAN: "IBANs",
		DetectorAPIKey: "API keys and tokens", DetectorPrivateKey: "Private keys (PEM)", DetectorPromptInjection: "Prompt injection",
		DetectorCustomRegex: "Custom pattern (regex)", "other": "other",
	} {
		if got := GuardrailDetectorLabel(in); got != want {
			t.Errorf("GuardrailDetectorLabel(%q) = %q", in, got)
		}
	}
	for in, want := range map[string]string{GuardrailBlock: "Block", GuardrailRedact: "Redact", GuardrailAudit: "Audit only", "x": "x"} {
		if got := GuardrailModeLabel(in); got != want {
			t.Errorf("GuardrailModeLabel(%q) = %q", in, got)
		}
	}
	for in, want := range map[string]string{DirectionRequest: "Requests", DirectionResponse: "Responses", DirectionBoth: "Requests and responses"} {
		if got := GuardrailDirectionLabel(in); got != want {
			t.Errorf("GuardrailDirectionLabel(%q) = %q", in, got)
		}
	}
	for in, want := range map[string]string{RoutingWeighted: "Weighted", "": "Weighted", RoutingLeastBusy: "Least busy", RoutingLatency: "Lowest latency"} {
		if got := RoutingStrategyLabel(in); got != want {
			t.Errorf("RoutingStrategyLabel(%q) = %q", in, got)
		}
	}
	for in, want := range map[string]string{UsageRange1h: "Last hour", UsageRange24h: "Last 24 hours", "": "Last 24 hours", UsageRange7d: "Last 7 days"} {
		if got := UsageRangeLabel(in); got != want {
			t.Errorf("UsageRangeLabel(%q) = %q", in, got)
		}
	}
}

func TestTeamLimitsAndGuardrails(t *testing.T) {
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
				// team limits
				`data-testid="team-limits-summary"><span class="nowrap">600 rpm ·</span> <span class="nowrap">100k tpm ·</span> <span class="nowrap">10 concurrent</span></p>`,
				"600 rpm · 100k tpm · 10 concurrent",
				`<form method="post" action="/orgs/acme/teams/platform/limits" class="form-grid" data-testid="team-limits-form"`,
				`<label for="team-limits-rpm">Requests per minute</label>`, `id="team-limits-rpm" name="rpm" type="number" value="600"`,
				`id="team-limits-tpm" name="tpm" type="number" value="100000"`, `id="team-limits-max_concurrent" name="max_concurrent" type="number" value="10"`,
				testID("save-team-limits"), "Empty or 0: unlimited.",
				// key limits
				`data-testid="key-limits-k1"`, "60 rpm · 10k tpm", `id="key-limits-rpm" name="rpm" type="number" value=""`,
				`id="key-limits-tpm" name="tpm"`, `id="key-limits-max_concurrent" name="max_concurrent"`,
				// guardrails
				testID("guardrails-table"), testID("guardrail-row-g1"), testID("guardrail-row-g2"), testID("guardrail-row-g3"),
				">Payment card numbers<", ">Custom pattern (regex)<", ">Prompt injection<", `badge-danger">Block<`, `badge-warning">Redact<`,
				`badge-info">Audit only<`, ">Requests and responses<", ">Responses<", `<code>\bPROJ-[0-9]+\b</code>`,
				`<form method="post" action="/orgs/acme/teams/platform/guardrails/g1/delete"`, testID("delete-guardrail-g1"),
				`<form method="post" action="/orgs/acme/teams/platform/guardrails" class="form-grid" data-testid="guardrail-form"`,
				`<label for="guardrail-name">Name</label>`, `id="guardrail-name" name="name"`,
				`<select id="guardrail-detector" name="detector" required`, `<option value="" selected>Choose a detector</option>`,
				`<option value="iban">IBANs</option>`, `<option value="custom_regex">Custom pattern (regex)</option>`,
				`<select id="guardrail-mode" name="mode" required`, `<option value="block" selected>Block</option>`, `<option value="audit">Audit only</option>`,
				`<select id="guardrail-direction" name="direction" required>`, `<option value="request" selected>Requests</option>`, `<option value="both">Requests and responses</option>`,
				`id="guardrail-pattern" name="pattern"`, "Only for “Custom pattern (regex)”", testID("add-guardrail"),
				// triggers
				testID("triggers-table"), `data-testid="trigger-row" data-request-id="req-9"`, "<code>req-9</code>", ">no cards<",
				`<td class="num">2</td>`, `<td>—</td>`,
				`<th scope="col">Where</th>`, `<td data-testid="trigger-where">Tool-call arguments, Reasoning</td>`,
				`<td data-testid="trigger-where">—</td>`,
				// logging
				`data-testid="log-contents-state"`, ">Off<", "never prompts or completions", testID("log-contents-warning"),
				"stores every prompt and completion of this team in the request logs",
				`<form method="post" action="/orgs/acme/teams/platform/log-contents" class="confirm-body" data-testid="log-contents-form"`,
				`<input type="hidden" name="enabled" value="true">`, testID("enable-log-contents"),
			},
			notWant: []string{"No triggers in the last 24 hours", "No guardrails", `name="enabled" value="false"`, testID("disable-log-contents")},
		},
		{
			name: "team logging contents",
			c:    func() templ.Component { v := fullTeam(); v.LogContents = true; return Team(v) }(),
			want: []string{
				">On<", testID("log-contents-warning"), "Prompts and completions are stored in full",
				`<form method="post" action="/orgs/acme/teams/platform/log-contents" class="inline" data-testid="log-contents-form"`,
				`<input type="hidden" name="enabled" value="false">`, testID("disable-log-contents"),
			},
			notWant: []string{`name="enabled" value="true"`, testID("enable-log-contents")},
		},
		{
			name: "team read-only",
			c: func() templ.Component {
				v := fullTeam()
				v.CanManage, v.CanManageKeys, v.LogContents = false, false, true
				return Team(v)
			}(),
			want: []string{
				"600 rpm · 100k tpm · 10 concurrent", testID("guardrails-table"), testID("triggers-table"), ">On<", testID("log-contents-warning"),
				"60 rpm · 10k tpm",
			},
			notWant: []string{
				testID("team-limits-form"), testID("guardrail-form"), testID("log-contents-form"), "guardrails/g1/delete", `name="rpm"`,
				`name="enabled"`,
			},
		},
		{
			name: "team without limits, guardrails or triggers",
			c: Team(TeamView{Shell: sampleShell(NavTeams), Slug: "empty", Name: "Empty", CanManage: true, CanManageKeys: true,
				Keys: []KeyRow{{ID: "k1", Name: "plain", Prefix: "gk_…"}}}),
			want: []string{
				`data-testid="team-limits-summary">`, `<span class="muted">No limits</span>`, `data-testid="key-limits-k1"`,
				"No guardrails", "Add a guardrail with the form below.", "No triggers in the last 24 hours", ">Off<",
				`id="team-limits-rpm" name="rpm" type="number" value=""`, testID("guardrail-form"),
			},
			notWant: []string{testID("guardrails-table"), testID("triggers-table")},
		},
		{
			name: "team limits and guardrail errors",
			c: func() templ.Component {
				v := fullTeam()
				v.Limits = LimitsForm{RPM: "-1", TPM: "x", Errors: FieldErrors{"rpm": "Use 0 or more.", "tpm": "Use a whole number."}}
				v.GuardrailForm = GuardrailForm{Name: "ids", Detector: DetectorCustomRegex, Mode: GuardrailAudit, Direction: DirectionBoth, Pattern: "(",
					Errors: FieldErrors{"pattern": "Not a valid RE2 expression.", "name": "Taken."}}
				v.KeyForm = KeyForm{Name: "k", RPM: "5", TPM: "abc", MaxConcurrent: "0", Errors: FieldErrors{"tpm": "Use a whole number.", "max_concurrent": "Too many."}}
				return Team(v)
			}(),
			want: []string{
				`data-testid="error-rpm">Use 0 or more.<`, `data-testid="error-tpm">Use a whole number.<`, `data-testid="error-max_concurrent">Too many.<`,
				`id="team-limits-rpm" name="rpm" type="number" value="-1"`, `aria-describedby="team-limits-rpm-error"`,
				`id="key-limits-rpm" name="rpm" type="number" value="5"`, `id="key-limits-tpm" name="tpm" type="number" value="abc"`,
				`data-testid="error-pattern">Not a valid RE2 expression.<`, `data-testid="error-name">Taken.<`, `id="guardrail-pattern" name="pattern" type="text" value="("`,
				`<option value="custom_regex" selected>`, `<option value="audit" selected>Audit only</option>`, `<option value="both" selected>`,
			},
			notWant: []string{testID("team-limits-summary")},
		},
	}
	runPageTests(t, tests)
}

func TestModelPages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		c       templ.Component
		want    []string
		notWant []string
	}{
		{
			name: "models table links and summaries",
			c:    Models(fullModels()),
			want: []string{
				`<a href="/orgs/acme/models/m1" data-testid="model-link-m1"><strong>gpt-4o</strong></a>`, testID("model-link-m2"),
				`data-testid="model-routing-m1"><span class="nowrap">weighted ·</span> <span class="nowrap">2 deployments ·</span>`,
				"weighted · 2 deployments · 2 retries · fallback: gpt-mini",
				`data-testid="model-routing-m2"><span class="muted">Default routing</span>`,
				`data-testid="model-limits-m1"><span class="nowrap">600 rpm ·</span> <span class="nowrap">100k tpm</span>`,
				`data-testid="model-limits-m2"><span class="muted">No limits</span>`, ">Routing and limits<",
			},
		},
		{
			name: "model",
			c:    Model(fullModel()),
			want: []string{
				`href="/orgs/acme/models" data-testid="nav-models" aria-current="page"`, `href="/orgs/acme/models" data-testid="back-to-models"`,
				`data-testid="page-title">gpt-4o<`, testID("model-summary"), "<code>gpt-4o-2024-08-06</code>", "input $2.50 · output $10.00 · cached —",
				testID("model-routing-summary"), "Routing least-busy · 3 deployments · 2 retries · fallback: gpt-mini Limits 600 rpm",
				// deployments
				testID("deployments-table"), testID("deployment-row-primary"), ">Primary<", testID("deployment-row-d1"), testID("deployment-row-d2"),
				`<td class="num">3</td>`, `<td class="num">1</td>`, ">openai-eu<",
				`<form method="post" action="/orgs/acme/models/m1/deployments/d1/delete"`, testID("delete-deployment-d1"),
				`<form method="post" action="/orgs/acme/models/m1/deployments" class="form-grid" data-testid="deployment-form"`,
				`<select id="f-provider_id" name="provider_id" required>`, `<option value="p2">azure</option>`, `name="upstream_model"`,
				`id="f-weight" name="weight" type="number"`, testID("add-deployment"),
				// routing
				`<form method="post" action="/orgs/acme/models/m1/routing" class="form-grid" data-testid="routing-form"`,
				`<select id="f-strategy" name="strategy" required`, `<option value="least-busy" selected>Least busy</option>`, `<option value="latency">Lowest latency</option>`,
				`name="max_retries" type="number" value="2"`, `name="retry_backoff_ms" type="number" value="250"`, `name="timeout_ms" type="number" value="60000"`,
				`name="ttft_timeout_ms" type="number" value="8000"`, `name="stream_idle_timeout_ms" type="number" value="45000"`, `name="breaker_failures" type="number" value="5"`, `name="breaker_cooldown_ms" type="number" value="30000"`,
				testID("fallbacks"), `<select id="f-fallbacks-1" name="fallbacks">`, `<label for="f-fallbacks-1">1. fallback</label>`,
				`<option value="gpt-mini" selected>gpt-mini</option>`, `<select id="f-fallbacks-2" name="fallbacks">`, `<option value="" selected>(none)</option>`,
				`<option value="claude-sonnet">claude-sonnet</option>`, testID("save-routing"),
				// limits
				`data-testid="model-limits-summary"><span class="nowrap">600 rpm</span>`,
				`<form method="post" action="/orgs/acme/models/m1/limits" class="form-grid" data-testid="model-limits-form"`,
				`id="model-limits-rpm" name="rpm" type="number" value="600"`, testID("save-model-limits"),
			},
			notWant: []string{
				testID("page-error"), testID("routing-readonly"), `<option value="gpt-4o"`, `id="f-fallbacks-3"`, "No extra deployments",
			},
		},
		{
			name: "model read-only",
			c:    func() templ.Component { v := fullModel(); v.CanManage = false; return Model(v) }(),
			want: []string{
				testID("deployments-table"), testID("deployment-row-d1"), testID("routing-readonly"), ">Least busy<", ">2<", ">250 ms<", ">60000 ms<",
				"opens after 5 failures, cooldown 30000 ms", testID("fallback-list"), "<li><code>gpt-mini</code></li>", "600 rpm",
			},
			notWant: []string{
				`method="post" action="/orgs/acme/models`, testID("deployment-form"), testID("routing-form"), testID("model-limits-form"), "/delete",
			},
		},
		{
			name: "model empty",
			c:    Model(ModelView{Shell: sampleShell(NavModels), Model: ModelRow{ID: "m9", Name: "solo"}, CanManage: true}),
			want: []string{
				testID("deployment-row-primary"), testID("empty-state"), "No extra deployments", "No providers yet: add one on the Providers tab first.",
				`<option value="weighted" selected>Weighted</option>`, "There are no other models to fall back to.", `<span class="muted">No limits</span>`,
				`data-testid="model-routing-summary"><span class="muted">Default routing</span>`,
			},
			notWant: []string{`name="fallbacks"`, `deployments/d`},
		},
		{
			name: "model read-only empty",
			c:    Model(ModelView{Shell: sampleShell(NavModels), Model: ModelRow{ID: "m9", Name: "solo"}}),
			want: []string{"No extra deployments", ">Weighted<", "Gateway default", `<dd><span class="muted">None</span></dd>`},
		},
		{
			name: "model read-only stream idle bound",
			c:    Model(ModelView{Shell: sampleShell(NavModels), Model: ModelRow{ID: "m9", Name: "solo"}, Routing: RoutingForm{StreamIdleTimeoutMs: "45000"}}),
			want: []string{"<dt>Stream idle timeout</dt><dd>45000 ms</dd>"},
		},
		{
			name: "model errors",
			c: func() templ.Component {
				v := fullModel()
				v.Error = "Deployment d1 is the last one in eu."
				v.DeploymentForm = DeploymentForm{ProviderID: "p2", UpstreamModel: "gpt-4o", Weight: "0",
					Errors: FieldErrors{"weight": "Use 1 or more.", "upstream_model": "Already deployed there."}}
				v.Routing = RoutingForm{Strategy: "fastest", MaxRetries: "99", Fallbacks: []string{"gpt-mini", "gone-model", "claude-sonnet"},
					Errors: FieldErrors{"strategy": "Unknown strategy.", "max_retries": "At most 5.", "fallbacks": "gone-model does not exist."}}
				v.Limits = LimitsForm{MaxConcurrent: "x", Errors: FieldErrors{"max_concurrent": "Use a whole number."}}
				return Model(v)
			}(),
			want: []string{
				`role="alert" data-testid="page-error">Deployment d1 is the last one in eu.<`,
				`data-testid="error-weight">Use 1 or more.<`, `data-testid="error-upstream_model">Already deployed there.<`, `<option value="p2" selected>azure</option>`,
				`data-testid="error-strategy">Unknown strategy.<`, `<option value="fastest" selected>fastest</option>`, `data-testid="error-max_retries">At most 5.<`,
				`data-testid="error-fallbacks">gone-model does not exist.<`, `aria-describedby="f-fallbacks-hint f-fallbacks-error"`,
				`<option value="gone-model" selected>gone-model</option>`, `<option value="claude-sonnet" selected>`, `id="f-fallbacks-3"`,
				`data-testid="error-max_concurrent">Use a whole number.<`, `id="model-limits-max_concurrent" name="max_concurrent" type="number" value="x"`,
			},
			// Three candidates, three chosen: no empty slot left.
			notWant: []string{testID("model-limits-summary"), `id="f-fallbacks-4"`},
		},
	}
	runPageTests(t, tests)
}

func TestUsagePage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		c       templ.Component
		want    []string
		notWant []string
	}{
		{
			name: "usage",
			c:    Usage(fullUsage()),
			want: []string{
				`href="/orgs/acme/usage" data-testid="nav-usage" aria-current="page"`, testID("usage-range"),
				`href="/orgs/acme/usage?range=1h&amp;team=platform" data-testid="range-1h">Last hour<`,
				`href="/orgs/acme/usage?range=7d&amp;team=platform" data-testid="range-7d" aria-current="page">Last 7 days<`,
				`data-testid="usage-team-filter"`, "Team Platform only", `href="/orgs/acme/usage?range=7d" data-testid="usage-all-teams"`,
				`<h2 id="totals-heading">Last 7 days</h2>`, testID("usage-totals"),
				"<dt>Requests</dt><dd>12,345</dd>", "<dd>12</dd>", "<dd>1.2M</dd>", "<dd>340k</dd>", "<dd>$42.10</dd>",
				testID("usage-table"), `data-testid="usage-row" data-team="Platform" data-model="gpt-4o"`, `<td class="num">420</td>`, `<td class="num">1,900</td>`,
				`<td class="num nowrap">600k / 20k</td>`, `<td class="num nowrap">$40.00</td>`,
				testID("recent-table"), testID("recent-row-req-1"), "<code>req-1</code>", "/v1/chat/completions", "key <code>k1</code>", "as <code>support-bot</code>",
				`badge-success">200<`, testID("streamed-req-1"), ">Streamed<", "<code>azure/gpt-4o</code>", `data-testid="retries-req-1">retries: 1<`,
				`badge-danger">503<`, `badge-warning">429<`, `data-testid="fallback-req-2"`, ">Fallback<", "<code>gpt-mini</code>",
				`data-testid="tier-req-1" title="the provider's processing tier">tier flex<`,
			},
			notWant: []string{testID("empty-state"), testID("streamed-req-2"), testID("retries-req-2"), testID("fallback-req-1"), testID("tier-req-2"), `action="/orgs/acme/usage"`},
		},
		{
			name: "usage empty, all teams",
			c: func() templ.Component {
				s := sampleShell(NavUsage)
				s.Teams[0].Current = false
				return Usage(UsageView{Shell: s})
			}(),
			want: []string{
				`href="/orgs/acme/usage?range=24h" data-testid="range-24h" aria-current="page"`, `href="/orgs/acme/usage?range=1h" data-testid="range-1h">`,
				`<h2 id="totals-heading">Last 24 hours</h2>`, "<dt>Requests</dt><dd>0</dd>", "<dd>$0.00</dd>",
				testID("empty-state"), "No usage in this period", "No requests in this period",
			},
			notWant: []string{testID("usage-table"), testID("recent-table"), testID("usage-team-filter"), "range=1h&amp;team"},
		},
	}
	runPageTests(t, tests)
}

func runPageTests(t *testing.T, tests []struct {
	name    string
	c       templ.Component
	want    []string
	notWant []string
}) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			html := render(t, tt.c)
			text := textOf(html)
			for _, w := range tt.want {
				if !strings.Contains(html, w) && !strings.Contains(text, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(html, w) || strings.Contains(text, w) {
					t.Errorf("page has %q", w)
				}
			}
		})
	}
}

var tag = regexp.MustCompile(`<[^>]*>`)

// textOf is the text of html as a reader sees it: tags dropped, entities decoded,
// whitespace collapsed.
func textOf(h string) string {
	return strings.Join(strings.Fields(html.UnescapeString(tag.ReplaceAllString(h, " "))), " ")
}

func TestLimitsGuardrailsUsageEscapeUserStrings(t *testing.T) {
	t.Parallel()
	const evil = `<script>alert(1)</script>`

	team := fullTeam()
	team.Guardrails[0].Name, team.Guardrails[1].Pattern, team.Guardrails[2].Detector = evil, evil, evil
	team.GuardrailTriggers[0].RuleName, team.GuardrailTriggers[0].RequestID = evil, evil
	team.Keys[0].Limits = evil
	team.Limits.RPM = evil
	team.GuardrailForm = GuardrailForm{Name: evil, Pattern: evil, Mode: evil, Errors: FieldErrors{"pattern": evil}}
	team.KeyForm.TPM = evil

	model := fullModel()
	model.Model.Name, model.Model.Routing, model.Model.Limits = evil, evil, evil
	model.Deployments[0].Provider, model.Deployments[1].UpstreamModel = evil, evil
	model.AllModels = append(model.AllModels, evil)
	model.Routing.Fallbacks = []string{evil}
	model.Routing.Strategy = evil
	model.Error = evil

	ro := fullModel()
	ro.CanManage = false
	ro.Routing.Fallbacks, ro.Routing.TimeoutMs = []string{evil}, evil

	models := fullModels()
	models.Models[0].Routing, models.Models[1].Limits = evil, evil

	usage := fullUsage()
	usage.Shell.Teams[0].Name = evil
	usage.Totals.Cost = evil
	usage.Breakdown[0].Team, usage.Breakdown[1].Model = evil, evil
	usage.Recent[0].AgentIdentity, usage.Recent[1].Fallback, usage.Recent[2].Endpoint = evil, evil, evil

	for name, c := range map[string]templ.Component{
		"team": Team(team), "model": Model(model), "model read-only": Model(ro), "models": Models(models), "usage": Usage(usage),
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

func TestLimitsGuardrailsModelPathsAreEscaped(t *testing.T) {
	t.Parallel()
	team := fullTeam()
	team.Slug = "a b"
	team.Guardrails[0].ID = "g/1"
	html := render(t, Team(team))
	for _, want := range []string{
		`action="/orgs/acme/teams/a%20b/limits"`, `action="/orgs/acme/teams/a%20b/guardrails/g%2F1/delete"`,
		`action="/orgs/acme/teams/a%20b/guardrails"`, `action="/orgs/acme/teams/a%20b/log-contents"`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("team page lacks %q", want)
		}
	}

	model := fullModel()
	model.Model.ID = "m/1"
	model.Deployments[0].ID = "d?1"
	html = render(t, Model(model))
	for _, want := range []string{
		`action="/orgs/acme/models/m%2F1/deployments"`, `action="/orgs/acme/models/m%2F1/deployments/d%3F1/delete"`,
		`action="/orgs/acme/models/m%2F1/routing"`, `action="/orgs/acme/models/m%2F1/limits"`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("model page lacks %q", want)
		}
	}

	models := fullModels()
	models.Models[0].ID = "../x"
	if html := render(t, Models(models)); !strings.Contains(html, `href="/orgs/acme/models/..%2Fx"`) {
		t.Error("model id not path-escaped in the model link")
	}

	s := sampleShell(NavUsage)
	s.Teams[0].Slug = "a&b"
	if html := render(t, Usage(UsageView{Shell: s})); !strings.Contains(html, `href="/orgs/acme/usage?range=1h&amp;team=a%26b"`) {
		t.Error("team slug not query-escaped in the range links")
	}
}
