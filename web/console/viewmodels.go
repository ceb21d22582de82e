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
	NavTeams   NavSection = "teams"
	NavMembers NavSection = "members"
	NavSSO     NavSection = "sso"
	NavTokens  NavSection = "tokens"
	NavAudit   NavSection = "audit"
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
