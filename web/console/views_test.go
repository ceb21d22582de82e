package console

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/a-h/templ"
)

const csrf = "tok-123"

func render(t *testing.T, c templ.Component) string {
	t.Helper()
	var buf bytes.Buffer
	if err := c.Render(context.Background(), &buf); err != nil {
		t.Fatalf("render: %v", err)
	}
	return buf.String()
}

func testID(id string) string { return `data-testid="` + id + `"` }

func sampleShell(nav NavSection) Shell {
	return Shell{
		Title:     "Page",
		User:      User{Name: "Ada Lovelace", Email: "ada@acme.test", IsPlatformAdmin: true},
		CSRFToken: csrf,
		Orgs: []OrgLink{
			{ID: "o1", Slug: "acme", Name: "Acme", Current: true},
			{ID: "o2", Slug: "globex", Name: "Globex"},
		},
		CurrentOrg: OrgRef{Slug: "acme", Name: "Acme"},
		Teams: []TeamLink{
			{Slug: "platform", Name: "Platform", Current: true},
			{Slug: "research", Name: "Research"},
		},
		Nav: nav,
	}
}

var (
	orgRoles  = []string{"org_admin", "member", "viewer"}
	teamRoles = []string{"team_admin", "member", "viewer"}
	teamLinks = []TeamLink{{Slug: "platform", Name: "Platform"}, {Slug: "research", Name: "Research"}}
)

func fullTeams() TeamsView {
	return TeamsView{
		Shell: sampleShell(NavTeams),
		Teams: []TeamRow{
			{ID: "t1", Slug: "platform", Name: "Platform", Members: 4},
			{ID: "t2", Slug: "research", Name: "Research", Members: 1, Suspended: true},
		},
		CanCreate: true,
	}
}

func fullMembers() MembersView {
	return MembersView{
		Shell: sampleShell(NavMembers),
		Members: []MemberRow{
			{
				UserID: "u1", Email: "ada@acme.test", Name: "Ada", OrgRole: "org_admin", Source: SourceManual,
				Teams: []MemberTeamRole{{TeamSlug: "platform", TeamName: "Platform", Role: "team_admin"}},
			},
			{UserID: "u2", Email: "bob@acme.test", OrgRole: "member", Source: SourceSSOGroup, Disabled: true},
		},
		Teams: teamLinks, Roles: orgRoles, TeamRoles: teamRoles, CanManage: true,
	}
}

func fullSSO() SSOView {
	return SSOView{
		Shell:       sampleShell(NavSSO),
		Conn:        SSOForm{Issuer: "https://idp.acme.test", ClientID: "gatehouse", HasSecret: true, AllowedDomains: "acme.test", Enabled: true},
		RedirectURI: "https://gatehouse.acme.test/oidc/callback",
		Mappings: []GroupMappingRow{
			{ID: "m1", Group: "eng", TeamSlug: "platform", TeamName: "Platform", Role: "team_admin"},
			{ID: "m2", Group: "everyone", Role: "viewer"},
		},
		Teams: teamLinks, Roles: unionRoles(orgRoles, teamRoles), CanManage: true,
	}
}

func fullTokens() TokensView {
	return TokensView{
		Shell: sampleShell(NavTokens),
		Tokens: []TokenRow{
			{ID: "k1", Name: "ci", Prefix: "gh_3fa9…", Scopes: []string{"teams:read", "keys:write"}, Owner: "ada@acme.test", CreatedAt: "2026-01-02"},
			{ID: "k2", Name: "old", Prefix: "gh_0000…", Owner: "service account old", CreatedAt: "2025-01-02", Revoked: true},
		},
		AvailableScopes: []ScopeOption{{Value: "teams:read", Label: "Read teams"}, {Value: "keys:write", Label: "Manage keys"}},
		CanManage:       true,
	}
}

