package store

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store/dbq"
)

// SSOConnection is an org's OIDC connection as shown (never the secret).
type SSOConnection struct {
	OrgID          string    `json:"org_id"`
	Issuer         string    `json:"issuer"`
	ClientID       string    `json:"client_id"`
	HasSecret      bool      `json:"has_client_secret"`
	AllowedDomains []string  `json:"allowed_domains"`
	Enabled        bool      `json:"enabled"`
	DefaultRole    string    `json:"default_role"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// SSOInput sets an org's connection. An empty ClientSecret keeps the stored one.
type SSOInput struct {
	Issuer         string
	ClientID       string
	ClientSecret   string
	AllowedDomains []string
	Enabled        bool
	DefaultRole    string
}

func connAAD(orgID string) []byte { return []byte("gatehouse/sso-client-secret/" + orgID) }

// GetSSO returns org's connection, or ErrNotFound.
func (s *Store) GetSSO(ctx context.Context, orgID string) (SSOConnection, error) {
	q := dbq.New(s.pool)
	row, err := q.GetSSOConnection(ctx, orgID)
	if err != nil {
		return SSOConnection{}, mapError(err)
	}
	domains, err := q.ListSSODomains(ctx, orgID)
	if err != nil {
		return SSOConnection{}, mapError(err)
	}
	return ssoFromRow(row, domains), nil
}

func ssoFromRow(r dbq.SsoConnection, domains []string) SSOConnection {
	return SSOConnection{OrgID: r.OrgID, Issuer: r.Issuer, ClientID: r.ClientID, HasSecret: r.ClientSecretSealed != nil,
		AllowedDomains: domains, Enabled: r.Enabled, DefaultRole: r.DefaultRole, UpdatedAt: r.UpdatedAt.Time.UTC()}
}

// SaveSSO creates or replaces org's connection and its email domains.
func (s *Store) SaveSSO(ctx context.Context, actor Actor, orgID string, in SSOInput) (SSOConnection, error) {
	in.Issuer = strings.TrimRight(strings.TrimSpace(in.Issuer), "/")
	in.ClientID = strings.TrimSpace(in.ClientID)
	fields := map[string]string{}
	if u, err := url.Parse(in.Issuer); err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname()))) {
		fields["issuer"] = "must be an https URL (http only for loopback development IdPs)"
	}
	if in.ClientID == "" {
		fields["client_id"] = "is required"
	}
	if in.DefaultRole == "" {
		in.DefaultRole = "member"
	}
	if !slices.Contains([]string{"org_admin", "member", "viewer"}, in.DefaultRole) {
		fields["default_role"] = "must be org_admin, member or viewer"
	}
	var domains []string
	for _, d := range in.AllowedDomains {
		d = strings.ToLower(strings.TrimSpace(d))
		if d != "" && !slices.Contains(domains, d) {
			domains = append(domains, d)
		}
	}
	if len(domains) == 0 {
		fields["allowed_domains"] = "at least one email domain is required"
	}
	if len(fields) > 0 {
		return SSOConnection{}, &ValidationError{Fields: fields}
	}
	var sealed []byte
	var keyID *string
	if in.ClientSecret != "" {
		kid, b, err := s.secrets.SealBytes([]byte(in.ClientSecret), connAAD(orgID))
		if err != nil {
			return SSOConnection{}, err
		}
		sealed, keyID = b, &kid
	}
	var out SSOConnection
	err := s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		if before, err := q.GetSSOConnection(ctx, orgID); err == nil {
			d, _ := q.ListSSODomains(ctx, orgID)
			ch.before = ssoFromRow(before, d)
		}
		row, err := q.UpsertSSOConnection(ctx, dbq.UpsertSSOConnectionParams{
			OrgID: orgID, Issuer: in.Issuer, ClientID: in.ClientID, ClientSecretSealed: sealed, ClientSecretKeyID: keyID,
			Enabled: in.Enabled, DefaultRole: in.DefaultRole,
		})
		if err != nil {
			return err
		}
		if err := q.DeleteSSODomains(ctx, orgID); err != nil {
			return err
		}
		for _, d := range domains {
			if err := q.InsertSSODomain(ctx, dbq.InsertSSODomainParams{Domain: d, OrgID: orgID}); err != nil {
				return err
			}
		}
		out = ssoFromRow(row, domains)
		ch.targetID, ch.after = orgID, out
		return nil
	}, change{actor: actor, orgID: orgID, action: "sso.save", targetType: "sso_connection", configless: true})
	return out, err
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// SSOForLogin is a connection with its opened client secret, for the login flow only.
type SSOForLogin struct {
	SSOConnection
	ClientSecret string
}

// SSOForEmailDomain finds the enabled connection that signs in domain.
func (s *Store) SSOForEmailDomain(ctx context.Context, domain string) (SSOForLogin, error) {
	orgID, err := dbq.New(s.pool).OrgForDomain(ctx, strings.ToLower(domain))
	if err != nil {
		return SSOForLogin{}, mapError(err)
	}
	return s.SSOForOrg(ctx, orgID)
}

// SSOForOrg returns org's connection with its secret opened; ErrNotFound when there is
// none or it is disabled.
func (s *Store) SSOForOrg(ctx context.Context, orgID string) (SSOForLogin, error) {
	q := dbq.New(s.pool)
	row, err := q.GetSSOConnection(ctx, orgID)
	if err != nil {
		return SSOForLogin{}, mapError(err)
	}
	if !row.Enabled {
		return SSOForLogin{}, ErrNotFound
	}
	domains, err := q.ListSSODomains(ctx, orgID)
	if err != nil {
		return SSOForLogin{}, mapError(err)
	}
	out := SSOForLogin{SSOConnection: ssoFromRow(row, domains)}
	if row.ClientSecretSealed != nil && row.ClientSecretKeyID != nil {
		plain, err := s.secrets.OpenBytes(*row.ClientSecretKeyID, row.ClientSecretSealed, connAAD(orgID))
		if err != nil {
			return SSOForLogin{}, err
		}
		out.ClientSecret = string(plain)
	}
	return out, nil
}

// GroupMapping maps an IdP group to an org role (no team) or a team role.
type GroupMapping struct {
	ID       string `json:"id"`
	Group    string `json:"group"`
	TeamID   string `json:"team_id,omitempty"`
	TeamSlug string `json:"team_slug,omitempty"`
	TeamName string `json:"team_name,omitempty"`
	Role     string `json:"role"`
}

// ListGroupMappings lists org's group mappings.
func (s *Store) ListGroupMappings(ctx context.Context, orgID string) ([]GroupMapping, error) {
	rows, err := dbq.New(s.pool).ListGroupMappings(ctx, orgID)
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]GroupMapping, len(rows))
	for i, r := range rows {
		out[i] = GroupMapping{ID: r.ID, Group: r.IdpGroup, TeamSlug: r.TeamSlug, TeamName: r.TeamName, Role: r.Role}
		if r.TeamID != nil {
			out[i].TeamID = *r.TeamID
		}
	}
	return out, nil
}

// CreateGroupMapping adds a mapping.
func (s *Store) CreateGroupMapping(ctx context.Context, actor Actor, orgID, group string, g Grant) (GroupMapping, error) {
	group = strings.TrimSpace(group)
	if group == "" {
		return GroupMapping{}, invalid("group", "is required")
	}
	if err := validateGrant(g); err != nil {
		return GroupMapping{}, err
	}
	var teamID *string
	if g.TeamID != "" {
		teamID = &g.TeamID
	}
	var out GroupMapping
	err := s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		row, err := q.CreateGroupMapping(ctx, dbq.CreateGroupMappingParams{OrgID: orgID, IdpGroup: group, TeamID: teamID, Role: g.Role})
		if err != nil {
			return err
		}
		out = GroupMapping{ID: row.ID, Group: row.IdpGroup, TeamID: g.TeamID, Role: row.Role}
		ch.targetID, ch.after = row.ID, out
		return nil
	}, change{actor: actor, orgID: orgID, action: "sso.mapping.create", targetType: "sso_group_mapping", configless: true})
	return out, err
}

// DeleteGroupMapping removes a mapping of org.
func (s *Store) DeleteGroupMapping(ctx context.Context, actor Actor, orgID, id string) error {
	return s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		row, err := q.DeleteGroupMapping(ctx, dbq.DeleteGroupMappingParams{ID: id, OrgID: orgID})
		if err != nil {
			return err
		}
		ch.before = GroupMapping{ID: row.ID, Group: row.IdpGroup, Role: row.Role}
		return nil
	}, change{actor: actor, orgID: orgID, action: "sso.mapping.delete", targetType: "sso_group_mapping", targetID: id, configless: true})
}

// LoginAttempt is an OIDC authorization request in flight.
type LoginAttempt struct {
	OrgID        string // empty: platform IdP
	Nonce        string
	PKCEVerifier string
	Next         string
	EmailHint    string
}

// SaveLoginAttempt stores an attempt under the hash of its state for ttl.
func (s *Store) SaveLoginAttempt(ctx context.Context, state string, a LoginAttempt, ttl time.Duration) error {
	var orgID *string
	if a.OrgID != "" {
		orgID = &a.OrgID
	}
	q := dbq.New(s.pool)
	_ = q.PurgeLoginAttempts(ctx)
	return mapError(q.CreateLoginAttempt(ctx, dbq.CreateLoginAttemptParams{
		StateSha256: sha(state), OrgID: orgID, Nonce: a.Nonce, PkceVerifier: a.PKCEVerifier,
		NextPath: a.Next, EmailHint: a.EmailHint, ExpiresAt: ts(s.now().Add(ttl)),
	}))
}

// TakeLoginAttempt returns and deletes the attempt of state (single use); ErrNotFound
// when unknown or expired.
func (s *Store) TakeLoginAttempt(ctx context.Context, state string) (LoginAttempt, error) {
	row, err := dbq.New(s.pool).TakeLoginAttempt(ctx, sha(state))
	if err != nil {
		return LoginAttempt{}, mapError(err)
	}
	if row.ExpiresAt.Time.Before(s.now()) {
		return LoginAttempt{}, ErrNotFound
	}
	a := LoginAttempt{Nonce: row.Nonce, PKCEVerifier: row.PkceVerifier, Next: row.NextPath, EmailHint: row.EmailHint}
	if row.OrgID != nil {
		a.OrgID = *row.OrgID
	}
	return a, nil
}

// Session is a console session.
type Session struct {
	UserID        string
	Email         string
	Name          string
	PlatformAdmin bool
	Disabled      bool
	CSRFToken     string
	CreatedAt     time.Time
	LastSeenAt    time.Time
	ExpiresAt     time.Time
	Revoked       bool
}

// CreateSession stores a session under the hash of id.
func (s *Store) CreateSession(ctx context.Context, id, userID, csrf string, absolute time.Duration, userAgent string) error {
	if len(userAgent) > 300 {
		userAgent = userAgent[:300]
	}
	return mapError(dbq.New(s.pool).CreateSession(ctx, dbq.CreateSessionParams{
		IDSha256: sha(id), UserID: userID, CsrfToken: csrf, ExpiresAt: ts(s.now().Add(absolute)), UserAgent: userAgent,
	}))
}

// GetSession returns the session of id (revoked and expired ones too; callers check).
func (s *Store) GetSession(ctx context.Context, id string) (Session, error) {
	r, err := dbq.New(s.pool).GetSession(ctx, sha(id))
	if err != nil {
		return Session{}, mapError(err)
	}
	return Session{UserID: r.UserID, Email: r.Email, Name: r.Name, PlatformAdmin: r.PlatformAdmin, Disabled: r.Disabled,
		CSRFToken: r.CsrfToken, CreatedAt: r.CreatedAt.Time, LastSeenAt: r.LastSeenAt.Time, ExpiresAt: r.ExpiresAt.Time,
		Revoked: r.RevokedAt.Valid}, nil
}

// TouchSession records activity (for the idle timeout).
func (s *Store) TouchSession(ctx context.Context, id string) error {
	return mapError(dbq.New(s.pool).TouchSession(ctx, sha(id)))
}

// RevokeSession ends a session.
func (s *Store) RevokeSession(ctx context.Context, id string) error {
	return mapError(dbq.New(s.pool).RevokeSession(ctx, sha(id)))
}

// AuditFilter narrows the audit log.
type AuditFilter struct {
	Actor      string
	Action     string // prefix, e.g. "team." or "member.add"
	TargetType string
	Since      *time.Time
	BeforeID   int64
	Limit      int32
}

// FilterAudit returns org's audit entries matching f, newest first.
func (s *Store) FilterAudit(ctx context.Context, orgID string, f AuditFilter) ([]AuditEntry, error) {
	since := ts(time.Time{})
	since.Valid = f.Since != nil
	if f.Since != nil {
		since.Time = *f.Since
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	rows, err := dbq.New(s.pool).FilterAudit(ctx, dbq.FilterAuditParams{
		OrgID: &orgID, Actor: f.Actor, Action: f.Action, TargetType: f.TargetType, Since: since, BeforeID: f.BeforeID, Lim: f.Limit,
	})
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]AuditEntry, len(rows))
	for i, r := range rows {
		out[i] = AuditEntry{ID: r.ID, At: r.At.Time.UTC().Format("2006-01-02T15:04:05.000Z"), Actor: r.Actor, OrgID: r.OrgID,
			Action: r.Action, TargetType: r.TargetType, TargetID: r.TargetID, Before: r.Before, After: r.After}
	}
	return out, nil
}