func fullAudit() AuditView {
	return AuditView{
		Shell: sampleShell(NavAudit),
		Entries: []AuditRow{
			{ID: "9", At: "2026-01-02 10:00", Actor: "ada@acme.test", Action: "team.create", TargetType: "team", TargetID: "t1", After: "{\n  \"slug\": \"platform\"\n}"},
			{ID: "8", At: "2026-01-01 09:00", Actor: "ada@acme.test", Action: "sso.update", TargetType: "sso", TargetID: "acme"},
		},
		NextURL: "/orgs/acme/audit?before=8",
	}
}

// pages renders every page with its lists and forms filled and management allowed.
func pages() map[string]templ.Component {
	return map[string]templ.Component{
		"login":   Login(LoginView{Email: "ada@acme.test", Next: "/orgs/acme/teams", CSRFToken: csrf}),
		"error":   ErrorPage(ErrorView{Status: 404, Message: "No such page.", RequestID: "req-1"}),
		"teams":   Teams(fullTeams()),
		"members": Members(fullMembers()),
		"sso":     SSO(fullSSO()),
		"tokens":  Tokens(fullTokens()),
		"audit":   Audit(fullAudit()),
		"home":    Home(HomeView{Version: "v1"}),

		"providers": Providers(fullProviders()),
		"models":    Models(fullModels()),
		"mcp":       MCPServers(fullMCP()),
		"agents":    Agents(fullAgents()),
		"team":      Team(fullTeam()),
		"team new key": func() templ.Component {
			v := fullTeam()
			v.NewKeySecret = "gk_secret"
			return Team(v)
		}(),
		"fleet": Fleet(fullFleet()),

		"team read-only, logging contents": func() templ.Component {
			v := fullTeam()
			v.LogContents, v.CanManage, v.CanManageKeys = true, false, false
			return Team(v)
		}(),
		"team logging contents": func() templ.Component {
			v := fullTeam()
			v.LogContents = true
			return Team(v)
		}(),
		"model":           Model(fullModel()),
		"model read-only": func() templ.Component { v := fullModel(); v.CanManage = false; return Model(v) }(),
		"model empty":     Model(ModelView{Shell: sampleShell(NavModels), Model: ModelRow{ID: "m9", Name: "solo"}, CanManage: true}),
		"usage":           Usage(fullUsage()),
		"usage empty":     Usage(UsageView{Shell: sampleShell(NavUsage)}),
	}
}

var formOpen = regexp.MustCompile(`<form[^>]*>`)

// postForms returns every <form method="post"> ... </form> block of a page.
func postForms(t *testing.T, html string) []string {
	t.Helper()
	var out []string
	for _, loc := range formOpen.FindAllStringIndex(html, -1) {
		tag := html[loc[0]:loc[1]]
		end := strings.Index(html[loc[0]:], "</form>")
		if end < 0 {
			t.Fatalf("unclosed form %s", tag)
		}
		block := html[loc[0] : loc[0]+end]
		if strings.Count(block, "<form") > 1 {
			t.Fatalf("nested form in %s", tag)
		}
		switch {
		case strings.Contains(tag, `method="post"`):
			out = append(out, block)
		case strings.Contains(tag, `method="get"`):
		default:
			t.Errorf("form without an explicit method: %s", tag)
		}
	}
	return out
}

func TestEveryPostFormCarriesCSRF(t *testing.T) {
	t.Parallel()
	for name, c := range pages() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			html := render(t, c)
			forms := postForms(t, html)
			if name != "home" && name != "error" && name != "fleet" && len(forms) == 0 {
				t.Fatal("no POST form found")
			}
			for _, f := range forms {
				if !strings.Contains(f, `<input type="hidden" name="csrf_token" value="`+csrf+`">`) {
					t.Errorf("POST form lacks csrf_token: %.200s", f)
				}
			}
		})
	}
}

var (
	controlTag = regexp.MustCompile(`<(input|select)\b[^>]*>`)
	idAttr     = regexp.MustCompile(`\bid="([^"]*)"`)
)

// Every visible control has a label: a <label for> its id, an enclosing <label> or an
// aria-label; and ids are unique on the page.
func TestEveryControlIsLabelled(t *testing.T) {
	t.Parallel()
	for name, c := range pages() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			html := render(t, c)
			seen := map[string]bool{}
			for _, m := range idAttr.FindAllStringSubmatch(html, -1) {
				if seen[m[1]] {
					t.Errorf("duplicate id %q", m[1])
				}
				seen[m[1]] = true
			}
			for _, loc := range controlTag.FindAllStringIndex(html, -1) {
				tag := html[loc[0]:loc[1]]
				if strings.Contains(tag, `type="hidden"`) || strings.Contains(tag, "aria-label=") {
					continue
				}
				if id := idAttr.FindStringSubmatch(tag); id != nil {
					if !strings.Contains(html, `<label for="`+id[1]+`"`) {
						t.Errorf("no <label for=%q>: %s", id[1], tag)
					}
					continue
				}
				before := html[:loc[0]]
				if strings.LastIndex(before, "<label") <= strings.LastIndex(before, "</label>") {
					t.Errorf("unlabelled control: %s", tag)
				}
			}
		})
	}
}

func TestShell(t *testing.T) {
	t.Parallel()
	s := sampleShell(NavMembers)
	s.Flash = Flash{Kind: FlashError, Message: "Could not save."}
	html := render(t, Members(MembersView{Shell: s}))
	for _, want := range []string{
		testID("topbar"), testID("org-switcher"), testID("team-switcher"), testID("nav"),
		`<form method="get" action="/console/switch"`, `<select id="org-switch" name="org">`,
		`<option value="acme" selected>Acme</option>`, `<input type="hidden" name="section" value="members">`,
		`href="/orgs/acme/members?team=research"`, `<form method="post" action="/logout"`,
		`data-testid="user-name" title="ada@acme.test">Ada Lovelace<`, "Platform admin",
		`href="/orgs/acme/teams" data-testid="nav-teams"`, `href="/orgs/acme/sso" data-testid="nav-sso"`,
		`href="/orgs/acme/tokens" data-testid="nav-tokens"`, `href="/orgs/acme/audit" data-testid="nav-audit"`,
		`href="/orgs/acme/models" data-testid="nav-models"`, `href="/orgs/acme/mcp" data-testid="nav-mcp"`,
		`href="/orgs/acme/agents" data-testid="nav-agents"`, `href="/orgs/acme/fleet" data-testid="nav-fleet"`,
		`href="/orgs/acme/usage" data-testid="nav-usage"`,
		`href="/orgs/acme/members" data-testid="nav-members" aria-current="page"`,
		`role="alert" data-testid="flash" data-kind="error">Could not save.<`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("shell lacks %q", want)
		}
	}
	if strings.Count(html, `aria-current="page"`) != 1 {
		t.Error("want exactly one active nav link")
	}

	one := sampleShell(NavTeams)
	one.Orgs = one.Orgs[:1]
	one.Teams = nil
	html = render(t, Teams(TeamsView{Shell: one}))
	if strings.Contains(html, testID("org-switcher")) || strings.Contains(html, testID("team-switcher")) || strings.Contains(html, testID("flash")) {
		t.Error("switchers or flash shown with one org, no teams and no flash")
	}
	if !strings.Contains(html, `data-testid="current-org">Acme<`) {
		t.Error("single org not named")
	}
}

func TestPages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		c       templ.Component
		want    []string
		notWant []string
	}{
		{
			name: "login",
			c:    Login(LoginView{Email: "ada@nowhere.test", Error: "No organization signs in with nowhere.test.", Next: "/orgs/acme/tokens", CSRFToken: csrf}),
			want: []string{
				`<form method="post" action="/login"`, testID("login-error"), "No organization signs in with nowhere.test.",
				`name="next" value="/orgs/acme/tokens"`, `name="email" type="email" value="ada@nowhere.test"`,
				`<label for="f-email">`, "Continue with SSO", testID("login-submit"),
			},
			notWant: []string{testID("topbar")},
		},
		{
			name:    "login without error",
			c:       Login(LoginView{CSRFToken: csrf}),
			notWant: []string{testID("login-error")},
		},
		{
			name: "error page",
			c:    ErrorPage(ErrorView{Status: 403, Title: "You cannot see this", Message: "Ask an org admin for access.", RequestID: "req-42", BackURL: "/orgs/acme/teams"}),
			want: []string{
				`data-testid="error-title">You cannot see this<`, `data-testid="error-message">Ask an org admin for access.<`,
				"Error 403", "<code>req-42</code>", `href="/orgs/acme/teams"`,
			},
		},
		{
			name:    "error page defaults",
			c:       ErrorPage(ErrorView{Status: 404}),
			want:    []string{`data-testid="error-title">Page not found<`, testID("error-message"), `href="/"`},
			notWant: []string{testID("error-request-id")},
		},
		{
			name:    "error page never links to javascript",
			c:       ErrorPage(ErrorView{BackURL: "javascript:alert(1)"}),
			notWant: []string{"javascript:"},
		},
		{
			name: "teams",
			c:    Teams(fullTeams()),
			want: []string{
				testID("teams-table"), testID("team-row-platform"), testID("team-row-research"), "Suspended",
				`<form method="post" action="/orgs/acme/teams"`, testID("create-team"),
				`name="slug"`, `name="name"`, `href="/orgs/acme/members?team=platform"`,
				`<a href="/orgs/acme/teams/platform" data-testid="team-name-platform">Platform</a>`,
			},
			notWant: []string{testID("empty-state"), testID("error-slug")},
		},
		{
			name:    "teams empty, cannot create",
			c:       Teams(TeamsView{Shell: sampleShell(NavTeams)}),
			want:    []string{testID("empty-state"), "No teams yet", "An organization admin can create one."},
			notWant: []string{testID("teams-table"), testID("create-team")},
		},
		{
			name: "teams form errors",
			c: Teams(TeamsView{Shell: sampleShell(NavTeams), CanCreate: true, Form: TeamForm{
				Slug: "Bad Slug", Name: "Bad", Errors: FieldErrors{"slug": "Use lowercase letters, digits and dashes.", "name": "Taken."},
			}}),
			want: []string{
				`data-testid="error-slug">Use lowercase letters, digits and dashes.<`, `data-testid="error-name">Taken.<`,
				`value="Bad Slug"`, `aria-invalid="true"`, `aria-describedby="f-slug-hint f-slug-error"`,
			},
		},
		{
			name: "members",
			c:    Members(fullMembers()),
			want: []string{
				testID("members-table"), `data-testid="member-row-ada@acme.test"`, `data-testid="member-row-bob@acme.test"`,
				`<form method="post" action="/orgs/acme/members/u1/role"`, `<form method="post" action="/orgs/acme/members/u1/remove"`,
				`<input type="hidden" name="team" value="">`, `<input type="hidden" name="team" value="platform">`,
				`<option value="team_admin" selected>Team admin</option>`, `<option value="org_admin" selected>Org admin</option>`,
				`<form method="post" action="/orgs/acme/members"`, testID("invite-member"),
				`<option value="" selected>(organization)</option>`, "SSO group", "Disabled", "No teams",
			},
			notWant: []string{testID("empty-state")},
		},
		{
			name: "members read-only",
			c: func() templ.Component {
				v := fullMembers()
				v.CanManage = false
				return Members(v)
			}(),
			want:    []string{testID("members-table"), "Org admin", "Team admin"},
			notWant: []string{"/role", "/remove", testID("invite-member")},
		},
		{
			name: "members empty with invite errors",
			c: Members(MembersView{Shell: sampleShell(NavMembers), Roles: orgRoles, TeamRoles: teamRoles, Teams: teamLinks, CanManage: true, Invite: InviteForm{
				Email: "nope", Team: "research", Role: "org_admin", Errors: FieldErrors{"email": "Enter an email address.", "role": "Org admin is not a team role."},
			}}),
			want: []string{
				testID("empty-state"), `data-testid="error-email">Enter an email address.<`, `data-testid="error-role">Org admin is not a team role.<`,
				`value="nope"`, `<option value="research" selected>Research</option>`, `<option value="org_admin" selected>Org admin</option>`,
			},
			notWant: []string{testID("members-table")},
		},
		{
			name: "sso",
			c:    SSO(fullSSO()),
			want: []string{
				`<form method="post" action="/orgs/acme/sso"`, `value="https://gatehouse.acme.test/oidc/callback" data-testid="redirect-uri"`,
				`name="client_secret" type="password"`, "A secret is stored. Leave blank to keep it.",
				`name="enabled" value="true" checked`, `value="acme.test"`,
				testID("mappings-table"), testID("mapping-row-m1"), `<form method="post" action="/orgs/acme/sso/mappings/m1/delete"`,
				`<form method="post" action="/orgs/acme/sso/mappings"`, testID("add-mapping"), "Organization",
			},
			notWant: []string{testID("sso-readonly"), testID("empty-state")},
		},
		{
			name: "sso read-only without mappings",
			c: func() templ.Component {
				v := fullSSO()
				v.CanManage, v.Mappings = false, nil
				return SSO(v)
			}(),
			want:    []string{testID("sso-readonly"), testID("redirect-uri"), "Stored", "Enabled", testID("empty-state"), "No group mappings"},
			notWant: []string{testID("sso-form"), testID("mapping-form"), "/delete", `name="client_secret"`},
		},
		{
			name: "sso errors",
			c: SSO(SSOView{Shell: sampleShell(NavSSO), CanManage: true, Roles: orgRoles,
				Conn:        SSOForm{Issuer: "ftp://x", Errors: FieldErrors{"issuer": "Use an https URL.", "client_secret": "Required to enable SSO."}},
				MappingForm: MappingForm{Group: "eng", Errors: FieldErrors{"role": "Choose a role."}},
			}),
			want: []string{
				`data-testid="error-issuer">Use an https URL.<`, `data-testid="error-client_secret">Required to enable SSO.<`,
				`data-testid="error-role">Choose a role.<`, "No secret stored yet.", `value="ftp://x"`,
			},
		},
		{
			name: "tokens",
			c:    Tokens(fullTokens()),
			want: []string{
				testID("tokens-table"), testID("token-row-k1"), "<code>gh_3fa9…</code>", "<code>keys:write</code>", "Never",
				`<form method="post" action="/orgs/acme/tokens/k1/revoke"`, testID("revoke-k1"), "Revoked", "service account old",
				`<form method="post" action="/orgs/acme/tokens"`, `name="scopes" value="teams:read"`, `name="service_account" value="true"`,
				`name="expires_in_days" type="number"`, testID("create-token"),
			},
			notWant: []string{testID("new-token-secret"), "tokens/k2/revoke", testID("empty-state")},
		},
		{
			name: "tokens new secret and errors",
			c: func() templ.Component {
				v := fullTokens()
				v.NewSecret = "gh_3fa9SECRETVALUE"
				v.Form = TokenForm{Name: "ci", Scopes: []string{"keys:write"}, ServiceAccount: true, ExpiresInDays: "0",
					Errors: FieldErrors{"expires_in_days": "Use 1 or more days.", "scopes": "Pick at least one scope."}}
				return Tokens(v)
			}(),
			want: []string{
				`data-testid="new-token-secret">gh_3fa9SECRETVALUE<`, "Copy it now, it will not be shown again.",
				`data-testid="error-expires_in_days">Use 1 or more days.<`, `data-testid="error-scopes">Pick at least one scope.<`,
				`name="scopes" value="keys:write" checked`, `name="service_account" value="true" checked`,
			},
			notWant: []string{`name="scopes" value="teams:read" checked`},
		},
		{
			name:    "tokens empty, read-only",
			c:       Tokens(TokensView{Shell: sampleShell(NavTokens)}),
			want:    []string{testID("empty-state"), "No API tokens"},
			notWant: []string{testID("tokens-table"), testID("create-token"), testID("new-token-secret")},
		},
		{
			name: "audit",
			c:    Audit(fullAudit()),
			want: []string{
				`<form method="get" action="/orgs/acme/audit"`, testID("audit-table"),
				`data-testid="audit-row" data-action="team.create"`, `data-testid="audit-row" data-action="sso.update"`,
				"<details", "&#34;slug&#34;", `href="/orgs/acme/audit?before=8" data-testid="audit-older"`,
				`name="since" type="date"`,
			},
			notWant: []string{testID("empty-state")},
		},
		{
			name:    "audit empty and filtered",
			c:       Audit(AuditView{Shell: sampleShell(NavAudit), Filter: AuditFilter{Actor: "bob@acme.test", Since: "2026-01-01"}}),
			want:    []string{testID("empty-state"), "No audit entries match", `value="bob@acme.test"`, `value="2026-01-01"`, ">Clear<"},
			notWant: []string{testID("audit-table"), testID("audit-older")},
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

func TestUserStringsAreEscaped(t *testing.T) {
	t.Parallel()
	const evil = `<script>alert(1)</script>`
	s := sampleShell(NavTeams)
	s.Title, s.User.Name, s.CurrentOrg.Name = evil, evil, evil
	s.Orgs[1].Name = evil
	s.Teams[1].Name = evil
	s.Flash = Flash{Kind: FlashSuccess, Message: evil}

	teams := fullTeams()
	teams.Shell = s
	teams.Teams[0].Name = evil
	teams.Form = TeamForm{Name: evil, Errors: FieldErrors{"name": evil}}

	members := fullMembers()
	members.Shell = s
	members.Members[0].Name = evil
	members.Members[0].Teams[0].TeamName = evil

	sso := fullSSO()
	sso.Shell = s
	sso.Mappings[0].Group = evil
	sso.Conn.AllowedDomains = evil

	tokens := fullTokens()
	tokens.Shell = s
	tokens.NewSecret = evil
	tokens.Tokens[0].Name = evil
	tokens.Tokens[0].Scopes = []string{evil}

	audit := fullAudit()
	audit.Shell = s
	audit.Entries[0].Before = evil
	audit.Entries[0].Actor = evil
	audit.Filter.Actor = evil

	for name, c := range map[string]templ.Component{
		"teams": Teams(teams), "members": Members(members), "sso": SSO(sso), "tokens": Tokens(tokens), "audit": Audit(audit),
		"login": Login(LoginView{Email: evil, Error: evil, Next: evil}),
		"error": ErrorPage(ErrorView{Title: evil, Message: evil, RequestID: evil}),
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

func TestPathsAreEscaped(t *testing.T) {
	t.Parallel()
	s := sampleShell(NavTokens)
	v := fullTokens()
	v.Shell = s
	v.Tokens[0].ID = "a/b?c"
	html := render(t, Tokens(v))
	if !strings.Contains(html, `action="/orgs/acme/tokens/a%2Fb%3Fc/revoke"`) {
		t.Error("token id not path-escaped in the revoke action")
	}
	if got := teamScopedPath("acme", NavNone, "a&b"); got != "/orgs/acme/teams?team=a%26b" {
		t.Errorf("teamScopedPath = %q", got)
	}
}

func TestRoleLabel(t *testing.T) {
	t.Parallel()
	for role, want := range map[string]string{
		"org_admin": "Org admin", "team_admin": "Team admin", "member": "Member", "viewer": "Viewer",
		"billing_manager": "Billing manager", "": "",
	} {
		if got := RoleLabel(role); got != want {
			t.Errorf("RoleLabel(%q) = %q, want %q", role, got, want)
		}
	}
}
